"""summary.json's `production` and `balance`, and their sheets (docs/export.md, "Production and
the carbon balance").

Production comes from the ledger's production minutes (stream `production.<product>`, scope
`production`, as summed into summary.json's streams) or from the site file's monthly entries with
their evidence file (hashed here). The balance takes each direct stream's month per factor from
the summary's streams, its carbon content from the factor entry (analytics.balance), and its
role and transfer name from the site file; the arithmetic is analytics/balance.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from analytics.balance import BalanceItem, CarbonBalance, ProcessBalance, carbon_tc_per_unit, close_balance
from gateway.export.documents import T3, T6, Column, Sheet
from gateway.settings.site import GatewaySettings

PRODUCTION_SCOPE = "production"
QUALITIES = ("measured", "partial", "substituted", "missing", "estimated")


# the "factor" of production minutes, as evidence.csv and summary.json's streams name its source
PRODUCTION_FACTOR = {"production": {"source": "production weighed by the signal (t); no emission factor, CO2 0"}}


class ProductionEvidenceError(Exception):
    """A monthly production entry's evidence file cannot be read."""


def production_of(summary: Mapping[str, Any], settings: GatewaySettings, month: str) -> list[dict[str, Any]]:
    """Per process and product: t, coverage, quality shares, source (and the evidence of monthly entries)."""
    lines = {(s["process"], s["stream"]): s for s in summary["streams"] if s["scope"] == PRODUCTION_SCOPE}
    out: list[dict[str, Any]] = []
    for p in settings.production:
        row: dict[str, Any] = {"process": p.process, "product": p.product, "source": p.source}
        if p.signal is not None:
            line = lines.pop((p.process, f"production.{p.product}"), None)
            dq = line["data_quality"] if line else None
            expected = dq["minutes_expected"] if dq else 0
            row |= {
                "t": line["activity"] if line else 0.0,
                "measured_by": "weighing signal",
                "signal": p.signal,
                "coverage_pct": dq["coverage_pct"] if dq else 0.0,
                "quality_share_pct": {
                    q: (round(100.0 * dq["quality_minutes"].get(q, 0) / expected, 4) if dq and expected else 0.0)
                    for q in QUALITIES
                },
                "evidence": None,
            }
        else:
            assert p.monthly_t is not None and p.evidence is not None  # the model's rule
            try:
                digest = hashlib.sha256(Path(p.evidence).read_bytes()).hexdigest()
            except OSError as exc:
                raise ProductionEvidenceError(
                    f"production {p.process}/{p.product}: evidence {p.evidence}: {exc.strerror}; check the path "
                    "(relative to the site file)"
                ) from None
            row |= {
                "t": p.monthly_t.get(month),  # null: no entry for this month
                "measured_by": "monthly entry",
                "signal": None,
                "coverage_pct": None,
                "quality_share_pct": None,
                "evidence": {"file": Path(p.evidence).name, "sha256": digest},
            }
        out.append(row)
    for (process, stream), line in sorted(lines.items()):  # production minutes of an entry no longer configured
        out.append(
            {
                "process": process,
                "product": stream.removeprefix("production."),
                "source": None,
                "t": line["activity"],
                "measured_by": "weighing signal (no longer configured)",
                "signal": None,
                "coverage_pct": line["data_quality"]["coverage_pct"],
                "quality_share_pct": None,
                "evidence": None,
            }
        )
    return out


def balance_of(summary: Mapping[str, Any], settings: GatewaySettings) -> dict[str, Any]:
    """The month's carbon balance, per process and for the enterprise, with the reconciliation."""
    configured = {(s.process, s.stream): s for s in settings.streams}
    items: list[BalanceItem] = []
    unknown: list[dict[str, Any]] = []
    for s in summary["streams"]:
        if s["scope"] != "direct":
            continue
        cfg = configured.get((s["process"], s["stream"]))
        if cfg is not None:
            role, transfer = cfg.balance_role, cfg.transfer
        else:  # no longer configured: its sign says which side it was on
            role, transfer = ("output" if s["co2_t"] < 0 else "input"), None
        if role not in ("input", "output"):
            continue
        for f in s["factors"]:
            ef = f["ef_tco2_per_unit"]
            if ef is None and f.get("ef_tco2_per_unit_range"):
                ef = None  # a varying factor: only its parameters can give the carbon
            c = carbon_tc_per_unit(f, abs(ef) if ef is not None else None)
            if c is None:
                unknown.append({"process": s["process"], "stream": s["stream"], "factor_id": f["id"]})
                continue
            items.append(
                BalanceItem(
                    s["process"],
                    s["stream"],
                    "input" if role == "input" else "output",
                    f["activity"],
                    s["activity_unit"],
                    c,
                    transfer,
                    f["id"],
                )
            )
    captive = {name for name, p in settings.processes.items() if p.captive_power}
    b = close_balance(items, captive)
    return _document(b, unknown)


def _process(p: ProcessBalance) -> dict[str, Any]:
    return {
        "process": p.process,
        "captive_power": p.captive_power,
        "carbon_in_t": p.carbon_in_t,
        "carbon_out_t": p.carbon_out_t,
        "co2_t": p.co2_t,
        "rows": [
            {
                "stream": it.stream,
                **({"process": it.process} if p.process.startswith("(") else {}),
                "role": it.role,
                "amount": it.amount,
                "unit": it.unit,
                "carbon_tc_per_unit": it.carbon_tc_per_unit,
                "carbon_t": it.carbon_t,
                "transfer": it.transfer,
                "factor_id": it.factor_id,
            }
            for it in sorted(p.items, key=lambda it: (it.process, it.role, it.stream, it.factor_id))
        ],
    }


