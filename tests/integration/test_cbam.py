"""`emgate cbam` end to end: a three-level chain (sinter -> pig iron -> crude steel) with bought-in
pellets on default values and bought-in pig iron on verified values, replayed for one day into a
ledger; every SEE, the share from defaults and the embedded electricity checked against the
hand-computed figures (tests/support/cbam_works.py) to 1e-9 relative; Annex II goods count direct
only, sintered ore direct and indirect; an edited ledger row refused; two runs byte-identical."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import openpyxl
import pytest

from gateway.cli import main
from tests.support.cbam_works import expected, write_works

pytestmark = pytest.mark.integration

PERIOD = ["--from", "2026-11-01", "--to", "2026-11-30"]


@pytest.fixture(scope="module")
def works(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("cbam")
    site = write_works(tmp)
    run = tmp / "run"
    assert main(["replay", "--config", str(site), "--input", str(tmp / "day1.csv"), "--out", str(run)]) == 0
    return site, run / "ledger.sqlite"


def cbam(site: Path, ledger: Path, out: Path, period: list[str] = PERIOD) -> int:
    return main(["cbam", "--config", str(site), "--ledger", str(ledger), *period, "--out", str(out)])


def test_three_level_chain_by_hand_and_byte_identical(works: tuple[Path, Path], tmp_path: Path) -> None:
    site, ledger = works
    a, b = tmp_path / "a", tmp_path / "b"
    assert cbam(site, ledger, a) == 0 and cbam(site, ledger, b) == 0
    names = sorted(p.name for p in a.iterdir())
    assert names == ["cbam.json", "cbam.xlsx", "manifest.json"] == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name

    doc = json.loads((a / "cbam.json").read_text())
    exp = expected()
    goods = {g["cn"]: g for g in doc["goods"]}
    assert set(goods) == {"26011200", "72011011", "72061000", "72071111"}
    for cn, process in (
        ("26011200", "sintering"),
        ("72011011", "ironmaking"),
        ("72061000", "steelmaking"),
        ("72071111", "steelmaking"),
    ):
        g, x = goods[cn], exp[process]
        assert g["process"] == process
        assert g["see_direct_tco2_per_t"] == pytest.approx(x["dir"], rel=1e-9)
        assert g["see_indirect_tco2_per_t"] == pytest.approx(x["ind"], rel=1e-9)
        assert g["see_total_tco2_per_t"] == pytest.approx(x["total"], rel=1e-9)
        assert g["see_cbam_tco2_per_t"] == pytest.approx(x["cbam"], rel=1e-9)
        assert g["embedded_electricity_mwh_per_t"] == pytest.approx(x["ee"], rel=1e-9)
        if x["share"] == 0:
            assert g["default_share_pct"] == 0.0
        else:
            assert g["default_share_pct"] == pytest.approx(x["share"], rel=1e-9)
    # Annex II goods count direct only; sintered ore direct and indirect
    assert goods["26011200"]["counts"] == "direct+indirect" and not goods["26011200"]["annex_ii"]
    assert goods["26011200"]["see_cbam_tco2_per_t"] > goods["26011200"]["see_direct_tco2_per_t"]
    for cn in ("72011011", "72061000"):
        assert goods[cn]["counts"] == "direct" and goods[cn]["annex_ii"]
        assert goods[cn]["see_cbam_tco2_per_t"] == goods[cn]["see_direct_tco2_per_t"] < goods[cn]["see_total_tco2_per_t"]
    # the defaults: the pellets marked up 10 % (2026), the verified pig iron not
    iron = next(p for p in doc["processes"] if p["process"] == "ironmaking")
    pellets = next(c for c in iron["precursors"] if c["precursor"] == "pellets")
    assert pellets["default_values"] and pellets["markup_pct"] == 10.0
    assert pellets["see_direct_tco2_per_t"] == pytest.approx(0.33, rel=1e-12)
    digest = hashlib.sha256((site.parent / "pellets-2026-11.pdf").read_bytes()).hexdigest()
    assert pellets["measured_by"] == [
        {
            "mass_t": 1000.0,
            "measured_by": "monthly entry",
            "stream": None,
            "evidence": {"file": "pellets-2026-11.pdf", "sha256": digest},
        }
    ]
    sinter = next(c for c in iron["precursors"] if c["precursor"] == "sintering")
    assert sinter["mass_t"] == 4.0 * 1440 and sinter["measured_by"][0]["stream"] == "sinter_plant/production.sinter"
    steel = next(p for p in doc["processes"] if p["process"] == "steelmaking")
    pig = next(c for c in steel["precursors"] if c["precursor"] == "bought_pig_iron")
    assert not pig["default_values"] and pig["see_direct_tco2_per_t"] == 1.9 and pig["verified"]
    assert doc["carbon_price"]["effective_price_per_t"] == pytest.approx((90.0 - 10.0) * 0.6, rel=1e-12)
    assert doc["installation"]["unlocode"] == "CNSHG" and doc["reporting_period"]["from"] == "2026-11-01"
    assert iron["electricity_factors"][0]["id"] == "cn.grid.2023.national_avg"
    assert goods["72061000"]["steel_parameters"]["mn_pct"] == 0.45 and goods["72061000"]["steel_parameters"]["cr_pct"] is None
    assert goods["72061000"]["steel_parameters"]["main_reducing_agent"] == "coke"
    # emissions by monitoring method (all calculation here) and the minutes' data quality
    assert iron["direct_by_method_t"]["measurement"] == 0.0
    assert iron["direct_by_method_t"]["calculation"] == pytest.approx(iron["direct_t"], rel=1e-12)
    assert iron["minutes_by_quality"] == {"measured": 4 * 1440}  # coke, hot metal, BFG out, electricity

    man = json.loads((a / "manifest.json").read_text())
    assert {f["path"]: f["sha256"] for f in man["files"]} == {
        n: hashlib.sha256((a / n).read_bytes()).hexdigest() for n in ("cbam.json", "cbam.xlsx")
    }
    assert man["ledger"]["head_seq"] == doc["ledger"]["head_seq"] > 0
    wb = openpyxl.load_workbook(a / "cbam.xlsx")
    assert wb.sheetnames == ["Summary_Communication", "Goods", "Processes", "Precursors"]
    summary = {row[0]: row[1] for row in wb["Summary_Communication"].iter_rows(min_row=2, values_only=True)}
    assert summary["UN/LOCODE"] == "CNSHG"
    assert summary["26011200 Agglomerated iron ores (sinter): SEE counted for CBAM (direct+indirect)"] == pytest.approx(
        exp["sintering"]["cbam"], rel=1e-12
    )


def test_edited_ledger_row_refused(works: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site, ledger = works
    edited = tmp_path / "edited.sqlite"
    shutil.copy(ledger, edited)
    db = sqlite3.connect(edited, isolation_level=None)
    db.execute("DROP TRIGGER minutes_no_update")  # a tamperer with write access can do this too
    db.execute("UPDATE minutes SET co2_kg = co2_kg / 2 WHERE seq = 10")
    db.close()
    out = tmp_path / "out"
    assert cbam(site, edited, out) == 1
    err = capsys.readouterr().err
    assert "hash chain broken at row 10" in err
    assert not out.exists()


def test_bad_input_exits_2_naming_it(works: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site, ledger = works
    # a monthly entry for a month the period holds only in part
    assert cbam(site, ledger, tmp_path / "o1", ["--from", "2026-11-02", "--to", "2026-11-30"]) == 2
    err = capsys.readouterr().err
    assert "cbam.precursors[1]" in err and "2026-11" in err and "Traceback" not in err
    assert cbam(site, ledger, tmp_path / "o2", ["--from", "2026-11-30", "--to", "2026-11-01"]) == 2
    assert "before --from" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text(site.read_text().replace('stream = "bof/hot_metal"', 'stream = "bof/hot_metal_charged"'))
    assert cbam(bad, ledger, tmp_path / "o3") == 2
    err = capsys.readouterr().err
    assert "cbam.precursors.2.stream" in err and "bof/hot_metal_charged" in err
    assert main(["check-config", str(bad)]) == 2  # check-config says so before any run
    err = capsys.readouterr().err
    assert "problem(s) in [cbam]" in err and "bad.toml:" in err and "cbam.precursors[2].stream" in err
    assert "bof/hot_metal_charged" in err
    # a period the ledger holds no minute of
    assert cbam(site, ledger, tmp_path / "o4", ["--from", "2026-10-01", "--to", "2026-10-31"]) == 2
    err = capsys.readouterr().err
    assert "no minute in 2026-10-01..2026-10-31" in err and "2026-11-03T00:00+08:00" in err
    assert not any((tmp_path / d).exists() for d in ("o1", "o2", "o3", "o4"))
