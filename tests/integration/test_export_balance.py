"""Production and the carbon balance end to end: a small works (a blast furnace sending BFG to the
captive power plant, the rest flared) replayed for one day from CSV, exported, and the
summary's production and balance checked against hand-computed values; two exports identical."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import openpyxl
import pytest

from gateway.cli import main
from tests.support.balance_works import BFG_OUT_C, COKE_C, HOT_METAL_C, MINUTES, PP_BFG_C, SITE, _site

pytestmark = pytest.mark.integration


def test_production_and_balance_by_hand(tmp_path: Path) -> None:
    site = _site(tmp_path)
    run = tmp_path / "run"
    assert main(["replay", "--config", str(site), "--input", str(tmp_path / "day1.csv"), "--out", str(run)]) == 0
    ledger = run / "ledger.sqlite"
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        code = main(["export", "--config", str(site), "--ledger", str(ledger), "--month", "2026-11", "--out", str(out)])
        assert code == 0
    names = sorted(p.name for p in outs[0].iterdir())
    assert names == sorted(p.name for p in outs[1].iterdir())
    assert {"production.csv", "balance.csv"} <= set(names)
    for name in names:  # byte-reproducible
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name

    s = json.loads((outs[0] / "summary.json").read_text())
    # production minutes carry no CO2: the direct total is the streams' CO2 only
    assert s["scopes"]["production"]["co2_t"] == 0.0
    assert s["compliance_co2_t"] == s["scopes"]["direct"]["co2_t"]
    assert "blast_furnace" in s["scopes"]["direct"]["by_process"]

    prod = {(p["process"], p["product"]): p for p in s["production"]}
    hm = prod[("blast_furnace", "hot_metal")]
    assert hm["t"] == pytest.approx(3.0 * MINUTES, rel=1e-12)
    assert hm["source"] == "torpedo-car weighbridge WB-3" and hm["signal"] == "hot_metal_t"
    assert hm["coverage_pct"] == pytest.approx(100.0 / 30, abs=1e-4)  # one day of November's 30 (4 decimals)
    assert hm["quality_share_pct"]["measured"] == pytest.approx(100.0 / 30, abs=1e-4)
    assert hm["quality_share_pct"]["missing"] == 0.0  # absent minutes are not rows: coverage says it
    rolled = prod[("rolling", "rolled_steel")]
    assert rolled["t"] == 123456.0 and rolled["measured_by"] == "monthly entry"
    digest = hashlib.sha256((tmp_path / "rolling-2026-11.pdf").read_bytes()).hexdigest()
    assert rolled["evidence"] == {"file": "rolling-2026-11.pdf", "sha256": digest}
    evidence_csv = (outs[0] / "evidence.csv").read_text()
    assert "rolling,production.rolled_steel,production,production,,monthly entry,,123456.0,t,production," in evidence_csv
    assert digest in evidence_csv
    hm_line = next(s_ for s_ in s["streams"] if s_["stream"] == "production.hot_metal")
    assert hm_line["factors"][0]["id"] == "production" and not hm_line["factors"][0]["in_factor_library"]
    assert hm_line["measured_by"] == "torpedo-car weighbridge WB-3"

    b = s["balance"]
    by = {p["process"]: p for p in b["processes"]}
    bf, pp = by["blast_furnace"], by["power_plant"]
    assert bf["carbon_in_t"] == pytest.approx(COKE_C, rel=1e-9)
    assert bf["carbon_out_t"] == pytest.approx(HOT_METAL_C + BFG_OUT_C, rel=1e-9)
    assert bf["co2_t"] == pytest.approx((COKE_C - HOT_METAL_C - BFG_OUT_C) * 44 / 12, rel=1e-9)
    assert pp["captive_power"] and pp["co2_t"] == pytest.approx(PP_BFG_C * 44 / 12, rel=1e-9)
    assert b["captive_power_t"] == pp["co2_t"]
    ent = b["enterprise"]
    assert ent["carbon_in_t"] == pytest.approx(COKE_C, rel=1e-9)
    assert ent["carbon_out_t"] == pytest.approx(HOT_METAL_C, rel=1e-9)
    assert b["enterprise_t"] == pytest.approx((COKE_C - HOT_METAL_C) * 44 / 12, rel=1e-9)
    assert b["processes_t"] == pytest.approx(bf["co2_t"] + pp["co2_t"], rel=1e-12)
    (bfg,) = b["transfers"]
    assert bfg["name"] == "BFG" and bfg["producers"] == ["blast_furnace"] and bfg["consumers"] == ["power_plant"]
    assert bfg["unaccounted_carbon_t"] == pytest.approx(BFG_OUT_C - PP_BFG_C, rel=1e-9)  # flared
    assert b["difference_t"] == pytest.approx(-(BFG_OUT_C - PP_BFG_C) * 44 / 12, rel=1e-9)
    assert abs(b["unexplained_t"]) <= 1e-9 * abs(b["difference_t"])

    wb = openpyxl.load_workbook(outs[0] / "workbook.xlsx")
    assert wb.sheetnames[-2:] == ["Production", "Carbon balance"]


def test_production_changes_no_co2_figure(tmp_path: Path) -> None:
    """The same day without [[production]]: every CO2 figure, the alerts and the replay's totals are the same."""
    site = _site(tmp_path)
    bare = tmp_path / "bare.toml"
    bare.write_text(SITE.split("[[production]]")[0] + "[[replay.csv]]" + SITE.split("[[replay.csv]]")[1])
    got = {}
    for name, cfg in (("with", site), ("without", bare)):
        run = tmp_path / f"run-{name}"
        assert main(["replay", "--config", str(cfg), "--input", str(tmp_path / "day1.csv"), "--out", str(run)]) == 0
        out = tmp_path / f"out-{name}"
        args = ["export", "--config", str(cfg), "--ledger", str(run / "ledger.sqlite"), "--month", "2026-11"]
        assert main([*args, "--out", str(out)]) == 0
        s = json.loads((out / "summary.json").read_text())
        alerts = (run / "alerts.jsonl").read_text() if (run / "alerts.jsonl").exists() else ""
        got[name] = (s["co2_t"], s["compliance_co2_t"], s["by_process"], s["scopes"]["direct"], s["balance"], alerts)
    assert got["with"] == got["without"]
