"""MqttSource: one broker's subscriptions -> SampleBatch on the pipeline's queue.

aiomqtt is imported here and in gateway/sinks/alerts_mqtt.py only.

- One connection per broker; every connect subscribes to every configured filter again, so
  a broker that lost its state (restart without persistence, a clean session) still delivers.
  With clean_session = false the client id is stable and QoS 1 messages queued by the broker
  while we were away arrive after the reconnect.
- The inbound queue is bounded (queue_size = aiomqtt's max_queued_incoming_messages); a
  message arriving at a full queue is dropped and counted, never logged one by one.
- Payloads go through `gateway.codec.parse_payload`. A payload that does not parse is counted
  per topic and logged once per topic; it never stops the source.
- Messages waiting in the queue are drained into one SampleBatch (up to `MAX_BATCH` samples),
  so a burst costs one batch, not one per message. A retained message is an old value, sent
  on subscribe: its samples are STALE.
- Lost broker: run() raises SourceUnavailable and `supervise` reconnects with jittered backoff.
- The client id is `client_id`, by default emgate-<site>-<broker name>: stable, because a
  persistent session is keyed by it, and distinct between plants on one broker, which would
  otherwise disconnect each other (MqttBrokerConfig.client_id_for).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import aiomqtt
import numpy as np

from gateway.codec import PayloadFormat, parse_payload
from gateway.core.clock import Clock
from gateway.core.errors import DecodeError, SourceUnavailable
from gateway.core.health import ComponentHealth
from gateway.core.model import SampleBatch, SampleQuality
from gateway.core.signals import SignalTable
from gateway.settings.site import MqttBrokerConfig, MqttSubscriptionConfig

log = logging.getLogger(__name__)

MAX_BATCH = 5000  # samples per batch when draining a burst
MAX_TRACKED_TOPICS = 10_000  # per-topic counters beyond this are summed under OTHER_TOPICS
OTHER_TOPICS = "<other topics>"
FORMATS = {"json": PayloadFormat.JSON, "number": PayloadFormat.NUMBER, "line_protocol": PayloadFormat.INFLUX}


class _CountingQueue(asyncio.Queue[aiomqtt.Message]):
    """aiomqtt's inbound queue: bounded, and a message that does not fit is counted, not logged."""

    def __init__(self, maxsize: int, on_drop: Callable[[], None]) -> None:
        super().__init__(maxsize=maxsize)
        self._on_drop = on_drop

    def put_nowait(self, item: aiomqtt.Message) -> None:
        if self.full():
            self._on_drop()
            return
        super().put_nowait(item)


@dataclass
class MqttCounters:
    connects: int = 0
    messages: int = 0
    samples: int = 0
    dropped_inbound: int = 0  # the bounded inbound queue was full
    dropped_batches: int = 0  # the pipeline queue was full
    unmatched: int = 0  # topic matched no subscription (e.g. an old persistent-session one)
    unknown_signals: int = 0  # line protocol field with no declared signal
    bad_payloads: dict[str, int] = field(default_factory=dict)  # per topic

    @property
    def bad_total(self) -> int:
        return sum(self.bad_payloads.values())


@dataclass(frozen=True)
class _Subscription:
    topic: str
    fmt: PayloadFormat
    fields: dict[str, str] | None
    value_signal: str | None
    timestamp_field: str | None
    timestamp_format: str

    @classmethod
    def from_config(cls, sub: MqttSubscriptionConfig) -> _Subscription:
        return cls(
            sub.topic,
            FORMATS[sub.format],
            dict(sub.fields) or None,
            sub.signal,
            sub.timestamp_field,
            sub.timestamp_format,
        )


def tls_context(cfg: MqttBrokerConfig) -> ssl.SSLContext | None:
    """The client TLS context of a broker, or None without [tls]."""
    tls = cfg.tls
    if tls is None:
        return None
    ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    if tls.insecure:
        ctx.check_hostname = False
    return ctx


