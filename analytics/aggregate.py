"""Samples of one signal -> amounts per minute (accounting reference 5.1, 5.3, 5.4).

Every function takes the samples of ONE signal sorted by time and `edges`, n + 1 strictly increasing
minute boundaries in float64 epoch seconds (UTC). Minute m is the half-open interval
[edges[m], edges[m + 1]). The edges are usually 60 s apart, but any increasing grid works (a whole
day for replay, a single minute live). Every result array has length n.

Common policy:
    * `ts` is float64 epoch seconds, finite and non-decreasing (ValueError otherwise). Equal
      timestamps are allowed.
    * Values are float64; NaN (or +-inf) means "no usable value" (bad-quality samples arrive as NaN).
    * Samples outside [edges[0], edges[-1]) are used only for the segment that crosses a boundary.
      To interpolate at the window's first and last edge, pass the last sample before edges[0]
      and the first sample at or after edges[-1] as well (the minute stage carries them over).

Theory of operation. Each method turns the samples into segments [start, start + duration), sorted
and non-overlapping, each with a density that is linear in time (rates), constant (counters,
interval totals) or a point mass (a counter delta over zero seconds). The cumulative integral F(t)
of that density is known exactly at the segment starts (a cumulative sum) and inside a segment
(a quadratic), so the amount in minute m is F(edges[m + 1]) - F(edges[m]). Minute amounts
therefore telescope: their sum is the integral over the whole span, whatever the edges. This costs
O(N) for the cumulative sum plus O(n log N) for locating the edges.

Closing as a live gateway does (`close_lag_s`). The gateway fixes minute m at edges[m + 1] + its
delay and never revisits it, but some content is known only from a sample stamped later: a
trapezoid segment's end value, a counter's next reading, an end-labelled interval row. Given
close_lag_s, a segment stamped at or after a minute's close adds nothing to that minute (it still
counts in the minutes that close after it), so each minute depends only on the samples stamped
before its own close, and a day computed at once equals its minutes computed one at a time. The
minute sums then telescope to the integral less what those minutes left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

F64 = NDArray[np.float64]

_METHODS = ("trapezoid", "left")
_LABELS = ("end", "start")


# --------------------------------------------------------------------------- validation


def _as_f64(name: str, x: ArrayLike) -> F64:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def _check_edges(edges: ArrayLike) -> F64:
    e = _as_f64("edges", edges)
    if e.size < 2:
        raise ValueError(f"edges must hold at least 2 boundaries (n + 1 for n minutes), got shape {e.shape}")
    if not np.isfinite(np.add.reduce(e)):
        raise ValueError("edges must be finite epoch seconds; found NaN or inf")
    if not (e[1:] > e[:-1]).all():
        i = int(np.argmax(e[1:] <= e[:-1]))
        raise ValueError(f"edges must be strictly increasing; edges[{i}]={e[i]!r} >= edges[{i + 1}]={e[i + 1]!r}")
    return e


def _check_samples(ts: ArrayLike, values: ArrayLike, values_name: str = "values") -> tuple[F64, NDArray[Any], F64]:
    """Validate one signal's samples; returns (ts, values, np.diff(ts)) so callers reuse the diff."""
    t = _as_f64("ts", ts)
    v = np.asarray(values)
    if v.shape != t.shape:
        raise ValueError(f"ts and {values_name} must have the same shape, got {t.shape} and {v.shape}")
    # A sum is NaN or inf iff some element is (epoch seconds cannot overflow it): one cheap pass.
    if t.size and not np.isfinite(np.add.reduce(t)):
        i = int(np.argmax(~np.isfinite(t)))
        raise ValueError(f"ts must be finite epoch seconds; ts[{i}]={t[i]!r} (drop samples without a time)")
    dt = t[1:] - t[:-1]
    if dt.size and dt.min() < 0:
        i = int(np.argmax(dt < 0))
        raise ValueError(f"ts must be sorted (non-decreasing); ts[{i}]={t[i]!r} > ts[{i + 1}]={t[i + 1]!r}")
    return t, v, dt


