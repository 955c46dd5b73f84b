"""The monthly deposit (月度信息化存证): deposit.json and deposit.xlsx (docs/deposit.md).

Built from what the export already computed — summary.json's streams (each factor used, with its
activity, CO2 and parameters), its carbon `balance` and `production`, and the lab records of the
evidence store — never from a second read of the ledger.

Rows. Each level (the enterprise, each process) lists its balance items, one row per stream and
factor id: a stream whose month mixes lab-result minutes and default minutes gives a `measured`
row and a `default` row, so nothing is averaged away. A row's CO2 is its carbon x 44/12, negative
for carbon out; a `calculated` row closes the level with its balance figure. Tags:

- `measured`: the factor is a lab result (`lab:<sample_id>`);
- `default`: a library or site default factor;
- `calculated`: derived (the balance figure closing each level).

Production rows are `measured` when a weighing signal or a monthly entry with its evidence file
gives them.

The workbook is laid out like the platform's (rebuilt from a third-party file): six sheets, a
Chinese header row and an English second header row. `工序/生产线…` cannot be a sheet name
(`/` is not allowed): its sheet is 工序或生产线生产数据及排放量表.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from analytics import deposit_calendar
from analytics.balance import C_TO_CO2
from gateway.export import workbook
from gateway.export.documents import T3, T6, Column, Sheet
from gateway.ledger.evidence import evidence_dir

DEPOSIT_JSON = "deposit.json"
DEPOSIT_XLSX = "deposit.xlsx"
EVIDENCE_PREFIX = "evidence-"  # evidence files sit flat in the export folder: evidence-<sha256><suffix>
TAG_ZH = {"measured": "实测值", "default": "缺省值", "calculated": "计算值"}
PROCESS_SHEET = "工序或生产线生产数据及排放量表"  # 工序/生产线…: `/` is not allowed in a sheet name


def due_date(month: str) -> str:
    """The month's last day (site calendar) + 40 days, as an ISO date."""
    return deposit_calendar.due_date(month).isoformat()


def tag_of(factor_id: str) -> str:
    if factor_id.startswith("lab:"):
        return "measured"
    return "default"


def _factor_uses(summary: Mapping[str, Any]) -> dict[tuple[str, str, str], tuple[dict[str, Any], dict[str, Any]]]:
    return {(s["process"], s["stream"], f["id"]): (s, f) for s in summary["streams"] for f in s["factors"]}


def _source(stream: Mapping[str, Any] | None, factor_id: str) -> str:
    signal = (stream or {}).get("signal")
    where = (stream or {}).get("measured_by")
    meter = f"signal {signal}" + (f" ({where})" if where else "") if signal else "signal not configured"
    what = f"evidence {factor_id}" if factor_id.startswith("lab:") else f"default factor {factor_id}"
    return f"{meter}; {what}"


