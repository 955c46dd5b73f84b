"""Two gateways (two sites) writing into one InfluxDB stay apart (docs/fleet.md).

Each gateway runs the demo plant on its own simulator, 60x faster, with its own site name and
ledger, and delivers through its own InfluxSink into the same database. Every row in InfluxDB
must carry its site's tag, a query by site must return exactly that site's ledger, and a group
total must be the sum of the plants' ledgers.
"""

import asyncio
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from gateway.core.clock import ScaledClock
from gateway.pipeline import Gateway
from gateway.settings.site import GatewaySettings
from gateway.sim.plant import UNITS, SimulatedPlant
from gateway.sources.pymodbus_client import RegisterServer
from tests.factories import demo_plant, influx_section
from tests.services.ports import free_port

pytestmark = pytest.mark.integration

MINUTES = 2


def site_settings(site: str, port: int, ledger: Path, influxdb: Any) -> GatewaySettings:
    data = demo_plant(port, ledger, influx=influx_section(influxdb))
    data["site"]["name"] = site
    return GatewaySettings(**data)


async def run_site(settings: GatewaySettings, port: int) -> Gateway:
    clock = ScaledClock(60.0)
    plant = SimulatedPlant(clock)
    gw = Gateway.build(settings, clock=clock)
    async with RegisterServer(
        port=port, fills={uid: plant.fill(uid) for uid in UNITS.values()}, n_registers=16
    ):
        await gw.run(stop_after_minutes=MINUTES)
    return gw


@pytest.fixture(scope="module")
def fleet(influxdb, tmp_path_factory) -> dict[str, dict[tuple[int, str, str], float]]:
    """Runs two sites at once; returns each site's ledger as {(minute, process, stream): co2_kg}."""
    tag = uuid.uuid4().hex[:6]
    tmp = tmp_path_factory.mktemp("fleet")
    sites = [f"works-north-{tag}", f"works-south-{tag}"]

    async def both() -> list[Gateway]:
        jobs = []
        for site in sites:
            port = free_port()
            jobs.append(run_site(site_settings(site, port, tmp / f"{site}.sqlite", influxdb), port))
        return await asyncio.gather(*jobs)

    gateways = asyncio.run(both())
    ledgers: dict[str, dict[tuple[int, str, str], float]] = {}
    for site, gw in zip(sites, gateways, strict=True):
        assert gw.influx is not None and gw.influx.counters.backlog == 0, "every row reached InfluxDB"
        rows = list(gw.ledger.reader.results())
        gw.close()
        assert rows and {r.site for r in rows} == {site}
        ledgers[site] = {(int(r.minute_start), r.process, r.stream): r.co2_kg for r in rows}
    return ledgers


def flux_rows(influxdb: Any, site_filter: str) -> list[dict[str, Any]]:
    return influxdb.flux(
        'from(bucket: "emgate/autogen") |> range(start: -2d, stop: 2d)'
        ' |> filter(fn: (r) => r._measurement == "emissions" and r._field == "co2_kg" and '
        + site_filter
        + ")"
        " |> group()"
    )


def as_epoch(rfc3339: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp())


def test_each_sites_rows_carry_its_tag_and_a_site_query_returns_only_its_minutes(influxdb, fleet) -> None:
    for site, ledger in fleet.items():
        rows = flux_rows(influxdb, f'r.site == "{site}"')
        assert {r["site"] for r in rows} == {site}
        got = {(as_epoch(r["_time"]), r["process"], r["stream"]): r["_value"] for r in rows}
        assert got == pytest.approx(ledger)
        assert len(got) >= MINUTES * 6  # six streams per minute in the demo plant


def test_both_sites_share_processes_but_not_rows(influxdb, fleet) -> None:
    north, south = fleet
    both = flux_rows(influxdb, f'(r.site == "{north}" or r.site == "{south}")')
    by_site: dict[str, int] = defaultdict(int)
    for r in both:
        by_site[r["site"]] += 1
    assert by_site == {north: len(fleet[north]), south: len(fleet[south])}
    # the same process names and minutes exist at both plants: only the site tag keeps them apart
    assert {k[1] for k in fleet[north]} == {k[1] for k in fleet[south]}


def test_group_total_is_the_sum_of_the_plants_ledgers(influxdb, fleet) -> None:
    north, south = fleet
    rows = influxdb.flux(
        'from(bucket: "emgate/autogen") |> range(start: -2d, stop: 2d)'
        f' |> filter(fn: (r) => r._measurement == "emissions" and r._field == "co2_kg" and'
        f' (r.site == "{north}" or r.site == "{south}"))'
        ' |> group(columns: ["site"]) |> sum()'
    )
    totals = {r["site"]: r["_value"] for r in rows}
    assert totals == pytest.approx({site: sum(ledger.values()) for site, ledger in fleet.items()})
