"""`emgate export` end to end on synthetic ledgers: files, workbook cells, chart, determinism,
refusal of a tampered ledger, restatements, the budget line. No peers: ledger files only."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from PIL import Image

from gateway.cli import main
from gateway.core.model import MinuteResult
from gateway.export import monthly
from gateway.export.documents import ExportContext, build_summary
from gateway.export.tables import aggregate_month, month_period, rows_from_records
from gateway.ledger import audit as ledger_audit
from gateway.ledger import month as ledger_month
from gateway.ledger.month import RECORD_FIELDS, LedgerHead
from gateway.ledger.store import Ledger
from gateway.settings.load import load_settings
from tests.factories import minute_result, results_of

pytestmark = pytest.mark.integration

TZ = ZoneInfo("Asia/Shanghai")
MONTH_START = datetime(2026, 11, 1, tzinfo=TZ).timestamp()
RECORDED_AT = 1_800_000_000.0
FILES = {
    "summary.json",
    "deposit.json",
    "deposit.xlsx",
    "daily.csv",
    "daily_by_process.csv",
    "evidence.csv",
    "flagged_minutes.csv",
    "workbook.xlsx",
    "chart.png",
    "manifest.json",
}

SITE_TOML = """
[site]
name = "test-works"
timezone = "Asia/Shanghai"

[signals."bf.coke_tph"]
kind = "rate"
unit = "t/h"

[signals."meter.energy_kwh"]
kind = "counter"
unit = "kWh"

[[streams]]
process = "blast_furnace"
stream = "coke"
signal = "bf.coke_tph"
method = "fuel_combustion"
factor = "cn.coke"

