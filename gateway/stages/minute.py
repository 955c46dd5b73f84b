"""Samples -> minutes: the window that decides when a minute is complete.

Theory of operation. A minute is the half-open interval [M, M + 60 s) of the site's clock
(stored as UTC epoch seconds; sites without DST make wall-clock and UTC minutes the same, and
zones with odd offsets still align because every offset in use is a whole number of minutes).
Minute M closes when the clock passes M + 60 s + delay_s: by then every source has had `delay_s`
to deliver readings taken inside M *and* the first reading after M + 60, which the integrator
needs to interpolate the right edge. Closing is done for all due minutes at once, so a live
gateway closes one minute per call while a replay closes a day per call, through the same code.

What a minute is made of. Minute M's figures depend only on the readings stamped before its
close, M + 60 + delay_s, so a frame of any size gives the minutes a live gateway closes one at a
time (a day-long replay frame holds readings its first minutes never had, and must not use them
there). Content known only from a later reading goes to the minutes still open when it comes
(analytics.aggregate, `close_lag_s`):
  * rate, trapezoid: the segment crossing M + 60 needs its end reading. Stamped after the close,
    the segment's seconds in M are uncovered (M is partial and scaled, or substituted). A delay_s
    longer than the poll interval avoids this.
  * rate, left (a step signal): a level holds from its reading until the next one or for
    max_gap_s, so M's part is known when M ends; nothing is left out.
  * counter: a delta whose later reading comes after M's close gives M nothing; its seconds in M
    are uncovered and substituted by the signal's rule. Booking the delta to M would take a
    correction of a closed minute, so across a silence longer than delay_s the quantity of the
    closed minutes is estimated, live and in a replay alike.
  * interval_total: an end-labelled row is stamped when its interval ends, so its minutes are
    measured only if delay_s >= interval_s - 60 s (the UCI meter: 900 s); the minutes that closed
    before the row arrived are substituted. A start-labelled row precedes its minutes.
  * instant: no amount.
Waiting instead (closing M only once every signal's next reading is in) would hold all signals'
minutes for the slowest silence; delay_s is the wait, and the same delay_s gives the same minutes.

Plausibility before accounting. Every reading entering the window is checked against its
signal's bounds (SignalConfig.reading_bounds: the physical bounds of its unit and kind from
analytics/units.py, tightened by the site file; a counter's width), whatever its source: Modbus,
MQTT or a replayed file. A GOOD reading outside them, or infinite, becomes OUT_OF_RANGE (a NaN
one NO_READING): like any reading that is not GOOD it is never integrated, so its seconds are
uncovered and the minute is partial or substituted by its signal's rule, never measured from
it; the minute counts it (MinuteFrame.out_of_range, the `out_of_range` flag of its rows). A
counter whose increase over an interval is beyond the bound is treated alike
(analytics.aggregate.counter_deltas, max_increase_per_s).

A reading stamped more than [window] future_tolerance_s (default 300 s) ahead of the gateway's
clock (a device or MQTT publisher with a wrong clock or date) is refused and counted as `future`:
kept, it would hold its signal's buffer open towards a minute that may be years away. Only the
live stage passes its clock (`ingest(batch, now=...)`); a replay feeds what its own clock has reached.

Clock steps. The site clock may step (NTP correcting a box that ran without it). The live stage
watches its clock (gateway.core.clock.ClockStepDetector: the wall clock against the steady one,
[window] clock_step_tolerance_s) and tells the window of each step (`clock_stepped`), which logs
it once, counts it (emgate_clock_steps_total) and has the pipeline raise one data_quality alert
`clock_step`. The window's next minute never goes backwards, so no minute is closed twice and the
ledger's order stays that of the minutes:
  * back: the minutes up to the next one are closed already; the window waits until the clock
    reaches it again, and readings stamped before it are counted late, as any late reading. (A
    fresh start that has closed nothing yet simply starts again at the new time.)
  * forward: the minutes the clock jumped over had no time to take readings in; they close at
    once, substituted or missing like any minute without readings, and flagged `clock_step`
    (MinuteFrame.clock_step), with the minute the clock lands in. At most MAX_STEP_MINUTES
    (7 days, as a restart fills) are closed so; the minutes before them are reported (ERROR) and
    left out, rather than writing years of minutes after a jump from a clock that started in 1970.
The flag is not saved in checkpoints: a crash between a step and the close of its minutes flags
them `gateway_restart` instead.

A reading that arrives for a minute already closed is late: it is counted and dropped here (a
correction row is the ledger's business, not the window's). A fresh start (no checkpoint, no
minute in the ledger) begins at the next whole minute: the readings taken before it belong to
no closed minute, so they are kept as the first minute's left edge and not counted late. Readings are kept after a close
only as far as the next close needs them: per signal the last reading before the boundary (a
rate's left edge), the last good one (a counter's base) and everything after it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from analytics.aggregate import counter_deltas, minute_edges, spread_interval_totals
from analytics.batch import concat_ranges, integrate_rate_many
from analytics.substitution import FULL_COVERAGE_TOLERANCE, MinuteQuality, finalize_minutes
from analytics.units import time_unit_s
from gateway.core.clock import Clock, ClockStep, ClockStepDetector, SteadyClock
from gateway.core.model import SampleBatch, SampleQuality
from gateway.core.signals import SignalTable
from gateway.settings.site import WindowConfig
from gateway.stages.minute_buffer import ReadingBuffer, empty_columns
from gateway.stages.minute_history import RULE_NEEDS, HistoryColumns, SignalHistories

log = logging.getLogger(__name__)

MINUTE_S = 60.0
CLOCK_STEP_FLAG = "clock_step"
#: Past this many minutes skipped by a step forward, the earlier ones are reported, not filled
#: (the same bound as a restart's, gateway/ledger/checkpoint.py MAX_RECOVER_MINUTES).
MAX_STEP_MINUTES = 7 * 1440
#: Rate signals integrated per numpy pass at a close (see MinuteWindow.close).
_RATE_BLOCK_SIGNALS = 1024
_KEEP_CHUNK = 65536  # readings per step of MinuteWindow._keep's running count


@dataclass(frozen=True)
class SignalMinutes:
    """One signal's closed minutes: arrays of length n, aligned with MinuteFrame.starts."""

    amount: NDArray[np.float64]  # in the signal's amount unit (t, Nm3, kWh, ...), substituted where flagged
    coverage: NDArray[np.float64]  # covered fraction of each minute, before substitution
    quality: NDArray[np.int8]  # analytics.substitution.MinuteQuality codes
    rule: NDArray[np.object_]  # substitution rule used, "" where measured
    bad_samples: NDArray[np.int32]  # readings in the minute that were not GOOD
    resets: NDArray[np.int32]  # counter resets detected
    out_of_range: NDArray[np.int32]  # readings outside their bounds, and implausible counter increases


