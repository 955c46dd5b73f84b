"""StatusServer on a real loopback socket: page, JSON, event stream, /metrics, shutdown, errors.

The gateway is a stand-in with the attributes the server reads (tests/support/status_gateway.py),
so these tests do not depend on the pipeline's stages.
"""

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.core.errors import ConfigError
from gateway.http.metrics import gateway_registry
from gateway.http.server import StatusServer, parse_bind
from gateway.http.sse import EventHub, format_event
from gateway.http.status import alerts_view, build_snapshot
from tests.support.status_gateway import T0, AlertStageStandIn, FakeGateway, history, minute


@pytest.fixture
def gw(tmp_path: Path) -> FakeGateway:
    return FakeGateway(tmp_path / "ledger.sqlite")


async def read_event(resp: aiohttp.ClientResponse) -> tuple[str, dict[str, Any]]:
    event, data = "", ""
    async with asyncio.timeout(5):
        while True:
            line = (await resp.content.readline()).decode()
            if line == "":
                raise EOFError("stream ended")
            line = line.rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and data:
                return event, json.loads(data)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("[::1]:9000", ("::1", 9000)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_parse_bind(value: str, expected: tuple[str, int]) -> None:
    assert parse_bind(value) == expected


@pytest.mark.parametrize("value", ["8080", ":8080", "host:", "host:http", "host:70000"])
def test_parse_bind_rejects_with_the_value_named(value: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_bind(value)


async def test_page_script_and_status_json(gw: FakeGateway) -> None:
    async with StatusServer(gw, "127.0.0.1:0", history(gw)) as server, aiohttp.ClientSession() as http:
        server.history(minute(T0, "bf", 12.5))
        async with http.get(server.url) as r:
            page = await r.text()
            assert r.status == 200 and r.content_type == "text/html"
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert '<script src="/page.js">' in page and 'id="processes"' in page
        async with http.get(server.url + "page.js") as r:
            assert r.content_type == "text/javascript"
            assert "EventSource" in await r.text()
        async with http.get(server.url + "api/status") as r:
            snap = await r.json()
        async with http.get(server.url + "healthz") as r:
            assert await r.text() == "ok\n"
    assert snap["site"] == "works-1"
    assert snap["processes"] == ["bf"]
    assert snap["latest"] == {"minute_start": T0, "co2_kg": {"bf": 12.5}}
    assert snap["totals"]["today_kg"] == {"bf": 12.5}
    assert snap["influx"]["backlog_rows"] == 7
    assert snap["alerts"] is None and snap["budgets"] is None
    devices = {d["name"]: d for d in snap["devices"]}
    assert devices["modbus[bf-1]"]["ok"] and devices["modbus[bf-1]"]["latency_ms"] == pytest.approx(300.0)
    assert devices["modbus[bf-1]"]["age_s"] == pytest.approx(5.0)
    assert not devices["modbus[lf-1]"]["ok"] and "no reply" in devices["modbus[lf-1]"]["last_error"]


async def test_metrics_are_read_from_the_gateways_counters(gw: FakeGateway) -> None:
    gw.alerts = AlertStageStandIn()
    async with StatusServer(gw, "127.0.0.1:0", history(gw)) as server, aiohttp.ClientSession() as http:
        gw.clock.t = T0 + 63.0
        server.history(minute(T0, "bf", 12.5))
        async with http.get(server.url + "metrics") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
            text = await r.text()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("emgate_"), family.name
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert samples[("emgate_samples_read_total", (("source", "bf-1"),))] == 20
    assert samples[("emgate_samples_late_total", (("source", "bf-1"),))] == 2
    assert samples[("emgate_samples_dropped_total", (("source", "bf-1"),))] == 6  # 3 batches x 2 points
    assert samples[("emgate_polls_missed_total", (("source", "bf-1"),))] == 4
    assert samples[("emgate_samples_bad_total", ())] == 1
    assert samples[("emgate_samples_out_of_range_total", ())] == 1
    bucket = {
        le: samples[("emgate_poll_latency_seconds_bucket", (("le", le), ("source", "bf-1")))]
        for le in ("0.005", "0.025", "0.25", "0.5", "+Inf")
    }
    assert bucket == {"0.005": 1, "0.025": 3, "0.25": 3, "0.5": 4, "+Inf": 4}
    assert samples[("emgate_poll_latency_seconds_sum", (("source", "bf-1"),))] == pytest.approx(0.344)
    assert samples[("emgate_component_up", (("kind", "modbus"), ("source", "lf-1")))] == 0
    assert samples[("emgate_component_errors_total", (("kind", "modbus"), ("source", "lf-1")))] == 1
    assert samples[("emgate_minute_close_lag_seconds_count", ())] == 1
    assert samples[("emgate_minute_close_lag_last_seconds", ())] == pytest.approx(3.0)
    assert samples[("emgate_outbox_backlog_rows", ())] == 7
    assert samples[("emgate_ledger_rows", ())] == 4
    assert samples[("emgate_alerts_active", ())] == 1
    assert samples[("emgate_co2_today_kg", (("process", "bf"),))] == 12.5


async def test_alert_and_budget_sections_come_from_the_alert_stage(gw: FakeGateway) -> None:
    assert alerts_view(gw) == (None, None)  # no alert stage: the page hides both sections
    stage = AlertStageStandIn()
    gw.alerts = stage
    alerts, budgets = alerts_view(gw)
    assert alerts is not None and len(alerts) == 1
    assert alerts[0]["kind"] == "budget" and alerts[0]["severity"] == "critical"
    assert alerts[0]["details"] == {"over_fraction": 0.12}
    assert budgets is not None and budgets[0]["projected_year_end_t"] == 1120.0
    assert budgets[0]["processes"] == [{"process": "bf", "actual_t": 900.0}]
    stage.budget_position, stage.alerts = None, []
    assert alerts_view(gw) == ([], [])  # a stage with nothing to report: sections shown, empty


async def test_the_deposit_clock_is_in_the_snapshot_and_the_metrics(gw: FakeGateway) -> None:
    assert build_snapshot(gw, history(gw))["deposits"] is None  # no alert stage
    gw.alerts = AlertStageStandIn()
    [month] = build_snapshot(gw, history(gw))["deposits"]
    assert (month["month"], month["due_date"], month["days_left"]) == ("2026-10", "2026-12-10", 5)
    assert month["open"] == ["lab results", "export"] and month["default_fuel_minutes"] == 1440
    text = generate_latest(gateway_registry(gw)).decode()
    assert 'emgate_deposit_days_left{month="2026-10"} 5.0' in text
    assert 'emgate_deposit_open{month="2026-10"} 1.0' in text
    assert 'emgate_deposit_default_fuel_minutes{month="2026-10"} 1440.0' in text
    assert 'emgate_deposit_exported{month="2026-10"} 0.0' in text


async def test_event_stream_sends_a_snapshot_then_each_change(gw: FakeGateway) -> None:
    async with StatusServer(gw, "127.0.0.1:0", history(gw), interval_s=0.05) as server, aiohttp.ClientSession() as http:
        publisher = asyncio.create_task(server.run(), name="http")
        try:
            async with http.get(server.url + "events") as r:
                assert r.headers["Content-Type"] == "text/event-stream"
                event, snap = await read_event(r)
                assert event == "snapshot" and snap["processes"] == []
                server.history(minute(T0, "bf", 1.0))
                while "bf" not in snap["processes"]:
                    _, snap = await read_event(r)
                server.history(minute(T0 + 60, "lf", 2.0))
                while "lf" not in snap["processes"]:
                    _, snap = await read_event(r)
                assert snap["series"]["co2_kg"] == {"bf": [1.0, None], "lf": [None, 2.0]}
                assert server.hub.subscribers == 1
        finally:
            publisher.cancel()
            with pytest.raises(asyncio.CancelledError):
                await publisher


async def test_leaving_the_server_ends_open_streams_quickly(gw: FakeGateway) -> None:
    http = aiohttp.ClientSession()
    try:
        server = StatusServer(gw, "127.0.0.1:0", history(gw), interval_s=0.05)
        async with server:
            server.hub.publish("snapshot", {"n": 1})
            resp = await http.get(server.url + "events")
            assert (await read_event(resp))[1] == {"n": 1}
            started = time.monotonic()
        assert time.monotonic() - started < 2.0
        with pytest.raises(EOFError):
            await read_event(resp)
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(server.url + "healthz")
    finally:
        await http.close()


async def test_a_busy_port_fails_at_start_with_what_to_do(gw: FakeGateway) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"127\.0\.0\.1:{port}.*choose another --http"):
            async with StatusServer(gw, f"127.0.0.1:{port}", history(gw)):
                pass


def test_a_slow_subscriber_loses_its_oldest_events_not_the_gateway() -> None:
    hub = EventHub(queue_size=2)
    q: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=2)
    hub._subscribers.add(q)
    for n in range(5):
        hub.publish("snapshot", {"n": n})
    assert hub.dropped == 3
    assert [q.get_nowait(), q.get_nowait()] == [
        format_event("snapshot", {"n": 3}),
        format_event("snapshot", {"n": 4}),
    ]
    assert format_event("x", {"a": 1}) == b'event: x\ndata: {"a":1}\n\n'
