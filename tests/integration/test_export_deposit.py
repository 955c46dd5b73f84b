"""The deposit (deposit.json, deposit.xlsx) end to end: the balance works of test_export_balance
replayed for a day, a coke lab result imported for half of it, exported twice; the workbook read
back cell by cell against the JSON; tags, evidence files, due dates, balance figures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from gateway.cli import main
from gateway.export import deposit
from tests.support.balance_works import _site

pytestmark = pytest.mark.integration

LAB = (
    "sample_id,stream,sampled_from,sampled_to,lab,accreditation,ncv_gj_per_unit,carbon_tc_per_gj,"
    "carbon_fraction,hydrogen_pct,total_sulfur_pct,moisture_pct,report_file,supersedes\n"
    "COKE-1103,blast_furnace/coke,2026-11-03T12:00,2026-11-04T00:00,Baosteel QC lab,CNAS L0123,29.1,0.0300,,0.5,0.7,4.2,"
    "reports/coke-1103.pdf,\n"
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    tmp = tmp_path_factory.mktemp("deposit")
    site = _site(tmp)
    site.write_text(  # the optional identity keys of [site]
        site.read_text().replace(
            'timezone = "Asia/Shanghai"\n',
            'timezone = "Asia/Shanghai"\nlegal_name = "某钢铁有限公司"\ncredit_code = "91320000MA1XXXXX0X"\n'
            'address = "江苏省某市"\ncontact = "张三 13800000000"\n',
            1,
        )
    )
    run = tmp / "run"
    assert main(["replay", "--config", str(site), "--input", str(tmp / "day1.csv"), "--out", str(run)]) == 0
    ledger = run / "ledger.sqlite"
    (tmp / "reports").mkdir()
    (tmp / "reports" / "coke-1103.pdf").write_bytes(b"%PDF-1.4 stamped report COKE-1103\n")
    (tmp / "lab.csv").write_text(LAB, encoding="utf-8")
    assert main(["lab", "import", "--config", str(site), "--ledger", str(ledger), str(tmp / "lab.csv")]) == 0
    outs = [tmp / "a", tmp / "b"]
    for out in outs:
        assert main(["export", "--config", str(site), "--ledger", str(ledger), "--month", "2026-11", "--out", str(out)]) == 0
    return tmp, outs


def _load(out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    return json.loads((out / "deposit.json").read_text()), json.loads((out / "summary.json").read_text())


def test_two_exports_byte_identical_and_in_the_manifest(exported: tuple[Path, list[Path]]) -> None:
    tmp, (a, b) = exported
    first = {p.name: p.read_bytes() for p in a.iterdir()}
    assert first == {p.name: p.read_bytes() for p in b.iterdir()}
    man = json.loads(first["manifest.json"])
    listed = {f["path"]: f["sha256"] for f in man["files"]}
    assert {"deposit.json", "deposit.xlsx"} <= set(listed)
    doc, _ = _load(a)
    kinds = {e["kind"] for e in doc["evidence"]}
    assert kinds == {"lab", "production"}
    for e in doc["evidence"]:
        data = (a / e["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == e["sha256"] == listed[e["file"]]
    lab = next(e for e in doc["evidence"] if e["kind"] == "lab")
    assert lab["id"] == "lab:COKE-1103"
    assert (a / lab["file"]).read_bytes() == (tmp / "reports" / "coke-1103.pdf").read_bytes()


def test_json_content_and_tags(exported: tuple[Path, list[Path]]) -> None:
    _, (a, _) = exported
    doc, s = _load(a)
    assert set(doc) >= {"month", "site", "due_date", "enterprise", "processes", "summary", "auxiliary", "evidence"}
    assert doc["month"] == "2026-11" and doc["site"] == "balance-works" and doc["due_date"] == "2027-01-09"
    bal = s["balance"]
    assert doc["enterprise"]["co2_t"] == bal["enterprise_t"]
    assert doc["summary"] == {
        "enterprise_t": bal["enterprise_t"],
        "processes_t": bal["processes_t"],
        "captive_power_t": bal["captive_power_t"],
        "other_t": 0.0,
        "difference_t": bal["difference_t"],
    }
    balance_t = {p["process"]: p["co2_t"] for p in bal["processes"]}
    assert {p["process"]: p["co2_t"] for p in doc["processes"]} == balance_t | {"rolling": 0.0}
    assert sum(p["co2_t"] for p in doc["processes"]) == pytest.approx(bal["processes_t"], abs=1e-6)
    assert set(doc["auxiliary"]) == {"purchased_electricity_mwh", "purchased_heat_gj", "indirect_co2_t"}
    for level in [doc["enterprise"], *[p for p in doc["processes"] if p["rows"]]]:
        for r in level["rows"]:
            assert {"item", "amount", "unit", "co2_t", "tag", "source"} <= set(r)
            assert r["tag"] in ("measured", "default", "calculated")
        assert level["rows"][-1]["tag"] == "calculated" and level["rows"][-1]["co2_t"] == level["co2_t"]
        assert sum(r["co2_t"] for r in level["rows"][:-1]) == pytest.approx(level["co2_t"], abs=1e-5)

    # coke: lab minutes and default minutes as two rows, nothing averaged
    bf = next(p for p in doc["processes"] if p["process"] == "blast_furnace")
    coke = [r for r in bf["rows"] if r["item"] == "coke"]
    assert sorted(r["tag"] for r in coke) == ["default", "measured"]
    meas = next(r for r in coke if r["tag"] == "measured")
    dflt = next(r for r in coke if r["tag"] == "default")
    uses = {f["id"]: f for st in s["streams"] if st["stream"] == "coke" for f in st["factors"]}
    lab_minutes = uses["lab:COKE-1103"]["minutes"]
    assert 700 <= lab_minutes <= 730
    assert meas["amount"] == pytest.approx(2.0 * lab_minutes, abs=1e-6)
    assert dflt["amount"] == pytest.approx(2.0 * (1440 - lab_minutes), abs=1e-6)
    assert meas["ncv"] == 29.1 and meas["carbon"] == pytest.approx(29.1 * 0.03)
    assert meas["co2_t"] == pytest.approx(meas["amount"] * 29.1 * 0.03 * 44 / 12)
    assert dflt["ncv"] == 28.435 and dflt["carbon"] == pytest.approx(28.435 * 0.02942)
    assert "evidence lab:COKE-1103" in meas["source"] and "signal coke_t" in meas["source"]
    assert "default factor cn.coke" in dflt["source"]
    rolling = next(p for p in doc["processes"] if p["process"] == "rolling")
    assert rolling["rows"] == [] and rolling["production"] == [
        {
            "item": "rolled_steel",
            "amount": 123456.0,
            "unit": "t",
            "tag": "measured",
            "source": "monthly entry; evidence production:rolling/rolled_steel",
        }
    ]
    assert bf["production"][0]["item"] == "hot_metal" and bf["production"][0]["amount"] == pytest.approx(4320.0)
    assert bf["production"][0]["source"] == "torpedo-car weighbridge WB-3; signal hot_metal_t"  # what weighs it, and its signal


def _cells(ws: Any) -> list[list[Any]]:
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    return [r + [None] * (max(map(len, rows)) - len(r)) for r in rows]


def test_workbook_cell_by_cell(exported: tuple[Path, list[Path]]) -> None:
    _, (a, _) = exported
    doc, _ = _load(a)
    wb = openpyxl.load_workbook(a / "deposit.xlsx")
    assert wb.sheetnames == [
        "企业基本信息表",
        "工序生产设施信息表",
        "企业层级生产数据及排放量表",
        deposit.PROCESS_SHEET,
        "排放量汇总表",
        "辅助报告项",
    ]
    expected = {sh.title: sh for sh in deposit.deposit_sheets(doc)}
    for name in wb.sheetnames:
        got = _cells(wb[name])
        sh = expected[name]
        want = [[c.title for c in sh.columns], *[[("" if v is None else v) for v in r] for r in sh.rows]]
        got = [[("" if v is None else v) for v in r[: len(sh.columns)]] for r in got]
        assert got == want, name
    # and against the JSON itself, independently of deposit_sheets
    ws = _cells(wb["企业层级生产数据及排放量表"])
    assert ws[0][7] == "排放量 (tCO2)" and ws[1][7] == "CO2 (t)"
    zh = {"measured": "实测值", "default": "缺省值", "calculated": "计算值"}
    for row, r in zip(ws[2:], doc["enterprise"]["rows"], strict=True):
        assert row[1] == r["item"] and row[3] == r["amount"] and row[4] == r["unit"]
        assert row[7] == r["co2_t"] and row[8] == zh[r["tag"]] and row[10] == r["source"]
        assert row[5] == r.get("ncv") and row[6] == r.get("carbon")
    ws = _cells(wb[deposit.PROCESS_SHEET])
    prow = [(p["process"], r) for p in doc["processes"] for r in p["rows"]]
    for row, (proc, r) in zip(ws[2:], prow, strict=True):
        assert row[0] == proc and row[1] == r["item"] and row[3] == r["amount"] and row[7] == r["co2_t"]
        assert row[8] == zh[r["tag"]] and row[10] == r["source"]
    summ = {r[0]: r[2] for r in _cells(wb["排放量汇总表"])[2:]}
    assert summ == doc["summary"]
    aux = {r[0]: r[2] for r in _cells(wb["辅助报告项"])[2:]}
    assert aux == doc["auxiliary"]
    basic = {r[0]: r[2] for r in _cells(wb["企业基本信息表"])[2:]}
    assert basic["site"] == doc["site"] and basic["due_date"] == doc["due_date"] and basic["month"] == doc["month"]
    assert basic["legal_name"] == doc["enterprise_info"]["legal_name"] == "某钢铁有限公司"
    assert basic["credit_code"] == "91320000MA1XXXXX0X" and basic["contact"] == "张三 13800000000"
    assert basic["period_start"] == "2026-11-01T00:00+08:00"


@pytest.mark.parametrize(
    ("month", "due"),
    [("2026-01", "2026-03-12"), ("2026-02", "2026-04-09"), ("2028-02", "2028-04-09"), ("2026-12", "2027-02-09")],
)
def test_due_date(month: str, due: str) -> None:
    assert deposit.due_date(month) == due
