"""Finding 7 of issue 21: an InfluxDB outage shows in health.

A real influxd is stopped while the sink runs (supervised as the pipeline runs it): the "influx"
component goes down, the status page's device list and /metrics say so, and after influxd is
back the component is up again and the rows written during the outage are in InfluxDB.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.core.clock import SystemClock
from gateway.core.health import HealthRegistry
from gateway.http.server import StatusServer
from gateway.ledger.store import Ledger
from gateway.pipeline import Gateway, reenter, supervise
from gateway.settings.site import InfluxConfig, RetryConfig
from gateway.sinks.influx import CURSOR, InfluxSink
from tests.factories import minute_result, results_of, site_settings
from tests.services.influxd import InfluxService
from tests.support.influx import influx_rows
from tests.support.status_gateway import FakeGateway, history

pytestmark = pytest.mark.integration

MEASUREMENT = "health_test"
RETRY = RetryConfig(base_s=0.05, cap_s=0.3)


async def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.05)


async def influx_seen(http: aiohttp.ClientSession, url: str) -> tuple[bool, str, float]:
    """(ok, last_error) of the "influx" row of the status page's device list, and its /metrics up value."""
    async with http.get(url + "api/status") as r:
        devices = {d["name"]: d for d in (await r.json())["devices"]}
    async with http.get(url + "metrics") as r:
        text = await r.text()
    up = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "emgate_component_up" and s.labels == {"kind": "influx", "source": "influx"}
    ]
    assert len(up) == 1, text
    return devices["influx"]["ok"], devices["influx"]["last_error"], up[0]


async def test_an_influxdb_outage_shows_on_the_status_page_and_in_metrics(
    influxdb_factory: Callable[..., InfluxService], tmp_path: Path
) -> None:
    influxd = influxdb_factory(flux=False)
    cfg = InfluxConfig(
        enabled=True,
        url=influxd.url,
        token=influxd.token,
        org=influxd.org,
        bucket=influxd.bucket,
        measurement=MEASUREMENT,
        timeout_s=2.0,
    )
    registry = HealthRegistry()
    health = registry.get("influx")
    ledger = Ledger(tmp_path / "ledger.sqlite")
    gw = FakeGateway(tmp_path / "ledger.sqlite", health=registry)
    sink = InfluxSink(cfg, ledger, RETRY, health=health)
    task = asyncio.create_task(supervise(reenter(sink), RETRY, health, SystemClock()), name="influx")
    try:
        async with StatusServer(gw, "127.0.0.1:0", history(gw)) as server, aiohttp.ClientSession() as http:
            ledger.append(results_of([minute_result(m) for m in range(2)]))
            sink.notify()
            await wait_for(lambda: ledger.outbox.cursor(CURSOR) == ledger.head_seq, "the first rows")
            assert await influx_seen(http, server.url) == (True, "", 1.0)

            await asyncio.to_thread(influxd.stop)
            ledger.append(results_of([minute_result(m) for m in range(2, 5)]))
            sink.notify()
            await wait_for(lambda: not health.ok, "the influx component to go down")
            ok, error, up = await influx_seen(http, server.url)
            assert (ok, up) == (False, 0.0)
            assert influxd.url in error and "check influx.url" in error and influxd.token not in error
            assert sink.counters.backlog == 3

            await asyncio.to_thread(influxd.start)
            await wait_for(lambda: health.ok, "the influx component to come back")
            await wait_for(lambda: ledger.outbox.cursor(CURSOR) == ledger.head_seq, "the backlog")
            assert (await influx_seen(http, server.url))[::2] == (True, 1.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        ledger.close()
    assert len(influx_rows(influxd, MEASUREMENT)) == 5
    assert health.errors >= 1


async def test_an_outage_with_nothing_to_write_shows_too(
    influxdb_factory: Callable[..., InfluxService], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No minute waiting: the sink pings, so the component goes down (and up) without a write."""
    monkeypatch.setattr("gateway.sinks.influx.IDLE_PING_S", 0.2)
    influxd = influxdb_factory(flux=False)
    cfg = InfluxConfig(enabled=True, url=influxd.url, token=influxd.token, timeout_s=2.0)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    sink = InfluxSink(cfg, ledger, RETRY)
    task = asyncio.create_task(supervise(reenter(sink), RETRY, sink.health, SystemClock()), name="influx")
    try:
        await wait_for(lambda: sink.health.polls > 0 and sink.health.ok, "the first ping")
        await asyncio.to_thread(influxd.stop)
        sink.notify()  # a wake-up with nothing to write, as every closed minute of a site without rows gives
        await wait_for(lambda: not sink.health.ok, "the influx component to go down", timeout_s=15)
        assert "ping failed" in sink.health.last_error
        await asyncio.to_thread(influxd.start)
        await wait_for(lambda: sink.health.ok, "the influx component to come back", timeout_s=15)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        ledger.close()
    assert ledger.head_seq == 0


def test_the_gateway_gives_the_sink_its_health_component(tmp_path: Path) -> None:
    settings = site_settings(
        "t", ledger={"path": str(tmp_path / "l.sqlite")}, influx={"enabled": True, "url": "http://127.0.0.1:9"}
    )
    gw = Gateway.build(settings)
    try:
        assert gw.influx is not None and gw.influx.health is gw.health.get("influx")
    finally:
        gw.close()
