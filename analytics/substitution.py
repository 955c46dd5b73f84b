"""Minute coverage, quality codes and missing-data substitution (accounting reference 5.1, 5.2).

Theory of operation. A minute with coverage (covered seconds / minute) at or above the threshold is
*measured*: its amount is scaled to the full minute (amount / covered x minute, the mean covered rate
over the whole minute). A minute below the threshold is filled by a rule from earlier measured
minutes:

    none          0, quality MISSING (only for signals that are silent when off)
    last_good     the last measured minute's (full-minute) amount
    hour_average  mean of the measured minutes among the 60 minutes ending with the last measured
                  minute, i.e. the hour before the gap started. For a one-minute gap that is the
                  previous hour; anchoring it at the gap start keeps the substitute constant
                  through a long gap instead of running out after an hour.
    lookback_max  highest of the last `lookback_minutes` measured minutes ("24 h of operation":
                  operating minutes are counted, not wall-clock minutes, as 40 CFR 75 counts
                  monitor operating hours).

A rule with no measured minute to draw on gives MISSING with amount 0: nothing is invented.
Substituted minutes keep their raw coverage and the rule used.

Live (one minute per call) and replay (a day per call) must give identical results, so the state
between calls is an explicit, immutable `SubstitutionHistory`: the most recent measured amounts with
their minute index. Every substitute is computed from a fixed window of that sequence with a fixed
summation order, never from running sums, so the batch size cannot change a single bit. The history
assumes consecutive minutes across calls: pass skipped minutes with covered_s = 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple, TypeVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

F64 = NDArray[np.float64]
_Scalar = TypeVar("_Scalar", bound=np.generic)

RULES = ("none", "last_good", "hour_average", "lookback_max")
HOUR_MINUTES = 60
#: Coverage within this of 1 (or of the threshold) counts as reaching it: covered seconds are float
#: differences of epoch times.
FULL_COVERAGE_TOLERANCE = 1e-9


class MinuteQuality(IntEnum):
    """Quality code of a finalised minute (stored as int8)."""

    MEASURED = 0  # coverage 1
    PARTIAL = 1  # threshold <= coverage < 1, scaled to the full minute
    SUBSTITUTED = 2  # below threshold, filled by a rule
    MISSING = 3  # below threshold, no value (rule "none", or no history for the rule)
    ESTIMATED = 4  # value from a model or a spread quantity (not produced here)

    @property
    def label(self) -> str:
        """Lowercase name used in exports and line protocol, e.g. "partial"."""
        return self.name.lower()


def _readonly(arr: NDArray[_Scalar]) -> NDArray[_Scalar]:
    out = np.array(arr, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class SubstitutionHistory:
    """Immutable state carried from one `finalize_minutes` call to the next.

    Attributes:
        amounts: float64, full-minute amounts of the most recent measured minutes, oldest first
            (read-only).
        slots: int64, minute index of each amount (read-only, increasing).
        next_slot: index the next finalised minute gets.
        capacity: how many measured minutes are kept: max(lookback_minutes, 60).
    """

    amounts: F64 = field(default_factory=lambda: _readonly(np.zeros(0)))
    slots: NDArray[np.int64] = field(default_factory=lambda: _readonly(np.zeros(0, dtype=np.int64)))
    next_slot: int = 0
    capacity: int = 1440

    def __post_init__(self) -> None:
        amounts = np.asarray(self.amounts, dtype=np.float64)
        slots = np.asarray(self.slots, dtype=np.int64)
        if amounts.ndim != 1 or amounts.shape != slots.shape:
            raise ValueError(f"amounts and slots must be 1-D of the same shape, got {amounts.shape} and {slots.shape}")
        if amounts.size > self.capacity:
            raise ValueError(f"history holds {amounts.size} amounts, more than its capacity {self.capacity}")
        if slots.size and (np.any(np.diff(slots) <= 0) or slots[-1] >= self.next_slot):
            raise ValueError("history slots must be increasing and below next_slot")
        object.__setattr__(self, "amounts", _readonly(amounts))
        object.__setattr__(self, "slots", _readonly(slots))

    @classmethod
    def _trusted(cls, amounts: F64, slots: NDArray[np.int64], next_slot: int, capacity: int) -> SubstitutionHistory:
        """Build without re-validating (finalize_minutes produces consistent state); copies, read-only."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "amounts", _readonly(amounts))
        object.__setattr__(obj, "slots", _readonly(slots))
        object.__setattr__(obj, "next_slot", int(next_slot))
        object.__setattr__(obj, "capacity", int(capacity))
        return obj

    @classmethod
    def empty(cls, lookback_minutes: int = 1440) -> SubstitutionHistory:
        """A history with no measured minute yet."""
        return cls(next_slot=0, capacity=_capacity(lookback_minutes))

    def extended(self, measured: ArrayLike) -> SubstitutionHistory:
        """This history followed by consecutive measured minutes: what `finalize_minutes` returns
        as history when every minute it is given is measured, without the checks a caller's
        arbitrary state needs (a gateway extends a history per signal per close)."""
        new = np.asarray(measured, dtype=np.float64)
        slots = self.next_slot + np.arange(new.size, dtype=np.int64)
        cap = self.capacity
        return SubstitutionHistory._trusted(
            np.concatenate((self.amounts, new))[-cap:], np.concatenate((self.slots, slots))[-cap:], self.next_slot + new.size, cap
        )

    def last(self, n: int) -> SubstitutionHistory:
        """This history keeping only its last `n` measured minutes (at most), same next slot and
        capacity: all a rule that reads n entries needs (a window keeps 1 for last_good)."""
        if self.amounts.size <= n:
            return self
        keep = self.amounts.size - n
        return SubstitutionHistory._trusted(self.amounts[keep:], self.slots[keep:], self.next_slot, self.capacity)

    @property
    def last_good(self) -> float | None:
        """The last measured minute's amount, or None."""
        return float(self.amounts[-1]) if self.amounts.size else None