def _rows(
    block: Mapping[str, Any], uses: Mapping[tuple[str, str, str], tuple[dict[str, Any], dict[str, Any]]]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for r in block["rows"]:
        process = r.get("process", block["process"])
        stream, fu = uses.get((process, r["stream"], r["factor_id"]), (None, {}))
        sign = 1.0 if r["role"] == "input" else -1.0
        row: dict[str, Any] = {
            "item": r["stream"],
            **({"process": process} if "process" in r else {}),
            "role": r["role"],
            "amount": r["amount"],
            "unit": r["unit"],
        }
        if fu.get("ncv_gj_per_unit") is not None:
            row["ncv"] = fu["ncv_gj_per_unit"]
            row["ncv_unit"] = f"GJ/{r['unit']}"
        row["carbon"] = r["carbon_tc_per_unit"]
        row["carbon_unit"] = f"tC/{r['unit']}"
        if fu.get("cc_tc_per_gj") is not None:
            row["carbon_tc_per_gj"] = fu["cc_tc_per_gj"]
        row |= {
            "co2_t": round(sign * r["carbon_t"] * C_TO_CO2, 6),
            "tag": tag_of(r["factor_id"]),
            "factor_id": r["factor_id"],
            "source": _source(stream, r["factor_id"]),
        }
        rows.append(row)
    rows.append(
        {
            "item": "CO2 (carbon balance)",
            "amount": block["co2_t"],
            "unit": "t",
            "co2_t": block["co2_t"],
            "tag": "calculated",
            "factor_id": None,
            "source": f"(carbon in {block['carbon_in_t']:.6f} tC - carbon out {block['carbon_out_t']:.6f} tC) x 44/12",
        }
    )
    return rows


def build_deposit(
    summary: Mapping[str, Any],
    site: Mapping[str, Any],
    streams_balance: Mapping[str, str],
    lab_records: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, Any], dict[str, str]]:
    """deposit.json's document, and evidence file name in the export -> its source (what to copy).

    `site`: the [site] section (name, timezone, optional identity fields); `streams_balance`:
    "process/stream" -> its balance role, for `other_t` (direct CO2 outside the balance).
    """
    uses = _factor_uses(summary)
    bal = summary["balance"]
    used_labs = {fid for (_p, _s, fid) in uses if fid.startswith("lab:")}
    evidence: list[dict[str, Any]] = []
    copies: dict[str, str] = {}
    for rec in lab_records:
        fid = f"lab:{rec['sample_id']}"
        if fid not in used_labs:
            continue
        name = f"{EVIDENCE_PREFIX}{rec['stored_as']}"
        evidence.append(
            {
                "id": fid,
                "kind": "lab",
                "file": name,
                "sha256": rec["report_sha256"],
                "report_file": rec["report_file"],
                "lab": rec["lab"],
                "accreditation": rec["accreditation"],
            }
        )
        copies[name] = "lab:" + str(rec["stored_as"])
    for p in summary.get("production") or []:
        ev = p.get("evidence")
        if ev:
            name = f"{EVIDENCE_PREFIX}{ev['sha256']}{Path(ev['file']).suffix.lower()}"
            evidence.append(
                {
                    "id": f"production:{p['process']}/{p['product']}",
                    "kind": "production",
                    "file": name,
                    "sha256": ev["sha256"],
                    "report_file": ev["file"],
                }
            )
            copies[name] = "production:" + str(ev["sha256"])
    evidence.sort(key=lambda e: (e["kind"], e["id"]))
    production: dict[str, list[dict[str, Any]]] = {}
    for p in summary.get("production") or []:
        production.setdefault(p["process"], []).append(
            {
                "item": p["product"],
                "amount": p["t"],
                "unit": "t",
                "tag": "measured" if p["signal"] or p["evidence"] else "calculated",
                # what weighs it ([[production]] source) and the signal, or the monthly entry's evidence
                "source": "; ".join(
                    part
                    for part in (
                        p.get("source") or "",
                        f"signal {p['signal']}" if p["signal"] else (p["measured_by"] or ""),
                        f"evidence production:{p['process']}/{p['product']}" if p["evidence"] else "",
                    )
                    if part
                ),
            }
        )
    processes = [
        {
            "process": b["process"],
            "captive_power": b["captive_power"],
            "production": production.get(b["process"], []),
            "rows": _rows(b, uses),
            "co2_t": b["co2_t"],
        }
        for b in bal["processes"]
    ]
    in_balance = {p["process"] for p in processes}
    for name in sorted(set(production) - in_balance):  # a process with production and no balance items (rolling)
        processes.append({"process": name, "captive_power": False, "production": production[name], "rows": [], "co2_t": 0.0})
    other_g = sum(
        round(s["co2_t"] * 1e6)
        for s in summary["streams"]
        if s["scope"] == "direct" and streams_balance.get(f"{s['process']}/{s['stream']}") not in ("input", "output")
    )
    indirect = [s for s in summary["streams"] if s["scope"] == "indirect"]
    doc = {
        "schema": "emgate.export.deposit/1",
        "month": summary["month"],
        "site": summary["site"],
        "enterprise_info": {
            "legal_name": site.get("legal_name"),
            "credit_code": site.get("credit_code"),
            "address": site.get("address"),
            "contact": site.get("contact"),
            "timezone": summary["timezone"],
            "period_start": summary["period"]["start"],
            "period_end": summary["period"]["end"],
        },
        "due_date": due_date(summary["month"]),
        "enterprise": {"rows": _rows(bal["enterprise"], uses), "co2_t": bal["enterprise_t"]},
        "processes": processes,
        "summary": {
            "enterprise_t": bal["enterprise_t"],
            "processes_t": bal["processes_t"],
            "captive_power_t": bal["captive_power_t"],
            "other_t": other_g / 1e6,
            "difference_t": bal["difference_t"],
        },
        "auxiliary": {
            "purchased_electricity_mwh": sum(s["activity"] for s in indirect if s["activity_unit"].lower() == "mwh"),
            "purchased_heat_gj": sum(s["activity"] for s in indirect if s["activity_unit"].lower() == "gj"),
            "indirect_co2_t": summary["scopes"]["indirect"]["co2_t"],
        },
        "evidence": evidence,
    }
    return doc, copies


