"""emgate_tasks: the asyncio tasks alive in the gateway, read at scrape time (the soak benchmark watches it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.http.metrics import gateway_registry
from gateway.http.server import StatusServer
from tests.support.status_gateway import FakeGateway, history


@pytest.fixture
def gw(tmp_path: Path) -> FakeGateway:
    return FakeGateway(tmp_path / "ledger.sqlite")


async def _tasks_gauge(http: aiohttp.ClientSession, url: str) -> float:
    async with http.get(url + "metrics") as r:
        text = await r.text()
    values = [s.value for f in text_string_to_metric_families(text) if f.name == "emgate_tasks" for s in f.samples]
    assert len(values) == 1, f"emgate_tasks missing from /metrics: {text[:300]}"
    return values[0]


async def test_tasks_gauge_counts_the_event_loops_tasks(gw: FakeGateway) -> None:
    async with StatusServer(gw, "127.0.0.1:0", history(gw)) as server, aiohttp.ClientSession() as http:
        before = await _tasks_gauge(http, server.url)
        extra = [asyncio.create_task(asyncio.sleep(3600)) for _ in range(5)]
        await asyncio.sleep(0)
        during = await _tasks_gauge(http, server.url)
        for t in extra:
            t.cancel()
        await asyncio.gather(*extra, return_exceptions=True)
        after = await _tasks_gauge(http, server.url)
    assert before >= 1  # at least the test's own task
    assert during - before == 5
    assert after == before


def test_tasks_gauge_is_left_out_outside_an_event_loop(gw: FakeGateway) -> None:
    names = {m.name for m in gateway_registry(gw, history(gw)).collect()}
    assert "emgate_alerts_active" in names and "emgate_tasks" not in names
