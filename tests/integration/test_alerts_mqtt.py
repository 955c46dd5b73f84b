"""Alerts over a real Mosquitto, watched by an independent subscriber (Debian's mosquitto_sub).

- every raise and clear reaches the subscriber exactly once, also when the broker restarts
  while events are waiting in the outbox;
- after a gateway restart the retained active set and budget position are right, and the
  still-active alert keeps its id (no second raise);
- a noisy measure around the raise level gives one raise, not a flapping stream.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.alerts.budget_stage import AlertStage
from gateway.core.clock import SystemClock
from gateway.core.health import ComponentHealth
from gateway.core.model import MinuteResult
from gateway.ledger.alerts_table import AlertStore
from gateway.pipeline import Gateway, supervise
from gateway.settings.alerts import AlertMqttConfig, AlertsConfig
from gateway.settings.site import GatewaySettings, RetryConfig
from gateway.sinks.alerts_mqtt import AlertMqttSink
from tests import factories
from tests.services.mosquitto import MosquittoService
from tests.support.mqtt_alerts import FixedClock, Subscriber, retained, retained_is, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("mosquitto_sub") is None, reason="mosquitto_sub (Debian mosquitto-clients) not installed"
    ),
]

SITE = "works"
T0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
FAST_RETRY = RetryConfig(base_s=0.05, cap_s=0.5)


def minute(i: int, coverage: float, co2_kg: float = 50.0) -> list[MinuteResult]:
    """One closed minute of the sinter stream, `i` minutes after T0."""
    return [
        factories.minute_result(
            i,
            "sinter",
            "coke_breeze",
            co2_kg,
            start=T0,
            site=SITE,
            activity=0.02,
            ef_kg_per_unit=2500.0,
            coverage=coverage,
            quality="measured" if coverage >= 0.75 else "substituted",
        )
    ]


def coverage_alerts(prefix: str, port: int, **dq: float) -> AlertsConfig:
    coverage = {
        "raise_at": {"warning": 0.25, "critical": 0.75},
        "clear_at": 0.1,
        "min_duration_s": 120,
        "clear_duration_s": 120,
        **dq,
    }
    return AlertsConfig(
        enabled=True,
        mqtt=AlertMqttConfig(port=port, topic_prefix=prefix),
        spike={"enabled": False},
        data_quality={"coverage": coverage},
    )


async def test_each_raise_and_clear_once_across_a_broker_restart(
    mosquitto_factory: Callable[..., MosquittoService],
    unique_topic: str,
    tmp_path: Path,
    subscribers: list[Subscriber],
) -> None:
    broker = mosquitto_factory()
    topic = f"{unique_topic}/{SITE}/alerts"
    sub = Subscriber(broker, topic, tmp_path / "events.txt", session=f"watch-{uuid.uuid4().hex[:8]}")
    subscribers.append(sub)
    broker.wait_for_subscription(topic)

    store = AlertStore(tmp_path / "ledger.sqlite")
    stage = AlertStage(SITE, "Asia/Shanghai", None, coverage_alerts(unique_topic, broker.port), store)
    assert stage.cfg.mqtt is not None
    health = ComponentHealth("alerts-mqtt")
    sink = AlertMqttSink(stage.cfg.mqtt, SITE, store, stage, health)
    stage.notify = sink.notify
    task = asyncio.create_task(supervise(lambda: sink, FAST_RETRY, health, SystemClock()), name="alerts-mqtt")
    try:
        for i in range(4):  # 4 minutes at 30 % coverage: raised after 2 (min_duration 120 s)
            stage(factories.results_of(minute(i, 0.3)))
        await wait_until(lambda: len(sub.messages()) == 1 and not store.unpublished(), what="the raise")

        broker.stop()
        # while the broker is away: clear, then a new raise; both wait in the outbox
        for i in range(4, 8):
            stage(factories.results_of(minute(i, 1.0)))
        for i in range(8, 12):
            stage(factories.results_of(minute(i, 0.1)))
        await asyncio.sleep(0.5)
        assert len(store.unpublished()) == 2
        assert not health.ok
        broker.start()
        await wait_until(lambda: len(sub.messages()) >= 3, timeout_s=30, what="the outbox after the restart")
        await asyncio.sleep(1.0)  # anything duplicated would arrive now
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    events = [payload for _, _, payload in sub.messages()]
    assert [(e["state"], e["severity"]) for e in events] == [
        ("raised", "warning"),
        ("cleared", "warning"),
        ("raised", "critical"),
    ]
    assert len({e["event_id"] for e in events}) == 3
    assert events[0]["id"] == events[1]["id"] != events[2]["id"]
    assert events[0]["message"].startswith("sinter: data coverage 30 %")
    assert events[0]["at"].endswith("+08:00") and events[0]["process"] == "sinter"
    assert store.unpublished() == []
    assert [e["kind"] for e in events] == ["data_quality"] * 3
    active = retained(broker, f"{unique_topic}/{SITE}/alerts/active")
    assert [a["id"] for a in active] == [events[2]["id"]]
    store.close()


def site_settings(tmp_path: Path, prefix: str, port: int) -> GatewaySettings:
    alerts = coverage_alerts(prefix, port)
    return factories.site_settings(
        {"name": SITE, "timezone": "Asia/Shanghai"},
        ledger={"path": str(tmp_path / "ledger.sqlite")},
        budget={
            "years": [{"year": 2026, "allowance_t": 100.0}],
            "carbon_price_cny_per_t": 88.13,
            "projection_min_days": 0.0,
        },
        alerts=alerts.model_dump(),
    )


async def run_gateway_minutes(
    gw: Gateway, minutes: list[list[MinuteResult]], until: Callable[[], Any]
) -> None:
    """Append and announce minutes like Gateway.on_frame, with the alert publisher running."""
    publisher, health = gw.alert_publisher, gw.health.get("alerts-mqtt")
    tasks = [asyncio.create_task(supervise(lambda: publisher, gw.settings.retry, health, gw.clock), name="alerts-mqtt")]
    try:
        for rows in minutes:
            results = factories.results_of(rows)
            gw.ledger.append(results)
            gw.announce(results)
        await wait_until(until, what="publication")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_retained_state_is_right_after_a_gateway_restart(
    mosquitto_factory: Callable[..., MosquittoService],
    unique_topic: str,
    tmp_path: Path,
    subscribers: list[Subscriber],
) -> None:
    broker = mosquitto_factory()
    events_topic = f"{unique_topic}/{SITE}/alerts"
    sub = Subscriber(broker, events_topic, tmp_path / "events.txt")
    subscribers.append(sub)
    broker.wait_for_subscription(events_topic)
    settings = site_settings(tmp_path, unique_topic, broker.port)

    # first life: 5 minutes at 20 % coverage, 50 kg each -> an active coverage alert
    gw = Gateway.build(settings, clock=FixedClock(T0 + 5 * 60))
    stage = gw.alerts
    await run_gateway_minutes(
        gw,
        [minute(i, 0.2) for i in range(5)],
        until=lambda: len(sub.messages()) == 1 and not stage.store.unpublished(),
    )
    first_budget = retained(broker, f"{unique_topic}/{SITE}/budget")
    assert first_budget["actual_t"] == pytest.approx(0.25)
    gw.close()
    stage.store.close()

    # second life on the same ledger: the year to date and the active alert come back
    gw2 = Gateway.build(settings, clock=FixedClock(T0 + 5 * 60))
    stage2 = gw2.alerts
    assert [a.id for a in stage2.active()] == [sub.messages()[0][2]["id"]]
    budget_topic = f"{unique_topic}/{SITE}/budget"
    await run_gateway_minutes(
        gw2,
        [minute(5, 0.2)],
        until=lambda: retained_is(broker, budget_topic, lambda b: b["at"] == "2026-03-01T08:06:00+08:00"),
    )
    active = retained(broker, f"{unique_topic}/{SITE}/alerts/active")
    assert [a["id"] for a in active] == [sub.messages()[0][2]["id"]]
    assert active[0]["state"] == "raised"
    budget = retained(broker, f"{unique_topic}/{SITE}/budget")
    assert budget["actual_t"] == pytest.approx(0.30)  # 5 minutes restored from the ledger + 1 new
    assert budget["allowance_t"] == 100.0 and budget["at"].endswith("+08:00")
    assert len(sub.messages()) == 1  # no second raise after the restart

    # the condition ends: one clear, and the retained set empties
    active_topic = f"{unique_topic}/{SITE}/alerts/active"
    await run_gateway_minutes(
        gw2,
        [minute(i, 1.0) for i in range(6, 10)],
        until=lambda: retained_is(broker, active_topic, lambda a: a == []),
    )
    await asyncio.sleep(0.5)  # a duplicate event would arrive now
    states = [(p["state"], p["id"]) for _, _, p in sub.messages()]
    assert [s for s, _ in states] == ["raised", "cleared"] and states[0][1] == states[1][1]
    gw2.close()
    stage2.store.close()


async def test_hysteresis_gives_one_raise_on_a_noisy_signal(
    mosquitto_factory: Callable[..., MosquittoService],
    unique_topic: str,
    tmp_path: Path,
    subscribers: list[Subscriber],
) -> None:
    broker = mosquitto_factory()
    topic = f"{unique_topic}/{SITE}/alerts"
    sub = Subscriber(broker, topic, tmp_path / "events.txt")
    subscribers.append(sub)
    broker.wait_for_subscription(topic)
    # coverage hovering around the 75 % raise level (missing fraction 0.25 +- 0.06)
    cov = 0.75 + np.random.default_rng(4).normal(0.0, 0.06, 240)
    store = AlertStore(tmp_path / "ledger.sqlite")
    cfg = coverage_alerts(unique_topic, broker.port, min_duration_s=0, clear_duration_s=0)
    stage = AlertStage(SITE, "Asia/Shanghai", None, cfg, store)
    assert cfg.mqtt is not None
    sink = AlertMqttSink(cfg.mqtt, SITE, store, stage)
    stage.notify = sink.notify
    async with sink:
        for i, c in enumerate(cov):
            stage(factories.results_of(minute(i, float(min(1.0, c)))))
        await sink.drain_once()
    await wait_until(lambda: len(sub.messages()) >= len(store.events()), what="all events")
    states = [p["state"] for _, _, p in sub.messages()]
    assert states.count("raised") == 1 and states.count("cleared") == 0
    assert len(states) <= 1 + 240 // 15  # updates rate-limited to one per 15 min
    store.close()