def evidence_files(copies: Mapping[str, str], ledger_path: Path, production_paths: Mapping[str, Path]) -> dict[str, bytes]:
    """The evidence files' bytes: lab report copies from `<ledger>.evidence/`, monthly production
    evidence from the site file's paths (by SHA-256); each checked against its digest."""
    out: dict[str, bytes] = {}
    for name, src in sorted(copies.items()):
        kind, _, ref = src.partition(":")
        if kind == "lab":
            data = (evidence_dir(ledger_path) / ref).read_bytes()
            want = ref.split(".")[0]
        else:
            data = production_paths[ref].read_bytes()
            want = ref
        if hashlib.sha256(data).hexdigest() != want:
            raise ValueError(f"evidence {name}: its SHA-256 no longer matches the record ({want})")
        out[name] = data
    return out


# -- the workbook --------------------------------------------------------------------------------
_ROW_COLS = [
    ("item", "项目", "Item", None, 22),
    ("role", "投入/产出", "Input/output", None, 10),
    ("amount", "数量", "Amount", T3, 14),
    ("unit", "单位", "Unit", None, 10),
    ("ncv", "低位发热量 (GJ/单位)", "NCV (GJ/unit)", "0.000###", 12),
    ("carbon", "含碳量 (tC/单位)", "Carbon content (tC/unit)", T6, 12),
    ("co2_t", "排放量 (tCO2)", "CO2 (t)", T3, 14),
    ("tag", "数据类型", "Tag", None, 10),
    ("factor_id", "因子/证据编号", "Factor or evidence id", None, 26),
    ("source", "数据来源", "Source", None, 50),
]


def _row_cells(row: Mapping[str, Any]) -> list[Any]:
    out = []
    for key, *_ in _ROW_COLS:
        v = row.get(key)
        out.append(TAG_ZH[str(v)] if key == "tag" else v)
    return out


def _sheet(title: str, cols: Sequence[tuple[str, str, str, str | None, int]], rows: list[list[Any]]) -> Sheet:
    return Sheet(
        f"{title}.csv",
        title,
        [Column(k, zh, fmt, w) for k, zh, _en, fmt, w in cols],
        [[en for _k, _zh, en, _f, _w in cols], *rows],
    )