@dataclass(frozen=True)
class MinuteFrame:
    """Several consecutive closed minutes for every signal, as (signal x minute) arrays.

    Row `rows[name]` of each 2-D array is that signal's minutes, aligned with `starts`. Columns
    rather than one object per signal: a close builds them without a Python step per signal, and
    the emission stage takes its streams' rows with one index.
    """

    starts: NDArray[np.float64]  # minute starts, epoch s
    rows: Mapping[str, int]  # signal name -> row; the same object for every frame of a window
    amount: NDArray[np.float64]  # in the signal's amount unit (t, Nm3, kWh, ...), substituted where flagged
    coverage: NDArray[np.float64]  # covered fraction of each minute, before substitution
    quality: NDArray[np.int8]  # analytics.substitution.MinuteQuality codes
    rule: NDArray[np.object_]  # substitution rule used, "" where measured
    bad_samples: NDArray[np.int32]  # readings in the minute that were not GOOD
    resets: NDArray[np.int32]  # counter resets detected
    out_of_range: NDArray[np.int32]  # readings outside their bounds, and implausible counter increases
    late_samples: int = 0
    clock_step: NDArray[np.bool_] | None = None  # per minute: closed after a step of the clock jumped over it

    @property
    def signals(self) -> Mapping[str, SignalMinutes]:
        """One signal's minutes at a time (views of the rows), for callers that want them by name."""
        return _SignalRows(self)


