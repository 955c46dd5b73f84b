"""Alert events reach InfluxDB too (measurement emgate_alerts), delivered from the ledger's
alerts table like minute results, and read back with plain InfluxQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway.commands.demo import DEMO_PLANT_CONFIG, demo_settings
from gateway.core.clock import ScaledClock
from gateway.pipeline import Gateway
from gateway.settings.site import GatewaySettings
from gateway.sim.plant import UNITS, SimulatedPlant
from gateway.sources.pymodbus_client import RegisterServer
from tests.factories import influx_section
from tests.services.ports import free_port

pytestmark = pytest.mark.integration


def test_budget_alert_is_written_to_influx(tmp_path: Path, influxdb) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    data = demo_settings(DEMO_PLANT_CONFIG, port, tmp_path / "ledger.sqlite", speed=60.0).model_dump()
    data["influx"] = {**data["influx"], **influx_section(influxdb)}
    year = int(__import__("datetime").datetime.now().year)
    # the demo plant emits about 5 t a minute, some 2.6 Mt a year: 1,000 t is far below it
    data["budget"] = {"carbon_price_cny_per_t": 82.8, "projection_min_days": 0, "years": [{"year": year, "allowance_t": 1000.0}]}
    # raise after one minute over (the default waits an hour, which a 3-minute run never sees)
    data["alerts"] = {"budget": {"raise_at": {"warning": 0.0, "critical": 0.2}, "clear_at": -0.05, "min_duration_s": 60}}
    settings = GatewaySettings(**data)

    async def run() -> None:
        clock = ScaledClock(speed=60.0)
        plant = SimulatedPlant(clock)
        gw = Gateway.build(settings, clock=clock)
        try:
            async with RegisterServer(port=port, fills={u: plant.fill(u) for u in UNITS.values()}, n_registers=16):
                await gw.run(stop_after_minutes=3)
        finally:
            gw.close()

    asyncio.run(run())
    result = influxdb.influxql("SELECT * FROM emgate_alerts WHERE kind = 'budget'")
    series = result["results"][0].get("series")
    assert series, f"no budget alert in InfluxDB: {result}"
    columns = series[0]["columns"]
    rows = [dict(zip(columns, v, strict=True)) for v in series[0]["values"]]
    raised = [r for r in rows if r["state"] == "raised"]
    assert len(raised) == 1
    event = json.loads(raised[0]["event"])
    assert event["site"] == "demo-works" and event["details"]["allowance_t"] == 1000.0
    assert event["details"]["shortfall_cny"] == pytest.approx(event["details"]["shortfall_t"] * 82.8)