def _check_positive(name: str, x: float) -> float:
    x = float(x)
    if not x > 0.0:
        raise ValueError(f"{name} must be > 0, got {x!r}")
    return x


def _window(t: F64, edges: F64) -> tuple[int, int]:
    """Samples that can contribute to [edges[0], edges[-1]): from the last one before edges[0]
    through the first one at or after edges[-1], as [lo, hi). Samples exactly at edges[0] are all
    kept: a counter delta between equal timestamps there belongs to the first minute."""
    lo = max(int(np.searchsorted(t, edges[0], side="left")) - 1, 0)
    hi = min(int(np.searchsorted(t, edges[-1], side="left")) + 1, t.size)
    return lo, hi


# --------------------------------------------------------------------------- core


class _Segments:
    """Sorted, non-overlapping segments [starts, starts + durations) located against the edges.

    For each edge, `j` is the last segment starting strictly before it (so a point mass at exactly
    an edge belongs to the minute that starts there, as minutes are half-open) and `x` the edge's
    offset into that segment, clipped to [0, duration]. Only O(n) values are gathered here; the
    full-length work is one cumulative sum per channel.

    With `close_lag_s`, minute m is taken as closed at edges[m + 1] + close_lag_s, and a segment
    whose content is known only at `known_at` (its end reading, an end-labelled row) adds nothing
    to a minute that closed before then. Only the segment crossing a minute's end can be that
    late (every other one ends inside the minute), so `late[m]` marks minute m's.
    """

    def __init__(
        self, starts: F64, durations: F64, edges: F64, known_at: F64 | None = None, close_lag_s: float | None = None
    ) -> None:
        j = np.searchsorted(starts, edges, side="left") - 1
        self.before = j < 0
        self.j = np.maximum(j, 0)
        self.d = durations[self.j]
        self.x = np.minimum(np.maximum(edges - starts[self.j], 0.0), self.d)
        self.full = self.x >= self.d
        self.late = None
        if close_lag_s is not None and known_at is not None and known_at.size:
            # a difference, not edges + close_lag_s: it is exact, so shifted time axes (see
            # analytics/batch.py) decide every tie the same way
            self.late = ~self.before[1:] & (known_at[self.j[1:]] - edges[1:] >= close_lag_s)

    def per_minute(self, total: F64, inside: F64) -> F64:
        """Per-minute integral of a channel.

        Args:
            total: (M,) exact integral of the channel over each segment (a point mass if zero-length).
            inside: (n + 1,) integral from segment j's start to each edge, used where the edge
                falls inside segment j.
        """
        # minute i = (segments j[i] .. j[i+1]-1, whole) + (part of j[i+1] before edge i+1)
        #          - (part of j[i] before edge i). Summing each minute's own segments, rather than
        # differencing one running sum, keeps a minute's result independent of where the window
        # starts: a live close (one minute) and a replay (a day) give the same bits.
        partial = np.where(self.before, 0.0, np.where(self.full, total[self.j], inside))
        j = self.j
        whole = np.zeros(j.size - 1)
        if total.size:
            # reduceat(total, j)[i] = total[j[i]:j[i+1]] where j[i] < j[i+1] (else total[j[i]])
            sums = np.add.reduceat(total, j)[:-1]
            whole = np.where(j[1:] > j[:-1], sums, 0.0)
        right = partial[1:]
        if self.late is not None:
            # minute i gets nothing of a late segment j[i+1]: its part before edge i+1 is not
            # added, and where it started before edge i too (j[i] == j[i+1]) partial[i] cancels
            right = np.where(self.late, np.where(j[1:] == j[:-1], partial[:-1], 0.0), right)
        return (whole + right) - partial[:-1]


# --------------------------------------------------------------------------- public API


