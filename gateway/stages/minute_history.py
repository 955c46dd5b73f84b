"""The substitution histories of a minute window's signals: kept lazily, exported as columns.

Every close adds one history entry per minute to every signal. Most signals are measured all the
time and never read their history (it serves substitution), so a close's measured amounts are
kept as its (signal x minute) array and folded into a signal's SubstitutionHistory only when the
signal has a gap, or every hour. A history keeps only the entries its signal's rule reads (below):
whole histories would grow to 23 kB a signal within a day, 230 MB at 10,000 signals.

A checkpoint needs every signal's history after every close. Folding them all for it would cost a
Python step per signal per minute, and whole histories are 1,440 minutes of amounts and slots, 23 kB
per signal: 230 MB a minute at 10,000 signals. `columns` exports instead, in a few flat arrays,
what each signal's rule can still read (last_good the last measured minute, hour_average those of
the last hour, lookback_max all of them, none nothing), taken straight from the close arrays where
they hold it. A window resumed from these columns substitutes as one that never stopped: no rule
reads an older entry, and the slots kept place the entries in time as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from analytics.batch import concat_ranges
from analytics.substitution import HOUR_MINUTES, SubstitutionHistory

#: The window's histories hold this many measured minutes (finalize_minutes' default lookback).
CAPACITY = SubstitutionHistory.empty().capacity
#: Entries each rule reads: last_good the last one, hour_average an hour, lookback_max all.
RULE_NEEDS = {"none": 0, "last_good": 1, "hour_average": HOUR_MINUTES, "lookback_max": CAPACITY}
_FOLD_MINUTES = HOUR_MINUTES  # deferred minutes that trigger a fold of every history (memory: 60 x 8 B a signal)
_FOLD_SIGNALS = 256


@dataclass(frozen=True)
class HistoryColumns:
    """Histories of many signals as flat arrays: signal ids[k] holds counts[k] entries, those of
    the signals before it first, in `amounts` and `slots`, and its next slot is next_slot[k]."""

    ids: NDArray[np.int32]
    next_slot: NDArray[np.int64]
    counts: NDArray[np.int64]
    amounts: NDArray[np.float64]
    slots: NDArray[np.int64]

    @classmethod
    def empty(cls) -> HistoryColumns:
        return cls(np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64))

    def check(self) -> None:
        """ValueError unless the columns fit together and every signal's slots increase and stay
        below its next slot (what a SubstitutionHistory checks), in a few vector steps."""
        if not (len(self.ids) == len(self.next_slot) == len(self.counts)) or int(self.counts.sum()) != len(self.amounts):
            raise ValueError("history columns of different lengths")
        if len(self.slots) != len(self.amounts):
            raise ValueError("history amounts and slots of different lengths")
        if len(self.counts) and int(self.counts.min()) < 0:
            raise ValueError("history columns with a negative count")
        ends = np.cumsum(self.counts)
        has = self.counts > 0
        if np.any(self.slots[ends[has] - 1] >= self.next_slot[has]):
            raise ValueError("history slots must be increasing and below next_slot")
        step = np.diff(self.slots) <= 0
        step[ends[:-1][(ends[:-1] > 0) & (ends[:-1] < len(self.slots))] - 1] = False  # across two signals
        if np.any(step):
            raise ValueError("history slots must be increasing and below next_slot")

    def subset(self, keep: NDArray[np.bool_]) -> HistoryColumns:
        """The columns of the signals where `keep` (one flag per entry of ids)."""
        ends = np.cumsum(self.counts)
        entries = concat_ranges((ends - self.counts)[keep], self.counts[keep])
        return HistoryColumns(self.ids[keep], self.next_slot[keep], self.counts[keep], self.amounts[entries], self.slots[entries])

    def histories(self) -> dict[int, SubstitutionHistory]:
        """One SubstitutionHistory per signal id (ValueError if the columns do not fit together)."""
        self.check()
        ends = np.cumsum(self.counts)
        return {
            i: SubstitutionHistory(self.amounts[a:b], self.slots[a:b], next_slot=s, capacity=CAPACITY)
            for i, a, b, s in zip(
                self.ids.tolist(), (ends - self.counts).tolist(), ends.tolist(), self.next_slot.tolist(), strict=True
            )
        }


class SignalHistories:
    """Every signal's substitution history, with recent closes' measured minutes kept as arrays.

    Signals whose rule reads at most one entry (none, last_good: a plant's bulk) keep their
    history as four flat arrays (has a history, last amount, its slot, next slot), brought up to
    date at every close in a few vector steps: no object per signal and nothing deferred for
    them. At 100,000 signals an object each was 35 MB, and an hour of deferred close arrays 48 MB.
    The others (hour_average, lookback_max) keep a SubstitutionHistory each, their close arrays
    deferred and folded lazily as the module docstring says.
    """

    def __init__(self, needs: NDArray[np.int64]) -> None:
        """`needs[i]`: how many entries signal i's rule reads (RULE_NEEDS)."""
        self._needs = needs
        n = len(needs)
        small = needs <= 1
        self._small = small
        # the small signals' histories: whether one exists (else None), its last entry (slot -1: none), next slot
        self._has = np.zeros(n, dtype=bool)
        self._last_amount = np.zeros(n)
        self._last_slot = np.full(n, -1, dtype=np.int64)
        self._next = np.zeros(n, dtype=np.int64)
        # the others: deferred close arrays hold their rows only, row _row[i] for signal i
        self._many = np.flatnonzero(~small)
        self._row = np.full(n, -1, dtype=np.int64)
        self._row[self._many] = np.arange(len(self._many))
        self._history: dict[int, SubstitutionHistory] = {}
        # _deferred[0] is close number _deferred_base; signal i's minutes are pending (not yet in
        # _history) from close number _folded_to[i] on.
        self._deferred: list[NDArray[np.float64]] = []
        self._deferred_base = 0
        self._deferred_minutes = 0
        self._folded_to = np.zeros(n, dtype=np.int64)
        # Every close adds every signal's minutes, so signal i's next slot is _slot0[i] (at the
        # last load) + _minutes, without asking its history.
        self._slot0 = np.zeros(n, dtype=np.int64)
        self._minutes = 0

    def of(self, i: int) -> SubstitutionHistory | None:
        """Signal i's history with its pending minutes folded in."""
        if self._small[i]:
            if not self._has[i]:
                return None
            end = i + 1 if self._last_slot[i] >= 0 else i  # its last entry, or none
            return SubstitutionHistory._trusted(self._last_amount[i:end], self._last_slot[i:end], int(self._next[i]), CAPACITY)
        pending = self._deferred[max(int(self._folded_to[i]) - self._deferred_base, 0) :]
        self._folded_to[i] = self._deferred_base + len(self._deferred)
        history = self._history.get(i)
        if pending:
            row = int(self._row[i])
            history = self._history[i] = _extended(history, np.concatenate([a[row] for a in pending]), int(self._needs[i]))
        return history

    def set(self, i: int, history: SubstitutionHistory) -> None:
        """Signal i's history after finalize_minutes went through this close's minutes."""
        kept = history.last(int(self._needs[i]))
        if not self._small[i]:
            self._history[i] = kept
            return
        self._has[i], self._next[i] = True, kept.next_slot
        if kept.amounts.size:
            self._last_amount[i], self._last_slot[i] = kept.amounts[-1], kept.slots[-1]
        else:
            self._last_slot[i] = -1

    def add(self, amounts: NDArray[np.float64], finalized: NDArray[np.intp]) -> None:
        """A close's amounts (signal x minute). The signals `finalized` are already `set` for
        this close; for the others every minute of it was measured, so a signal's pending
        minutes are all measured ones."""
        k = amounts.shape[1]
        self._minutes += k
        if k == 0:
            return
        # the small signals: their history extended by this close's minutes, the last one kept (none for rule none)
        fold = self._small.copy()
        fold[finalized] = False
        idx = np.flatnonzero(fold)
        nxt = np.where(self._has[idx], self._next[idx], 0) + k
        self._has[idx], self._next[idx] = True, nxt
        one = self._needs[idx] == 1
        self._last_amount[idx[one]] = amounts[idx[one], -1]
        self._last_slot[idx[one]] = nxt[one] - 1
        if not len(self._many):
            return
        self._deferred.append(amounts[self._many])
        self._folded_to[finalized] = self._deferred_base + len(self._deferred)
        self._deferred_minutes += k
        if self._deferred_minutes > _FOLD_MINUTES:  # bound what waits
            self.fold_all()

    def fold_all(self) -> None:
        """Every signal's pending minutes folded into its history; the close arrays dropped."""
        if not self._deferred:
            return
        first = self._pending_from()[self._many]
        total = sum(a.shape[1] for a in self._deferred)
        # a block of signals at a time: all of them at once would copy every deferred amount
        for lo in range(0, len(first), _FOLD_SIGNALS):
            amounts = np.concatenate([a[lo : lo + _FOLD_SIGNALS] for a in self._deferred], axis=1)
            for r in np.flatnonzero(first[lo : lo + _FOLD_SIGNALS] < total).tolist():
                i = int(self._many[lo + r])
                self._history[i] = _extended(self._history.get(i), amounts[r, first[lo + r] :], int(self._needs[i]))
        self._drop_deferred()

    def columns(self) -> HistoryColumns:
        """What each signal's rule can still read, as columns (see the module docstring)."""
        needs = self._needs
        next_slot = self._slot0 + self._minutes
        counts = np.zeros(len(needs), dtype=np.int64)
        small_entry = self._small & self._has & (self._last_slot >= 0) & (needs == 1)
        counts[small_entry] = 1
        many = self._many
        total = sum(a.shape[1] for a in self._deferred)
        pending = total - self._pending_from()[many]
        from_pending = np.minimum(needs[many], pending)
        # the rest from the folded history: a Python step, but only for signals whose rule reads
        # more than their pending minutes (after a fold, or a lookback_max signal)
        base: dict[int, SubstitutionHistory] = {}
        from_base = np.zeros(len(many), dtype=np.int64)
        for r in np.flatnonzero(needs[many] > from_pending).tolist():
            h = self._history.get(int(many[r]))
            if h is not None and h.amounts.size:
                base[r] = h
                from_base[r] = min(int(needs[many[r]] - from_pending[r]), h.amounts.size)
        counts[many] = from_base + from_pending
        ids = np.flatnonzero(counts > 0)
        start = np.zeros(len(needs), dtype=np.int64)
        start[ids] = np.cumsum(counts[ids]) - counts[ids]
        amounts = np.empty(int(counts.sum()))
        slots = np.empty(len(amounts), dtype=np.int64)
        at = start[small_entry]
        amounts[at], slots[at] = self._last_amount[small_entry], self._last_slot[small_entry]
        for r, h in base.items():
            a = int(start[many[r]])
            amounts[a : a + from_base[r]], slots[a : a + from_base[r]] = h.amounts[-from_base[r] :], h.slots[-from_base[r] :]
        rows = np.flatnonzero(from_pending > 0)
        if len(rows):
            f = from_pending[rows]
            width = int(f.max())
            tail = self._last_minutes(rows, width)
            dest = concat_ranges(start[many[rows]] + from_base[rows], f)
            amounts[dest] = tail[np.arange(width)[None, :] >= (width - f)[:, None]]
            slots[dest] = concat_ranges(next_slot[many[rows]] - f, f)  # pending minutes are consecutive
        return HistoryColumns(ids.astype(np.int32), next_slot[ids], counts[ids], amounts, slots)

    def load(self, columns: HistoryColumns) -> None:
        """Resume from exported columns (ValueError if they do not fit together)."""
        columns.check()
        n = len(self._needs)
        ids = columns.ids.astype(np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= n):
            raise ValueError(f"history columns name signal ids outside 0..{n - 1}")
        small = self._small[ids]
        self._history = columns.subset(~small).histories()
        self._has[:] = False
        self._last_slot[:] = -1
        self._has[ids[small]] = True
        self._next[ids[small]] = columns.next_slot[small]
        ends = np.cumsum(columns.counts)
        last = small & (columns.counts > 0) & (self._needs[ids] == 1)
        self._last_amount[ids[last]] = columns.amounts[ends[last] - 1]
        self._last_slot[ids[last]] = columns.slots[ends[last] - 1]
        self._slot0 = np.zeros(n, dtype=np.int64)
        self._slot0[ids] = columns.next_slot
        self._minutes = 0
        self._drop_deferred()

    def _pending_from(self) -> NDArray[np.int64]:
        """Per signal, the column of the deferred minutes (laid end to end) its pending ones start at."""
        col = np.concatenate(([0], np.cumsum([a.shape[1] for a in self._deferred], dtype=np.int64)))
        return col[np.clip(self._folded_to - self._deferred_base, 0, len(self._deferred))]

    def _last_minutes(self, rows: NDArray[np.intp], width: int) -> NDArray[np.float64]:
        """The last `width` deferred minutes of deferred rows `rows`, as (rows x width)."""
        parts, got = [], 0
        for a in reversed(self._deferred):
            parts.append(a[rows])
            got += a.shape[1]
            if got >= width:
                break
        return np.concatenate(parts[::-1], axis=1)[:, -width:]

    def _drop_deferred(self) -> None:
        # close numbers go on, so no _folded_to points past the next close: every later close is pending
        self._deferred_base += len(self._deferred)
        self._deferred = []
        self._deferred_minutes = 0


def _extended(history: SubstitutionHistory | None, measured: NDArray[np.float64], keep: int) -> SubstitutionHistory:
    """`history` followed by `measured` (every minute counts toward the next slot), keeping `keep` entries."""
    return (SubstitutionHistory.empty() if history is None else history).extended(measured).last(keep)
