"""InfluxSink against a real influxd: keyed points, so repeating a batch overwrites, never duplicates."""

from pathlib import Path

import pytest

from gateway.ledger.store import Ledger
from gateway.settings.site import InfluxConfig, RetryConfig
from gateway.sinks.influx import CURSOR, InfluxSink
from tests.factories import influx_section, results_of
from tests.factories import minute_result as result
from tests.services.influxd import InfluxService
from tests.support.influx import influx_rows

pytestmark = pytest.mark.integration


def _sink(influxdb: InfluxService, ledger: Ledger, measurement: str, **cfg: object) -> InfluxSink:
    return InfluxSink(InfluxConfig(**influx_section(influxdb, measurement=measurement, **cfg)), ledger, RetryConfig())


async def test_repeated_delivery_overwrites_itself(influxdb, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.append(results_of([result(m, p, "s", co2_kg=m + 0.25) for m in range(30) for p in ("a", "b")]))
    sink = _sink(influxdb, ledger, "repeat_test", batch_size=7)
    async with sink:
        while await sink.drain_once():
            pass
        assert ledger.outbox.cursor(CURSOR) == 60
        ledger.outbox.set_cursor(CURSOR, 0)  # as if every acknowledgement had been lost in a crash
        ledger.correct([(1, result(0, "a", "s", co2_kg=-1.5))], "restated")
        while await sink.drain_once():
            pass
    stored = influx_rows(influxdb, "repeat_test")
    assert len(stored) == 60
    current = {r.key(): r.co2_kg for r in ledger.reader.results()}
    assert {k: v["co2_kg"] for k, v in stored.items()} == current
    assert current[(result(0).minute_start, "a", "s")] == -1.5
    ledger.close()


async def test_a_correction_that_clears_the_flags_clears_them_in_influx(influxdb, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.append(results_of([result(0, quality="substituted", flags="rule=last_good", co2_kg=9.0), result(1)]))
    sink = _sink(influxdb, ledger, "flags_test")
    async with sink:
        while await sink.drain_once():
            pass
        before = influx_rows(influxdb, "flags_test")
        ledger.correct([(1, result(0, quality="measured", flags="", co2_kg=10.0))], "late samples")
        while await sink.drain_once():
            pass
    after = influx_rows(influxdb, "flags_test")
    first, second = result(0).key(), result(1).key()
    assert before[first]["flags"] == "rule=last_good" and before[second]["flags"] is None
    assert after[first]["flags"] == "" and after[first]["quality"] == "measured" and after[first]["co2_kg"] == 10.0
    assert after[first]["activity_unit"] == "t" and len(after) == 2
    ledger.close()
