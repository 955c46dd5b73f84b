"""AlertMqttSink: drains the alerts outbox to MQTT and keeps the retained topics current.

Topics (prefix default "emgate"):
    <prefix>/<site>/alerts          every event, QoS 1, not retained
    <prefix>/<site>/alerts/active   the active alerts as a JSON array, QoS 1, retained
    <prefix>/<site>/budget          the budget position, QoS 1, retained
    <prefix>/<site>/seals           each daily seal of the ledger's head, QoS 1, not retained
    <prefix>/<site>/seal            the latest seal, QoS 1, retained (gateway/ledger/seals.py)

An event is marked published only after the broker's PUBACK, and the outbox is the alerts
table, so a lost connection (or a gateway restart) leaves it to be sent after the reconnect.
Each (re)connect publishes the outbox first, then both retained topics, so a broker that lost
its retained store is repaired. A connection is entered once per attempt and `supervise`
re-enters the sink after a TransientError (reusable, not reentrant: a new aiomqtt.Client each time).

TLS and credentials are the ingest brokers' ([alerts.mqtt.tls]: CA, client certificate and key,
the server name checked unless `insecure`; `password` or `password_file`), read at each connect.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from typing import Self

import aiomqtt

from gateway.alerts.model import VersionedAlertsView
from gateway.core.clock import Clock, SystemClock
from gateway.core.errors import ConfigError, SourceUnavailable
from gateway.core.health import ComponentHealth
from gateway.ledger.alerts_table import AlertStore
from gateway.ledger.seals import SealStore
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
        seals: SealStore | None = None,
    ) -> None:
        self.cfg, self.site, self.store, self.alerts, self.seals = cfg, site, store, alerts, seals
        self.health = health
        self.clock = clock or SystemClock()
        root = f"{cfg.topic_prefix}/{site}"
        self.topic_events, self.topic_active, self.topic_budget = (
            f"{root}/alerts",
            f"{root}/alerts/active",
            f"{root}/budget",
        )
        self.topic_seal, self.topic_seals = f"{root}/seal", f"{root}/seals"
        self.endpoint = f"alerts mqtt {cfg.host}:{cfg.port}"
        try:  # checked once at startup: an unreadable password or TLS file stops `emgate run` with exit 2
            cfg.password_value()
            if cfg.tls is not None:
                cfg.tls.client_context()
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise ConfigError(
                f"{self.endpoint}: cannot prepare credentials or TLS ({exc}); check alerts.mqtt.password_file "
                "and alerts.mqtt.tls.ca_file, cert_file, key_file"
            ) from None
        self._wake = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._sent_active = -1
        self._sent_budget = -1
        self._sent_seal = False
        self.published = 0

    def notify(self) -> None:
        self._wake.set()

    async def __aenter__(self) -> Self:
        cfg = self.cfg
        try:  # read again at every connect: a password file or certificate replaced on disk is picked up
            password = cfg.password_value()
            ctx = cfg.tls.client_context() if cfg.tls is not None else None
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise SourceUnavailable(
                self.endpoint,
                f"cannot prepare credentials or TLS ({exc}); check alerts.mqtt.tls.ca_file, cert_file, "
                "key_file and alerts.mqtt.password_file",
            ) from exc
        self._client = aiomqtt.Client(
            cfg.host,
            cfg.port,
            identifier=cfg.client_id or f"emgate-alerts-{self.site}",
            username=cfg.username,
            password=password,
            keepalive=cfg.keepalive_s,
            timeout=cfg.timeout_s,
            tls_context=ctx,
            tls_insecure=cfg.tls.insecure if cfg.tls is not None else None,
        )
        try:
            await self._client.__aenter__()
        except aiomqtt.MqttError as exc:
            self._client = None
            hint = "TLS files and server name, " if cfg.tls is not None else ""
            raise SourceUnavailable(
                self.endpoint, f"connect failed ({exc}); check host, port, {hint}username and password"
            ) from exc
        # a fresh connection: republish the retained topics whatever we sent before
        self._sent_active = self._sent_budget = -1
        self._sent_seal = False
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
        await self._publish_seals()
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

    async def _publish_seals(self) -> None:
        """Each daily seal not yet acknowledged on `<root>/seals` (QoS 1: a witness with a persistent
        session gets every day), and the latest retained on `<root>/seal` (gateway/ledger/seals.py)."""
        if self.seals is None:
            return
        assert self._client is not None
        unsent = self.seals.unsent("mqtt")
        for day, payload in unsent:
            await self._client.publish(self.topic_seals, payload, qos=1)
            self.seals.mark_sent("mqtt", day, self.clock.now())
        if unsent or not self._sent_seal:
            last = self.seals.last()
            if last is not None:
                await self._client.publish(self.topic_seal, last.to_json(), qos=1, retain=True)
            self._sent_seal = True
