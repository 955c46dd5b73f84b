"""Samples -> minutes: the window that decides when a minute is complete.

Theory of operation. A minute is the half-open interval [M, M + 60 s) of the site's clock
(stored as UTC epoch seconds; sites without DST make wall-clock and UTC minutes the same, and
zones with odd offsets still align because every offset in use is a whole number of minutes).
Minute M closes when the clock passes M + 60 s + delay_s: by then every source has had `delay_s`
to deliver readings taken inside M *and* the first reading after M + 60, which the integrator
needs to interpolate the right edge. Closing is done for all due minutes at once, so a live
gateway closes one minute per call while a replay closes a day per call, through the same code.

A reading that arrives for a minute already closed is late: it is counted and dropped here (a
correction row is the ledger's business, not the window's). Readings are kept after a close
only as far as the next close needs them: per signal the last reading before the boundary (a
counter's base or a rate's left edge) and everything after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from analytics.aggregate import counter_deltas, minute_edges, spread_interval_totals
from analytics.batch import integrate_rate_many
from analytics.substitution import FULL_COVERAGE_TOLERANCE, MinuteQuality, SubstitutionHistory, finalize_minutes
from gateway.clock import Clock
from gateway.model import SampleBatch, SampleQuality
from gateway.settings import WindowConfig
from gateway.signals import SignalTable
from gateway.units import time_unit_s

log = logging.getLogger(__name__)

MINUTE_S = 60.0


@dataclass(frozen=True)
class SignalMinutes:
    """One signal's closed minutes: arrays of length n, aligned with MinuteFrame.starts."""

    amount: NDArray[np.float64]  # in the signal's amount unit (t, Nm3, kWh, ...), substituted where flagged
    coverage: NDArray[np.float64]  # covered fraction of each minute, before substitution
    quality: NDArray[np.int8]  # analytics.substitution.MinuteQuality codes
    rule: NDArray[np.object_]  # substitution rule used, "" where measured
    bad_samples: NDArray[np.int32]  # readings in the minute that were not GOOD
    resets: NDArray[np.int32]  # counter resets detected


@dataclass(frozen=True)
class MinuteFrame:
    """Several consecutive closed minutes for every signal."""

    starts: NDArray[np.float64]  # minute starts, epoch s
    signals: dict[str, SignalMinutes]
    late_samples: int = 0


@dataclass
class SourceCounts:
    samples: int = 0
    late: int = 0


@dataclass(frozen=True)
class WindowState:
    """What a MinuteWindow holds between closes, for checkpoints (gateway/checkpoint.py).

    The buffered readings (sorted by signal id, then time), the substitution history per signal
    id, and the first minute not yet closed.
    """

    next_minute: float
    signal_ids: NDArray[np.int32]
    ts: NDArray[np.float64]
    values: NDArray[np.float64]
    quality: NDArray[np.uint8]
    history: dict[int, SubstitutionHistory | None]


@dataclass
class WindowCounters:
    samples: int = 0
    late: int = 0
    bad: int = 0
    minutes_closed: int = 0
    # per batch source (device or broker name), for /metrics; updated once per batch
    sources: dict[str, SourceCounts] = field(default_factory=dict)


