"""Hj212Source: a TCP listener that CEMS data loggers send HJ 212-2017 frames to.

- One listener per [[hj212.servers]] entry; each data logger connection gets its own
  `FrameReader` (gateway/codec/hj212.py: header, length field, CRC) and handler task, held by
  the source and cancelled on exit.
- CN 2011 (real-time), 2051 (minute) and 2061 (hourly) data are mapped by (MN, CN, pollutant
  code, field) to signals; each frame's values become one SampleBatch stamped with the frame's
  DataTime (the data logger's wall clock, in the server's `timezone`), or the receive time
  when it carries none. `code-Flag` sets the quality: N (or no flag) GOOD; T OUT_OF_RANGE;
  B and D COMM_ERROR; F, M, S, C and any other letter NO_READING. The value is kept as sent and,
  not being GOOD, is never integrated: a stopped or calibrating analyser is a gap, never a
  zero. A value that is not a number is NaN and DECODE_ERROR.
- [[cems]] entries form a stack's CO2 mass flow from one frame's CO2 concentration and dry flow
  (analytics.cems.co2_mass_flow, units from the config), GOOD only if both values are; a frame
  lacking one of them gives no reading (counted as cems_incomplete).
- A frame whose Flag has bit A set gets the data reply (CN 9014) once it was accepted.
- A bad frame (no header, wrong length field, wrong CRC, not HJ 212 inside) is counted per peer
  address and logged once per peer; the reader resynchronises at the next `##`, so the frames
  after it still count. Hostile senders are bounded: a declared length above `max_data_bytes`
  is refused before it is buffered, a connection that delivers no valid frame for
  `idle_timeout_s` (silent, or trickling junk) or is slower than `frame_timeout_s` to finish a
  frame is closed, connections beyond `max_connections` are
  closed at once, and a peer that does not read its replies is closed after WRITE_TIMEOUT_S.
- Health: OK while data loggers deliver; "lost" when the last connection has gone silent
  (idle timeout), "recovered" at the next good frame. Only a listen address that cannot be
  bound raises SourceUnavailable (retried by `supervise`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Self
from zoneinfo import ZoneInfo

import numpy as np

from analytics.cems import co2_mass_flow
from gateway.codec.hj212 import DATA_CNS, BadFrame, Frame, FrameReader, Reading, SegmentError, data_ack, parse_segment
from gateway.core.clock import Clock
from gateway.core.errors import SourceUnavailable
from gateway.core.health import ComponentHealth
from gateway.core.model import SampleBatch, SampleQuality
from gateway.core.signals import SignalTable
from gateway.settings.hj212 import Hj212CemsConfig, Hj212ServerConfig

log = logging.getLogger(__name__)

READ_BYTES = 4096
WRITE_TIMEOUT_S = 5.0
MAX_TRACKED_PEERS = 1000  # per-peer counters beyond this are summed under OTHER_PEERS
OTHER_PEERS = "<other peers>"
FLAG_QUALITY = {
    "N": SampleQuality.GOOD,
    "T": SampleQuality.OUT_OF_RANGE,
    "B": SampleQuality.COMM_ERROR,
    "D": SampleQuality.COMM_ERROR,
}


@dataclass
class Hj212Counters:
    connections: int = 0
    rejected_connections: int = 0  # beyond max_connections
    idle_closed: int = 0  # idle_timeout_s passed without a byte
    slow_closed: int = 0  # a frame took longer than frame_timeout_s, or the peer did not read its replies
    frames: int = 0  # accepted frames (any CN)
    samples: int = 0
    acks: int = 0
    unknown_mn: int = 0  # frames from a data logger no point names
    unmapped: int = 0  # values of a known data logger that no point maps
    other_commands: int = 0  # accepted frames of a CN other than 2011/2051/2061
    dropped_batches: int = 0  # the pipeline queue was full
    cems_incomplete: int = 0  # a [[cems]] data logger's frame without its CO2 concentration or its flow
    flags: dict[str, int] = field(default_factory=dict)  # values per data flag letter
    bad_frames: dict[str, int] = field(default_factory=dict)  # per peer address

    @property
    def bad_total(self) -> int:
        return sum(self.bad_frames.values())


def _quality(r: Reading) -> SampleQuality:
    """A value's quality from its data flag (N or none: GOOD); a value that is no number: DECODE_ERROR."""
    if not r.valid:
        return SampleQuality.DECODE_ERROR
    return FLAG_QUALITY.get(r.flag or "N", SampleQuality.NO_READING)