def _capacity(lookback_minutes: int) -> int:
    if int(lookback_minutes) != lookback_minutes or lookback_minutes < 1:
        raise ValueError(f"lookback_minutes must be an integer >= 1, got {lookback_minutes!r}")
    return max(int(lookback_minutes), HOUR_MINUTES)


class FinalizedMinutes(NamedTuple):
    """Result of `finalize_minutes` (a tuple; unpack it or use the names).

    Attributes:
        amount: float64, final amount per minute (measured, scaled, substituted or 0).
        coverage: float64, raw covered_s / minute_s.
        quality: int8 `MinuteQuality` codes.
        rule_used: str array: "" for measured or partial minutes, else the rule applied (also when
            it found nothing and the minute is MISSING).
        history: state to pass to the next call.
    """

    amount: F64
    coverage: F64
    quality: NDArray[np.int8]
    rule_used: NDArray[np.str_]
    history: SubstitutionHistory


def finalize_minutes(
    amount: ArrayLike,
    covered_s: ArrayLike,
    *,
    minute_s: float = 60.0,
    threshold: float = 0.75,
    rule: str = "last_good",
    history: SubstitutionHistory | None = None,
    lookback_minutes: int = 1440,
) -> FinalizedMinutes:
    """Apply the coverage threshold and the substitution rule to consecutive minutes of one signal.

    Args:
        amount: float64 raw amount per minute (from `analytics.aggregate`); a non-finite amount
            makes the minute unmeasured whatever its coverage.
        covered_s: float64 covered seconds per minute, in [0, minute_s].
        minute_s: minute length in seconds.
        threshold: lowest coverage of a measured minute, in (0, 1].
        rule: "none", "last_good", "hour_average" or "lookback_max" (see the module docstring).
        history: state returned by the previous call for the same signal, or None to start empty.
        lookback_minutes: measured minutes searched by "lookback_max"; must match the history's.

    Returns:
        FinalizedMinutes(amount, coverage, quality, rule_used, history).

    Raises:
        ValueError: shapes differ, covered_s outside [0, minute_s], bad parameters, or a history
            built with another lookback_minutes.
    """
    a = np.asarray(amount, dtype=np.float64)
    c = np.asarray(covered_s, dtype=np.float64)
    if a.ndim != 1 or a.shape != c.shape:
        raise ValueError(f"amount and covered_s must be 1-D of the same shape, got {a.shape} and {c.shape}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    minute_s = float(minute_s)
    if not minute_s > 0:
        raise ValueError(f"minute_s must be > 0, got {minute_s!r}")
    threshold = float(threshold)
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    if not np.all(np.isfinite(c)) or np.any(c < 0) or np.any(c > minute_s * (1 + FULL_COVERAGE_TOLERANCE)):
        i = int(np.argmax(~np.isfinite(c) | (c < 0) | (c > minute_s * (1 + FULL_COVERAGE_TOLERANCE))))
        raise ValueError(f"covered_s must be in [0, minute_s={minute_s}]; covered_s[{i}]={c[i]!r}")
    cap = _capacity(lookback_minutes)
    if history is None:
        history = SubstitutionHistory(next_slot=0, capacity=cap)
    elif history.capacity != cap:
        raise ValueError(
            f"history was built for {history.capacity} measured minutes, lookback_minutes={lookback_minutes} "
            f"needs {cap}; start a new history when the lookback changes"
        )

    n = a.size
    coverage = c / minute_s
    # The same float tolerance as for full coverage: 44.99999999 s of 60 is 0.75.
    measured = (coverage >= threshold - FULL_COVERAGE_TOLERANCE) & np.isfinite(a)
    full = coverage >= 1.0 - FULL_COVERAGE_TOLERANCE
    out = np.zeros(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(full, a, a / np.where(c > 0, c, 1.0) * minute_s)
    out[measured] = scaled[measured]
    quality = np.full(n, MinuteQuality.MISSING, dtype=np.int8)
    quality[measured & full] = MinuteQuality.MEASURED
    quality[measured & ~full] = MinuteQuality.PARTIAL
    rule_used = np.full(n, "", dtype="<U12")
    sub = ~measured
    rule_used[sub] = rule

    # The measured sequence so far: history, then this call's measured minutes.
    all_v = np.concatenate((history.amounts, out[measured]))
    slots = history.next_slot + np.arange(n, dtype=np.int64)
    all_s = np.concatenate((history.slots, slots[measured]))
    before = history.amounts.size + np.cumsum(measured) - measured  # measured entries before minute i

    if rule != "none":
        fill = sub & (before > 0)
        if np.any(fill):
            anchors, inv = np.unique(before[fill], return_inverse=True)  # anchor = index of last good + 1
            if rule == "last_good":
                values = all_v[anchors - 1]
            elif rule == "hour_average":
                values = _hour_average(all_v, all_s, anchors)
            else:
                values = _lookback_max(all_v, anchors, int(lookback_minutes))
            out[fill] = values[inv]
            quality[fill] = MinuteQuality.SUBSTITUTED

    new_history = SubstitutionHistory._trusted(all_v[-cap:], all_s[-cap:], history.next_slot + n, cap)
    return FinalizedMinutes(out, coverage, quality, rule_used, new_history)


def _hour_average(all_v: F64, all_s: NDArray[np.int64], anchors: NDArray[np.intp]) -> F64:
    """Mean of the measured entries whose minute lies in the hour ending with entry anchor - 1."""
    cols = np.arange(HOUR_MINUTES)
    idx = anchors[:, None] - HOUR_MINUTES + cols[None, :]  # the 60 entries ending at anchor - 1
    safe = np.maximum(idx, 0)
    last_slot = all_s[anchors - 1]
    use = (idx >= 0) & (all_s[safe] > (last_slot - HOUR_MINUTES)[:, None])
    vals = np.zeros((anchors.size, 64))
    vals[:, :HOUR_MINUTES] = np.where(use, all_v[safe], 0.0)
    # A fixed pairwise tree of elementwise adds: the rounding depends only on the window's values,
    # never on how many anchors (minutes) the call holds, so live and replay agree bit for bit.
    while vals.shape[1] > 1:
        half = vals.shape[1] // 2
        vals = vals[:, :half] + vals[:, half:]
    mean: F64 = vals[:, 0] / use.sum(axis=1)
    return mean


def _lookback_max(all_v: F64, anchors: NDArray[np.intp], lookback: int) -> F64:
    """Max of the `lookback` measured entries ending at entry anchor - 1 (max is exact in any order)."""
    padded = np.concatenate((np.full(lookback - 1, -np.inf), all_v))
    windows = sliding_window_view(padded, lookback)  # row k: entries k - lookback + 1 .. k
    peak: F64 = windows[anchors - 1].max(axis=1)
    return peak