def deposit_sheets(doc: Mapping[str, Any]) -> list[Sheet]:
    """The six sheets: row 1 Chinese headers, row 2 English headers, then the rows of deposit.json."""
    info = doc["enterprise_info"]
    kv = [("key", "项目", "Item", None, 28), ("zh", "字段", "Field", None, 24), ("value", "内容", "Value", None, 40)]
    basic = _sheet(
        "企业基本信息表",
        kv,
        [
            ["site", "排放单位", doc["site"]],
            ["legal_name", "企业名称", info["legal_name"]],
            ["credit_code", "统一社会信用代码", info["credit_code"]],
            ["address", "生产经营场所地址", info["address"]],
            ["contact", "填报联系人", info["contact"]],
            ["month", "报告期 (月)", doc["month"]],
            ["period_start", "报告期起 (当地时间)", info["period_start"]],
            ["period_end", "报告期止 (不含, 当地时间)", info["period_end"]],
            ["timezone", "时区", info["timezone"]],
            ["due_date", "存证截止日期", doc["due_date"]],
        ],
    )
    fac_cols = [
        ("process", "工序", "Process", None, 20),
        ("captive_power", "自备电厂", "Captive power plant", None, 10),
        ("product", "产品", "Product", None, 16),
        ("amount", "产量 (t)", "Production (t)", T3, 14),
        ("tag", "数据类型", "Tag", None, 10),
        ("source", "数据来源", "Source", None, 40),
    ]
    fac_rows: list[list[Any]] = []
    for p in doc["processes"]:
        prods = p["production"] or [{}]
        for pr in prods:
            fac_rows.append(
                [
                    p["process"],
                    "是" if p["captive_power"] else "否",
                    pr.get("item"),
                    pr.get("amount"),
                    TAG_ZH[pr["tag"]] if pr else None,
                    pr.get("source"),
                ]
            )
    facilities = _sheet("工序生产设施信息表", fac_cols, fac_rows)
    proc_cols = [("process", "工序", "Process", None, 20), *_ROW_COLS]
    enterprise = _sheet(
        "企业层级生产数据及排放量表", proc_cols, [[r.get("process"), *_row_cells(r)] for r in doc["enterprise"]["rows"]]
    )
    proc_rows = [[p["process"], *_row_cells(r)] for p in doc["processes"] for r in p["rows"]]
    processes = _sheet(PROCESS_SHEET, proc_cols, proc_rows)
    s = doc["summary"]
    sum_cols = [
        ("key", "项目", "Item", None, 22),
        ("zh", "名称", "Name", None, 40),
        ("co2_t", "排放量 (tCO2)", "CO2 (t)", T3, 16),
    ]
    summary = _sheet(
        "排放量汇总表",
        sum_cols,
        [
            ["enterprise_t", "企业层级排放量", s["enterprise_t"]],
            ["processes_t", "工序层级排放量合计", s["processes_t"]],
            ["captive_power_t", "自备电厂 (化石燃料, 掺烧自产煤气)", s["captive_power_t"]],
            ["other_t", "其他 (不在碳平衡内的直接排放)", s["other_t"]],
            ["difference_t", "工序合计 - 企业层级", s["difference_t"]],
        ],
    )
    a = doc["auxiliary"]
    aux_cols = [
        ("key", "项目", "Item", None, 28),
        ("zh", "名称", "Name", None, 24),
        ("value", "数值", "Value", T3, 16),
        ("unit", "单位", "Unit", None, 10),
    ]
    aux = _sheet(
        "辅助报告项",
        aux_cols,
        [
            ["purchased_electricity_mwh", "净购入电量", a["purchased_electricity_mwh"], "MWh"],
            ["purchased_heat_gj", "净购入热力", a["purchased_heat_gj"], "GJ"],
            ["indirect_co2_t", "间接排放量 (不计入履约)", a["indirect_co2_t"], "tCO2"],
        ],
    )
    return [basic, facilities, enterprise, processes, summary, aux]


def build_workbook(doc: Mapping[str, Any]) -> bytes:
    """deposit.xlsx bytes (byte-reproducible, through the export workbook's writer)."""
    return workbook.build_tables_workbook(deposit_sheets(doc), title=f"emgate deposit {doc['site']} {doc['month']}")
