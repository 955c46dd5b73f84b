"""S7Source: polls one Siemens S7 PLC on its own cadence and emits one SampleBatch per poll.

A failed read never becomes a number: the points it covered are emitted as NaN with quality
COMM_ERROR, so the minute stage sees a gap and says how much of the minute was observed.

Theory of operation, per PLC:

- One ISO-on-TCP connection (gateway/sources/snap7_client.py), one request in flight. On each
  connect the PDU size is agreed and the reads are planned again within it (s7_plan.py).
- A request that gets no reply ends the poll (the rest would time out too), closes the
  connection and counts a failure. After n failures in a row the PLC is backed off: its polls
  are skipped and emitted as COMM_ERROR gaps for min(cap_s, poll_s * 2**n) * uniform(0.5, 1)
  seconds; the first poll after that connects again. So a PLC that restarts is read again
  without restarting the gateway, and the minutes in between say they were not observed.
- An item the PLC refuses (return code 0x0A: the DB does not exist; 0x05: the range passes its
  end) makes that item's points COMM_ERROR; the other items of the request are read on. Logged
  once per item and code; counted always.
- Sample quality as for Modbus: GOOD, OUT_OF_RANGE (value kept), NO_READING (sentinel),
  DECODE_ERROR (NaN/inf REAL, short reply), COMM_ERROR, and STALE when a reply came more than
  poll_s + timeout_s after the poll began.
- Read-only: the client has no write, control or block service.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from typing import Self

import numpy as np

from gateway.codec.s7 import S7ItemDecoder, S7Rules, compile_item
from gateway.core.clock import Clock
from gateway.core.errors import SourceUnavailable
from gateway.core.health import ComponentHealth
from gateway.core.model import SampleBatch, SampleQuality
from gateway.core.signals import SignalTable
from gateway.settings.s7 import S7DeviceConfig
from gateway.settings.site import RetryConfig
from gateway.sources.cadence import poll_every, retry_after
from gateway.sources.s7_plan import S7Item, S7Request, plan_requests
from gateway.sources.snap7_client import ReadItem, S7Client, S7NoReply, return_code_text

log = logging.getLogger(__name__)


@dataclass
class S7Counters:
    polls: int = 0
    failed_polls: int = 0
    skipped_polls: int = 0  # backed off: emitted as gaps without asking the PLC
    missed_polls: int = 0  # ticks passed over: the gateway was more than a poll period late
    requests: int = 0
    no_replies: int = 0
    connects: int = 0
    refused_items: int = 0
    dropped_batches: int = 0
    item_codes: dict[int, int] = field(default_factory=dict)  # return code -> refused items


@dataclass(frozen=True)
class _CompiledRequest:
    request: S7Request
    items: tuple[ReadItem, ...]
    decoders: list[S7ItemDecoder]


class S7Source:
    """One PLC. Reusable: to reconnect, enter the same object again.

    Args:
        cfg: The PLC and its points.
        signals: Maps point signal names to the ids batches carry.
        out: The pipeline's bounded sample queue; a full queue drops the batch and counts it.
        clock: Stamps and paces polls.
        health: This PLC's health (`s7[NAME]`: last good poll, consecutive errors, latency).
        retry: Backoff cap for a failing PLC (RetryConfig.cap_s).
    """

    def __init__(
        self,
        cfg: S7DeviceConfig,
        signals: SignalTable,
        out: asyncio.Queue[SampleBatch],
        clock: Clock,
        health: ComponentHealth,
        *,
        retry: RetryConfig | None = None,
    ) -> None:
        self.cfg, self._out, self._clock, self.health = cfg, out, clock, health
        self._retry = retry or RetryConfig()
        self._ids = np.array([signals.id(p.signal) for p in cfg.points], dtype=np.int32)
        self._client = S7Client(
            cfg.host,
            port=cfg.port,
            rack=cfg.rack,
            slot=cfg.slot,
            local_tsap=cfg.local_tsap,
            remote_tsap=cfg.remote_tsap,
            pdu_bytes=cfg.pdu_bytes,
            timeout_s=cfg.timeout_s,
            endpoint=cfg.endpoint,
        )
        self._requests: list[_CompiledRequest] = []
        self._failures = 0
        self._retry_at = -math.inf
        self._logged: set[tuple[str, int]] = set()
        self.counters = S7Counters()
        self._stale_after_s = cfg.poll_s + cfg.timeout_s
        self._no_values = np.full(len(cfg.points), np.nan)
        self._no_quality = np.full(len(cfg.points), SampleQuality.COMM_ERROR, dtype=np.uint8)
        self._rules = S7Rules.of(cfg.points)
        self._raw = np.zeros(len(cfg.points))  # a poll's raw values, reused: every column is written or a gap

    @property
    def plan(self) -> list[S7Request]:
        """The reads of the current connection (empty before the first connect)."""
        return [r.request for r in self._requests]

    @property
    def pdu_bytes(self) -> int:
        return self._client.pdu_bytes

    async def __aenter__(self) -> Self:
        try:
            await self._connect()
        except S7NoReply as exc:
            raise SourceUnavailable(self.cfg.endpoint, f"cannot connect ({exc}); check {self._hint()}") from exc
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.shield(self._client.close())

    def _hint(self) -> str:
        addressing = (
            "the TSAPs" if self.cfg.remote_tsap is not None else f"rack {self.cfg.rack} / slot {self.cfg.slot}"
        )
        return f"that {self.cfg.host}:{self.cfg.port} is reachable, {addressing}, and that the PLC allows PUT/GET access"

    async def _connect(self) -> None:
        await self._client.connect()
        self.counters.connects += 1
        plan = plan_requests(
            self.cfg.points,
            pdu_bytes=self._client.pdu_bytes,
            max_gap_bytes=self.cfg.max_gap_bytes,
            max_items=self.cfg.max_items_per_request,
        )
        self._requests = [
            _CompiledRequest(
                r,
                tuple((it.area, it.db, it.start, it.size) for it in r.items),
                [compile_item(it.start, it.size, it.points, self.cfg.points) for it in r.items],
            )
            for r in plan
        ]

    async def run(self) -> None:
        """Poll every poll_s until cancelled; a lost PLC is backed off and reconnected, never raised."""
        await poll_every(
            self.cfg.poll_s, self._clock, self.poll_once, self._gap, lambda: self._retry_at, self._out, self.counters
        )

    def _gap(self, ts: float) -> SampleBatch:
        return SampleBatch(
            f"s7[{self.cfg.name}]", self._ids, np.full(len(self._ids), ts), self._no_values.copy(), self._no_quality.copy()
        )

    async def poll_once(self, ts: float) -> SampleBatch:
        """Read every request once and return the batch stamped `ts`; never raises for the PLC's fault."""
        started = self._clock.now()
        self.counters.polls += 1
        failure: str | None = None
        if not self._client.connected:
            try:
                await self._connect()
            except S7NoReply as exc:
                failure = f"{exc}; check {self._hint()}"
        raw = self._raw
        gaps: list[S7ItemDecoder] = []  # items refused or not read: COMM_ERROR
        lacking: list[np.ndarray] = []  # columns a short reply lacks: DECODE_ERROR
        late: list[np.ndarray] = []  # columns read after the poll's time had passed: STALE
        answered = False  # some item came back with data
        refused: str | None = None  # the last refusal of this poll
        for compiled in self._requests:
            if failure is not None:
                gaps.extend(compiled.decoders)
                continue
            self.counters.requests += 1
            try:
                results = await self._client.read(compiled.items)
            except S7NoReply as exc:
                self.counters.no_replies += 1
                failure = f"{exc}; check {self._hint()}"
                gaps.extend(compiled.decoders)
                continue
            for item, decoder, result in zip(compiled.request.items, compiled.decoders, results, strict=True):
                if isinstance(result, int):
                    self._refused(item, result)
                    refused = f"{self.cfg.endpoint}: PLC refused {item.where} with return code {result:#04x} ({return_code_text(result)})"
                    gaps.append(decoder)
                    continue
                answered = True
                short = decoder.raw_into(result, raw)
                if short is not None:
                    lacking.append(short)
            if self._clock.now() - started > self._stale_after_s:
                late.extend(d.idx for d in compiled.decoders)
        if failure is not None and not self._requests:
            values, quality = self._no_values.copy(), self._no_quality.copy()
        else:
            values = np.empty(len(self._ids))
            quality = np.empty(len(self._ids), dtype=np.uint8)
            self._rules.apply(raw, values, quality, lacking=lacking)
            for cols in late:
                quality[cols[quality[cols] == SampleQuality.GOOD]] = SampleQuality.STALE
            for decoder in gaps:
                values[decoder.idx] = np.nan
                quality[decoder.idx] = SampleQuality.COMM_ERROR
        if failure is not None:
            self._failed(failure)
        elif refused is not None and not answered:
            # the PLC is there but gave no data at all (every item refused): a failed poll, no backoff
            self.health.failed(refused)
        else:
            self._failures = 0
            self.health.succeeded(ts, latency_s=self._clock.now() - started)
        return SampleBatch(f"s7[{self.cfg.name}]", self._ids, np.full(len(self._ids), ts), values, quality)

    def _failed(self, message: str) -> None:
        self._failures += 1
        self.counters.failed_polls += 1
        self.health.failed(message)  # logs "lost" once; "recovered" on the next good poll
        self._retry_at = retry_after(self._clock.now(), self.cfg.poll_s, self._retry.cap_s, self._failures)

    def _refused(self, item: S7Item, code: int) -> None:
        self.counters.refused_items += 1
        self.counters.item_codes[code] = self.counters.item_codes.get(code, 0) + 1
        key = (item.where, code)
        if key in self._logged:
            return
        self._logged.add(key)
        names = [self.cfg.points[i].signal for i in item.points]
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        log.warning(
            "%s: PLC refused %s for %s with return code %#04x (%s); these points are gaps (COMM_ERROR) while it "
            "lasts; check that the DB exists, is long enough and is not 'optimized block access' (S7-1200/1500)",
            self.cfg.endpoint,
            item.where,
            shown,
            code,
            return_code_text(code),
        )