[[streams]]
process = "utilities"
stream = "purchased_electricity"
signal = "meter.energy_kwh"
method = "electricity"
factor = "cn.grid.2023.national_avg"
"""


def minute(ts: float, process: str, **kw: Any) -> MinuteResult:
    if process == "utilities":
        base = dict(
            stream="purchased_electricity",
            scope="indirect",
            method="electricity",
            activity=0.2,
            activity_unit="MWh",
            co2_kg=106.12,
            factor_id="cn.grid.2023.national_avg",
            ef_kg_per_unit=530.6,
        )
    else:
        base = dict(
            stream="coke",
            scope="direct",
            method="fuel_combustion",
            activity=0.5,
            activity_unit="t",
            co2_kg=1426.5,
            factor_id="cn.coke",
            ef_kg_per_unit=2853.0,
        )
    base.update(coverage=1.0, quality="measured", flags="")
    base.update(kw)
    return minute_result(minute_start=ts, site="test-works", process=process, **base)


def build_ledger(path: Path, days: int = 3, step_min: int = 5) -> None:
    """Minutes of the first `days` days of November 2026 (site time), plus one row either side."""
    results = [minute(MONTH_START - 60, "blast_furnace")]
    for m in range(0, days * 1440, step_min):
        ts = MONTH_START + 60 * m
        sub = m % (step_min * 37) == 0
        results.append(
            minute(
                ts,
                "blast_furnace",
                quality="substituted" if sub else "measured",
                coverage=0.3 if sub else 1.0,
                flags="rule=last_good" if sub else "",
            )
        )
        results.append(minute(ts, "utilities"))
    results.append(minute(datetime(2026, 12, 1, tzinfo=TZ).timestamp(), "blast_furnace"))
    lg = Ledger(path, clock=lambda: RECORDED_AT)
    lg.append(results_of(results))
    lg.close()


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, Path]:
    config = tmp_path / "site.toml"
    config.write_text(SITE_TOML, encoding="utf-8")
    ledger = tmp_path / "ledger.sqlite"
    build_ledger(ledger)
    return config, ledger


def export(config: Path, ledger: Path, out: Path, month: str = "2026-11") -> int:
    return main(
        ["export", "--config", str(config), "--ledger", str(ledger), "--month", month, "--out", str(out)]
    )


def test_writes_every_file_with_a_manifest_of_them(site: tuple[Path, Path], tmp_path: Path) -> None:
    config, ledger = site
    out = tmp_path / "out"
    assert export(config, ledger, out) == 0
    assert {p.name for p in out.iterdir()} == FILES
    man = json.loads((out / "manifest.json").read_text())
    assert [f["path"] for f in man["files"]] == sorted(FILES - {"manifest.json"})
    for f in man["files"]:
        data = (out / f["path"]).read_bytes()
        assert f["bytes"] == len(data) and f["sha256"] == hashlib.sha256(data).hexdigest()
    head = Ledger(ledger).head_hash
    assert man["ledger"]["head_hash"] == head and man["ledger"]["row_range"] == [1, man["ledger"]["head_seq"]]
    assert man["config_sha256"] == hashlib.sha256(config.read_bytes()).hexdigest()
    assert man["emgate_version"]
    s = json.loads((out / "summary.json").read_text())
    n = 3 * 1440 // 5
    assert s["ledger"]["month_rows"] == 2 * n  # the rows either side of the month are left out
    assert s["scopes"]["direct"]["co2_t"] == round(n * 1.4265, 6)
    assert s["scopes"]["indirect"]["co2_t"] == round(n * 0.10612, 6)
    assert s["scopes"]["direct"]["compliance"] is True and s["scopes"]["indirect"]["compliance"] is False
    coke = next(x for x in s["streams"] if x["stream"] == "coke")
    assert coke["activity"] == n * 0.5 and coke["activity_unit"] == "t" and coke["measured_by"] is None
    assert coke["signal"] == "bf.coke_tph" and coke["factors"][0]["source"].startswith(
        "CN enterprise guideline"
    )
    assert coke["data_quality"]["substituted_minutes"] == len(range(0, 3 * 1440, 5 * 37))


def test_workbook_cells(site: tuple[Path, Path], tmp_path: Path) -> None:
    config, ledger = site
    out = tmp_path / "out"
    assert export(config, ledger, out) == 0
    wb = openpyxl.load_workbook(out / "workbook.xlsx")
    assert wb.sheetnames == ["Summary", "Daily by stream", "Daily by process", "Evidence", "Flagged minutes"]
    daily = wb["Daily by stream"]
    header = [c.value for c in daily[1]]
    assert header[:8] == [
        "Date (local)",
        "Process",
        "Stream",
        "Scope",
        "Method",
        "Activity",
        "Activity unit",
        "CO2 (t)",
    ]
    assert daily.freeze_panes == "A2"
    assert daily["A2"].value == "2026-11-01" and daily["B2"].value == "blast_furnace"
    assert daily["H2"].value == pytest.approx(288 * 1.4265) and daily["H2"].number_format == "#,##0.000"
    assert daily.max_row == 1 + 30 * 2 + 2  # header, 30 days x 2 streams, a totals row per scope
    totals = {daily.cell(r, 4).value: daily.cell(r, 8).value for r in (daily.max_row - 1, daily.max_row)}
    assert daily.cell(daily.max_row, 1).value == "Total" and daily.cell(daily.max_row, 1).font.bold
    assert totals == {"direct": pytest.approx(864 * 1.4265), "indirect": pytest.approx(864 * 0.10612)}
    summary = {r[0].value: r[1].value for r in wb["Summary"].iter_rows(min_row=2)}
    assert summary["CO2 direct (t)"] == pytest.approx(864 * 1.4265)
    assert summary["Time zone"] == "Asia/Shanghai"
    flagged = wb["Flagged minutes"]
    assert flagged["G2"].value == "substituted" and flagged["L2"].value == "rule=last_good"
    props = wb.properties
    assert props.created == props.modified == datetime(1980, 1, 1)


def test_chart_renders(site: tuple[Path, Path], tmp_path: Path) -> None:
    config, ledger = site
    out = tmp_path / "out"
    assert export(config, ledger, out) == 0
    with Image.open(out / "chart.png") as im:
        im.load()
        assert im.format == "PNG" and im.size == (1100, 740)  # two panels (direct, indirect) at 100 dpi
        assert "Software" not in im.info
        assert len(im.getcolors(1 << 16) or []) > 10  # drawn, not blank


def test_double_export_is_byte_identical(site: tuple[Path, Path], tmp_path: Path) -> None:
    config, ledger = site
    a, b = tmp_path / "a", tmp_path / "b"
    assert export(config, ledger, a) == 0
    assert export(config, ledger, b) == 0
    first = {p.name: p.read_bytes() for p in a.iterdir()}
    assert first == {p.name: p.read_bytes() for p in b.iterdir()}
    assert export(config, ledger, a) == 0  # again into the same directory: no restatement, same bytes
    assert first == {p.name: p.read_bytes() for p in a.iterdir()}


def test_refuses_a_ledger_that_fails_verification(
    site: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ledger = site
    db = sqlite3.connect(ledger, isolation_level=None)
    db.execute("DROP TRIGGER minutes_no_update")  # a tamperer with write access can do this too
    db.execute("UPDATE minutes SET co2_kg = co2_kg / 2 WHERE seq = 10")
    db.close()
    out = tmp_path / "out"
    assert export(config, ledger, out) == 1
    err = capsys.readouterr().err
    assert "hash chain broken at row 10" in err and "refuses" in err
    assert not out.exists() or not any(out.iterdir())


def test_a_correction_after_export_is_a_restatement(site: tuple[Path, Path], tmp_path: Path) -> None:
    config, ledger = site
    out = tmp_path / "out"
    assert export(config, ledger, out) == 0
    first_head = json.loads((out / "manifest.json").read_text())["ledger"]["head_hash"]
    lg = Ledger(ledger, clock=lambda: RECORDED_AT + 86400)
    ts = MONTH_START + 60 * 10
    seq = lg.reader.current_seq(ts, "blast_furnace", "coke")
    assert seq is not None
    lg.correct(
        [(seq, minute(ts, "blast_furnace", co2_kg=1426.5 + 1000.0))],
        "weighbridge ticket 4711 replaces the belt scale",
    )
    lg.close()
    assert export(config, ledger, out) == 0
    assert {p.name for p in out.iterdir()} == FILES | {"restatement.json", "restatement.csv"}
    doc = json.loads((out / "restatement.json").read_text())
    (entry,) = doc["restatements"]
    assert entry["previous_export"]["ledger_head_hash"] == first_head
    bf = next(ln for ln in entry["lines"] if ln["scope"] == "direct" and ln["process"] == "blast_furnace")
    assert bf["difference_co2_t"] == 1.0 and bf["new_co2_t"] - bf["old_co2_t"] == pytest.approx(1.0)
    util = next(ln for ln in entry["lines"] if ln["scope"] == "indirect" and ln["process"] == "utilities")
    assert util["difference_co2_t"] == 0.0
    (corr,) = entry["corrections_since_previous_export"]
    assert corr["supersedes"] == seq and corr["reason"].startswith("weighbridge")
    csv_lines = (out / "restatement.csv").read_text().splitlines()
    assert (
        csv_lines[0]
        == "number,previous_head_seq,this_head_seq,scope,process,old_co2_t,new_co2_t,difference_co2_t"
    )
    assert any(",direct,blast_furnace," in ln and ln.endswith(",1.0") for ln in csv_lines)
    man = json.loads((out / "manifest.json").read_text())
    assert {"restatement.json", "restatement.csv"} <= {f["path"] for f in man["files"]}
    assert "Restatements" in openpyxl.load_workbook(out / "workbook.xlsx").sheetnames
    before = (out / "restatement.json").read_bytes()
    assert export(config, ledger, out) == 0  # unchanged ledger: the history stays, nothing is added
    assert (out / "restatement.json").read_bytes() == before


def test_input_errors_exit_2(
    site: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ledger = site
    assert export(config, ledger, tmp_path / "x", month="2026-13") == 2
    assert "YYYY-MM" in capsys.readouterr().err
    assert export(config, tmp_path / "missing.sqlite", tmp_path / "x") == 2
    assert "no such file" in capsys.readouterr().err
    out = tmp_path / "out"
    assert export(config, ledger, out) == 0
    assert export(config, ledger, out, month="2026-10") == 2  # another month's export lives there
    assert "one directory per site and month" in capsys.readouterr().err


def test_sqlite_cells_match_the_reference_aggregation(site: tuple[Path, Path], tmp_path: Path) -> None:
    """The export lets SQLite sum minutes into cells; tables.aggregate_month does it in Python."""
    config, ledger = site
    lg = Ledger(ledger, clock=lambda: RECORDED_AT + 60)
    ts = MONTH_START + 60 * 25
    old = lg.reader.current_seq(ts, "utilities", "purchased_electricity")
    assert old is not None
    lg.correct([(old, minute(ts, "utilities", co2_kg=5.0, quality="estimated"))], "meter swap, estimated")
    records = [(seq, *(getattr(r, f) for f in RECORD_FIELDS[1:])) for seq, r in lg.reader.current()]
    lg.close()
    settings = load_settings(config)
    result = monthly.export_month(settings, b"", ledger, "2026-11", tmp_path / "out")
    period = month_period("2026-11", "Asia/Shanghai")
    reference = build_summary(
        aggregate_month(rows_from_records(records), period),
        ExportContext(site="test-works", sources={}, factors={}, ledger={}, budget=None),
    )
    for key in ("co2_t", "by_process", "scopes", "data_quality"):
        got = result.summary[key]
        if key == "data_quality":
            got = {k: v for k, v in got.items() if k != "corrections"}
        assert got == reference[key], key
    assert result.summary["data_quality"]["corrections"] == 1
    (corr,) = result.summary["corrections"]
    assert corr["supersedes"] == old and corr["reason"] == "meter swap, estimated"
    assert (corr["old_co2_kg"], corr["new_co2_kg"]) == (106.12, 5.0) and corr[
        "minute"
    ] == "2026-11-01T00:25+08:00"
    assert result.summary["scopes"]["indirect"]["data_quality"]["estimated_minutes"] == 1


BUDGET_TOML = """
[budget]
scope = "direct"
carbon_price_cny_per_t = 90.0

