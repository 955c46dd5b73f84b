"""The whole slice against real peers: simulated plant over Modbus TCP -> gateway -> ledger
and InfluxDB; the minutes read back from InfluxDB (Flux through the gateway's own client
library's endpoint, and InfluxQL through plain HTTP) equal the ledger's rows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from gateway.codec import encode_value
from gateway.core.clock import ScaledClock
from gateway.core.health import ComponentHealth
from gateway.core.model import SampleQuality
from gateway.core.signals import SignalTable
from gateway.ledger.store import Ledger
from gateway.pipeline import Gateway
from gateway.settings.site import GatewaySettings, ModbusDeviceConfig
from gateway.sim.plant import UNITS, SimulatedPlant
from gateway.sources.modbus import ModbusSource
from gateway.sources.pymodbus_client import RegisterServer
from tests import factories
from tests.services.influxd import InfluxService
from tests.services.ports import free_port

pytestmark = pytest.mark.integration


def site_settings(port: int, ledger: Path, influx: InfluxService) -> GatewaySettings:
    return GatewaySettings(**factories.demo_plant(port, ledger, influx=factories.influx_section(influx)))


async def run_slice(settings: GatewaySettings, port: int, minutes: int) -> None:
    clock = ScaledClock(speed=60.0)
    plant = SimulatedPlant(clock)
    gw = Gateway.build(settings, clock=clock)
    try:
        async with RegisterServer(port=port, fills={u: plant.fill(u) for u in UNITS.values()}, n_registers=16):
            await gw.run(stop_after_minutes=minutes)
        assert gw.influx is not None and gw.influx.counters.backlog == 0
    finally:
        gw.close()


def test_plant_to_ledger_and_influx(tmp_path: Path, influxdb) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    settings = site_settings(port, tmp_path / "ledger.sqlite", influxdb)
    asyncio.run(run_slice(settings, port, minutes=3))

    ledger = Ledger(tmp_path / "ledger.sqlite")
    rows = {(int(r.minute_start), r.process, r.stream): r.co2_kg for r in ledger.reader.results()}
    ledger.close()
    assert len(rows) == 3 * len(settings.streams)
    assert sum(v for (_, p, _), v in rows.items() if p == "sinter") > 0

    first, last = min(k[0] for k in rows), max(k[0] for k in rows)
    flux_rows = influxdb.flux(
        f'from(bucket: "{influxdb.bucket}") |> range(start: {first}, stop: {last + 60}) '
        f'|> filter(fn: (r) => r._measurement == "emissions" and r._field == "co2_kg" and r.site == "demo-works")'
    )
    from_flux = {}
    for r in flux_rows:
        t = np.datetime64(str(r["_time"]).replace("Z", "")).astype("datetime64[s]").astype(int)
        from_flux[(int(t), r["process"], r["stream"])] = float(r["_value"])
    assert from_flux.keys() == rows.keys()
    for key, value in rows.items():
        assert from_flux[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key

    # an independent client: InfluxQL over plain HTTP
    result = influxdb.influxql(
        f"SELECT co2_kg FROM emissions WHERE site = 'demo-works' AND time >= {first}s AND time <= {last}s GROUP BY process, stream"
    )
    from_ql = {}
    for series in result["results"][0]["series"]:
        for t, value in series["values"]:
            ts = int(np.datetime64(t.replace("Z", "")).astype("datetime64[s]").astype(int))
            from_ql[(ts, series["tags"]["process"], series["tags"]["stream"])] = value
    assert from_ql == pytest.approx(rows)


def test_modbus_source_reads_an_independent_slave(modbus_tk_slave) -> None:  # type: ignore[no-untyped-def]
    """Decoding is checked against modbus-tk, not only against pymodbus' own server."""
    holding = [*encode_value(123.456, "FLOAT32", "ABCD"), 0, 0, *encode_value(987654321, "UINT32", "CDAB")]
    slave = modbus_tk_slave({"units": {"7": {"holding": {"100": holding}, "input": {"0": [0xFFFE]}}}})
    settings = factories.site_settings(
        "t",
        signals={"a": {"unit": "t/h"}, "b": {"kind": "counter", "unit": "kWh"}, "c": {"unit": "t/h"}},
        modbus={
            "devices": [
                {
                    "name": "tk",
                    "port": slave.port,
                    "unit_id": 7,
                    "poll_s": 1.0,
                    "timeout_s": 0.5,
                    "points": [
                        {"signal": "a", "address": 100, "type": "FLOAT32", "byte_order": "ABCD"},
                        {"signal": "b", "address": 104, "type": "UINT32", "byte_order": "CDAB"},
                        {"signal": "c", "address": 0, "register": "input", "type": "INT16", "scale": 0.5},
                    ],
                }
            ]
        },
    )
    dev: ModbusDeviceConfig = settings.modbus.devices[0]

    async def poll() -> object:
        queue: asyncio.Queue = asyncio.Queue()
        src = ModbusSource(dev, SignalTable.from_settings(settings), queue, ScaledClock(), ComponentHealth("tk"))
        async with src:
            return await src.poll_once(1.0)

    batch = asyncio.run(poll())
    assert batch.quality.tolist() == [SampleQuality.GOOD] * 3
    assert batch.values[0] == pytest.approx(123.456, rel=1e-6)
    assert batch.values[1] == 987654321
    assert batch.values[2] == -1.0  # INT16 0xFFFE = -2, scale 0.5
    # the planner read the holding block 100..105 in one request, bridging the 2-register gap
    assert sorted(set(slave.function_codes())) == [3, 4]
    assert len(slave.function_codes()) == 2
