"""Readings stamped far in the future (a publisher with a wrong clock or date) are refused and
counted, never buffered towards minutes years ahead: MQTT payload timestamps through a real
Mosquitto into the live minute stage, and the count on /metrics."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import aiomqtt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.core.clock import SystemClock
from gateway.core.health import ComponentHealth
from gateway.core.model import SampleBatch
from gateway.core.signals import SignalTable
from gateway.http.server import StatusServer
from gateway.sources.mqtt import MqttSource
from gateway.stages.minute import FUTURE_TOLERANCE_S, MinuteFrame, MinuteStage, MinuteWindow
from tests.factories import site_settings
from tests.services.mosquitto import MosquittoService
from tests.support.status_gateway import FakeGateway, history

pytestmark = pytest.mark.integration

YEAR_2100_S = 4_102_444_800.0


async def test_mqtt_readings_stamped_ahead_of_the_clock_are_refused_and_counted(
    mosquitto: MosquittoService, unique_topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = site_settings(
        "t",
        signals={"flow": {"unit": "t/h"}},
        mqtt={
            "brokers": [
                {
                    "name": "b",
                    "port": mosquitto.port,
                    "subscriptions": [
                        {"topic": f"{unique_topic}/flow", "format": "json", "fields": {"v": "flow"}, "timestamp_field": "ts"}
                    ],
                }
            ]
        },
    )
    signals = SignalTable.from_settings(settings)
    queue: asyncio.Queue[SampleBatch] = asyncio.Queue()
    clock = SystemClock()
    src = MqttSource(settings.mqtt.brokers[0], signals, queue, clock, ComponentHealth("mqtt[b]"), site="t")
    now = time.time()
    window = MinuteWindow(signals, settings.window, next_minute=now - now % 60)
    frames: list[MinuteFrame] = []

    async def on_frame(frame: MinuteFrame) -> None:
        frames.append(frame)

    stage = MinuteStage(window, queue, on_frame, clock)
    async with src:
        tasks = [asyncio.create_task(src.run()), asyncio.create_task(stage.run())]
        await asyncio.to_thread(mosquitto.wait_for_subscription, f"{unique_topic}/flow")
        stamps = [now, YEAR_2100_S, now + FUTURE_TOLERANCE_S - 60.0, now + 2 * FUTURE_TOLERANCE_S, now + 1.0]
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as pub:
            for k, ts in enumerate(stamps):
                await pub.publish(f"{unique_topic}/flow", json.dumps({"v": float(k), "ts": ts}).encode(), qos=1)
        async with asyncio.timeout(10):
            while window.counters.samples < len(stamps):  # noqa: ASYNC110  (the window has no event to wait on)
                await asyncio.sleep(0.05)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    source = next(iter(window.counters.sources))
    assert window.counters.future == 2 and window.counters.sources[source].future == 2
    buffered = window.export_state()
    assert sorted(buffered.values.tolist()) == [0.0, 2.0, 4.0]  # the two far ahead are not held
    assert float(buffered.ts.max()) < now + FUTURE_TOLERANCE_S
    warnings = [r.getMessage() for r in caplog.records if "ahead of the gateway clock" in r.getMessage()]
    assert len(warnings) == 1 and "1 reading(s) stamped more than 300 s ahead" in warnings[0]  # once per source


async def test_the_future_count_is_on_metrics(tmp_path: Path) -> None:
    gw = FakeGateway(tmp_path / "ledger.sqlite")
    gw.window.counters.sources["bf-1"].future = 4
    async with StatusServer(gw, "127.0.0.1:0", history(gw)) as server, aiohttp.ClientSession() as http:
        async with http.get(server.url + "metrics") as r:
            text = await r.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples
    }
    assert samples[("emgate_samples_future_total", (("source", "bf-1"),))] == 4
    assert samples[("emgate_samples_future_total", (("source", "lf-1"),))] == 0
