"""`emgate ledger restate`: a lab NCV entered after the minutes were recorded becomes correction
rows, the chain still verifies, the history keeps the old values and the month export reports a
restatement. The ledger is recorded by `emgate replay` (the live stages), not written by hand."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from analytics.units import CO2_PER_C
from gateway.cli import main
from gateway.ledger.audit import verify_ledger
from gateway.ledger.store import Ledger

pytestmark = pytest.mark.integration

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 10, 8, 0, tzinfo=TZ).timestamp()
LAB_FROM = datetime(2026, 11, 10, 9, 0, tzinfo=TZ).timestamp()
LAB_NCV_GJ_PER_T = 29.1  # cn.coke's default is 28.435
REASON = "lab report COKE-2026-11-10: NCV 29.1 GJ/t replaces the default from 09:00"

SITE_TOML = """
[site]
name = "restate-works"
timezone = "Asia/Shanghai"

[signals."bf.coke_tph"]
kind = "rate"
unit = "t/h"
max_gap_s = 15.0

[signals."meter.energy_kwh"]
kind = "counter"
unit = "kWh"
max_gap_s = 15.0

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

LAB_OVERRIDE = f"""
[[factors.overrides]]
id = "site.coke.lab-2026-11-10"
overrides = "cn.coke"
ncv_gj_per_unit = {LAB_NCV_GJ_PER_T}
source = "lab report COKE-2026-11-10"
year = 2026
status = "confirmed"
valid_from = "2026-11-10T09:00:00+08:00"
"""


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(config as recorded, config with the lab override, ledger) for two hours of one morning."""
    config = tmp_path / "site.toml"
    config.write_text(SITE_TOML, encoding="utf-8")
    csv = tmp_path / "recorded.csv"
    with csv.open("w") as fh:
        fh.write("ts,signal,value\n")
        meter = 50_000.0
        for k in range(0, 2 * 3600 + 120, 5):
            t = START + k
            meter += 2.5
            fh.write(f"{t!r},bf.coke_tph,{40.0 + (k % 600) / 100.0!r}\n{t!r},meter.energy_kwh,{meter!r}\n")
    assert main(["replay", "--config", str(config), "--input", str(csv), "--out", str(tmp_path / "rec")]) == 0
    restated = tmp_path / "site-lab.toml"
    restated.write_text(SITE_TOML + LAB_OVERRIDE, encoding="utf-8")
    return config, restated, tmp_path / "rec" / "ledger.sqlite"


def restate(config: Path, ledger: Path, *extra: str) -> int:
    return main(
        [
            "ledger",
            "restate",
            "--config",
            str(config),
            str(ledger),
            "--from",
            "2026-11-10T00:00+08:00",
            "--to",
            "2026-11-11T00:00+08:00",
            "--reason",
            REASON,
            *extra,
        ]
    )


def export(config: Path, ledger: Path, out: Path) -> int:
    return main(["export", "--config", str(config), "--ledger", str(ledger), "--month", "2026-11", "--out", str(out)])


def test_a_lab_ncv_entered_later_restates_the_minutes_it_covers(
    recorded: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, restated, ledger_path = recorded
    out = tmp_path / "export"
    assert export(config, ledger_path, out) == 0
    lg = Ledger(ledger_path, readonly=True)
    before = {r.key(): (seq, r) for seq, r in lg.reader.current()}
    lg.close()
    coke_after_lab = [r for _, r in before.values() if r.stream == "coke" and r.minute_start >= LAB_FROM]
    assert len(coke_after_lab) >= 60 and all(r.activity > 0 for r in coke_after_lab)
    capsys.readouterr()

    # with the recording's own config nothing changes, and nothing is written
    assert restate(config, ledger_path) == 0
    assert "appended 0 correction row(s)" in capsys.readouterr().out
    assert verify_ledger(ledger_path).corrections == 0

    # a dry run prints the table and writes nothing
    head = verify_ledger(ledger_path).head_hash
    assert restate(restated, ledger_path, "--dry-run") == 0
    dry = capsys.readouterr().out
    assert f"dry run: {len(coke_after_lab)} correction row(s) would be appended" in dry
    assert verify_ledger(ledger_path).head_hash == head

    assert restate(restated, ledger_path) == 0
    printed = capsys.readouterr().out
    assert f"appended {len(coke_after_lab)} correction row(s)" in printed
    bf_line = next(ln for ln in printed.splitlines() if ln.startswith("blast_furnace"))
    util_line = next(ln for ln in printed.splitlines() if ln.startswith("utilities"))
    assert bf_line.split()[2] == str(len(coke_after_lab)) and util_line.split()[2] == "0"

    report = verify_ledger(ledger_path)
    assert report.ok and report.corrections == len(coke_after_lab)

    ef_lab_kg = LAB_NCV_GJ_PER_T * 0.02942 * 0.93 * CO2_PER_C * 1000.0
    lg = Ledger(ledger_path, readonly=True)
    now = {r.key(): r for r in lg.reader.results()}
    history = list(lg.reader.history())
    lg.close()
    assert now.keys() == before.keys()
    delta_kg = 0.0
    for key, (_, old) in before.items():
        new = now[key]
        if old.stream == "coke" and old.minute_start >= LAB_FROM:
            assert new.factor_id == "site.coke.lab-2026-11-10"
            assert new.ef_kg_per_unit == pytest.approx(ef_lab_kg, rel=1e-12)
            assert new.co2_kg == pytest.approx(old.activity * ef_lab_kg, rel=1e-12)
            assert new.co2_kg > old.co2_kg * 1.02  # 29.1 / 28.435
            assert (new.activity, new.quality, new.coverage, new.flags) == (
                old.activity,
                old.quality,
                old.coverage,
                old.flags,
            )
            delta_kg += new.co2_kg - old.co2_kg
        else:
            assert new == old, key  # before 09:00, and electricity: untouched
    # the history keeps every old row, and each correction names the row it supersedes and why
    by_seq = {row.seq: row for row in history}
    corrections = [row for row in history if row.supersedes is not None]
    assert len(corrections) == len(coke_after_lab)
    for row in corrections:
        assert row.reason == REASON
        old_seq, old = before[row.result.key()]
        assert row.supersedes == old_seq and by_seq[old_seq].result == old

    # a second run finds nothing more to change
    assert restate(restated, ledger_path) == 0
    assert "appended 0 correction row(s)" in capsys.readouterr().out

    # the export made before the restatement is restated, with the difference and the reason
    assert export(restated, ledger_path, out) == 0
    doc = json.loads((out / "restatement.json").read_text())
    (entry,) = doc["restatements"]
    bf = next(ln for ln in entry["lines"] if ln["scope"] == "direct" and ln["process"] == "blast_furnace")
    assert bf["difference_co2_t"] == pytest.approx(delta_kg / 1000.0, abs=2e-6)
    util = next(ln for ln in entry["lines"] if ln["scope"] == "indirect" and ln["process"] == "utilities")
    assert util["difference_co2_t"] == 0.0
    listed = entry["corrections_since_previous_export"]
    assert len(listed) == len(coke_after_lab) and {c["reason"] for c in listed} == {REASON}


def test_bad_requests_exit_2_and_write_nothing(
    recorded: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, restated, ledger_path = recorded
    head = verify_ledger(ledger_path).head_hash
    backwards = ["--from", "2026-11-11T00:00+08:00", "--to", "2026-11-10T00:00+08:00", "--reason", REASON]
    assert main(["ledger", "restate", "--config", str(restated), str(ledger_path), *backwards]) == 2
    assert "is not before --to" in capsys.readouterr().err
    assert restate(restated, tmp_path / "missing.sqlite", "--dry-run") == 2
    assert "missing.sqlite" in capsys.readouterr().err
    # a configuration whose override never covers cn.pci-like gaps: an unknown factor id in a stream
    broken = tmp_path / "broken.toml"
    broken.write_text(SITE_TOML.replace('factor = "cn.coke"', 'factor = "cn.nope"'), encoding="utf-8")
    assert restate(broken, ledger_path) == 2
    assert "cn.nope" in capsys.readouterr().err
    assert verify_ledger(ledger_path).head_hash == head