[[budget.years]]
year = 2026
allowance_t = 365000.0
"""


def test_budget_adds_the_allowance_trajectory(site: tuple[Path, Path], tmp_path: Path) -> None:
    config, ledger = site
    config.write_text(SITE_TOML + BUDGET_TOML, encoding="utf-8")
    result = monthly.export_month(
        load_settings(config), config.read_bytes(), ledger, "2026-11", tmp_path / "out"
    )
    assert result.summary["budget"] == {
        "name": "compliance",
        "scope": "direct",
        "year": 2026,
        "allowance_t": 365_000.0,
        "method": "calendar-linear",
        "configured_trajectory": "calendar_linear",
        "month_allowance_t": 30_000.0,  # 30 of 365 days
    }
    with Image.open(tmp_path / "out" / "chart.png") as im:
        assert im.size == (1100, 1080)  # a third panel: month to date against the trajectory
    summary = {
        r[0].value: r[1].value
        for r in openpyxl.load_workbook(tmp_path / "out" / "workbook.xlsx")["Summary"].iter_rows()
    }
    assert summary["Allowance for the month (t)"] == 30_000.0


def test_no_budget_year_means_no_line(site: tuple[Path, Path], tmp_path: Path) -> None:
    config, ledger = site
    config.write_text(SITE_TOML + BUDGET_TOML.replace("year = 2026", "year = 2027"), encoding="utf-8")
    result = monthly.export_month(
        load_settings(config), config.read_bytes(), ledger, "2026-11", tmp_path / "out"
    )
    assert result.summary["budget"]["allowance_t"] is None
    assert "no budget year" in result.summary["budget"]["omitted"]
    with Image.open(tmp_path / "out" / "chart.png") as im:
        assert im.size == (1100, 740)


def test_rows_appended_after_the_head_is_pinned_are_left_out(
    site: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway keeps appending while an export runs; the export is pinned to the head it found."""
    config, ledger = site
    lg = Ledger(ledger, clock=lambda: RECORDED_AT)
    pinned = (lg.head_seq, lg.head_hash)
    late = MONTH_START + 10 * 86400
    lg.append(results_of([minute(late, "blast_furnace", co2_kg=1e6)]))  # arrives "during" the export
    lg.close()
    monkeypatch.setattr(ledger_month, "pin_head", lambda _path: LedgerHead(*pinned))
    calls: list[tuple[str, int, int]] = []
    result = monthly.export_month(
        load_settings(config), b"", ledger, "2026-11", tmp_path / "out", progress=lambda *a: calls.append(a)
    )
    assert (
        result.summary["ledger"]["head_seq"] == pinned[0]
        and result.summary["ledger"]["head_hash"] == pinned[1]
    )
    assert result.summary["scopes"]["direct"]["co2_t"] == round(864 * 1.4265, 6)  # the late row is not in
    assert result.summary["ledger"]["rows_verified"] == pinned[0]  # the walk saw one more row; not written
    done = [c[1] for c in calls]
    assert done == sorted(done) and done[-1] == calls[-1][2] == 7 + 30 and calls[-1][0] == "done"


