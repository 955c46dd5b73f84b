"""Hardening finding 1, end to end: an absurd reading is flagged, never counted, and the export's
figures are exact at any magnitude or refused.

The finding: a FLOAT32 of 3.4e38 on a point without min/max was a GOOD reading; it entered the
ledger, raised a budget alert with a 45-digit CNY figure, and `emgate export` wrote a compliance
total of -9,223,372,036,854.775 t with exit 0 (integer grams overflowed). Here the UCI plant's
January is replayed with one reading of 1e308 kWh, then exported; and ledgers holding absurd
rows (as a version without bounds wrote them) are exported and refused with exit 2.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.cli import main
from gateway.core.model import MinuteResult
from gateway.ledger import audit as ledger_audit
from gateway.ledger.store import Ledger
from gateway.sim.plant import data_dir
from tests.factories import minute_result, results_of

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
UCI_SITE = REPO / "config" / "examples" / "uci-steel.toml"
UCI_FILE = "steel_industry_energy_2018-01_to_10.csv"
JANUARY_KWH = 126_238.29
FACTOR_T_PER_MWH = 0.4585


def test_a_reading_of_1e308_is_flagged_and_the_month_stays_right(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = data_dir()
    if d is None or not (d / UCI_FILE).is_file():
        pytest.skip(f"{UCI_FILE} not found (set EMGATE_DATA_DIR to the shared data folder)")
    raw = (d / UCI_FILE).read_bytes().split(b"\r\n")
    january = [raw[0]] + [line for line in raw[1:] if line[3:10] == b"01/2018"]
    # the row ending 2018-01-02 01:00 (local): 3.35 kWh in the file, 1e308 here
    k = next(i for i, line in enumerate(january) if line.startswith(b"02/01/2018 01:00,"))
    cells = january[k].split(b",")
    replaced_kwh = float(cells[1])
    cells[1] = b"1e308"
    january[k] = b",".join(cells)
    extract = tmp_path / "steel_industry_energy_2018-01.csv"
    extract.write_bytes(b"\r\n".join(january) + b"\r\n")

    replayed = tmp_path / "replay"
    assert main(["replay", "--config", str(UCI_SITE), "--input", str(extract), "--out", str(replayed)]) == 0
    with (replayed / "minutes.csv").open() as fh:
        minutes = list(csv.DictReader(fh))
    # the row's 15 minutes are not measured: the site's rule for this meter is `none` (missing, 0 kWh)
    gap = [m for m in minutes if m["quality"] != "measured"]
    assert [m["minute_start"] for m in gap] == [f"2018-01-02T00:{mm:02d}:00+09:00" for mm in range(45, 60)]
    assert {(m["quality"], m["flags"], float(m["activity"])) for m in gap} == {("missing", "rule=none", 0.0)}
    # the flag is on the minute of the reading's stamp (01:00)
    (flagged,) = [m for m in minutes if "out_of_range" in m["flags"]]
    assert flagged["minute_start"] == "2018-01-02T01:00:00+09:00"
    assert flagged["flags"] == "bad_samples=1;out_of_range=1"
    assert max(abs(float(m["co2_kg"])) for m in minutes) < 100.0
    # no alert carries an absurd figure: the budget's projection is the plant's
    for line in (replayed / "alerts.jsonl").read_text().splitlines():
        event = json.loads(line)
        for key in ("actual_t", "projected_year_end_t", "shortfall_t", "shortfall_cny"):
            value = event["details"].get(key)
            assert value is None or (math.isfinite(value) and abs(value) < 1e6), (key, value)

    out = tmp_path / "export"
    argv = ["export", "--config", str(UCI_SITE), "--ledger", str(replayed / "ledger.sqlite"), "--month", "2018-01"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    s = json.loads((out / "summary.json").read_text())
    expected_mwh = (JANUARY_KWH - replaced_kwh) / 1000  # the month less the row's contribution; rule none adds 0
    (stream,) = s["streams"]
    assert stream["activity"] == pytest.approx(expected_mwh, abs=1e-6)
    assert s["scopes"]["indirect"]["co2_t"] == pytest.approx(expected_mwh * FACTOR_T_PER_MWH, abs=1e-6)
    assert s["scopes"]["direct"]["co2_t"] == 0.0
    dq = s["data_quality"]
    assert dq["quality_minutes"]["missing"] == 15 and dq["quality_minutes"]["measured"] == 31 * 1440 - 15
    assert dq["flag_minutes"] == {"bad_samples": 1, "out_of_range": 1, "rule=none": 15}
    flagged_rows = (out / "flagged_minutes.csv").read_text()
    assert "out_of_range=1" in flagged_rows


SITE_TOML = """
[site]
name = "test-works"
timezone = "Asia/Shanghai"

[signals."bf.coke_tph"]
kind = "rate"
unit = "t/h"

[[streams]]
process = "blast_furnace"
stream = "coke"
signal = "bf.coke_tph"
method = "fuel_combustion"
factor = "cn.coke"
"""
TZ = ZoneInfo("Asia/Shanghai")
NOV_1 = 1_793_462_400.0  # 2026-11-01T00:00+08:00


def minute(ts: float, co2_kg: float, activity: float = 0.5) -> MinuteResult:
    return minute_result(
        minute_start=ts,
        site="test-works",
        process="blast_furnace",
        stream="coke",
        activity=activity,
        co2_kg=co2_kg,
        ef_kg_per_unit=2853.0,
    )


def absurd_ledger(path: Path, absurd: list[float]) -> int:
    """Two days of plausible minutes, with `absurd` CO2 figures in minutes of the second day, as a
    version without plausibility bounds wrote them. Returns the seq of the first absurd row."""
    rows = [minute(NOV_1 + 60 * m, 1426.5) for m in range(0, 2 * 1440, 10)]
    first = len(rows) + 1
    rows += [minute(NOV_1 + 86400 + 60 * (7 + 10 * i), kg) for i, kg in enumerate(absurd)]
    lg = Ledger(path, clock=lambda: 1_800_000_000.0)
    lg.append(results_of(rows))
    lg.close()
    return first


@pytest.mark.parametrize("walk", ["native", "python"])
@pytest.mark.parametrize(
    "absurd",
    [[3.4e38 * 2853.0 / 3600.0 * 60.0], [1.5e308, 1.5e308]],
    ids=["float32-max", "sum-overflows"],
)
def test_an_export_that_cannot_be_exact_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, walk: str, absurd: list[float]
) -> None:
    if walk == "native" and not ledger_audit.native_walk():
        pytest.skip("the native ledger walk is not built here")
    if walk == "python":
        monkeypatch.setattr(ledger_audit, "_native", None)
    config = tmp_path / "site.toml"
    config.write_text(SITE_TOML, encoding="utf-8")
    ledger = tmp_path / "ledger.sqlite"
    first = absurd_ledger(ledger, absurd)
    out = tmp_path / "export"
    code = main(
        ["export", "--config", str(config), "--ledger", str(ledger), "--month", "2026-11", "--out", str(out), "--no-progress"]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(
        f"emgate export: ledger {ledger}: the month cannot be summed exactly: CO2 of blast_furnace/coke (direct)"
    )
    assert "on 2026-11-02, quality measured, factor cn.coke" in err
    assert f"its largest row is seq {first} (minute 2026-11-02T00:07+08:00)" in err
    assert "emgate ledger show" in err and "unit and bounds" in err
    assert not out.exists() or not any(out.iterdir())  # nothing written