@dataclass
class MinuteWindow:
    """The synchronous core of the minute stage; see the module docstring."""

    signals: SignalTable
    window: WindowConfig
    next_minute: float  # start of the first minute not yet closed
    counters: WindowCounters = field(default_factory=WindowCounters)

    def __post_init__(self) -> None:
        if self.next_minute % MINUTE_S:
            raise ValueError(f"next_minute {self.next_minute} is not on a minute boundary")
        self._chunks: list[tuple[NDArray[np.int32], NDArray[np.float64], NDArray[np.float64], NDArray[np.uint8]]] = []
        self._history: dict[int, SubstitutionHistory | None] = {}
        self._pending: dict[int, list[NDArray[np.float64]]] = {}  # measured minutes not yet in _history
        self._groups: dict[tuple[float, float, str], NDArray[np.int64]] | None = None

    def export_state(self) -> WindowState:
        """The in-progress state for a checkpoint (the buffer is compacted as a side effect)."""
        sig, ts, val, qual = self._take_sorted()
        self._chunks = [(sig, ts, val, qual)] if len(ts) else []
        for i in list(self._pending):
            self._history_of(i)
        self._exported_chunks, self._exported_n = self._chunks, len(self._chunks)
        return WindowState(self.next_minute, sig, ts, val, qual, dict(self._history))

    def export_new_readings(self) -> WindowState:
        """Readings buffered since the last export, for an incremental checkpoint (no history).

        After a close compacted the buffer this is everything buffered; a reading saved twice
        is harmless, because a repeated (signal, ts) pair counts once.
        """
        chunks = self._chunks
        start = self._exported_n if getattr(self, "_exported_chunks", None) is chunks else 0
        new = chunks[start:]
        self._exported_chunks, self._exported_n = chunks, len(chunks)
        if not new:
            empty = (np.empty(0, np.int32), np.empty(0), np.empty(0), np.empty(0, np.uint8))
            return WindowState(self.next_minute, *empty, {})
        sig, ts, val, qual = (np.concatenate([c[k] for c in new]) for k in range(4))
        return WindowState(self.next_minute, sig, ts, val, qual, {})

    def import_state(self, state: WindowState) -> None:
        """Resume from a checkpoint: buffered readings, history and the first unclosed minute."""
        if state.next_minute % MINUTE_S:
            raise ValueError(f"next_minute {state.next_minute} is not on a minute boundary")
        self.next_minute = float(state.next_minute)
        self._chunks = [(state.signal_ids, state.ts, state.values, state.quality)] if len(state.ts) else []
        self._history = dict(state.history)
        self._pending = {}

    def ingest(self, batch: SampleBatch) -> None:
        """Buffer a batch; readings for minutes already closed are counted late and dropped."""
        n = len(batch.ts)
        self.counters.samples += n
        per_source = self.counters.sources.get(batch.source)
        if per_source is None:
            per_source = self.counters.sources[batch.source] = SourceCounts()
        per_source.samples += n
        late = batch.ts < self.next_minute
        if late.any():
            # its minute is already in the ledger: count it and drop it
            per_source.late += int(late.sum())
            self.counters.late += int(late.sum())
            keep = ~late
            batch = SampleBatch(batch.source, batch.signal_ids[keep], batch.ts[keep], batch.values[keep], batch.quality[keep])
        if len(batch.ts):
            self._chunks.append((batch.signal_ids, batch.ts, batch.values, batch.quality))

    def due(self, now: float) -> int:
        """How many minutes are due to close at clock time `now`."""
        return max(0, int((now - self.window.delay_s - self.next_minute) // MINUTE_S))

    def close_due(self, now: float) -> MinuteFrame | None:
        n = self.due(now)
        return self.close(n) if n else None

    def close(self, n: int) -> MinuteFrame:
        """Close the next `n` minutes and return their per-signal results."""
        if n < 1:
            raise ValueError(f"close needs n >= 1 minutes, got {n}")
        edges = minute_edges(self.next_minute, n, MINUTE_S)
        starts = edges[:-1]
        end = float(edges[-1])
        sig, ts, val, qual = self._take_sorted()
        k_signals = len(self.signals)
        bounds = np.searchsorted(sig, np.arange(k_signals + 1))
        good = qual == SampleQuality.GOOD
        usable = np.where(good, val, np.nan)
        amount = np.zeros((k_signals, n))
        covered = np.zeros((k_signals, n))
        resets = np.zeros((k_signals, n), dtype=np.int32)
        for (unit_s, gap_s, method), ids in self._rate_groups().items():
            g_ts, g_val, g_bounds = _gather(ids, bounds, ts, usable)
            if method == "left":
                g_ts, g_val, g_bounds = _hold_level(g_ts, g_val, g_bounds, float(edges[-1]), gap_s)
            amount[ids], covered[ids] = integrate_rate_many(
                g_ts, g_val, g_bounds, edges, time_unit_s=unit_s, max_gap_s=gap_s, method=method
            )
        for i in self._other_ids():
            lo, hi = int(bounds[i]), int(bounds[i + 1])
            amount[i], covered[i], resets[i] = self._other_minutes(i, ts[lo:hi], usable[lo:hi], good[lo:hi], edges)
        bad = np.zeros((k_signals, n), dtype=np.int32)
        flagged = ~good & (ts >= edges[0]) & (ts < end)
        if flagged.any():
            np.add.at(bad, (sig[flagged], ((ts[flagged] - edges[0]) // MINUTE_S).astype(np.int64)), 1)
            self.counters.bad += int(flagged.sum())
        out = self._finalize(amount, covered, bad, resets)
        # keep each signal's last reading before `end` (left edge, counter base) and all after it
        running = np.concatenate(([0], np.cumsum(ts < end)))
        before_end = running[bounds[1:]] - running[bounds[:-1]]
        self._keep(sig, ts, val, qual, bounds[:-1] + np.maximum(before_end - 1, 0))
        self.next_minute = end
        self.counters.minutes_closed += n
        return MinuteFrame(starts=starts, signals=out, late_samples=self.counters.late)

    def _take_sorted(self) -> tuple[NDArray[np.int32], NDArray[np.float64], NDArray[np.float64], NDArray[np.uint8]]:
        if not self._chunks:
            return (np.empty(0, np.int32), np.empty(0), np.empty(0), np.empty(0, np.uint8))
        sig = np.concatenate([c[0] for c in self._chunks])
        ts = np.concatenate([c[1] for c in self._chunks])
        val = np.concatenate([c[2] for c in self._chunks])
        qual = np.concatenate([c[3] for c in self._chunks])
        # Batches arrive in time order per source, so a stable sort by signal is usually enough;
        # fall back to the full (signal, time) sort when a signal's readings are out of order.
        order = np.argsort(sig, kind="stable")
        s_sig, s_ts = sig[order], ts[order]
        if np.any((s_sig[1:] == s_sig[:-1]) & (s_ts[1:] < s_ts[:-1])):
            order = np.lexsort((ts, sig))
        sig, ts, val, qual = sig[order], ts[order], val[order], qual[order]
        # a repeated (signal, ts) pair (a re-delivered MQTT message) counts once
        dup = np.zeros(len(ts), dtype=bool)
        dup[1:] = (sig[1:] == sig[:-1]) & (ts[1:] == ts[:-1])
        if dup.any():
            keep = ~dup
            sig, ts, val, qual = sig[keep], ts[keep], val[keep], qual[keep]
        return sig, ts, val, qual

    def _keep(
        self,
        sig: NDArray[np.int32],
        ts: NDArray[np.float64],
        val: NDArray[np.float64],
        qual: NDArray[np.uint8],
        keep_from: NDArray[np.int64],
    ) -> None:
        """Keep, per signal (arrays sorted by signal), the rows from keep_from[signal] on."""
        mask = np.arange(len(ts)) >= keep_from[sig] if len(ts) else np.zeros(0, dtype=bool)
        self._chunks = [(sig[mask], ts[mask], val[mask], qual[mask])] if mask.any() else []

    def _rate_groups(self) -> dict[tuple[float, float, str], NDArray[np.int64]]:
        """Rate signals grouped by what their integration needs; each group is one numpy pass."""
        if self._groups is None:
            groups: dict[tuple[float, float, str], list[int]] = {}
            for i, cfg in enumerate(self.signals.configs):
                if cfg.kind == "rate":
                    key = (time_unit_s(cfg.unit), float(self.signals.max_gap_s[i]), cfg.integration)
                    groups.setdefault(key, []).append(i)
            self._groups = {k: np.asarray(v, dtype=np.int64) for k, v in groups.items()}
        return self._groups

    def _other_ids(self) -> list[int]:
        return [i for i, cfg in enumerate(self.signals.configs) if cfg.kind != "rate"]

    def _other_minutes(
        self, i: int, ts: NDArray[np.float64], usable: NDArray[np.float64], good: NDArray[np.bool_], edges: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int32]]:
        cfg = self.signals.configs[i]
        n = len(edges) - 1
        if cfg.kind == "counter":
            cm = counter_deltas(
                ts[good],
                usable[good],
                edges,
                bits=cfg.counter_bits,
                scale=cfg.counter_scale,
                max_rate_per_s=cfg.max_rate_per_s,
                max_gap_s=self.signals.max_gap_s[i],
            )
            return cm.amount, cm.covered_s, np.asarray(cm.resets, dtype=np.int32)
        if cfg.kind == "interval_total":
            amount, covered = spread_interval_totals(ts, usable, edges, interval_s=cfg.interval_s, label=cfg.interval_label)
            return amount, covered, np.zeros(n, dtype=np.int32)
        # instant values are not activity data; they are summarised elsewhere
        return np.zeros(n), np.full(n, MINUTE_S), np.zeros(n, dtype=np.int32)

    def _finalize(
        self, amount: NDArray[np.float64], covered: NDArray[np.float64], bad: NDArray[np.int32], resets: NDArray[np.int32]
    ) -> dict[str, SignalMinutes]:
        """Coverage, quality and substitution for every signal (analytics.substitution's rules).

        Signals whose minutes are all measured take a vectorised path that computes exactly what
        finalize_minutes would (same expressions, element by element) and defers their history
        update; only a signal with a gap goes through finalize_minutes itself.
        """
        n = amount.shape[1]
        tol = FULL_COVERAGE_TOLERANCE
        coverage = covered / MINUTE_S
        measured = (coverage >= self.window.coverage_threshold - tol) & np.isfinite(amount)
        full = coverage >= 1.0 - tol
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = np.where(full, amount, amount / np.where(covered > 0, covered, 1.0) * MINUTE_S)
        quality = np.where(full, np.int8(MinuteQuality.MEASURED), np.int8(MinuteQuality.PARTIAL)).astype(np.int8)
        no_rule = np.full(n, "", dtype=object)
        all_measured = measured.all(axis=1)
        out: dict[str, SignalMinutes] = {}
        for i, name in enumerate(self.signals.names):
            if all_measured[i]:
                self._defer_history(i, scaled[i])
                out[name] = SignalMinutes(scaled[i], coverage[i], quality[i], no_rule, bad[i], resets[i])
                continue
            cfg = self.signals.configs[i]
            filled, cov, q, rule, history = finalize_minutes(
                amount[i],
                covered[i],
                minute_s=MINUTE_S,
                threshold=self.window.coverage_threshold,
                rule=cfg.substitution,
                history=self._history_of(i),
            )
            self._history[i] = history
            out[name] = SignalMinutes(
                np.asarray(filled, dtype=np.float64),
                np.asarray(cov, dtype=np.float64),
                np.asarray(q, dtype=np.int8),
                np.asarray(rule, dtype=object),
                bad[i],
                resets[i],
            )
        return out

    def _defer_history(self, i: int, measured_amounts: NDArray[np.float64]) -> None:
        pending = self._pending.setdefault(i, [])
        pending.append(measured_amounts)
        if len(pending) * len(measured_amounts) > _HISTORY_CAPACITY:  # bound what waits
            self._history[i] = self._history_of(i)

    def _history_of(self, i: int) -> SubstitutionHistory | None:
        """Signal i's substitution history with the deferred measured minutes folded in."""
        history = self._history.get(i)
        pending = self._pending.pop(i, None)
        if not pending:
            return history
        new = np.concatenate(pending)
        if history is None:
            history = SubstitutionHistory.empty()
        slots = history.next_slot + np.arange(len(new), dtype=np.int64)
        cap = history.capacity
        self._history[i] = SubstitutionHistory(
            amounts=np.concatenate((history.amounts, new))[-cap:],
            slots=np.concatenate((history.slots, slots))[-cap:],
            next_slot=history.next_slot + len(new),
            capacity=cap,
        )
        return self._history[i]


_HISTORY_CAPACITY = SubstitutionHistory.empty().capacity


def _gather(
    ids: NDArray[np.int64], bounds: NDArray[np.int64], ts: NDArray[np.float64], values: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """The readings of signals `ids` (each block sorted by time) and their block offsets."""
    lengths = bounds[ids + 1] - bounds[ids]
    g_bounds = np.concatenate(([0], np.cumsum(lengths)))
    if len(ids) == len(bounds) - 1:  # every signal: nothing to gather
        return ts, values, g_bounds
    idx = np.arange(g_bounds[-1]) - np.repeat(g_bounds[:-1], lengths) + np.repeat(bounds[ids], lengths)
    return ts[idx], values[idx], g_bounds


def _hold_level(
    ts: NDArray[np.float64], values: NDArray[np.float64], bounds: NDArray[np.int64], end: float, max_gap_s: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """A step signal holds its level until the next change: add a reading at the window's end
    for each block whose last reading is before it (and within max_gap_s)."""
    nonempty = bounds[1:] > bounds[:-1]
    last = np.maximum(bounds[1:] - 1, 0)
    hold = nonempty & (ts[last] < end) & (end - ts[last] <= max_gap_s) if len(ts) else np.zeros(len(bounds) - 1, bool)
    if not hold.any():
        return ts, values, bounds
    at = bounds[1:][hold]
    ts = np.insert(ts, at, end)
    values = np.insert(values, at, values[last[hold]])
    return ts, values, bounds + np.concatenate(([0], np.cumsum(hold)))


class MinuteStage:
    """Feeds sample batches from `inbox` into a MinuteWindow and hands closed frames on."""

    def __init__(
        self,
        window: MinuteWindow,
        inbox: asyncio.Queue[SampleBatch],
        on_frame: Callable[[MinuteFrame], Awaitable[None]],
        clock: Clock,
    ) -> None:
        self._window, self._inbox, self._on_frame, self._clock = window, inbox, on_frame, clock

    @property
    def window(self) -> MinuteWindow:
        return self._window

    async def run(self) -> None:
        while True:
            close_at = self._window.next_minute + MINUTE_S + self._window.window.delay_s
            try:
                async with asyncio.timeout(max(0.0, self._clock.real_delay(close_at))):
                    batch = await self._inbox.get()
                self._window.ingest(batch)
                continue
            except TimeoutError:
                pass
            # drain what already arrived so that it counts for the minute being closed
            while not self._inbox.empty():
                self._window.ingest(self._inbox.get_nowait())
            frame = self._window.close_due(self._clock.now())
            if frame is not None:
                await self._on_frame(frame)
