"""The running gateway through an InfluxDB outage and through a ledger disk that refuses writes.

Real peers on loopback: the simulated plant over Modbus TCP and an influxd of this test's own
(stopped and started again). The gateway runs in-process on a clock 60x real time.
"""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gateway.core.clock import ScaledClock
from gateway.ledger.audit import verify_ledger
from gateway.ledger.store import DELAYED_FLAG, Ledger
from gateway.pipeline import Gateway
from gateway.settings.site import GatewaySettings
from gateway.sim.plant import UNITS, SimulatedPlant
from gateway.sinks.influx import CURSOR
from gateway.sources.pymodbus_client import RegisterServer
from tests.factories import demo_plant, influx_section
from tests.services.influxd import InfluxService
from tests.services.ports import free_port
from tests.support.influx import influx_rows

pytestmark = pytest.mark.integration


def settings_for(port: int, ledger: Path, influx: InfluxService) -> GatewaySettings:
    measurement = f"dur_{uuid.uuid4().hex[:8]}"
    influx_settings = influx_section(influx, token=False, measurement=measurement, batch_size=50, timeout_s=2.0)
    data = demo_plant(
        port,
        ledger,
        device={"poll_s": 5.0, "timeout_s": 2.0},
        ledger={"checkpoint_s": 10.0},
        influx=influx_settings,
        retry={"base_s": 0.2, "cap_s": 1.0},
    )
    return GatewaySettings(**data)


@asynccontextmanager
async def running_gateway(settings: GatewaySettings) -> AsyncIterator[Gateway]:
    clock = ScaledClock(60.0)
    plant = SimulatedPlant(clock)
    gw = Gateway.build(settings, clock=clock)
    async with RegisterServer(
        port=settings.modbus.devices[0].port, fills={u: plant.fill(u) for u in UNITS.values()}, n_registers=16
    ):
        task = asyncio.create_task(gw.run(), name="gateway-under-test")
        try:
            yield gw
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            gw.close()


async def wait_for(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.1)


def check_ledger_matches_influx(ledger_path: Path, influx, measurement: str) -> list:  # type: ignore[no-untyped-def]
    assert verify_ledger(ledger_path).ok
    ledger = Ledger(ledger_path, readonly=True)
    current = [r for _, r in ledger.reader.current()]
    ledger.close()
    keys = Counter(r.key() for r in current)
    assert max(keys.values()) == 1
    minutes = sorted({r.minute_start for r in current})
    assert minutes == [minutes[0] + 60 * i for i in range(len(minutes))], (
        "a minute is missing from the ledger"
    )
    stored = influx_rows(influx, measurement)
    assert set(stored) == {r.key() for r in current}
    for r in current:
        assert stored[r.key()]["co2_kg"] == pytest.approx(r.co2_kg, rel=1e-12, abs=1e-12)
        assert (stored[r.key()]["flags"] or "") == r.flags  # no flags field: none
    return current


async def test_influx_outage_backlog_waits_on_disk_and_drains(influxdb_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    influx = influxdb_factory()
    settings = settings_for(free_port(), tmp_path / "ledger.sqlite", influx)
    async with running_gateway(settings) as gw:
        led, sink = gw.ledger, gw.influx
        assert sink is not None
        await wait_for(
            lambda: led.head_seq >= 12 and led.outbox.cursor(CURSOR) == led.head_seq, 30, "two minutes delivered"
        )
        influx.stop()
        down_at = led.head_seq
        await wait_for(
            lambda: led.head_seq >= down_at + 6 * 6, 30, "six minutes closed while InfluxDB is down"
        )
        assert (
            led.outbox.cursor(CURSOR) <= down_at and sink.counters.backlog > 0 and sink.counters.batches_failed > 0
        )
        influx.start()
        await wait_for(
            lambda: led.outbox.cursor(CURSOR) == led.head_seq and sink.counters.backlog == 0,
            30,
            "the backlog to drain",
        )
        assert not led.outbox.quarantined()
    check_ledger_matches_influx(settings.ledger.path, influx, settings.influx.measurement)


async def test_ledger_disk_refusing_writes_is_survived_and_flagged(influxdb, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(free_port(), tmp_path / "var" / "ledger.sqlite", influxdb)
    async with running_gateway(settings) as gw:
        led = gw.ledger
        await wait_for(lambda: led.head_seq >= 12, 30, "two minutes in the ledger")
        # A file system remounted read-only refuses SQLite's writes with SQLITE_READONLY. chmod
        # cannot emulate that for root, so the ledger's connection is made read-only (query_only).
        led._db.execute("PRAGMA query_only = ON")
        counter = sqlite3.connect(f"{led.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        before = counter.execute("SELECT count(*) FROM minutes").fetchone()[0]
        await wait_for(lambda: led.pending >= 3 * 6, 30, "three minutes held in memory")
        assert counter.execute("SELECT count(*) FROM minutes").fetchone()[0] == before
        assert led.counters.write_failures >= 3
        led._db.execute("PRAGMA query_only = OFF")
        counter.close()
        await wait_for(
            lambda: led.pending == 0 and led.head_seq >= before + 4 * 6, 30, "held minutes written"
        )
        assert gw.influx is not None
        await wait_for(lambda: led.outbox.cursor(CURSOR) == led.head_seq, 30, "InfluxDB to catch up")
    current = check_ledger_matches_influx(settings.ledger.path, influxdb, settings.influx.measurement)
    delayed = sorted({r.minute_start for r in current if DELAYED_FLAG in r.flags.split(";")})
    assert len(delayed) >= 3
    assert delayed == [delayed[0] + 60 * i for i in range(len(delayed))], "delayed minutes are one stretch"
    for p in settings.ledger.path.parent.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, f"{p} is readable by others"
