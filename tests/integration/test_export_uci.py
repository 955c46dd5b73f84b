"""January 2018 of the UCI steel plant, replayed and exported: the export reproduces the month.

The plant's only metered stream is purchased electricity (indirect scope), 15-minute interval
totals stamped at their end, local time Korea (UTC+9); config/examples/uci-steel.toml describes
it. Expected figures come from shared/data/README.md: January holds 126,238.29 kWh, and the
source's fixed factor 0.4585 tCO2/MWh gives 57.88 t (the file's own CO2 column sums to 53.99 t
only because each 15-minute value was rounded to 0.01 t).

Depends on `emgate replay` (gateway/commands/replay.py, another change); skipped until it exists.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from gateway.sim.plant import data_dir

pytestmark = pytest.mark.integration

UCI_FILE = "steel_industry_energy_2018-01_to_10.csv"
SITE = Path(__file__).resolve().parents[2] / "config" / "examples" / "uci-steel.toml"
JANUARY_KWH = 126_238.29
JANUARY_ROWS = 2976
FACTOR_T_PER_MWH = 0.4585


@pytest.mark.skipif(
    importlib.util.find_spec("gateway.commands.replay") is None,
    reason="emgate replay (gateway/commands/replay.py) does not exist yet",
)
def test_uci_january_is_reproduced(tmp_path: Path) -> None:
    d = data_dir()
    if d is None or not (d / UCI_FILE).is_file():
        pytest.skip(f"{UCI_FILE} not found (set EMGATE_DATA_DIR to the shared data folder)")
    from gateway.cli import main

    # January's rows only (the date text's month, as the README counts them), bytes unchanged:
    # replaying ten months would only slow the test down.
    raw = (d / UCI_FILE).read_bytes().split(b"\r\n")
    january = [raw[0]] + [line for line in raw[1:] if line[3:10] == b"01/2018"]
    assert len(january) - 1 == JANUARY_ROWS
    extract = tmp_path / "steel_industry_energy_2018-01.csv"
    extract.write_bytes(b"\r\n".join(january) + b"\r\n")

    replayed = tmp_path / "replay"
    assert main(["replay", "--config", str(SITE), "--input", str(extract), "--out", str(replayed)]) == 0
    out = tmp_path / "export"
    argv = [
        "export",
        "--config",
        str(SITE),
        "--ledger",
        str(replayed / "ledger.sqlite"),
        "--month",
        "2018-01",
    ]
    assert main([*argv, "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["timezone"] == "Asia/Seoul" and s["period"]["start"] == "2018-01-01T00:00+09:00"
    (stream,) = s["streams"]
    assert stream["scope"] == "indirect" and stream["activity_unit"] == "MWh"
    assert stream["activity"] == pytest.approx(JANUARY_KWH / 1000, abs=1e-5)
    assert s["scopes"]["indirect"]["co2_t"] == pytest.approx(JANUARY_KWH / 1000 * FACTOR_T_PER_MWH, abs=1e-5)
    assert s["scopes"]["direct"]["co2_t"] == 0.0  # purchased electricity never enters the compliance figure
    assert stream["data_quality"]["minutes_present"] == 31 * 1440
    (factor,) = stream["factors"]
    assert factor["id"] == "kr.grid.uci.0.4585" and factor["ef_tco2_per_unit"] == FACTOR_T_PER_MWH
    days = (out / "daily.csv").read_text().splitlines()[1:]
    assert len(days) == 31 and sum(float(r.split(",")[5]) for r in days) == pytest.approx(
        JANUARY_KWH / 1000, abs=1e-5
    )