def minute_edges(start: float, n: int, step_s: float = 60.0) -> F64:
    """Boundaries of n consecutive intervals of step_s seconds from `start`.

    Args:
        start: first boundary, epoch seconds (UTC); usually a whole minute.
        n: number of intervals (>= 1).
        step_s: interval length in seconds (> 0).

    Returns:
        float64 array of n + 1 boundaries, start + k * step_s (computed by multiplication, so
        there is no drift from repeated addition).
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    step_s = _check_positive("step_s", step_s)
    if not np.isfinite(start):
        raise ValueError(f"start must be finite epoch seconds, got {start!r}")
    return float(start) + step_s * np.arange(int(n) + 1, dtype=np.float64)


def integrate_rate(
    ts: ArrayLike,
    values: ArrayLike,
    edges: ArrayLike,
    *,
    time_unit_s: float,
    max_gap_s: float,
    method: str = "trapezoid",
    close_lag_s: float | None = None,
) -> tuple[F64, F64]:
    """Integrate a rate signal (t/h, Nm3/h, kW) into per-minute amounts (reference 5.1).

    Trapezoid: segment k joins samples k and k + 1. It is integrated only when both values are
    finite and ts[k + 1] - ts[k] <= max_gap_s; otherwise its seconds are uncovered. A lone sample
    covers nothing. Where a segment crosses a minute boundary it is split there, with the boundary
    value linearly interpolated, so minute amounts sum to the integral over the whole span.

    Left (step-like signals): sample k's level holds from ts[k] until the next sample or for
    max_gap_s, whichever comes first (NaN holds nothing). max_gap_s is how long a level is
    believed without a new reading, so a longer silence keeps its first max_gap_s: unlike a
    trapezoid segment, a level needs nothing from the next sample, so a minute's amount is known
    when the minute ends, and an open window (a live close) gives what the whole record gives.

    Args:
        ts: float64 epoch seconds, sorted.
        values: float64 rate in units per `time_unit_s`; NaN = no usable value. The sign is kept.
        edges: n + 1 increasing boundaries.
        time_unit_s: seconds of the rate's time unit: 3600 for t/h, Nm3/h and kW (-> kWh), 60 for
            a per-minute rate, 1 for per-second.
        max_gap_s: longest segment still integrated (reference default: 3 x the poll interval).
        method: "trapezoid" (default) or "left" (left Riemann, see above).
        close_lag_s: None, or minute m is closed at edges[m + 1] + close_lag_s and gets no part
            of a trapezoid segment whose end sample is stamped at or after that (the minute
            stage's delay: what a live close could not have seen is left out of every close).

    Returns:
        (amount, covered_s), float64 arrays of length n: amount = integral / time_unit_s in the
        rate's amount unit (t, Nm3, kWh); covered_s = seconds of the minute inside integrated
        segments.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    time_unit_s = _check_positive("time_unit_s", time_unit_s)
    max_gap_s = _check_positive("max_gap_s", max_gap_s)
    e = _check_edges(edges)
    t, v, dt = _check_samples(ts, values)
    v = v.astype(np.float64, copy=False)

    lo, hi = _window(t, e)
    if hi - lo < (1 if method == "left" else 2):
        zero = np.zeros(e.size - 1)
        return zero, zero.copy()
    t, v, dt = t[lo:hi], v[lo:hi], dt[lo : hi - 1]
    if method == "left":
        amount, covered = _held_levels(t, v, dt, e, max_gap_s)
    else:
        amount, covered = _trapezoids(t, v, dt, e, max_gap_s, close_lag_s)
    if time_unit_s != 1.0:
        amount /= time_unit_s
    return amount, covered


def _trapezoids(t: F64, v: F64, dt: F64, e: F64, max_gap_s: float, close_lag_s: float | None) -> tuple[F64, F64]:
    # Full-length passes are kept to a minimum (this runs at millions of samples per second):
    # unusable values become 0 once, and a segment's usability is folded into its covered seconds.
    ok = dt <= max_gap_s
    finite = np.isfinite(v)
    if finite.all():
        r = v
    else:
        ok &= finite[:-1]
        ok &= finite[1:]
        r = np.where(finite, v, 0.0)
    dt_ok = dt * ok
    total = r[:-1] + r[1:]
    total *= dt_ok
    total *= 0.5

    seg = _Segments(t[:-1], dt, e, known_at=t[1:], close_lag_s=close_lag_s)
    j, x = seg.j, seg.x
    ok_j = ok[j]
    r0 = np.where(ok_j, r[j], 0.0)
    r1 = np.where(ok_j, r[j + 1], 0.0)
    # Where x is inside segment j its duration is > 0; elsewhere the value is not used.
    slope = (r1 - r0) / np.where(seg.d > 0.0, seg.d, 1.0)
    inside = r0 * x
    inside += 0.5 * slope * x * x
    return seg.per_minute(total, inside), seg.per_minute(dt_ok, np.where(ok_j, x, 0.0))


def _held_levels(t: F64, v: F64, dt: F64, e: F64, max_gap_s: float) -> tuple[F64, F64]:
    """Left rule: one segment per sample, [ts[k], ts[k] + min(ts[k + 1] - ts[k], max_gap_s))."""
    held = np.empty(t.size)
    np.minimum(dt, max_gap_s, out=held[:-1])
    held[-1] = max_gap_s  # nothing after the last sample: its level holds max_gap_s
    finite = np.isfinite(v)
    if finite.all():
        r, held_ok = v, held
    else:
        r, held_ok = np.where(finite, v, 0.0), held * finite
    seg = _Segments(t, held, e)
    ok_j = finite[seg.j]
    inside = np.where(ok_j, r[seg.j], 0.0) * seg.x
    return seg.per_minute(r * held_ok, inside), seg.per_minute(held_ok, np.where(ok_j, seg.x, 0.0))


@dataclass(frozen=True)
class CounterMinutes:
    """Per-minute result of `counter_deltas`; every array has length n.

    Attributes:
        amount: float64, counted quantity x scale in engineering units (kWh, Nm3, t).
        covered_s: float64, seconds of the minute inside intervals that delivered a quantity
            (every interval between two valid readings except those ending in a reset).
        resets: int64, implausible drops detected in the minute (meter swap, power loss).
        wraps: int64, rollovers at 2**bits detected in the minute.
        spread_s: float64, covered seconds whose quantity came from an interval longer than
            max_gap_s: the quantity is right, its timing is spread by duration (an estimate).
        implausible: int64, increases above max_increase_per_s detected in the minute (a reading
            no meter of the unit can reach that fast: a spike, a garbled word, a swapped meter).
    """

    amount: F64
    covered_s: F64
    resets: NDArray[np.int64]
    wraps: NDArray[np.int64]
    spread_s: F64
    implausible: NDArray[np.int64]


def counter_deltas(
    ts: ArrayLike,
    counts: ArrayLike,
    edges: ArrayLike,
    *,
    bits: int,
    scale: float,
    max_rate_per_s: float | None,
    max_gap_s: float,
    close_lag_s: float | None = None,
    max_increase_per_s: float | None = None,
) -> CounterMinutes:
    """Turn readings of a totalising counter (kWh, Nm3, t) into per-minute quantities (reference 5.3).

    Between consecutive valid readings: delta = curr - prev when curr >= prev; when curr < prev,
    delta = curr + 2**bits - prev if that wrap is plausible (always, when max_rate_per_s is None;
    else delta * scale <= max_rate_per_s * elapsed * 1.5), otherwise the drop is a reset: the new
    reading becomes the base, the interval delivers nothing and is uncovered (a gap for
    substitution). Each interval's quantity is spread over the minutes it spans by duration, so
    totals are kept exactly (to float rounding); a delta between readings with equal timestamps
    is booked to the minute of that timestamp.

    Intervals longer than max_gap_s still deliver their quantity and count as covered: a counter
    loses timing, not quantity, and calling those minutes uncovered would make substitution
    replace (and so lose or double-count) a quantity that was measured. Their seconds are
    reported in `spread_s` so the caller can mark the minutes as estimated in time.

    An interval whose quantity (a plain increase or a wrap) is above max_increase_per_s x elapsed
    x 1.5, plus one count (a coarse counter read often steps a whole count in a short interval),
    is implausible: like a reset it delivers nothing and is uncovered, and its later reading is
    the next base. Such a quantity was never measured, so it never reaches a total.

    Args:
        ts: float64 epoch seconds, sorted.
        counts: raw counter readings in [0, 2**bits). Float64 with NaN for bad readings (those are
            skipped; the next valid reading carries the quantity), or an integer array (all
            valid). Float64 is exact only below 2**53: pass 64-bit counters as uint64/int64.
        edges: n + 1 increasing boundaries.
        bits: declared counter width, 1..64 (16, 32 or 64 in practice).
        scale: engineering units per count (> 0).
        max_rate_per_s: highest plausible rate in engineering units per second, or None.
        max_gap_s: intervals longer than this are reported in `spread_s`.
        close_lag_s: None, or minute m is closed at edges[m + 1] + close_lag_s and gets no part
            of an interval whose later reading is stamped at or after that: the quantity was not
            known when the minute closed (the minute stage's delay; see gateway/stages/minute.py).
        max_increase_per_s: highest plausible increase in engineering units per second (the
            physical bound of the unit, or a site's tighter one), or None for no such check.

    Returns:
        CounterMinutes. Resets, wraps and implausible increases are counted in the minute of the
        reading that revealed them.
    """
    if int(bits) != bits or not 1 <= bits <= 64:
        raise ValueError(f"bits must be an integer in 1..64, got {bits!r}")
    bits = int(bits)
    scale = _check_positive("scale", scale)
    max_gap_s = _check_positive("max_gap_s", max_gap_s)
    if max_rate_per_s is not None:
        max_rate_per_s = _check_positive("max_rate_per_s", max_rate_per_s)
    if max_increase_per_s is not None:
        max_increase_per_s = _check_positive("max_increase_per_s", max_increase_per_s)
    e = _check_edges(edges)
    t, c, _ = _check_samples(ts, counts, "counts")
    n = e.size - 1

    if c.dtype.kind in "iu":
        if c.dtype.kind == "i" and c.size and c.min() < 0:
            raise ValueError(f"counts must be >= 0; found {int(c.min())} (check signedness and word order)")
        cu = c.astype(np.uint64)
        if bits < 64 and cu.size and cu.max() >= np.uint64(1 << bits):
            raise ValueError(f"counts must be < 2**{bits}; found {int(cu.max())} (check bits and word order)")
        lo, hi = _window(t, e)
        t, cu = t[lo:hi], cu[lo:hi]
        mask = np.uint64((1 << bits) - 1)
        # uint64 subtraction wraps modulo 2**64; masking gives the delta modulo 2**bits exactly.
        wrapped = ((cu[1:] - cu[:-1]) & mask).astype(np.float64)
        drop = cu[1:] < cu[:-1]
    elif c.dtype.kind == "f":
        c = c.astype(np.float64, copy=False)
        good = np.isfinite(c)
        if not good.all():
            t, c = t[good], c[good]
        limit = 2.0**bits
        if c.size and (c.min() < 0 or c.max() >= limit):
            bad = c[(c < 0) | (c >= limit)][0]
            raise ValueError(f"counts must be in [0, 2**{bits}); found {bad!r} (check bits, scale and word order)")
        lo, hi = _window(t, e)
        t, c = t[lo:hi], c[lo:hi]
        raw = c[1:] - c[:-1]
        drop = raw < 0.0
        wrapped = np.where(drop, raw + limit, raw)
    else:
        raise ValueError(f"counts must be a numeric array, got dtype {c.dtype}")

    if t.size < 2:
        zf, zi = np.zeros(n), np.zeros(n, dtype=np.int64)
        return CounterMinutes(zf, zf.copy(), zi, zi.copy(), zf.copy(), zi.copy())

    t0, t1 = t[:-1], t[1:]
    dt = t1 - t0
    if max_rate_per_s is None:
        plausible = np.ones(dt.shape, dtype=bool)
    else:
        plausible = wrapped * scale <= max_rate_per_s * dt * 1.5
    reset = drop & ~plausible
    qty = wrapped * scale
    if max_increase_per_s is None:
        implausible = np.zeros(dt.shape, dtype=bool)
    else:
        implausible = ~reset & (qty > max_increase_per_s * dt * 1.5 + scale)
    wrap = drop & plausible & ~implausible
    lost = reset | implausible  # intervals that deliver nothing and are uncovered

    qty = np.where(lost, 0.0, qty)
    seg = _Segments(t0, dt, e, known_at=t1, close_lag_s=close_lag_s)
    j, x = seg.j, seg.x
    safe_d = np.where(seg.d > 0.0, seg.d, 1.0)  # zero-length segments are always "full"
    amount = seg.per_minute(qty, qty[j] / safe_d * x)
    cov_dt = np.where(lost, 0.0, dt)
    covered = seg.per_minute(cov_dt, np.where(lost[j], 0.0, x))
    long_ = ~lost & (dt > max_gap_s)
    spread = seg.per_minute(np.where(long_, dt, 0.0), np.where(long_[j], x, 0.0))
    return CounterMinutes(
        amount=amount,
        covered_s=covered,
        resets=_events_per_minute(t1[reset], e),
        wraps=_events_per_minute(t1[wrap], e),
        spread_s=spread,
        implausible=_events_per_minute(t1[implausible], e),
    )


def _events_per_minute(event_ts: F64, edges: F64) -> NDArray[np.int64]:
    return np.diff(np.searchsorted(event_ts, edges, side="left")).astype(np.int64)


def spread_interval_totals(
    ts: ArrayLike,
    totals: ArrayLike,
    edges: ArrayLike,
    *,
    interval_s: float,
    label: str,
    close_lag_s: float | None = None,
) -> tuple[F64, F64]:
    """Spread interval totals (e.g. kWh per 15 min from a utility meter) evenly over minutes (5.4).

    With label "end" the row at ts covers [ts - interval_s, ts) (an end-labelled "00:30" row covers
    00:15-00:30, so minute 00:20 gets 1/15 of it); with "start" it covers [ts, ts + interval_s).
    Each minute gets total x overlap / interval_s.

    Args:
        ts: float64 epoch seconds of the labels, sorted, at least interval_s apart (overlapping
            rows are a data error: ValueError).
        totals: float64 quantity per interval; NaN = missing row (covers nothing). Sign is kept.
        edges: n + 1 increasing boundaries.
        interval_s: interval length in seconds (> 0).
        label: "end" or "start".
        close_lag_s: None, or minute m is closed at edges[m + 1] + close_lag_s and gets no part
            of a row stamped at or after that (an end-labelled row is stamped when its interval
            ends, so minutes that closed before it arrived do not get it).

    Returns:
        (amount, covered_s), float64 arrays of length n.
    """
    if label not in _LABELS:
        raise ValueError(f"label must be one of {_LABELS}, got {label!r}")
    interval_s = _check_positive("interval_s", interval_s)
    e = _check_edges(edges)
    t, v, gaps = _check_samples(ts, totals, "totals")
    v = v.astype(np.float64, copy=False)
    if t.size > 1:
        if np.any(gaps < interval_s * (1.0 - 1e-12)):
            i = int(np.argmax(gaps < interval_s * (1.0 - 1e-12)))
            raise ValueError(
                f"interval rows overlap: ts[{i}]={t[i]!r} and ts[{i + 1}]={t[i + 1]!r} are closer than "
                f"interval_s={interval_s!r}; check for duplicate rows and the interval length"
            )
    starts = t - interval_s if label == "end" else t
    if t.size == 0:
        zero = np.zeros(e.size - 1)
        return zero, zero.copy()
    ok = np.isfinite(v)
    total = np.where(ok, v, 0.0)
    seg = _Segments(starts, np.full(t.shape, interval_s), e, known_at=t, close_lag_s=close_lag_s)
    j, x = seg.j, seg.x
    amount = seg.per_minute(total, total[j] * (x / interval_s))
    covered = seg.per_minute(np.where(ok, interval_s, 0.0), np.where(ok[j], x, 0.0))
    return amount, covered


@dataclass(frozen=True)
class InstantStats:
    """Per-minute statistics of an instantaneous signal (composition %, MJ/Nm3, temperature).

    Attributes:
        mean: float64, arithmetic mean of the finite samples with ts in the minute; NaN if none.
        min: float64, smallest finite sample in the minute; NaN if none.
        max: float64, largest finite sample in the minute; NaN if none.
        count: int64, number of finite samples in the minute.
        twa: float64, time-weighted mean over the minute's covered seconds (trapezoid with the
            same edge interpolation and gap rule as `integrate_rate`); NaN if nothing is covered.
            This is the value to use as a factor for the same minute's volume (reference 4); it
            can exist for a minute without samples when a segment spans it.
        covered_s: float64, seconds of the minute behind `twa`.
    """

    mean: F64
    min: F64
    max: F64
    count: NDArray[np.int64]
    twa: F64
    covered_s: F64


def instant_stats(ts: ArrayLike, values: ArrayLike, edges: ArrayLike, *, max_gap_s: float = np.inf) -> InstantStats:
    """Per-minute mean, min, max and count of a sampled value, plus its time-weighted mean.

    `mean` is the plain sample mean (each finite sample in [edges[m], edges[m + 1]) weighs the
    same); `twa` is the time-weighted mean. With regular polling they agree closely.

    Args:
        ts: float64 epoch seconds, sorted.
        values: float64; NaN samples are ignored.
        edges: n + 1 increasing boundaries.
        max_gap_s: longest segment used by `twa` (default: no limit).

    Returns:
        InstantStats with arrays of length n.
    """
    e = _check_edges(edges)
    t, v, _ = _check_samples(ts, values)
    v = v.astype(np.float64, copy=False)
    n = e.size - 1

    lo, hi = np.searchsorted(t, [e[0], e[-1]], side="left")
    tin, vin = t[lo:hi], v[lo:hi]
    good = np.isfinite(vin)
    tg, vg = tin[good], vin[good]
    pos = np.searchsorted(tg, e, side="left")
    count = np.diff(pos).astype(np.int64)
    empty = count == 0
    if vg.size:
        # reduceat over all n + 1 positions with a trailing sentinel: bin m reduces vg[pos[m]:pos[m+1]]
        # when non-empty; results for empty bins are garbage and masked below.
        ext = np.append(vg, 0.0)
        sums = np.add.reduceat(ext, pos)[:n]
        mins = np.minimum.reduceat(ext, pos)[:n]
        maxs = np.maximum.reduceat(ext, pos)[:n]
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(empty, np.nan, sums / np.maximum(count, 1))
        mins = np.where(empty, np.nan, mins)
        maxs = np.where(empty, np.nan, maxs)
    else:
        mean = np.full(n, np.nan)
        mins = mean.copy()
        maxs = mean.copy()

    integral, covered = integrate_rate(t, v, e, time_unit_s=1.0, max_gap_s=max_gap_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        twa = np.where(covered > 0.0, integral / np.where(covered > 0.0, covered, 1.0), np.nan)
    return InstantStats(mean=mean, min=mins, max=maxs, count=count, twa=twa, covered_s=covered)
