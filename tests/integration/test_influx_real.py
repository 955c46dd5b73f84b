"""InfluxSink against a real influxd: keyed points, so repeating a batch overwrites, never duplicates."""

from pathlib import Path

import pytest

from gateway.settings import InfluxConfig, RetryConfig
from gateway.sinks.influx import CURSOR, InfluxSink
from gateway.sinks.ledger import Ledger
from tests.integration.test_crash_kill9 import _influx_rows
from tests.unit.test_ledger import result

pytestmark = pytest.mark.integration


async def test_repeated_delivery_overwrites_itself(influxdb, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.append([result(m, p, "s", co2_kg=m + 0.25) for m in range(30) for p in ("a", "b")])
    cfg = InfluxConfig(
        enabled=True,
        url=influxdb.url,
        org=influxdb.org,
        bucket=influxdb.bucket,
        token=influxdb.token,
        measurement="repeat_test",
        batch_size=7,
    )
    sink = InfluxSink(cfg, ledger, RetryConfig())
    async with sink:
        while await sink.drain_once():
            pass
        assert ledger.cursor(CURSOR) == 60
        ledger.set_cursor(CURSOR, 0)  # as if every acknowledgement had been lost in a crash
        ledger.correct([(1, result(0, "a", "s", co2_kg=-1.5))], "restated")
        while await sink.drain_once():
            pass
    stored = _influx_rows(influxdb, "repeat_test")
    assert len(stored) == 60
    current = {r.key(): r.co2_kg for r in ledger.results()}
    assert {k: v["co2_kg"] for k, v in stored.items()} == current
    assert current[(result(0).minute_start, "a", "s")] == -1.5
    ledger.close()