def _peer_of(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"


class Hj212Source:
    """One listening address. Reusable: `supervise` enters it again after a failed bind.

    Args:
        cfg: The listener and its point map.
        signals: Maps signal names to the ids batches carry.
        out: The pipeline's bounded sample queue.
        clock: Stamps frames without DataTime.
        health: This listener's health.
        site_timezone: Zone of DataTime when cfg.timezone is not set.
    """

    def __init__(
        self,
        cfg: Hj212ServerConfig,
        signals: SignalTable,
        out: asyncio.Queue[SampleBatch],
        clock: Clock,
        health: ComponentHealth,
        *,
        site_timezone: str = "UTC",
    ) -> None:
        self.cfg, self._signals, self._out, self._clock, self.health = cfg, signals, out, clock, health
        self.endpoint = f"hj212 '{cfg.name}' {cfg.host}:{cfg.port}"
        self._tz = ZoneInfo(cfg.timezone or site_timezone)
        self._routes: dict[tuple[str, str], dict[tuple[str, str], int]] = {}
        for p in cfg.points:
            self._routes.setdefault((p.mn, str(p.command)), {})[(p.code, p.field)] = signals.id(p.signal)
        self._cems: dict[tuple[str, str], list[tuple[Hj212CemsConfig, int, str]]] = {}
        for c in cfg.cems:
            unit = signals.configs[signals.id(c.signal)].unit
            self._cems.setdefault((c.mn, str(c.command)), []).append((c, signals.id(c.signal), unit))
        self._mns = {p.mn for p in cfg.points} | {c.mn for c in cfg.cems}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self.counters = Hj212Counters()
        self._logged_peers: set[str] = set()

    @property
    def port(self) -> int:
        """The bound port (cfg.port, or the one the system chose for port 0 in tests)."""
        assert self._server is not None and self._server.sockets, "enter the source first"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def connected(self) -> int:
        return len(self._tasks)

    async def __aenter__(self) -> Self:
        try:
            self._server = await asyncio.start_server(self._connection, self.cfg.host, self.cfg.port, limit=READ_BYTES * 4)
        except OSError as exc:
            raise SourceUnavailable(
                self.endpoint, f"cannot listen ({exc}); check that host is an address of this machine and the port is free"
            ) from exc
        self.health.succeeded(self._clock.now())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        try:
            async with asyncio.timeout(5.0):
                await server.wait_closed()
        except TimeoutError:
            pass

    async def run(self) -> None:
        """Serve until cancelled."""
        assert self._server is not None, "enter the source before running"
        await self._server.serve_forever()

    # -- one connection -----------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer_of(writer)
        task = asyncio.current_task()
        if len(self._tasks) >= self.cfg.max_connections or task is None:
            self.counters.rejected_connections += 1
            writer.close()
            return
        self._tasks.add(task)
        self.counters.connections += 1
        frames = FrameReader(self.cfg.max_data_bytes)
        loop = asyncio.get_running_loop()
        frame_since: float | None = None  # when the unfinished frame in `frames` began
        last_frame = loop.time()  # the last accepted frame (or the connect): bytes alone do not keep a connection
        idle = False
        try:
            while True:
                now = loop.time()
                wait_s = last_frame + self.cfg.idle_timeout_s - now
                if frame_since is not None:
                    wait_s = min(wait_s, frame_since + self.cfg.frame_timeout_s - now)
                try:
                    async with asyncio.timeout(max(wait_s, 0.0)):
                        data = await reader.read(READ_BYTES)
                except TimeoutError:
                    if frame_since is not None and loop.time() - frame_since >= self.cfg.frame_timeout_s:
                        self.counters.slow_closed += 1
                        self._bad(peer, f"frame not complete within frame_timeout_s = {self.cfg.frame_timeout_s:g} s")
                    else:
                        self.counters.idle_closed += 1
                        idle = True
                    return
                if not data:
                    return
                replies = self._feed(frames, data, peer)
                if replies is not None:
                    last_frame = loop.time()
                if frames.pending == 0:
                    frame_since = None
                elif frame_since is None or replies is not None:
                    frame_since = loop.time()
                if replies:
                    writer.write(replies)
                    try:
                        async with asyncio.timeout(WRITE_TIMEOUT_S):
                            await writer.drain()
                    except TimeoutError:
                        self.counters.slow_closed += 1
                        return
        except ConnectionError:
            return
        except asyncio.CancelledError:
            # Only __aexit__ cancels a connection. Ending normally: asyncio 3.11's stream callback
            # calls task.exception() on a cancelled handler and logs the CancelledError as an error.
            return
        finally:
            self._tasks.discard(task)
            writer.close()
            if idle and not self._tasks:
                self.health.failed(
                    f"{self.endpoint}: no data logger has sent anything for {self.cfg.idle_timeout_s:g} s; "
                    "check the data loggers' server address and their network"
                )

    def _feed(self, frames: FrameReader, data: bytes, peer: str) -> bytes | None:
        """Feed bytes; put the samples of the frames they complete on the queue; return the
        replies to send (b"" when frames completed but none asks for a reply, None when none did)."""
        replies: bytes | None = None
        for event in frames.feed(data):
            if isinstance(event, BadFrame):
                self._bad(peer, event.reason)
                continue
            replies = (replies or b"") + self.handle_frame(event, peer)
        return replies

    def handle_frame(self, frame: Frame, peer: str) -> bytes:
        """One checked frame: its samples onto the queue; returns its reply (b"" when none is asked)."""
        try:
            message = parse_segment(frame.segment)
        except SegmentError as exc:
            self._bad(peer, f"not an HJ 212 data segment: {exc}")
            return b""
        now = self._clock.now()
        self.counters.frames += 1
        self.health.succeeded(now)
        reply = b""
        if message.wants_ack and message.st != "91":  # never answer a reply
            reply = data_ack(message)
            self.counters.acks += 1
        if message.cn not in DATA_CNS:
            self.counters.other_commands += 1
            return reply
        if message.mn not in self._mns:
            self.counters.unknown_mn += 1
            return reply
        route = self._routes.get((message.mn, message.cn), {})
        cems = self._cems.get((message.mn, message.cn), ())
        used = {(c.co2_code, c.field) for c, _, _ in cems} | {(c.flow_code, c.field) for c, _, _ in cems}
        ts = now if message.data_time is None else message.data_time.replace(tzinfo=self._tz).timestamp()
        ids: list[int] = []
        values: list[float] = []
        quality: list[int] = []
        flags = self.counters.flags
        for r in message.readings:
            sid = route.get((r.code, r.field))
            if sid is None:
                if (r.code, r.field) not in used:
                    self.counters.unmapped += 1
                continue
            letter = r.flag or "N"
            flags[letter[:1]] = flags.get(letter[:1], 0) + 1
            ids.append(sid)
            values.append(r.value)
            quality.append(_quality(r))
        if cems:
            by_key = {(r.code, r.field): r for r in message.readings}
            for c, sid, unit in cems:
                co2, flow = by_key.get((c.co2_code, c.field)), by_key.get((c.flow_code, c.field))
                if co2 is None or flow is None:
                    self.counters.cems_incomplete += 1
                    continue
                q_co2, q_flow = _quality(co2), _quality(flow)
                ids.append(sid)
                values.append(float(co2_mass_flow(co2.value, c.co2_unit, flow.value, c.flow_unit, unit)))
                quality.append(q_co2 if q_co2 != SampleQuality.GOOD else q_flow)  # good only if both are
        if ids:
            batch = SampleBatch(
                f"hj212[{self.cfg.name}]",
                np.array(ids, dtype=np.int32),
                np.full(len(ids), ts, dtype=np.float64),
                np.array(values, dtype=np.float64),
                np.array(quality, dtype=np.uint8),
            )
            try:
                self._out.put_nowait(batch)
                self.counters.samples += len(ids)
            except asyncio.QueueFull:
                self.counters.dropped_batches += 1
        return reply

    def _bad(self, peer: str, reason: str) -> None:
        bad = self.counters.bad_frames
        key = peer if peer in bad or len(bad) < MAX_TRACKED_PEERS else OTHER_PEERS
        bad[key] = bad.get(key, 0) + 1
        if key not in self._logged_peers and key != OTHER_PEERS:
            self._logged_peers.add(key)
            log.warning(
                "%s: bad frame from %s (%s); check the data logger's HJ 212 settings; further bad frames "
                "from this peer are counted (emgate_hj212_bad_frames), not logged",
                self.endpoint,
                peer,
                reason,
            )
