"""AlertMqttSink: drains the alerts outbox to MQTT and keeps the retained topics current.

Topics (prefix default "emgate"):
    <prefix>/<site>/alerts          every event, QoS 1, not retained
    <prefix>/<site>/alerts/active   the active alerts as a JSON array, QoS 1, retained
    <prefix>/<site>/budget          the budget position, QoS 1, retained

An event is marked published only after the broker's PUBACK, and the outbox is the alerts
table, so a lost connection (or a gateway restart) leaves it to be sent after the reconnect.
Each (re)connect publishes the outbox first, then both retained topics, so a broker that lost
its retained store is repaired. A connection is entered once per attempt and `supervise`
re-enters the sink after a TransientError (reusable, not reentrant: a new aiomqtt.Client each time).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Self

import aiomqtt

from gateway.alerts.model import VersionedAlertsView
from gateway.core.clock import Clock, SystemClock
from gateway.core.errors import SourceUnavailable
from gateway.core.health import ComponentHealth
from gateway.ledger.alerts_table import AlertStore
from gateway.settings.alerts import AlertMqttConfig

log = logging.getLogger(__name__)


class AlertMqttSink:
    """Publishes alert events and the retained active set and budget position.

    Args:
        cfg: the [alerts.mqtt] section.
        site: the site's name, in every topic.
        store: the alerts table, the outbox of events.
        alerts: the alert stage's state (the active set, the budget position, their versions).
        health: where connection failures and good drains are recorded.
        clock: stamps an event's publication.
    """

    def __init__(
        self,
        cfg: AlertMqttConfig,
        site: str,
        store: AlertStore,
        alerts: VersionedAlertsView,
        health: ComponentHealth | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.cfg, self.site, self.store, self.alerts = cfg, site, store, alerts
        self.health = health
        self.clock = clock or SystemClock()
        root = f"{cfg.topic_prefix}/{site}"
        self.topic_events, self.topic_active, self.topic_budget = (
            f"{root}/alerts",
            f"{root}/alerts/active",
            f"{root}/budget",
        )
        self.endpoint = f"alerts mqtt {cfg.host}:{cfg.port}"
        self._wake = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._sent_active = -1
        self._sent_budget = -1
        self.published = 0

    def notify(self) -> None:
        self._wake.set()

    async def __aenter__(self) -> Self:
        self._client = aiomqtt.Client(
            self.cfg.host,
            self.cfg.port,
            identifier=self.cfg.client_id or f"emgate-alerts-{self.site}",
            username=self.cfg.username,
            password=self.cfg.password.get_secret_value() if self.cfg.password else None,
            keepalive=self.cfg.keepalive_s,
            timeout=self.cfg.timeout_s,
        )
        try:
            await self._client.__aenter__()
        except aiomqtt.MqttError as exc:
            self._client = None
            raise SourceUnavailable(
                self.endpoint, f"connect failed ({exc}); check host, port and credentials"
            ) from exc
        # a fresh connection: republish both retained topics whatever we sent before
        self._sent_active = self._sent_budget = -1
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            async with asyncio.timeout(self.cfg.timeout_s):
                await client.__aexit__(None, None, None)
        except (aiomqtt.MqttError, TimeoutError):
            pass  # the connection is already gone; nothing left to flush on it

    async def run(self) -> None:
        """Publish until cancelled; raises SourceUnavailable when the broker is lost."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._watch(), name="alerts-mqtt.watch")
                tg.create_task(self._publish_loop(), name="alerts-mqtt.publish")
        except* aiomqtt.MqttError as group:
            exc = group.exceptions[0]
            raise SourceUnavailable(
                self.endpoint, f"connection lost ({exc}); will reconnect and resend"
            ) from exc

    async def _watch(self) -> None:
        # We subscribe to nothing: the message iterator is aiomqtt's public way to learn that the
        # connection dropped while we sit idle. It raises MqttError then, which cancels a publish
        # still waiting for its PUBACK instead of letting it run into the timeout.
        assert self._client is not None
        async for _ in self._client.messages:
            pass

    async def _publish_loop(self) -> None:
        while True:
            self._wake.clear()
            await self.drain_once()
            if self.health is not None:
                self.health.succeeded(self.clock.now())
            await self._wake.wait()

    async def drain_once(self) -> None:
        """Send every unpublished event, then the retained topics if they changed."""
        assert self._client is not None, "enter the sink before draining"
        while batch := self.store.unpublished(100):
            for seq, payload in batch:
                await self._client.publish(self.topic_events, payload, qos=1)
                self.store.mark_published(seq, self.clock.now())
                self.published += 1
        version = self.alerts.active_version
        if version != self._sent_active:
            active = json.dumps(
                [a.to_dict() for a in self.alerts.active()], ensure_ascii=False, separators=(",", ":")
            )
            await self._client.publish(self.topic_active, active, qos=1, retain=True)
            self._sent_active = version
        version = self.alerts.budget_version
        if version != self._sent_budget and (position := self.alerts.budget_position) is not None:
            text = json.dumps(position, ensure_ascii=False, separators=(",", ":"))
            await self._client.publish(self.topic_budget, text, qos=1, retain=True)
            self._sent_budget = version