class _SignalRows(Mapping[str, SignalMinutes]):
    def __init__(self, frame: MinuteFrame) -> None:
        self._frame = frame

    def __getitem__(self, name: str) -> SignalMinutes:
        f, r = self._frame, self._frame.rows[name]
        return SignalMinutes(
            f.amount[r], f.coverage[r], f.quality[r], f.rule[r], f.bad_samples[r], f.resets[r], f.out_of_range[r]
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self._frame.rows)

    def __len__(self) -> int:
        return len(self._frame.rows)


#: How far ahead of the gateway's clock a reading may be stamped by default ([window]
#: future_tolerance_s); beyond, it is refused (`future`).
FUTURE_TOLERANCE_S = 300.0


@dataclass
class SourceCounts:
    samples: int = 0
    late: int = 0
    future: int = 0  # readings stamped more than [window] future_tolerance_s ahead of the clock, refused


@dataclass(frozen=True)
class WindowState:
    """What a MinuteWindow holds between closes, for checkpoints (gateway/ledger/checkpoint.py).

    The buffered readings (sorted by signal id, then time), what each signal's substitution rule
    can still read of its history, and the first minute not yet closed.
    """

    next_minute: float
    signal_ids: NDArray[np.int32]
    ts: NDArray[np.float64]
    values: NDArray[np.float64]
    quality: NDArray[np.uint8]
    history: HistoryColumns