def _document(b: CarbonBalance, unknown: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "method": "CO2 = (carbon in - carbon out) x 44/12; fuels at NCV x carbon per GJ, no oxidation applied",
        "processes": [_process(p) for p in b.processes],
        "enterprise": _process(b.enterprise),
        "processes_t": b.processes_t,
        "enterprise_t": b.enterprise_t,
        "difference_t": b.difference_t,
        "captive_power_t": b.captive_power_t,
        "transfers": [
            {
                "name": t.name,
                "producers": list(t.producers),
                "consumers": list(t.consumers),
                "produced_carbon_t": t.produced_t,
                "consumed_carbon_t": t.consumed_t,
                "unaccounted_carbon_t": t.unaccounted_t,
                "co2_t": t.co2_t,
                "explanation": (
                    f"{t.name}: {t.produced_t:.6g} tC sent out by {', '.join(t.producers)}, {t.consumed_t:.6g} tC taken "
                    f"in by {', '.join(t.consumers)}; {t.unaccounted_t:.6g} tC flared, lost or not metered is emitted "
                    "in the works but in no process balance"
                ),
            }
            for t in b.transfers
        ],
        "transfers_t": b.transfers_t,
        "unexplained_t": b.difference_t - b.transfers_t,
        "without_carbon_content": unknown,
    }


def evidence_rows(production: list[dict[str, Any]], month: str, ncols: int) -> list[list[Any]]:
    """evidence.csv rows for the monthly production entries: the file and its SHA-256 as the source
    (production minutes from a signal are already there, as the stream production.<product>)."""
    rows = []
    for p in production:
        if p["evidence"] is None:
            continue
        row: list[Any] = [None] * ncols
        row[:12] = [
            month,
            p["process"],
            f"production.{p['product']}",
            PRODUCTION_SCOPE,
            "production",
            "",
            "monthly entry",
            p["source"] or "",
            p["t"],
            "t",
            "production",
            f"monthly entry, evidence {p['evidence']['file']} sha256 {p['evidence']['sha256']}",
        ]
        rows.append(row)
    return rows


def production_sheet(production: list[dict[str, Any]]) -> Sheet:
    cols = [
        Column("process", "Process", width=18),
        Column("product", "Product", width=14),
        Column("t", "Production (t)", T3),
        Column("measured_by", "Measured by", width=22),
        Column("source", "Source", width=22),
        Column("coverage_pct", "Coverage (%)", "0.00"),
        *[Column(f"{q}_pct", f"{q.capitalize()} (% of minutes)", "0.00") for q in QUALITIES],
        Column("evidence_file", "Evidence file", width=24),
        Column("evidence_sha256", "Evidence SHA-256", width=30),
    ]
    rows = []
    for p in production:
        shares = p["quality_share_pct"] or {}
        ev = p["evidence"] or {}
        rows.append(
            [
                p["process"],
                p["product"],
                p["t"],
                p["measured_by"],
                p["source"] or p["signal"],
                p["coverage_pct"],
                *[shares.get(q) for q in QUALITIES],
                ev.get("file"),
                ev.get("sha256"),
            ]
        )
    return Sheet("production.csv", "Production", cols, rows)


def balance_sheet(balance: Mapping[str, Any]) -> Sheet:
    cols = [
        Column("level", "Level", width=12),
        Column("process", "Process", width=18),
        Column("stream", "Stream", width=18),
        Column("role", "Role", width=8),
        Column("transfer", "Transfer", width=10),
        Column("amount", "Amount", T3),
        Column("unit", "Unit", width=10),
        Column("carbon_tc_per_unit", "Carbon (tC/unit)", T6),
        Column("carbon_t", "Carbon (tC)", T3),
        Column("co2_t", "CO2 (t)", T3),
    ]
    rows: list[list[Any]] = []
    totals: list[list[Any]] = []
    for level, blocks in (("process", balance["processes"]), ("enterprise", [balance["enterprise"]])):
        for p in blocks:
            for r in p["rows"]:
                rows.append(
                    [
                        level,
                        r.get("process", p["process"]),
                        r["stream"],
                        r["role"],
                        r["transfer"],
                        r["amount"],
                        r["unit"],
                        r["carbon_tc_per_unit"],
                        r["carbon_t"],
                        None,
                    ]
                )
            name = p["process"] + (" (captive power plant)" if p["captive_power"] else "")
            totals.append([level, name, "carbon in", None, None, None, None, None, p["carbon_in_t"], None])
            totals.append([level, name, "carbon out", None, None, None, None, None, p["carbon_out_t"], None])
            totals.append([level, name, "CO2", None, None, None, None, None, None, p["co2_t"]])
    totals.append(["total", "sum of processes", None, None, None, None, None, None, None, balance["processes_t"]])
    totals.append(["total", "enterprise", None, None, None, None, None, None, None, balance["enterprise_t"]])
    totals.append(["total", "difference", None, None, None, None, None, None, None, balance["difference_t"]])
    totals.append(["total", "captive power plant", None, None, None, None, None, None, None, balance["captive_power_t"]])
    for t in balance["transfers"]:
        totals.append(["transfer", t["name"], "produced", None, None, None, None, None, t["produced_carbon_t"], None])
        totals.append(["transfer", t["name"], "consumed", None, None, None, None, None, t["consumed_carbon_t"], None])
        totals.append(["transfer", t["name"], "unaccounted", None, None, None, None, None, t["unaccounted_carbon_t"], t["co2_t"]])
    return Sheet(
        "balance.csv",
        "Carbon balance",
        cols,
        rows,
        totals,
        note="CO2 = (carbon in - carbon out) x 44/12; enterprise: transfers between processes cancel",
    )