def exported(config: Path, ledger: Path, out: Path) -> dict[str, bytes]:
    result = monthly.export_month(load_settings(config), b"", ledger, "2026-11", out)
    return {name: (out / name).read_bytes() for name in result.files}


def test_native_and_python_walks_export_the_same_bytes(
    site: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The native walk sums the month while it checks the chain, in threads; SQLite reads the days
    where it hands rows to the Python walk. Whatever the split, the files are the Python path's."""
    if not ledger_audit.native_walk():
        pytest.skip("the native ledger walk is not built here")
    config, ledger = site
    lg = Ledger(ledger, clock=lambda: RECORDED_AT + 60)
    for k in (37, 300, 700):  # corrections on all three days, the first of a substituted minute
        ts = MONTH_START + 60 * 5 * k
        old = lg.reader.current_seq(ts, "blast_furnace", "coke")
        assert old is not None
        lg.correct([(old, minute(ts, "blast_furnace", co2_kg=1000.0 + k, quality="estimated"))], f"ticket {k}")
    # A cell whose exact sum needs more partials than the native walk keeps: handed over row by row.
    day2 = MONTH_START + 86400 + 30
    lg.append(results_of([minute(day2 + 60 * i, "sinter", stream="fuel", co2_kg=10.0 ** (-200 + 15 * i)) for i in range(15)]))
    pinned = (lg.head_seq, lg.head_hash)
    lg.correct([(pinned[0], minute(day2 + 60 * 14, "sinter", stream="fuel", co2_kg=1.0))], "after the head")
    lg.close()
    monkeypatch.setattr(ledger_month, "pin_head", lambda _path: LedgerHead(*pinned))
    period = month_period("2026-11", "Asia/Shanghai")
    window = ledger_audit.MonthWindow(tuple(period.day_starts_s.tolist()), pinned[0])
    report, sums = ledger_audit.walk_ledger(ledger, month=window)
    assert report.ok and sums is not None
    # handed over: the three corrections, the sinter row past the native walk's 8 partials, the late correction
    assert len(sums.left) == 5 and sums.left[-1] == pinned[0] + 1, sums.left

    with monkeypatch.context() as python:
        python.setattr(ledger_audit, "_native", None)
        reference = exported(config, ledger, tmp_path / "python")
    summary = json.loads(reference["summary.json"])
    assert summary["data_quality"]["corrections"] == 3
    for threads, rows_per_thread in ((1, 50_000), (2, 50), (3, 7)):
        monkeypatch.setattr(ledger_month, "cpus", lambda threads=threads: threads)
        monkeypatch.setattr(ledger_audit, "ROWS_PER_THREAD", rows_per_thread)
        got = exported(config, ledger, tmp_path / f"native-{threads}")
        assert got.keys() == reference.keys()
        for name in got:
            assert got[name] == reference[name], (name, threads)
