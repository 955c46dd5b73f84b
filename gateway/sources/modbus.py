"""ModbusSource: polls one device on its own cadence and emits one SampleBatch per poll.

A failed read never becomes a number: the points it covered are emitted as NaN with quality
COMM_ERROR, so the minute stage sees a gap and says how much of the minute was observed.

Theory of operation, per device:

- Reads go through the device's `ModbusLink` (modbus_link.py): one client and one lock per
  serial line or TCP connection, one request in flight on it. TCP devices at other host:ports
  have other links and poll concurrently.
- A block that gets no reply ends the poll (the rest of the device would time out too) and
  counts a failure. After n failures in a row the device is backed off: its polls are skipped
  (and emitted as COMM_ERROR gaps) for min(cap_s, poll_s * 2**n) * uniform(0.5, 1) seconds, and
  a failing device gets one attempt per poll, without its configured retries. A dead unit on a
  shared bus therefore costs the line one timeout per backoff period instead of one per poll,
  and its neighbours keep their cadence.
- A block answered with exception 2 (illegal data address) is split in halves, recursively,
  until the refused point sits alone; the split plan is kept, so it is done once. Other
  exception replies (busy, device failure) make that block's points COMM_ERROR for this poll.
- State changes are logged once: lost / recovered (via ComponentHealth), a point isolated,
  an exception code seen. Everything else is counted in `counters`.
- Sample quality: GOOD, OUT_OF_RANGE (value kept), NO_READING (sentinel), DECODE_ERROR,
  COMM_ERROR, and STALE when a block's reply came more than poll_s + timeout_s after the
  poll began (it waited behind other requests so long that it no longer reads the poll's time).
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from typing import Self

import numpy as np

from gateway.codec.blocks import BlockDecoder, compile_block, point_width
from gateway.core.clock import Clock
from gateway.core.errors import SourceUnavailable
from gateway.core.health import ComponentHealth
from gateway.core.model import SampleBatch, SampleQuality
from gateway.core.signals import SignalTable
from gateway.settings.site import ModbusDeviceConfig, RetryConfig
from gateway.sources.cadence import poll_every, retry_after
from gateway.sources.modbus_link import ModbusLink, ModbusLinkPool
from gateway.sources.modbus_plan import ReadBlock, plan_reads, split_block
from gateway.sources.pymodbus_client import ModbusExceptionReply, ModbusNoReply

log = logging.getLogger(__name__)

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


@dataclass
class ModbusCounters:
    polls: int = 0
    failed_polls: int = 0
    skipped_polls: int = 0  # backed off: emitted as gaps without asking the device
    missed_polls: int = 0  # ticks passed over: the gateway was more than a poll period late
    requests: int = 0
    no_replies: int = 0
    exception_replies: int = 0
    splits: int = 0
    dropped_batches: int = 0
    exception_codes: dict[int, int] = field(default_factory=dict)


class ModbusSource:
    """One device. Reusable: to reconnect, enter the same object again.

    Args:
        cfg: The device.
        signals: Maps point signal names to the ids batches carry.
        out: The pipeline's bounded sample queue; a full queue drops the batch and counts it.
        clock: Stamps and paces polls.
        health: This device's health (last good poll, consecutive errors, latency).
        links: Shared links of the gateway; devices on one serial port or host:port must be
            given the same pool. None: a private pool.
        retry: Backoff cap for a failing device (RetryConfig.cap_s).
    """

    def __init__(
        self,
        cfg: ModbusDeviceConfig,
        signals: SignalTable,
        out: asyncio.Queue[SampleBatch],
        clock: Clock,
        health: ComponentHealth,
        *,
        links: ModbusLinkPool | None = None,
        retry: RetryConfig | None = None,
    ) -> None:
        self.cfg, self._out, self._clock, self.health = cfg, out, clock, health
        self._retry = retry or RetryConfig()
        self._links = links or ModbusLinkPool(self._retry)
        self._ids = np.array([signals.id(p.signal) for p in cfg.points], dtype=np.int32)
        self._blocks: list[BlockDecoder[ReadBlock]] = [
            compile_block(b, cfg.points)
            for b in plan_reads(cfg.points, max_registers=cfg.max_registers_per_read, max_gap=cfg.max_gap_registers)
        ]
        self._link: ModbusLink | None = None
        self._failures = 0  # consecutive polls without a reply
        self._retry_at = -math.inf  # clock time before which polls are skipped
        self._logged: set[tuple[str, int]] = set()  # (what, code) state changes already logged
        self.counters = ModbusCounters()
        # one period plus one timeout: the latest an on-time poll of this device can be answered
        self._stale_after_s = cfg.poll_s + cfg.timeout_s
        # a poll's columns start as copies of these: every point a gap until its block is read
        self._no_values = np.full(len(cfg.points), np.nan)
        self._no_quality = np.full(len(cfg.points), SampleQuality.COMM_ERROR, dtype=np.uint8)
        self.keep_words = False  # `emgate poll` sets it to show each point's raw words
        self.last_words: dict[int, list[int]] = {}  # point index -> its raw words at the last poll

    @property
    def plan(self) -> list[ReadBlock]:
        return [cb.block for cb in self._blocks]

    @property
    def link(self) -> ModbusLink | None:
        return self._link

    @property
    def dropped_batches(self) -> int:
        return self.counters.dropped_batches

    async def __aenter__(self) -> Self:
        self._link = self._links.acquire(self.cfg)
        try:
            await self._link.ensure_connected()
        except ModbusNoReply as exc:
            self._links.release(self.cfg)
            self._link = None
            raise SourceUnavailable(self.cfg.endpoint, f"cannot connect ({exc}); check {self._hint()}") from exc
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._link is not None:
            self._links.release(self.cfg)
            self._link = None

    def _hint(self) -> str:
        if self.cfg.transport == "rtu":
            return f"the serial device {self.cfg.serial_port}, its wiring and baudrate {self.cfg.baudrate}"
        return f"that {self.cfg.host}:{self.cfg.port} is reachable and the device is powered"

    async def run(self) -> None:
        """Poll every poll_s until cancelled; peers that fail are backed off, never raised."""
        await poll_every(
            self.cfg.poll_s, self._clock, self.poll_once, self._gap, lambda: self._retry_at, self._out, self.counters
        )

    def _gap(self, ts: float) -> SampleBatch:
        return SampleBatch(self.cfg.name, self._ids, self._stamps(ts), self._no_values.copy(), self._no_quality.copy())

    def _stamps(self, ts: float) -> np.ndarray:
        stamps = np.empty(len(self._ids))
        stamps.fill(ts)
        return stamps

    async def poll_once(self, ts: float) -> SampleBatch:
        """Read every block once and return the batch stamped `ts`; never raises for a peer's fault."""
        if self._link is None:
            raise RuntimeError("enter the ModbusSource before polling")
        values = self._no_values.copy()
        quality = self._no_quality.copy()
        started = self._clock.now()
        self.counters.polls += 1
        failure: str | None = None
        refused: str | None = None  # last exception reply of this poll
        answered = False
        i = 0
        while i < len(self._blocks):
            cb = self._blocks[i]
            try:
                words = await self._read(cb.block)
            except ModbusExceptionReply as exc:
                if exc.illegal_address and (halves := split_block(cb.block, self.cfg.points)):
                    self._split(i, cb.block, halves)
                    continue  # read the halves now, in this same poll
                self._exception(cb.block, exc)
                refused = f"{self.cfg.endpoint}: {exc}"
                i += 1
                continue
            except ModbusNoReply as exc:
                failure = self._no_reply_message(cb.block, exc)
                break
            answered = True
            cb.decode_into(words, values, quality)
            if self.keep_words:
                for j in cb.block.points:
                    off = cb.block.offset(self.cfg.points[j].address)
                    self.last_words[j] = words[off : off + point_width(self.cfg.points[j])]
            if self._clock.now() - started > self._stale_after_s:
                # later than any on-time poll could answer: not a reading of the poll's time
                late = cb.members[quality[cb.members] == SampleQuality.GOOD]
                quality[late] = SampleQuality.STALE
            i += 1
        if failure is not None:
            self._failed(failure)
        elif refused is not None and not answered:
            # the device is there but gave no data at all (busy, failing): a failed poll, no backoff
            self.health.failed(refused)
        else:
            self._failures = 0
            self.health.succeeded(ts, latency_s=self._clock.now() - started)
        return SampleBatch(self.cfg.name, self._ids, self._stamps(ts), values, quality)

    async def _read(self, block: ReadBlock) -> list[int]:
        assert self._link is not None
        # a device already failing gets one attempt: retries would hold a shared line for nothing
        attempts = 1 if self._failures else self.cfg.retries + 1
        for attempt in range(attempts):
            self.counters.requests += 1
            try:
                return await self._link.read(
                    block.kind,
                    block.start,
                    block.count,
                    self.cfg.unit_id,
                    self.cfg.timeout_s,
                )
            except ModbusNoReply:
                self.counters.no_replies += 1
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _failed(self, message: str) -> None:
        self._failures += 1
        self.counters.failed_polls += 1
        self.health.failed(message)  # logs "lost" once; "recovered" on the next good poll
        self._retry_at = retry_after(self._clock.now(), self.cfg.poll_s, self._retry.cap_s, self._failures)

    def _names(self, block: ReadBlock, limit: int = 4) -> str:
        names = [self.cfg.points[j].signal for j in block.points]
        return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")

    def _no_reply_message(self, block: ReadBlock, exc: ModbusNoReply) -> str:
        return (
            f"{self.cfg.endpoint}: no valid reply to read {block.kind}({block.start}, count={block.count}) "
            f"for {self._names(block)} ({exc}); check the unit id {self.cfg.unit_id}, {self._hint()}"
        )

    def _split(self, i: int, block: ReadBlock, halves: list[ReadBlock]) -> None:
        self.counters.splits += 1
        self._blocks[i : i + 1] = [compile_block(h, self.cfg.points) for h in halves]
        log.info(
            "%s: read %s(%d, count=%d) refused with exception 2 (illegal data address); split into %s and kept that way",
            self.cfg.endpoint,
            block.kind,
            block.start,
            block.count,
            " and ".join(f"({h.start}, count={h.count})" for h in halves),
        )

    def _exception(self, block: ReadBlock, exc: ModbusExceptionReply) -> None:
        self.counters.exception_replies += 1
        self.counters.exception_codes[exc.code] = self.counters.exception_codes.get(exc.code, 0) + 1
        what = (f"{block.kind}:{block.start}", exc.code)
        if what in self._logged:
            return
        self._logged.add(what)
        name = EXCEPTION_NAMES.get(exc.code, "unknown code")
        if exc.code == 2:
            p = self.cfg.points[block.points[0]]
            log.warning(
                "%s: point %r (%s %d, %s) refused with exception 2 (illegal data address); isolated, "
                "the other points are read on; check the address in the register map (0- or 1-based?)",
                self.cfg.endpoint,
                p.signal,
                p.kind,
                p.address,
                p.type,
            )
        else:
            log.warning(
                "%s: read %s(%d, count=%d) for %s answered exception %d (%s); these points are gaps "
                "(COMM_ERROR) while it lasts; check the device's state and register map",
                self.cfg.endpoint,
                block.kind,
                block.start,
                block.count,
                self._names(block),
                exc.code,
                name,
            )
