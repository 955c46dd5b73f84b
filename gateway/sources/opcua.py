"""OpcUaSource: one OPC UA server's nodes -> SampleBatch on the pipeline's queue.

asyncua is imported only by gateway/sources/opcua_client.py; this module holds the policy.

Theory of operation, per server:

- Entry opens a new session (security, user), resolves every node (browse paths are
  translated again on every connect: an address space that was reloaded may have new ids),
  and in subscribe mode creates one subscription with a monitored item per node (sampling
  interval and queue size from the site file). In poll mode `run()` reads every node in one
  Read request each `poll_s`.
- StatusCode -> quality: Good -> GOOD; Uncertain -> STALE with the value kept (flagged, not
  summed); Bad (BadNodeIdUnknown, BadCommunicationError, ...) -> NaN and COMM_ERROR, never a
  zero. A value that is not a scalar number or Boolean is Bad (BadTypeMismatch).
- A node the server does not know (yet) does not stop the others: it is emitted as a NaN
  COMM_ERROR gap every `node_retry_s`, and resolved and monitored again then, so nodes removed
  and re-added by an address-space reload come back without a reconnect.
- A lost server (keep-alive read every `watchdog_s` failing, publish loop ended, a request
  timing out): one NaN COMM_ERROR sample per node marks the gap, `run()` raises
  SourceUnavailable and `supervise` reconnects with backoff, re-creating the session, the
  subscription and its monitored items.
- State changes are logged once: the server lost / recovered (ComponentHealth, counted in
  /metrics as emgate_component_errors and emgate_component_up), a node going bad or coming
  back (counted in `counters.node_state_changes`). Everything else is counted.
- Read-only: the adapter never sends Write, Call or another mutating service.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from typing import Self

import numpy as np

from gateway.core.clock import Clock
from gateway.core.errors import SourceUnavailable
from gateway.core.health import ComponentHealth
from gateway.core.model import SampleBatch, SampleQuality
from gateway.core.signals import SignalTable
from gateway.settings.opcua import OpcUaServerConfig
from gateway.sources.opcua_client import (
    BAD,
    GOOD,
    UNCERTAIN,
    NodeReading,
    OpcUaLinkError,
    OpcUaSession,
    Security,
    status_name,
    status_severity,
)

log = logging.getLogger(__name__)

LOST = "lost"  # a node's state while its server is away
_QUALITY = {GOOD: SampleQuality.GOOD, UNCERTAIN: SampleQuality.STALE, BAD: SampleQuality.COMM_ERROR}


@dataclass
class OpcUaCounters:
    connects: int = 0
    notifications: int = 0  # data changes received (subscribe mode)
    reads: int = 0  # Read requests (poll mode)
    samples: int = 0
    bad_samples: int = 0  # Bad status or not a number: NaN + COMM_ERROR
    uncertain_samples: int = 0
    node_state_changes: int = 0  # a node went bad or unknown, or came back
    node_retries: int = 0  # attempts to resolve and monitor nodes the server did not know
    dropped_batches: int = 0
    statuses: dict[str, int] = field(default_factory=dict)  # non-good StatusCode name -> samples


class OpcUaSource:
    """One server. Reusable: `supervise` enters it again to reconnect.

    Args:
        cfg: The server and its nodes.
        signals: Maps signal names to the ids batches carry.
        out: The pipeline's bounded sample queue.
        clock: Stamps readings without a timestamp (and all of them with timestamp = "gateway").
        health: This server's health.
    """

    def __init__(
        self,
        cfg: OpcUaServerConfig,
        signals: SignalTable,
        out: asyncio.Queue[SampleBatch],
        clock: Clock,
        health: ComponentHealth,
    ) -> None:
        self.cfg, self._out, self._clock, self.health = cfg, out, clock, health
        self.name = f"opcua[{cfg.name}]"
        self.endpoint = cfg.endpoint
        self._ids = np.array([signals.id(n.signal) for n in cfg.nodes], dtype=np.int32)
        self._scale = [n.scale for n in cfg.nodes]
        self._offset = [n.offset for n in cfg.nodes]
        self.counters = OpcUaCounters()
        self._session: OpcUaSession | None = None
        self._node_ids: dict[int, object] = {}  # slot -> resolved NodeId (poll mode reads these)
        self._missing: dict[int, int] = {}  # slot -> StatusCode: unknown or refused, retried
        self._state: list[str] = ["good"] * len(cfg.nodes)  # per node, for logging changes once
        self._next_retry = 0.0

    # -- lifetime -------------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        cfg = self.cfg
        try:
            password = cfg.password_value()
        except ValueError as exc:
            raise SourceUnavailable(self.endpoint, f"{exc}") from exc
        security = None
        if cfg.security_policy != "None":
            assert cfg.certificate_file and cfg.private_key_file  # validated
            security = Security(
                cfg.security_mode,
                cfg.certificate_file,
                cfg.private_key_file,
                cfg.server_certificate_file,
                cfg.server_trust_dir,
            )
        session = OpcUaSession(
            cfg.url,
            timeout_s=cfg.timeout_s,
            watchdog_s=cfg.watchdog_s,
            security=security,
            username=cfg.username,
            password=password,
        )
        try:
            await session.open()
        except OpcUaLinkError as exc:
            raise SourceUnavailable(
                self.endpoint,
                f"connect failed ({exc}); check url, security_policy/security_mode, the certificate files, "
                "that the server trusts our certificate, username and password",
            ) from exc
        self._session = session
        try:
            if cfg.mode == "subscribe":
                await session.subscribe(cfg.publishing_interval_ms)
            self._node_ids.clear()
            self._missing = {slot: 0 for slot in range(len(cfg.nodes))}
            await self._attach(list(range(len(cfg.nodes))))
        except OpcUaLinkError as exc:
            await self._close()
            raise SourceUnavailable(self.endpoint, f"session set-up failed ({exc}); reconnecting") from exc
        self.counters.connects += 1
        self.health.succeeded(self._clock.now())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._close()

    async def _close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- nodes ----------------------------------------------------------------------------------
    async def _attach(self, slots: list[int]) -> None:
        """Resolve these nodes and (subscribe mode) monitor them; those refused stay in `_missing`."""
        session = self._session
        assert session is not None
        specs = [self.cfg.nodes[s].node for s in slots]
        resolved = await session.resolve(specs)
        found: list[tuple[int, object]] = []
        for slot, nid in zip(slots, resolved, strict=True):
            if isinstance(nid, int):
                self._missing[slot] = nid
            else:
                found.append((slot, nid))
        if found and self.cfg.mode == "subscribe":
            codes = await session.monitor(
                [s for s, _ in found],
                [n for _, n in found],
                sampling_interval_ms=self.cfg.sampling_interval_ms,
                queue_size=self.cfg.queue_size,
            )
            for (slot, nid), code in zip(found, codes, strict=True):
                if code:
                    self._missing[slot] = code
                else:
                    self._missing.pop(slot, None)
                    self._node_ids[slot] = nid
        else:
            for slot, nid in found:
                self._missing.pop(slot, None)
                self._node_ids[slot] = nid
        now = self._clock.now()
        self._next_retry = now + self.cfg.node_retry_s
        if self._missing:
            self._emit([NodeReading(s, math.nan, code, None, None) for s, code in sorted(self._missing.items())], now)

    async def _retry_missing(self) -> None:
        if self._missing and self._clock.now() >= self._next_retry:
            self.counters.node_retries += 1
            await self._attach(sorted(self._missing))

    # -- running --------------------------------------------------------------------------------
    async def run(self) -> None:
        """Receive (or poll) until cancelled; raises SourceUnavailable when the server is lost."""
        session = self._session
        assert session is not None, "enter the source before running"
        try:
            if self.cfg.mode == "subscribe":
                await self._run_subscribed(session)
            else:
                await self._run_polled(session)
        except OpcUaLinkError as exc:
            self._gap_all()
            raise SourceUnavailable(self.endpoint, f"connection lost ({exc}); reconnecting") from exc

    async def _run_subscribed(self, session: OpcUaSession) -> None:
        hold_s = self.hold_s
        next_hold = self._clock.now() + hold_s
        last: dict[int, NodeReading] = {}  # slot -> latest notification (re-emitted while unchanged)
        fresh: set[int] = set()  # slots notified since the last hold tick
        while True:
            try:
                async with asyncio.timeout(max(0.01, next_hold - self._clock.now())):
                    await session.changed.wait()
            except TimeoutError:
                pass
            readings, status = session.drain()
            now = self._clock.now()
            if readings:
                self.counters.notifications += len(readings)
                self._emit(readings, now)
                self.health.last_good = now
                for r in readings:
                    last[r.slot] = r
                    fresh.add(r.slot)
            if status is not None and status_severity(status) == BAD:
                raise OpcUaLinkError(f"subscription status {status_name(status)}")
            if now < next_hold:
                continue
            next_hold = now + hold_s
            await session.check()  # the keep-alive: the session is alive, so unchanged values still hold
            held = [
                NodeReading(s, r.value, r.status, None, None)
                for s, r in last.items()
                if s not in fresh and s not in self._missing and status_severity(r.status) != BAD
            ]
            fresh.clear()
            if held:
                self._emit(held, now)  # stamped now: the server reports changes only
                self.health.last_good = now
            for s in self._missing:
                last.pop(s, None)
            await self._retry_missing()

    @property
    def hold_s(self) -> float:
        """Subscribe mode: how often an unchanged value is re-emitted (and the session checked)."""
        return max(self.cfg.publishing_interval_ms / 1000.0, min(self.cfg.watchdog_s, 1.0))

    async def _run_polled(self, session: OpcUaSession) -> None:
        poll_s = self.cfg.poll_s
        next_at = self._clock.now()
        while True:
            await self._clock.sleep_until(next_at)
            next_at += poll_s
            now = self._clock.now()
            if next_at < now:  # fell behind: skip the missed ticks, keep the cadence
                next_at = now + poll_s - (now - next_at) % poll_s
            await session.check()
            slots = sorted(self._node_ids)
            if slots:
                started = self._clock.now()
                readings = await session.read(slots, [self._node_ids[s] for s in slots])
                self.counters.reads += 1
                for r in readings:  # an address-space reload: resolve it again after node_retry_s
                    if status_severity(r.status) == BAD and r.status != 0 and self._is_unknown(r.status):
                        self._node_ids.pop(r.slot, None)
                        self._missing[r.slot] = r.status
                self._emit(readings, now)
                self.health.succeeded(self._clock.now(), self._clock.now() - started)
            if self._missing and not slots:
                self._emit([NodeReading(s, math.nan, c, None, None) for s, c in sorted(self._missing.items())], now)
            await self._retry_missing()

    @staticmethod
    def _is_unknown(code: int) -> bool:
        return status_name(code) in ("BadNodeIdUnknown", "BadNodeIdInvalid", "BadAttributeIdInvalid")

    # -- samples --------------------------------------------------------------------------------
    def _emit(self, readings: list[NodeReading], received_ts: float, *, lost: bool = False) -> None:
        """Put one batch of readings on the queue. `lost`: the gap of a lost server, logged once
        by ComponentHealth, not node by node."""
        n = len(readings)
        if n == 0:
            return
        ids = np.empty(n, dtype=np.int32)
        ts = np.empty(n, dtype=np.float64)
        values = np.empty(n, dtype=np.float64)
        quality = np.empty(n, dtype=np.uint8)
        pick = self.cfg.timestamp
        counters = self.counters
        for i, r in enumerate(readings):
            severity = status_severity(r.status)
            ids[i] = self._ids[r.slot]
            if pick == "source":
                ts[i] = r.source_ts or r.server_ts or received_ts
            elif pick == "server":
                ts[i] = r.server_ts or r.source_ts or received_ts
            else:
                ts[i] = received_ts
            if severity == BAD or math.isnan(r.value):
                values[i] = math.nan  # never a zero
                quality[i] = SampleQuality.COMM_ERROR
                counters.bad_samples += 1
            else:
                values[i] = r.value * self._scale[r.slot] + self._offset[r.slot]
                quality[i] = _QUALITY[severity]
                if severity == UNCERTAIN:
                    counters.uncertain_samples += 1
            state = "good" if severity == GOOD else status_name(r.status)
            if state != "good":
                counters.statuses[state] = counters.statuses.get(state, 0) + 1
            if state != self._state[r.slot] and not lost:
                self._state_change(r.slot, state)
            elif lost:
                self._state[r.slot] = LOST
        counters.samples += n
        try:
            self._out.put_nowait(SampleBatch(self.name, ids, ts, values, quality))
        except asyncio.QueueFull:
            counters.dropped_batches += 1

    def _state_change(self, slot: int, state: str) -> None:
        before, self._state[slot] = self._state[slot], state
        if before == LOST and state == "good":
            return  # the server came back: ComponentHealth logged it
        self.counters.node_state_changes += 1
        node = self.cfg.nodes[slot]
        if state == "good":
            log.info("%s: node %s (signal %s) is good again after %s", self.endpoint, node.node, node.signal, before)
        else:
            log.warning(
                "%s: node %s (signal %s) is %s: its samples are %s until it recovers; check the node id and the "
                "server's address space",
                self.endpoint,
                node.node,
                node.signal,
                state,
                "flagged (value kept)" if status_severity_name(state) == UNCERTAIN else "NaN (COMM_ERROR)",
            )

    def _gap_all(self) -> None:
        """One NaN COMM_ERROR sample per node now: the server was lost."""
        code = 0x80050000  # BadCommunicationError
        gap = [NodeReading(s, math.nan, code, None, None) for s in range(len(self.cfg.nodes))]
        self._emit(gap, self._clock.now(), lost=True)


def status_severity_name(state: str) -> str:
    return UNCERTAIN if state.startswith("Uncertain") else BAD