class MqttSource:
    """One broker. Reusable: `supervise` enters it again to reconnect.

    Args:
        cfg: The broker and its subscriptions.
        signals: Maps signal names to the ids batches carry.
        out: The pipeline's bounded sample queue (shared with the Modbus sources).
        clock: Stamps messages that carry no time of their own.
        health: This broker's health.
        site: The site's name, part of the default client id (emgate-<site>-<broker name>).
    """

    def __init__(
        self,
        cfg: MqttBrokerConfig,
        signals: SignalTable,
        out: asyncio.Queue[SampleBatch],
        clock: Clock,
        health: ComponentHealth,
        *,
        site: str,
    ) -> None:
        self.cfg, self._signals, self._out, self._clock, self.health = cfg, signals, out, clock, health
        self.client_id = cfg.client_id_for(site)
        self.endpoint = f"mqtt '{cfg.name}' {cfg.host}:{cfg.port}"
        self._subs = [_Subscription.from_config(s) for s in cfg.subscriptions]
        self._routes: dict[str, tuple[_Subscription, ...]] = {}
        self._client: aiomqtt.Client | None = None
        self._queue: _CountingQueue | None = None
        self.counters = MqttCounters()
        # pending samples of the batch being drained
        self._ids: list[int] = []
        self._ts: list[float] = []
        self._values: list[float] = []
        self._quality: list[int] = []

    def _drop(self) -> None:
        self.counters.dropped_inbound += 1

    async def __aenter__(self) -> Self:
        cfg = self.cfg
        try:
            password = cfg.password_value()
            ctx = tls_context(cfg)
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise SourceUnavailable(
                self.endpoint,
                f"cannot prepare credentials or TLS ({exc}); "
                "check tls.ca_file, cert_file, key_file and password_file",
            ) from exc

        def make_queue(maxsize: int) -> _CountingQueue:
            self._queue = _CountingQueue(maxsize, self._drop)
            return self._queue

        client = aiomqtt.Client(
            cfg.host,
            cfg.port,
            identifier=self.client_id,
            username=cfg.username,
            password=password,
            clean_session=cfg.clean_session,
            keepalive=cfg.keepalive_s,
            timeout=10.0,
            max_queued_incoming_messages=cfg.queue_size,
            queue_type=make_queue,  # type: ignore[arg-type]  # aiomqtt only calls it with maxsize=: a factory binds the drop counter
            tls_context=ctx,
            tls_insecure=bool(cfg.tls and cfg.tls.insecure) if ctx else None,
        )
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise SourceUnavailable(
                self.endpoint, f"connect failed ({exc}); check host, port, TLS files, username and password"
            ) from exc
        try:
            # subscribe on EVERY connect: a broker may have lost our session (telegraf #6232)
            for sub in self._subs:
                await client.subscribe(sub.topic, qos=cfg.qos)
        except aiomqtt.MqttError as exc:
            await self._close(client)
            raise SourceUnavailable(
                self.endpoint, f"subscribe failed ({exc}); check the topic filters and ACLs"
            ) from exc
        self._client = client
        self.counters.connects += 1
        self.health.succeeded(self._clock.now())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        client, self._client = self._client, None
        if client is not None:
            await self._close(client)

    @staticmethod
    async def _close(client: aiomqtt.Client) -> None:
        try:
            async with asyncio.timeout(5.0):
                await client.__aexit__(None, None, None)
        except (aiomqtt.MqttError, TimeoutError):
            pass  # the connection is already gone

    async def run(self) -> None:
        """Receive until cancelled; raises SourceUnavailable when the broker is lost."""
        assert self._client is not None and self._queue is not None, "enter the source before running"
        messages = self._client.messages
        queue = self._queue
        try:
            while True:
                # the iterator costs a task per message: use it only to wait, then drain directly
                message = queue.get_nowait() if not queue.empty() else await anext(messages)
                self.handle(message.topic.value, message.payload, retained=message.retain)
                if queue.empty() or len(self._ids) >= MAX_BATCH:
                    self.flush()
        except aiomqtt.MqttError as exc:
            self.flush()
            raise SourceUnavailable(self.endpoint, f"connection lost ({exc}); reconnecting") from exc

    def handle(
        self, topic: str, payload: Any, *, retained: bool = False, received_ts: float | None = None
    ) -> int:
        """Parse one message into the pending batch; returns the samples it added. Never raises
        for a bad payload: it is counted per topic (and logged once per topic)."""
        self.counters.messages += 1
        now = self._clock.now() if received_ts is None else received_ts
        self.health.last_good = now
        subs = self._routes.get(topic)
        if subs is None:
            subs = tuple(s for s in self._subs if aiomqtt.Topic(topic).matches(s.topic))
            if len(self._routes) >= MAX_TRACKED_TOPICS:
                self._routes.clear()
            self._routes[topic] = subs
        if not subs:
            self.counters.unmatched += 1
            return 0
        if not isinstance(payload, bytes | bytearray):
            payload = str(payload).encode() if payload is not None else b""
        quality = SampleQuality.STALE if retained else SampleQuality.GOOD
        added = 0
        for sub in subs:
            try:
                samples = parse_payload(
                    payload,
                    sub.fmt,
                    topic=topic,
                    fields=sub.fields,
                    value_signal=sub.value_signal,
                    timestamp_field=sub.timestamp_field,
                    timestamp_format=sub.timestamp_format,
                    received_ts=now,
                )
            except DecodeError as exc:
                self._bad(topic, sub, str(exc))
                continue
            for signal, ts, value in samples:
                try:
                    sid = self._signals.id(signal)
                except KeyError:
                    self.counters.unknown_signals += 1
                    continue
                self._ids.append(sid)
                self._ts.append(ts)
                self._values.append(value)
                self._quality.append(quality)
                added += 1
        self.counters.samples += added
        return added

    def _bad(self, topic: str, sub: _Subscription, reason: str) -> None:
        bad = self.counters.bad_payloads
        key = topic if topic in bad or len(bad) < MAX_TRACKED_TOPICS else OTHER_TOPICS
        first = key not in bad
        bad[key] = bad.get(key, 0) + 1
        if first and key != OTHER_TOPICS:
            log.warning(
                "%s: unusable payload on %s (%s); check that the publisher sends %s as configured for "
                "subscription %r; further bad payloads on this topic are counted, not logged",
                self.endpoint,
                topic,
                reason,
                sub.fmt.value,
                sub.topic,
            )

    def flush(self) -> SampleBatch | None:
        """Put the pending samples on the pipeline queue as one batch (dropped and counted if full)."""
        if not self._ids:
            return None
        batch = SampleBatch(
            f"mqtt[{self.cfg.name}]",
            np.array(self._ids, dtype=np.int32),
            np.array(self._ts, dtype=np.float64),
            np.array(self._values, dtype=np.float64),
            np.array(self._quality, dtype=np.uint8),
        )
        self._ids, self._ts, self._values, self._quality = [], [], [], []
        try:
            self._out.put_nowait(batch)
        except asyncio.QueueFull:
            self.counters.dropped_batches += 1
        return batch