@dataclass
class WindowCounters:
    samples: int = 0
    late: int = 0
    bad: int = 0
    out_of_range: int = 0  # GOOD readings the window flagged: outside their signal's bounds, or not finite
    minutes_closed: int = 0
    clock_steps: int = 0  # steps of the gateway's clock (MinuteWindow.clock_stepped)
    clock_step_minutes: int = 0  # minutes a step forward jumped over, closed flagged clock_step
    clock_step_lost_minutes: int = 0  # minutes beyond MAX_STEP_MINUTES of a step, not closed
    future: int = 0  # readings stamped more than [window] future_tolerance_s ahead of the clock, refused
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
        # The first minute of a fresh start: no minute before it was closed by this window, so a
        # reading stamped before it is not late (see ingest).
        self._fresh_start: float | None = self.next_minute
        self._buffer = ReadingBuffer(len(self.signals))
        needs = [RULE_NEEDS[cfg.substitution] for cfg in self.signals.configs]
        self._histories = SignalHistories(np.array(needs, dtype=np.int64))
        self._rows = self.signals.index
        self._groups: dict[tuple[float, float, str], NDArray[np.int64]] | None = None
        self._others: list[int] | None = None
        # Each signal's accepted range, indexed by signal id (a plant's signals share a few configs).
        bounds: dict[int, tuple[float, float]] = {}
        lo_hi = [bounds.setdefault(id(cfg), cfg.reading_bounds()) for cfg in self.signals.configs]
        self._lo = np.array([b[0] for b in lo_hi], dtype=np.float64)
        self._hi = np.array([b[1] for b in lo_hi], dtype=np.float64)
        self._max_increase = [cfg.max_increase_per_s() for cfg in self.signals.configs]
        self._step_spans: list[tuple[float, float]] = []  # [from, to) minutes to flag clock_step at their close

    def export_state(self) -> WindowState:
        """The in-progress state for a checkpoint: the buffer (sorted as a side effect) and
        what each signal's substitution rule can still read of its history."""
        sig, ts, val, qual = self._buffer.sort()  # ts is a new array already
        sig, val, qual = sig.astype(np.int32), val.copy(), qual.copy()  # ids may be held in 16 bits
        self._buffer.saved = len(self._buffer)
        return WindowState(self.next_minute, sig, ts, val, qual, self._histories.columns())

    def export_new_readings(self) -> WindowState:
        """Readings buffered since the last export, for an incremental checkpoint (no history).

        After a close (which sorts the buffer) this is everything buffered; a reading saved
        twice is harmless, because a repeated (signal, ts) pair counts once.
        """
        buffer = self._buffer
        start, buffer.saved = buffer.saved, len(buffer)
        if start == len(buffer):
            return WindowState(self.next_minute, *empty_columns(), HistoryColumns.empty())
        sig, ts, val, qual = buffer.columns(start)
        sig, val, qual = sig.astype(np.int32), val.copy(), qual.copy()  # ts is a new array already
        return WindowState(self.next_minute, sig, ts, val, qual, HistoryColumns.empty())

    def import_state(self, state: WindowState) -> None:
        """Resume from a checkpoint: buffered readings, history and the first unclosed minute."""
        if state.next_minute % MINUTE_S:
            raise ValueError(f"next_minute {state.next_minute} is not on a minute boundary")
        self._fresh_start = None  # the minutes before the checkpoint's are in the ledger
        self.next_minute = float(state.next_minute)
        # a checkpoint written before a bound was tightened (or by an older version) is held to it too
        quality = self._plausible(state.signal_ids, state.values, state.quality)
        self._buffer.replace((state.signal_ids, state.ts, state.values, quality))
        self._histories.load(state.history)

    def ingest(self, batch: SampleBatch, now: float | None = None) -> None:
        """Buffer a batch; readings for minutes already closed are counted late and dropped.
        With `now` (the gateway's clock), readings stamped beyond now + [window] future_tolerance_s
        are counted as future and dropped."""
        n = len(batch.ts)
        self.counters.samples += n
        per_source = self.counters.sources.get(batch.source)
        if per_source is None:
            per_source = self.counters.sources[batch.source] = SourceCounts()
        per_source.samples += n
        if now is not None:
            batch = self._refuse_future(batch, now, per_source)
        if self._fresh_start is not None and (self.counters.minutes_closed or self.next_minute != self._fresh_start):
            self._fresh_start = None  # a minute closed, or a recovery moved the start: the ledger holds those minutes
        # A fresh start begins at the next whole minute, so its first readings precede it. No minute
        # of theirs was closed: they are not late, and they are kept, as the left edge (a rate's, a
        # counter's base) that lets the first minute be measured in full.
        late = batch.ts < self.next_minute if self._fresh_start is None else None
        if late is not None and late.any():
            # its minute is already in the ledger: count it and drop it
            per_source.late += int(late.sum())
            self.counters.late += int(late.sum())
            keep = ~late
            batch = SampleBatch(batch.source, batch.signal_ids[keep], batch.ts[keep], batch.values[keep], batch.quality[keep])
        if len(batch.ts):
            quality = self._plausible(batch.signal_ids, batch.values, batch.quality)
            self._buffer.append(batch.signal_ids, batch.ts, batch.values, quality)

    def _refuse_future(self, batch: SampleBatch, now: float, per_source: SourceCounts) -> SampleBatch:
        """The batch without readings stamped beyond now + future_tolerance_s (NaN times too), counted."""
        tolerance_s = self.window.future_tolerance_s
        ahead = ~(batch.ts <= now + tolerance_s)
        if not ahead.any():
            return batch
        n = int(ahead.sum())
        per_source.future += n
        self.counters.future += n
        if per_source.future == n:  # the first from this source: say so once, /metrics counts the rest
            log.warning(
                "source %s: %d reading(s) stamped more than %.0f s ahead of the gateway clock, e.g. %r at %.0f; "
                "refused (emgate_samples_future): check the device's or publisher's clock",
                batch.source,
                n,
                tolerance_s,
                float(batch.ts[ahead][0]),
                now,
            )
        keep = ~ahead
        return SampleBatch(batch.source, batch.signal_ids[keep], batch.ts[keep], batch.values[keep], batch.quality[keep])

    def _plausible(
        self, signal_ids: NDArray[np.integer], values: NDArray[np.float64], quality: NDArray[np.uint8]
    ) -> NDArray[np.uint8]:
        """`quality` with each GOOD reading outside its signal's bounds (or infinite) made
        OUT_OF_RANGE and each GOOD NaN made NO_READING; the same array when all are in bounds.

        One vectorised pass per batch: two gathers and two comparisons (NaN fails both).
        """
        ok = values >= self._lo[signal_ids]
        ok &= values <= self._hi[signal_ids]
        if np.count_nonzero(ok) == ok.size:  # count_nonzero: a C call, .all() is not
            return quality
        flag = ~ok
        flag &= quality == SampleQuality.GOOD
        n = int(np.count_nonzero(flag))
        if not n:
            return quality
        quality = quality.copy()
        quality[flag] = np.where(np.isnan(values[flag]), SampleQuality.NO_READING, SampleQuality.OUT_OF_RANGE)
        self.counters.out_of_range += n
        return quality

    def clock_stepped(self, step: ClockStep) -> tuple[str, bool]:
        """Take a step of the gateway's clock into account (see the module docstring): what it
        means for the minutes, for the log, and whether minutes are lost (more than MAX_STEP_MINUTES)."""
        self.counters.clock_steps += 1
        if step.size_s < 0:
            if self._fresh_start is not None and not self.counters.minutes_closed and self.next_minute == self._fresh_start:
                # nothing closed, nothing in the ledger: start again at the next whole minute of the new time
                first = math.ceil(step.observed_s / MINUTE_S) * MINUTE_S
                self._buffer = ReadingBuffer(len(self.signals))
                self.next_minute = self._fresh_start = first
                return f"no minute was closed yet; starting again at {_utc(first)}", False
            wait_s = self.next_minute - step.observed_s
            if wait_s <= 0:
                return "no closed minute is affected", False
            return (
                f"the minutes before {_utc(self.next_minute)} are closed already and are not closed again; readings "
                f"stamped before it are counted late (emgate_samples_late_total) until the clock reaches it, "
                f"in {wait_s:,.0f} s",
                False,
            )
        lo = max(self.next_minute, math.floor(step.expected_s / MINUTE_S) * MINUTE_S)
        hi = math.floor(step.observed_s / MINUTE_S) * MINUTE_S + MINUTE_S  # with the minute it lands in
        if hi <= lo:
            return "no minute is skipped", False
        lost = 0
        if (hi - self.next_minute) / MINUTE_S > MAX_STEP_MINUTES:
            first = hi - MAX_STEP_MINUTES * MINUTE_S
            lost = int((first - self.next_minute) // MINUTE_S)
            self.next_minute, lo = first, max(lo, first)
            self.counters.clock_step_lost_minutes += lost
        n = int((hi - lo) // MINUTE_S)
        self._step_spans.append((lo, hi))
        self.counters.clock_step_minutes += n
        what = (
            f"the {n} minute(s) from {_utc(lo)} to {_utc(hi)} had no time to take readings in: they are closed "
            f"now, substituted or missing, flagged {CLOCK_STEP_FLAG}"
        )
        if lost:
            what += f"; the {lost} minute(s) before them are more than {MAX_STEP_MINUTES} to fill and are NOT in the ledger"
        return what, bool(lost)

    def _clock_step_mask(self, starts: NDArray[np.float64], end: float) -> NDArray[np.bool_] | None:
        """Which of the minutes `starts` a step jumped over; spans wholly closed by `end` are done."""
        if not self._step_spans:
            return None
        mask = np.zeros(len(starts), dtype=bool)
        for lo, hi in self._step_spans:
            mask |= (starts >= lo) & (starts < hi)
        self._step_spans = [span for span in self._step_spans if span[1] > end]
        return mask if mask.any() else None

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
        # Views of the buffer, until _keep replaces it. A reading's time is stamps[stamp[j]]: the
        # close builds times a block of signals at a time, never the whole column (5 MB at
        # 620,000 readings, the peak of the close when it was built at once).
        sig, stamp, val, qual, stamps = self._buffer.sort_stamped()
        k_signals = len(self.signals)
        bounds = np.searchsorted(sig, np.arange(k_signals + 1, dtype=sig.dtype))  # sig's dtype: else a copy of sig
        good = qual == SampleQuality.GOOD
        # NaN stands in for a reading that is not GOOD, a block at a time: for the whole buffer at
        # once it was a copy of the values column (+5 MB at a close of 620,000 readings).
        gaps = None if good.all() else good
        amount = np.zeros((k_signals, n))
        covered = np.zeros((k_signals, n))
        resets = np.zeros((k_signals, n), dtype=np.int32)
        lag_s = self.window.delay_s  # each minute gets what was stamped before its own close, whatever n
        for (unit_s, gap_s, method), group in self._rate_groups().items():
            # A block of signals at a time: integrating all of them in one pass made a dozen
            # temporaries the size of the buffer (+33 MB RSS at each close of 10,000 signals polled
            # every second); a block's are ~1/10 of that, at the same CPU. The blocks depend only
            # on the signal table, so a live close and a replay integrate alike.
            for lo in range(0, len(group), _RATE_BLOCK_SIGNALS):
                ids = group[lo : lo + _RATE_BLOCK_SIGNALS]
                g_ts, g_val, g_bounds = _gather(ids, bounds, stamp, stamps, val, gaps)
                amount[ids], covered[ids] = integrate_rate_many(
                    g_ts, g_val, g_bounds, edges, time_unit_s=unit_s, max_gap_s=gap_s, method=method, close_lag_s=lag_s
                )
        out_of_range = np.zeros((k_signals, n), dtype=np.int32)
        for i in self._other_ids():
            lo, hi = int(bounds[i]), int(bounds[i + 1])
            usable = val[lo:hi] if gaps is None else np.where(good[lo:hi], val[lo:hi], np.nan)
            amount[i], covered[i], resets[i], out_of_range[i] = self._other_minutes(
                i, stamps[stamp[lo:hi]], usable, good[lo:hi], edges
            )
        bad = np.zeros((k_signals, n), dtype=np.int32)
        flagged = ~good & ((stamps >= edges[0]) & (stamps < end))[stamp]
        if flagged.any():
            f_ts = stamps[stamp[flagged]]
            cell = (sig[flagged], ((f_ts - edges[0]) // MINUTE_S).astype(np.int64))
            np.add.at(bad, cell, 1)
            self.counters.bad += int(flagged.sum())
            implausible = qual[flagged] == SampleQuality.OUT_OF_RANGE
            if implausible.any():
                np.add.at(out_of_range, (cell[0][implausible], cell[1][implausible]), 1)
        amount, coverage, quality, rule = self._finalize(amount, covered)
        self._keep(sig, stamp, stamps, val, qual, good, bounds, end)
        self.next_minute = end
        self.counters.minutes_closed += n
        return MinuteFrame(
            starts,
            self._rows,
            amount,
            coverage,
            quality,
            rule,
            bad,
            resets,
            out_of_range,
            late_samples=self.counters.late,
            clock_step=self._clock_step_mask(starts, end),
        )

    def _keep(
        self,
        sig: NDArray[np.int32],
        stamp: NDArray[np.int32],
        stamps: NDArray[np.float64],
        val: NDArray[np.float64],
        qual: NDArray[np.uint8],
        good: NDArray[np.bool_],
        bounds: NDArray[np.int64],
        end: float,
    ) -> None:
        """Keep what the next close needs (arrays sorted by signal, then time): each signal's
        readings from its last one before `end` (a rate's left edge, a level, a start-labelled
        row) on, and its last GOOD one before `end` as well: a counter skips bad readings, so
        that one is its base. Dropping it would lose the delta across the close that a close
        of more minutes keeps.
        """
        # Positions as int32 where they fit: these arrays are as long as the buffer, and int64
        # ones made this step a peak of the close (+5 MB at 620,000 readings, +10 MB with gaps).
        # (A reading's time is stamps[stamp[j]], see close.)
        pos = np.int32 if len(stamp) < 2**31 - 1 else np.int64
        before = stamps < end  # per stamp
        counts = before.astype(pos)
        running: NDArray[np.signedinteger[Any]] = np.zeros(len(stamp) + 1, dtype=pos)
        for lo in range(0, len(stamp), _KEEP_CHUNK):  # 0/1 as counts, in chunks: no full-size temporary
            running[1 + lo : 1 + lo + _KEEP_CHUNK] = counts[stamp[lo : lo + _KEEP_CHUNK]]
        np.cumsum(running[1:], out=running[1:])
        before_end = running[bounds[1:]].astype(np.int64) - running[bounds[:-1]]
        keep_from = bounds[:-1] + np.maximum(before_end - 1, 0)
        first, lengths = keep_from, bounds[1:] - keep_from
        if not good.all():
            last_good = np.where(good & before[stamp], np.arange(len(stamp), dtype=pos), pos(-1))
            np.maximum.accumulate(last_good, out=last_good)
            base = last_good[np.minimum(keep_from, len(stamp) - 1)]  # < bounds[:-1]: none in the signal
            extra = ((base >= bounds[:-1]) & (base < keep_from)).astype(np.int64)
            first = np.column_stack((base, keep_from)).ravel()
            lengths = np.column_stack((extra, lengths)).ravel()
        idx = concat_ranges(first, lengths)  # a few rows per signal: no pass over all of them
        self._buffer.replace((sig[idx], stamps[stamp[idx]], val[idx], qual[idx]))

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
        if self._others is None:
            self._others = [i for i, cfg in enumerate(self.signals.configs) if cfg.kind != "rate"]
        return self._others

    def _other_minutes(
        self, i: int, ts: NDArray[np.float64], usable: NDArray[np.float64], good: NDArray[np.bool_], edges: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int32], NDArray[np.int32]]:
        """Amount, covered seconds, counter resets and implausible counter increases per minute."""
        cfg = self.signals.configs[i]
        n = len(edges) - 1
        none = np.zeros(n, dtype=np.int32)
        if cfg.kind == "counter":
            cm = counter_deltas(
                ts[good],
                usable[good],
                edges,
                bits=cfg.counter_bits,
                scale=cfg.counter_scale,
                max_rate_per_s=cfg.max_rate_per_s,
                max_gap_s=self.signals.max_gap_s[i],
                close_lag_s=self.window.delay_s,
                max_increase_per_s=self._max_increase[i],
            )
            return cm.amount, cm.covered_s, cm.resets.astype(np.int32), cm.implausible.astype(np.int32)
        if cfg.kind == "interval_total":
            amount, covered = spread_interval_totals(
                ts, usable, edges, interval_s=cfg.interval_s, label=cfg.interval_label, close_lag_s=self.window.delay_s
            )
            return amount, covered, none, none
        # instant values are not activity data; they are summarised elsewhere
        return np.zeros(n), np.full(n, MINUTE_S), none, none

    def _finalize(
        self, amount: NDArray[np.float64], covered: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int8], NDArray[np.object_]]:
        """Amount, coverage, quality and rule of every signal's minutes (analytics.substitution's rules).

        Signals whose minutes are all measured take a vectorised path that computes exactly what
        finalize_minutes would (same expressions, element by element) and defers their history
        update; only a signal with a gap goes through finalize_minutes itself.
        """
        tol = FULL_COVERAGE_TOLERANCE
        coverage = covered / MINUTE_S
        measured = (coverage >= self.window.coverage_threshold - tol) & np.isfinite(amount)
        full = coverage >= 1.0 - tol
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = np.where(full, amount, amount / np.where(covered > 0, covered, 1.0) * MINUTE_S)
        quality = np.where(full, np.int8(MinuteQuality.MEASURED), np.int8(MinuteQuality.PARTIAL)).astype(np.int8)
        rule = np.full(amount.shape, "", dtype=object)
        gaps = np.flatnonzero(~measured.all(axis=1))
        for i in gaps.tolist():
            cfg = self.signals.configs[i]
            filled, cov, q, used, history = finalize_minutes(
                amount[i],
                covered[i],
                minute_s=MINUTE_S,
                threshold=self.window.coverage_threshold,
                rule=cfg.substitution,
                history=self._histories.of(i),
            )
            self._histories.set(i, history)
            scaled[i], coverage[i], quality[i], rule[i] = filled, cov, q, used
        self._histories.add(scaled, gaps)
        return scaled, coverage, quality, rule


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _gather(
    ids: NDArray[np.int64],
    bounds: NDArray[np.int64],
    stamp: NDArray[np.int32],
    stamps: NDArray[np.float64],
    values: NDArray[np.float64],
    good: NDArray[np.bool_] | None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """The times and values of signals `ids` (each block sorted by time) and their block offsets;
    a reading's time is stamps[stamp[j]]. Values of readings not `good` are NaN (None: all are)."""
    lengths = bounds[ids + 1] - bounds[ids]
    g_bounds = np.concatenate(([0], np.cumsum(lengths)))
    if len(ids) and int(ids[-1]) - int(ids[0]) == len(ids) - 1:  # consecutive signals: values as a view
        lo, hi = int(bounds[ids[0]]), int(bounds[ids[-1] + 1])
        g_ts, g_val = stamps[stamp[lo:hi]], values[lo:hi]
        g_good = None if good is None else good[lo:hi]
    else:
        idx = concat_ranges(bounds[ids], lengths)
        g_ts, g_val = stamps[stamp[idx]], values[idx]
        g_good = None if good is None else good[idx]
    if g_good is not None:
        g_val = np.where(g_good, g_val, np.nan)
    return g_ts, g_val, g_bounds


class MinuteStage:
    """Feeds sample batches from `inbox` into a MinuteWindow and hands closed frames on.

    Every look at the clock (`now`) also watches it for steps when it keeps steady time
    (gateway.core.clock.SteadyClock): a step is logged once, told to the window and handed to
    `on_clock_step` (the pipeline raises the alert there).
    """

    max_wait_s = MINUTE_S  # real seconds between looks at the clock at most (see run)

    def __init__(
        self,
        window: MinuteWindow,
        inbox: asyncio.Queue[SampleBatch],
        on_frame: Callable[[MinuteFrame], Awaitable[None]],
        clock: Clock,
        on_clock_step: Callable[[ClockStep, str], None] | None = None,
    ) -> None:
        self._window, self._inbox, self._on_frame, self._clock = window, inbox, on_frame, clock
        self._on_clock_step = on_clock_step
        self.lock = asyncio.Lock()  # held while the window closes in a worker thread (_close_due)
        self._steps = ClockStepDetector(clock, window.window.clock_step_tolerance_s) if isinstance(clock, SteadyClock) else None

    def now(self) -> float:
        """The clock's time; a step since the last look is handled first (see the class docstring)."""
        if self._steps is None:
            return self._clock.now()
        now, step = self._steps.observe()
        if step is not None:
            what, lost = self._window.clock_stepped(step)
            (log.error if lost else log.warning)(
                "the gateway clock stepped %s by %s s, from %s to %s (beyond %.0f s of the steady clock): %s; "
                "check the box's time synchronisation (NTP)",
                "forward" if step.size_s > 0 else "back",
                f"{abs(step.size_s):,.0f}",
                _utc(step.expected_s),
                _utc(step.observed_s),
                self._steps.tolerance_s,
                what,
            )
            if self._on_clock_step is not None:
                self._on_clock_step(step, what)
        return now

    @property
    def window(self) -> MinuteWindow:
        return self._window

    async def run(self) -> None:
        self.now()  # the first look: a step from here on is seen, even before the first batch or close
        while True:
            close_at = self._window.next_minute + MINUTE_S + self._window.window.delay_s
            try:
                # a look at the clock at least every max_wait_s, readings or not: a step is seen within
                # it, and a wait computed before a step (a day, after a step back) does not outlast it
                async with asyncio.timeout(min(max(0.0, self._clock.real_delay(close_at)), self.max_wait_s)):
                    batch = await self._inbox.get()
                self._window.ingest(batch, now=self.now())
                continue
            except TimeoutError:
                pass
            # drain what already arrived so that it counts for the minute being closed
            while not self._inbox.empty():
                self._window.ingest(self._inbox.get_nowait(), now=self.now())
            frame = await self._close_due(self.now())
            if frame is not None:
                await self._on_frame(frame)

    async def _close_due(self, now: float) -> MinuteFrame | None:
        """The window's close, in a worker thread: the sources keep polling meanwhile (a close of
        100,000 signals takes over a second; a poll that waited for it on the event loop missed
        its tick, and its readings were never taken). Readings that arrive meanwhile wait in the
        inbox. The window is the thread's until the close returns: whatever else reads it on the
        event loop (the checkpoint loop) takes `self.lock` first; and a cancel (a stop) arriving
        meanwhile waits for the close to end and hands its frame on before it takes effect, so a
        stop never saves a window half closed, nor one past minutes that never reached the ledger."""
        if not self._window.due(now):
            return None
        async with self.lock:
            closing = asyncio.get_running_loop().run_in_executor(None, self._window.close_due, now)
            try:
                return await asyncio.shield(closing)
            except asyncio.CancelledError:
                frame = await _uncancellable(closing)
                if frame is not None:
                    await self._on_frame(frame)
                raise


async def _uncancellable(work: asyncio.Future[MinuteFrame | None]) -> MinuteFrame | None:
    """`work`'s result, waited for through any further cancels (a close lasts a second or two)."""
    while True:
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            continue
