"""analytics.aggregate: rate integration, counters, interval totals, instantaneous stats.

Expected values are worked by hand in the comments; nothing is recomputed with the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from analytics.aggregate import (
    _METHODS,
    counter_deltas,
    instant_stats,
    integrate_rate,
    minute_edges,
    spread_interval_totals,
)

T0 = 1_735_689_600.0  # 2025-01-01T00:00:00Z: real epoch magnitudes catch cancellation errors
NAN = np.nan


def edges(n: int, start: float = T0) -> np.ndarray:
    return minute_edges(start, n)


# --------------------------------------------------------------------------- minute_edges


def test_minute_edges_are_exact_multiples() -> None:
    e = minute_edges(T0, 1440)
    assert e.shape == (1441,)
    assert e[0] == T0 and e[-1] == T0 + 86_400.0  # no drift from repeated addition
    assert_array_equal(np.diff(e), 60.0)


@pytest.mark.parametrize("n", [0, -1, 1.5])
def test_minute_edges_rejects_bad_n(n: float) -> None:
    with pytest.raises(ValueError, match="n must be"):
        minute_edges(T0, n)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- integrate_rate

# (ts relative to T0, values, n minutes, time_unit_s, max_gap_s, method, amount, covered_s)
RATE_CASES = [
    pytest.param(
        # 60 t/h sampled every 10 s over two minutes: 60 t/h x 60 s / 3600 s/h = 1 t per minute
        np.arange(0, 121, 10.0),
        np.full(13, 60.0),
        2,
        3600,
        30,
        "trapezoid",
        [1.0, 1.0],
        [60, 60],
        id="constant-t-per-h",
    ),
    pytest.param(
        # kW = t (a ramp): minute 0 = int_0^60 t dt = 1800 kW s = 0.5 kWh;
        # minute 1 = (120^2 - 60^2) / 2 = 5400 kW s = 1.5 kWh (trapezoid is exact on a line)
        np.array([0, 30, 60, 90, 120.0]),
        np.array([0, 30, 60, 90, 120.0]),
        2,
        3600,
        30,
        "trapezoid",
        [0.5, 1.5],
        [60, 60],
        id="ramp-kw-to-kwh",
    ),
    pytest.param(
        # samples (-20, 0), (40, 60), (100, 0); per-second rate (unit 1 s).
        # edge 0: interpolated 0 + 60 x 20/60 = 20; [0,40]: (20+60)/2 x 40 = 1600;
        # edge 60: 60 - 60 x 20/60 = 40; [40,60]: (60+40)/2 x 20 = 1000 -> minute 0 = 2600.
        # minute 1: [60,100]: (40+0)/2 x 40 = 800; after 100 no sample -> 40 s covered.
        np.array([-20, 40, 100.0]),
        np.array([0, 60, 0.0]),
        2,
        1,
        60,
        "trapezoid",
        [2600, 800],
        [60, 40],
        id="edge-interpolation",
    ),
    pytest.param(
        # gap: samples every 10 s to 20, then from 100; max_gap 30 -> [20,100] not integrated.
        # minute 0: [0,20] at 6 per s = 120; minute 1: [100,120] = 120. covered 20 and 20.
        np.array([0, 10, 20, 100, 110, 120.0]),
        np.full(6, 6.0),
        2,
        1,
        30,
        "trapezoid",
        [120, 120],
        [20, 20],
        id="gap-uncovered",
    ),
    pytest.param(
        # NaN at 30: segments [20,30] and [30,40] are not integrated. Value 2 per s.
        # covered = 60 - 20 = 40 s; amount = 40 x 2 = 80.
        np.arange(0, 61, 10.0),
        np.array([2, 2, 2, NAN, 2, 2, 2.0]),
        1,
        1,
        30,
        "trapezoid",
        [80],
        [40],
        id="nan-endpoint",
    ),
    pytest.param(
        # one sample covers nothing
        np.array([30.0]),
        np.array([5.0]),
        1,
        1,
        30,
        "trapezoid",
        [0],
        [0],
        id="lone-sample",
    ),
    pytest.param(
        # left Riemann on a step signal: 10 on [0,30), 40 on [30,60) -> 300 + 1200 = 1500 (trapezoid would
        # give (10+40)/2 x 30 + 40 x 30 = 1950).
        np.array([0, 30, 60.0]),
        np.array([10, 40, 40.0]),
        1,
        1,
        30,
        "left",
        [1500],
        [60],
        id="left-riemann",
    ),
    pytest.param(
        # left Riemann with the step inside the second minute, values held: samples (0,1), (90,3), (150,3)
        # max_gap 100: minute 0 = 1 x 60 = 60; minute 1 = 1 x 30 + 3 x 30 = 120; minute 2 = 3 x 30 + 3 x 30
        # = 180 (the last sample's level holds max_gap_s, to 250)
        np.array([0, 90, 150.0]),
        np.array([1, 3, 3.0]),
        3,
        1,
        100,
        "left",
        [60, 120, 180],
        [60, 60, 60],
        id="left-across-edges",
    ),
    pytest.param(
        # left with a gap: (0,2), (100,4), max_gap 30. The level 2 holds [0,30) = 60, then nothing until
        # 100; 4 holds [100,120) = 80 in minute 1. (A trapezoid drops the whole 100 s segment.)
        np.array([0, 100.0]),
        np.array([2, 4.0]),
        2,
        1,
        30,
        "left",
        [60, 80],
        [30, 20],
        id="left-gap-holds-max-gap",
    ),
    pytest.param(
        # left with a failed read: (0,2), (20,NaN), (40,2). 2 holds [0,20) = 40; NaN holds nothing;
        # 2 holds [40,60) = 40. covered 40 s.
        np.array([0, 20, 40.0]),
        np.array([2, NAN, 2.0]),
        1,
        1,
        30,
        "left",
        [80],
        [40],
        id="left-nan-holds-nothing",
    ),
    pytest.param(
        # per-minute rate (time unit 60 s): 6 Nm3/min for a whole minute = 6 Nm3
        np.array([0, 20, 40, 60.0]),
        np.full(4, 6.0),
        1,
        60,
        30,
        "trapezoid",
        [6],
        [60],
        id="per-minute-unit",
    ),
    pytest.param(
        # a negative rate (export) keeps its sign: -3600 kW for 60 s = -3600 x 60 / 3600 = -60 kWh
        np.array([0, 60.0]),
        np.array([-3600, -3600.0]),
        1,
        3600,
        60,
        "trapezoid",
        [-60],
        [60],
        id="negative-rate",
    ),
]


@pytest.mark.parametrize(("ts", "values", "n", "unit", "gap", "method", "amount", "covered"), RATE_CASES)
def test_integrate_rate_table(ts, values, n, unit, gap, method, amount, covered) -> None:
    got_amount, got_covered = integrate_rate(T0 + ts, values, edges(n), time_unit_s=unit, max_gap_s=gap, method=method)
    assert got_amount.shape == (n,) and got_covered.shape == (n,)
    assert_allclose(got_amount, amount, rtol=1e-12, atol=1e-9)
    assert_allclose(got_covered, covered, rtol=0, atol=1e-6)


def _reference_integral(ts: np.ndarray, v: np.ndarray, a: float, b: float) -> float:
    """Trapezoid over [a, b] by inserting interpolated points at a and b (independent of the code)."""
    grid = np.concatenate(([a], ts[(ts > a) & (ts < b)], [b]))
    return float(np.trapezoid(np.interp(grid, ts, v), grid))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_minute_sums_equal_full_span_integral(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # irregular polling around 1 s for a day, edges not aligned with samples
    ts = T0 - 5 + np.cumsum(rng.uniform(0.2, 1.8, 90_000))
    v = rng.uniform(0, 500, ts.size)
    e = minute_edges(T0 + 0.37, 1400)
    amount, covered = integrate_rate(ts, v, e, time_unit_s=1, max_gap_s=10)
    ref = _reference_integral(ts, v, e[0], e[-1])
    assert_allclose(amount.sum(), ref, rtol=1e-11)
    assert_allclose(covered, 60.0, atol=1e-6)
    # one minute checked on its own
    assert_allclose(amount[700], _reference_integral(ts, v, e[700], e[701]), rtol=1e-9)


def test_day_at_once_equals_minute_by_minute_live() -> None:
    rng = np.random.default_rng(7)
    ts = T0 + np.cumsum(rng.uniform(0.5, 3.0, 3000))
    v = rng.uniform(0, 100, ts.size)
    v[rng.integers(0, ts.size, 40)] = NAN
    e = minute_edges(T0 + 60, 60)
    batch, batch_cov = integrate_rate(ts, v, e, time_unit_s=3600, max_gap_s=9)
    live = []
    for m in range(60):
        # live: the minute stage hands over the samples of the minute plus one on each side
        lo = max(np.searchsorted(ts, e[m], "right") - 1, 0)
        hi = np.searchsorted(ts, e[m + 1], "left") + 1
        live.append(integrate_rate(ts[lo:hi], v[lo:hi], e[m : m + 2], time_unit_s=3600, max_gap_s=9))
    assert_allclose(np.concatenate([a for a, _ in live]), batch, rtol=1e-9, atol=1e-12)
    assert_allclose(np.concatenate([c for _, c in live]), batch_cov, atol=1e-6)


def test_close_lag_leaves_out_what_a_closed_minute_could_not_see() -> None:
    # kernels given close_lag_s: minute m closes at its end + lag, and content stamped at or after
    # that (a trapezoid's end sample, a counter's next reading, an end-labelled row) adds nothing to it
    # trapezoid, 1 per s, samples at 0, 50, 70: segment [50,70) is known at 70.
    ts, ones = T0 + np.array([0, 50, 70.0]), np.ones(3)
    # lag 5: minute 0 closed at 65 without it -> [0,50) = 50; minute 1 gets [60,70) = 10
    a, c = integrate_rate(ts, ones, edges(2), time_unit_s=1, max_gap_s=60, close_lag_s=5)
    assert_allclose(a, [50, 10])
    assert_allclose(c, [50, 10])
    # lag 15: closed at 75, after 70 -> minute 0 gets all 60 s
    a, c = integrate_rate(ts, ones, edges(2), time_unit_s=1, max_gap_s=60, close_lag_s=15)
    assert_allclose(a, [60, 10])
    assert_allclose(c, [60, 10])
    # counter: 100 at 0, 400 at 150 (300 counts over 150 s). Known at 150: minutes 0 and 1 closed at
    # 62 and 122 without it, minute 2 gets its 30 s = 60 counts.
    got = counter_deltas(
        T0 + np.array([0, 150.0]),
        np.array([100, 400.0]),
        edges(3),
        bits=16,
        scale=1.0,
        max_rate_per_s=None,
        max_gap_s=30,
        close_lag_s=2,
    )
    assert_allclose(got.amount, [0, 0, 60])
    assert_allclose(got.covered_s, [0, 0, 30])
    # an end-labelled row stamped 00:05 covering 00:00-00:05 (5 units): minutes 0-3 closed before
    # 00:05, minute 4 closes at 00:05:02 and gets its fifth.
    amount, covered = spread_interval_totals(
        np.array([T0 + 300]), np.array([5.0]), edges(5), interval_s=300, label="end", close_lag_s=2
    )
    assert_allclose(amount, [0, 0, 0, 0, 1])
    assert_allclose(covered, [0, 0, 0, 0, 60])
    # start-labelled, the row is stamped before its minutes: all five get theirs
    amount, _ = spread_interval_totals(np.array([T0]), np.array([5.0]), edges(5), interval_s=300, label="start", close_lag_s=2)
    assert_allclose(amount, np.ones(5))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("lag", [0.0, 2.0, 45.0])
def test_with_close_lag_a_span_equals_its_minutes_closed_one_by_one(seed: int, lag: float) -> None:
    """The property the minute stage relies on: computed over many minutes with close_lag_s, each
    minute equals that minute computed alone from the samples stamped before its close."""
    rng = np.random.default_rng(seed)
    e = edges(12)
    ts = T0 + np.sort(np.round(rng.uniform(-40, 780, 150), 1))
    ts = ts[(ts < T0 + 200) | (ts > T0 + 330)]  # a silence over two minute ends
    rate = rng.uniform(0, 50, ts.size)
    rate[rng.random(ts.size) < 0.05] = NAN
    counts = np.cumsum(rng.integers(0, 60, ts.size)) % 1024.0
    counts[rng.random(ts.size) < 0.05] = NAN
    rows = T0 + np.arange(-300, 900, 150.0)[rng.random(8) < 0.8]
    totals = rng.uniform(0, 10, rows.size)

    def kernels(t, r, c, row_ts, tot, e_):
        k, kr = t < e_[-1] + lag, row_ts < e_[-1] + lag
        out = [integrate_rate(t[k], r[k], e_, time_unit_s=60, max_gap_s=20, method=m, close_lag_s=lag) for m in _METHODS]
        cm = counter_deltas(t[k], c[k], e_, bits=10, scale=0.5, max_rate_per_s=30.0, max_gap_s=20, close_lag_s=lag)
        out.append((cm.amount, cm.covered_s))
        for label in ("end", "start"):
            out.append(spread_interval_totals(row_ts[kr], tot[kr], e_, interval_s=150, label=label, close_lag_s=lag))
        return out

    span = kernels(ts, rate, counts, rows, totals, e)
    for m in range(12):
        alone = kernels(ts, rate, counts, rows, totals, e[m : m + 2])
        for (amount, covered), (one_amount, one_covered) in zip(span, alone, strict=True):
            assert_allclose(amount[m], one_amount[0], rtol=1e-12, atol=1e-9)
            assert_allclose(covered[m], one_covered[0], rtol=1e-12, atol=1e-9)


def test_integrate_rate_rejects_unsorted_ts() -> None:
    with pytest.raises(ValueError, match="sorted"):
        integrate_rate(T0 + np.array([0, 20, 10.0]), np.ones(3), edges(1), time_unit_s=1, max_gap_s=30)


def test_integrate_rate_names_shapes_on_mismatch() -> None:
    with pytest.raises(ValueError, match=r"\(3,\) and \(2,\)"):
        integrate_rate(T0 + np.array([0, 10, 20.0]), np.ones(2), edges(1), time_unit_s=1, max_gap_s=30)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "simpson"}, "method"),
        ({"time_unit_s": 0}, "time_unit_s"),
        ({"max_gap_s": -1}, "max_gap_s"),
    ],
)
def test_integrate_rate_rejects_bad_parameters(kwargs: dict, match: str) -> None:
    args = {"time_unit_s": 1, "max_gap_s": 30, **kwargs}
    with pytest.raises(ValueError, match=match):
        integrate_rate(T0 + np.array([0, 10.0]), np.ones(2), edges(1), **args)


def test_edges_must_increase() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        integrate_rate(T0 + np.array([0, 10.0]), np.ones(2), T0 + np.array([0, 60, 60.0]), time_unit_s=1, max_gap_s=30)


# --------------------------------------------------------------------------- counter_deltas

# (bits, prev, curr, expected delta) worked by hand: curr + 2**bits - prev
ROLLOVER_CASES = [
    pytest.param(16, 65_530, 4, 10, id="16-bit"),  # 4 + 65536 - 65530
    pytest.param(32, 4_294_967_290, 5, 11, id="32-bit"),  # 5 + 4294967296 - 4294967290
    pytest.param(64, 2**64 - 3, 4, 7, id="64-bit"),  # 4 + 2**64 - (2**64 - 3)
]


@pytest.mark.parametrize(("bits", "prev", "curr", "delta"), ROLLOVER_CASES)
def test_counter_rollover_uint64(bits: int, prev: int, curr: int, delta: int) -> None:
    ts = T0 + np.array([0.0, 60.0])
    got = counter_deltas(
        ts,
        np.array([prev, curr], dtype=np.uint64),
        edges(1),
        bits=bits,
        scale=1.0,
        max_rate_per_s=1.0,
        max_gap_s=120,
    )
    assert_allclose(got.amount, [delta])
    assert_array_equal(got.wraps, [0])  # the wrap is revealed at 60 s, the next minute's start
    got2 = counter_deltas(
        ts,
        np.array([prev, curr], dtype=np.uint64),
        edges(2),
        bits=bits,
        scale=1.0,
        max_rate_per_s=1.0,
        max_gap_s=120,
    )
    assert_array_equal(got2.wraps, [0, 1])
    assert_array_equal(got2.resets, [0, 0])


@pytest.mark.parametrize(("bits", "prev", "curr", "delta"), ROLLOVER_CASES[:2])
def test_counter_rollover_float_input(bits: int, prev: int, curr: int, delta: int) -> None:
    got = counter_deltas(
        T0 + np.array([0.0, 30.0]),
        np.array([prev, curr], dtype=float),
        edges(1),
        bits=bits,
        scale=0.5,
        max_rate_per_s=None,
        max_gap_s=120,
    )
    assert_allclose(got.amount, [delta * 0.5])  # scale 0.5 kWh per count
    assert_array_equal(got.wraps, [1])


def test_counter_reset_is_a_gap() -> None:
    # 16-bit, 1000 -> 10 after 60 s with max 1 count/s: a wrap would be 10 + 65536 - 1000 = 64546 counts,
    # far above 1 x 60 x 1.5 = 90, so it is a reset: no quantity, interval uncovered, new base 10.
    # then 10 -> 40 over [60, 120): 30 counts, covered.
    ts = T0 + np.array([0, 60, 120.0])
    got = counter_deltas(ts, np.array([1000, 10, 40.0]), edges(2), bits=16, scale=1.0, max_rate_per_s=1.0, max_gap_s=120)
    assert_allclose(got.amount, [0, 30])
    assert_allclose(got.covered_s, [0, 60])
    assert_array_equal(got.resets, [0, 1])  # revealed at 60 s = minute 1
    assert_array_equal(got.wraps, [0, 0])


def test_counter_wrap_plausible_with_rate_limit() -> None:
    # 16-bit 65500 -> 20 in 60 s: wrap delta 20 + 65536 - 65500 = 56 <= 1 x 60 x 1.5 = 90 -> plausible
    ts = T0 + np.array([0, 60.0])
    got = counter_deltas(ts, np.array([65_500, 20.0]), edges(2), bits=16, scale=1.0, max_rate_per_s=1.0, max_gap_s=120)
    assert_allclose(got.amount, [56, 0])
    assert_array_equal(got.wraps, [0, 1])


def test_counter_delta_spread_over_minutes_by_duration() -> None:
    # readings 0 at 30 s and 120 at 150 s: 120 counts over 120 s = 1 per s;
    # minute 0 gets 30 s (30), minute 1 60 s (60), minute 2 30 s (30); total 120 kept.
    got = counter_deltas(
        T0 + np.array([30, 150.0]),
        np.array([0, 120.0]),
        edges(3),
        bits=32,
        scale=1.0,
        max_rate_per_s=None,
        max_gap_s=300,
    )
    assert_allclose(got.amount, [30, 60, 30])
    assert_allclose(got.covered_s, [30, 60, 30])
    assert_allclose(got.spread_s, [0, 0, 0])


def test_counter_long_gap_delivers_and_counts_as_covered() -> None:
    # 2 readings 10 minutes apart (comms lost): 600 counts x 0.1 kWh = 60 kWh spread 6 kWh per minute,
    # covered (quantity known) but flagged in spread_s (timing estimated).
    got = counter_deltas(
        T0 + np.array([0, 600.0]),
        np.array([0, 600.0]),
        edges(10),
        bits=32,
        scale=0.1,
        max_rate_per_s=None,
        max_gap_s=30,
    )
    assert_allclose(got.amount, np.full(10, 6.0))
    assert_allclose(got.covered_s, np.full(10, 60.0))
    assert_allclose(got.spread_s, np.full(10, 60.0))
    assert_allclose(got.amount.sum(), 60.0, rtol=1e-14)


def test_counter_nan_readings_are_skipped() -> None:
    # 0 at 0, NaN at 20 and 40, 60 at 60: the last valid reading carries all 60 counts
    got = counter_deltas(
        T0 + np.array([0, 20, 40, 60.0]),
        np.array([0, NAN, NAN, 60.0]),
        edges(1),
        bits=16,
        scale=1.0,
        max_rate_per_s=None,
        max_gap_s=30,
    )
    assert_allclose(got.amount, [60])
    assert_allclose(got.covered_s, [60])
    assert_allclose(got.spread_s, [60])  # one 60 s interval > max_gap 30


def test_counter_zero_duration_delta_goes_to_the_minute_of_its_timestamp() -> None:
    # readings 0 and 5 both at exactly 60 s: 5 counts booked to minute 1 [60, 120), none to minute 0
    got = counter_deltas(
        T0 + np.array([0, 60, 60.0]),
        np.array([0, 0, 5.0]),
        edges(2),
        bits=16,
        scale=1.0,
        max_rate_per_s=None,
        max_gap_s=120,
    )
    assert_allclose(got.amount, [0, 5])


def test_counter_totals_preserved_over_random_day() -> None:
    rng = np.random.default_rng(3)
    ts = T0 + np.cumsum(rng.uniform(1, 40, 4000))
    inc = rng.integers(0, 50, ts.size)
    counts = (np.cumsum(inc) % 2**16).astype(float)  # wraps many times
    e = minute_edges(T0, int((ts[-1] - T0) // 60) + 1)
    got = counter_deltas(ts, counts, e, bits=16, scale=0.01, max_rate_per_s=None, max_gap_s=60)
    assert_allclose(got.amount.sum(), inc[1:].sum() * 0.01, rtol=1e-12)
    assert got.wraps.sum() == np.sum(np.diff(counts) < 0)


def test_counter_rejects_counts_above_width() -> None:
    with pytest.raises(ValueError, match=r"2\*\*16"):
        counter_deltas(
            T0 + np.array([0, 10.0]),
            np.array([1, 70_000.0]),
            edges(1),
            bits=16,
            scale=1,
            max_rate_per_s=None,
            max_gap_s=30,
        )


# --------------------------------------------------------------------------- spread_interval_totals


def test_end_labelled_row_gives_minute_0020_one_fifteenth() -> None:
    # an end-labelled 00:30 row of 15 kWh covers 00:15-00:30: 15 kWh / 15 min = 1 kWh per minute
    e = minute_edges(T0, 60)  # 00:00 .. 01:00
    amount, covered = spread_interval_totals(np.array([T0 + 30 * 60]), np.array([15.0]), e, interval_s=900, label="end")
    assert_allclose(amount[20], 1.0, rtol=1e-12)
    assert_allclose(amount[15:30], np.ones(15), rtol=1e-12)
    assert_allclose(amount[:15], 0.0, atol=1e-12)
    assert_allclose(amount[30:], 0.0, atol=1e-12)
    assert_allclose(covered[15:30], 60.0)
    assert covered[14] == 0.0 and covered[30] == 0.0


def test_start_labelled_row_covers_the_following_interval() -> None:
    # a start-labelled 00:15 row of 15 kWh covers the same 00:15-00:30
    amount, _ = spread_interval_totals(
        np.array([T0 + 15 * 60]), np.array([15.0]), minute_edges(T0, 60), interval_s=900, label="start"
    )
    assert_allclose(amount[15:30], np.ones(15), rtol=1e-12)
    assert_allclose(amount[30], 0.0, atol=1e-12)


def test_interval_not_aligned_with_minutes() -> None:
    # 9 units over [30, 120) (90 s, start label): 0.1 per s -> minute 0 gets 30 s = 3, minute 1 60 s = 6
    amount, covered = spread_interval_totals(np.array([T0 + 30]), np.array([9.0]), edges(2), interval_s=90, label="start")
    assert_allclose(amount, [3, 6], rtol=1e-12)
    assert_allclose(covered, [30, 60])


def test_nan_interval_covers_nothing() -> None:
    # rows ending 00:15 (NaN) and 00:30 (30 kWh): minutes 0-14 uncovered, 15-29 get 2 kWh each
    amount, covered = spread_interval_totals(
        T0 + np.array([900, 1800.0]), np.array([NAN, 30.0]), edges(30), interval_s=900, label="end"
    )
    assert_allclose(covered[:15], 0.0)
    assert_allclose(amount[:15], 0.0)
    assert_allclose(amount[15:], 2.0, rtol=1e-12)


def test_overlapping_interval_rows_are_rejected() -> None:
    with pytest.raises(ValueError, match="overlap"):
        spread_interval_totals(T0 + np.array([900, 900.0]), np.array([1.0, 1.0]), edges(30), interval_s=900, label="end")


def test_interval_label_is_checked() -> None:
    with pytest.raises(ValueError, match="label"):
        spread_interval_totals(T0 + np.array([900.0]), np.array([1.0]), edges(30), interval_s=900, label="middle")


# --------------------------------------------------------------------------- instant_stats


def test_instant_stats_per_minute() -> None:
    # minute 0: samples 20, NaN, 26 at 0, 20, 40 -> mean 23, min 20, max 26, count 2
    # minute 1: no sample; minute 2: 30 at 130 -> mean/min/max 30, count 1
    ts = T0 + np.array([0, 20, 40, 130.0])
    v = np.array([20, NAN, 26, 30.0])
    s = instant_stats(ts, v, edges(3))
    assert_allclose(s.mean, [23, NAN, 30])
    assert_allclose(s.min, [20, NAN, 30])
    assert_allclose(s.max, [26, NAN, 30])
    assert_array_equal(s.count, [2, 0, 1])


def test_instant_stats_time_weighted_mean() -> None:
    # CO % samples (0, 20), (50, 20), (60, 30). Minute [0, 60) holds the samples at 0 and 50 (60 belongs
    # to the next minute): sample mean (20 + 20) / 2 = 20.
    # twa with max_gap 60: [0,50] at 20 = 1000; [50,60] from 20 to 30 = (20+30)/2 x 10 = 250;
    # (1000 + 250) / 60 = 20.8333...
    ts = T0 + np.array([0, 50, 60.0])
    s = instant_stats(ts, np.array([20, 20, 30.0]), edges(1), max_gap_s=60)
    assert_allclose(s.mean, [20.0])
    assert_allclose(s.twa, [1250 / 60], rtol=1e-12)
    assert_allclose(s.covered_s, [60])


def test_instant_stats_last_bin_and_all_empty() -> None:
    # a sample in the last minute only, followed by nothing: reduceat's tail handling
    s = instant_stats(T0 + np.array([170.0]), np.array([5.0]), edges(3))
    assert_allclose(s.max, [NAN, NAN, 5])
    assert_array_equal(s.count, [0, 0, 1])
    empty = instant_stats(np.array([]), np.array([]), edges(2))
    assert_array_equal(empty.count, [0, 0])
    assert np.all(np.isnan(empty.mean))


# --------------------------------------------------------------------------- slow references


def _slow_rate(ts, v, e, gap, method):
    """Segment by segment, minute by minute: the definition of reference 5.1 written out (left:
    each sample's level holds until the next sample, at most `gap` seconds). Times are offsets
    into the segment, so a held level's end (a + gap) is not rounded at epoch magnitude."""
    n = len(e) - 1
    amount, covered = np.zeros(n), np.zeros(n)
    for k in range(len(ts) - (0 if method == "left" else 1)):
        a = ts[k]
        if method == "left":
            if not np.isfinite(v[k]):
                continue
            d = min(ts[k + 1] - a if k + 1 < len(ts) else np.inf, gap)
        else:
            d = ts[k + 1] - a
            if d > gap or not (np.isfinite(v[k]) and np.isfinite(v[k + 1])):
                continue
        if d == 0:
            continue
        for m in range(n):
            lo, hi = max(0.0, e[m] - a), min(d, e[m + 1] - a)
            if hi <= lo:
                continue
            if method == "left":
                amount[m] += v[k] * (hi - lo)
            else:
                at_lo = v[k] + (v[k + 1] - v[k]) * lo / d
                at_hi = v[k] + (v[k + 1] - v[k]) * hi / d
                amount[m] += (at_lo + at_hi) / 2 * (hi - lo)
            covered[m] += hi - lo
    return amount, covered


def _slow_counter(ts, c, e, bits, max_rate):
    """Reading by reading (reference 5.3); NaN readings skipped; events in the minute of the later reading."""
    n = len(e) - 1
    amount, covered = np.zeros(n), np.zeros(n)
    resets, wraps = np.zeros(n, dtype=int), np.zeros(n, dtype=int)
    good = np.isfinite(c)
    ts, c = ts[good], c[good]
    for k in range(len(ts) - 1):
        a, b = ts[k], ts[k + 1]
        d, delta = b - a, c[k + 1] - c[k]
        is_reset = is_wrap = False
        if delta < 0:
            wrapped = delta + 2**bits
            if max_rate is None or wrapped <= max_rate * d * 1.5:
                delta, is_wrap = wrapped, True
            else:
                delta, is_reset = 0.0, True
        for m in range(n):
            if e[m] <= b < e[m + 1]:
                resets[m] += is_reset
                wraps[m] += is_wrap
            if d == 0:
                amount[m] += delta if e[m] <= a < e[m + 1] else 0.0
                continue
            lo, hi = max(a, e[m]), min(b, e[m + 1])
            if hi > lo:
                amount[m] += delta * (hi - lo) / d
                covered[m] += 0.0 if is_reset else hi - lo
    return amount, covered, resets, wraps


def _random_edges(rng) -> np.ndarray:
    return T0 + np.sort(rng.choice(np.arange(0, 360, 7.0), rng.integers(2, 12), replace=False))


@pytest.mark.parametrize("seed", range(5))
def test_integrate_rate_matches_slow_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n = int(rng.integers(1, 40))
        ts = T0 + np.sort(np.round(rng.uniform(-50, 400, n)))  # rounding makes duplicates and samples on edges
        v = rng.uniform(-5, 5, n)
        v[rng.random(n) < 0.15] = NAN
        e, gap = _random_edges(rng), float(rng.uniform(5, 60))
        for method in ("trapezoid", "left"):
            amount, covered = integrate_rate(ts, v, e, time_unit_s=1, max_gap_s=gap, method=method)
            ref_amount, ref_covered = _slow_rate(ts, v, e, gap, method)
            assert_allclose(amount, ref_amount, atol=1e-9)
            assert_allclose(covered, ref_covered, atol=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_counter_matches_slow_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n = int(rng.integers(1, 30))
        ts = T0 + np.sort(np.round(rng.uniform(-50, 400, n)))
        c = rng.integers(0, 2**8, n).astype(float)
        c[rng.random(n) < 0.1] = NAN
        e = _random_edges(rng)
        max_rate = None if rng.random() < 0.3 else float(rng.uniform(0.5, 20))
        got = counter_deltas(ts, c, e, bits=8, scale=1.0, max_rate_per_s=max_rate, max_gap_s=30)
        amount, covered, resets, wraps = _slow_counter(ts, c, e, 8, max_rate)
        assert_allclose(got.amount, amount, atol=1e-9)
        assert_allclose(got.covered_s, covered, atol=1e-9)
        assert_array_equal(got.resets, resets)
        assert_array_equal(got.wraps, wraps)


def test_counter_duplicate_readings_on_first_edge_keep_their_delta() -> None:
    # regression: readings 0 and 5 both exactly at edges[0] (after one at -30 s) must book 5 counts and
    # the drop 9 -> 5 (a wrap, no rate limit) to minute 0, even though the window starts at edges[0].
    # 16-bit: 9 at -30, 9 at 0, 5 at 0 (wrap: 5 + 65536 - 9 = 65532), 5 at 60.
    got = counter_deltas(
        T0 + np.array([-30, 0, 0, 60.0]),
        np.array([9, 9, 5, 5.0]),
        edges(1),
        bits=16,
        scale=1.0,
        max_rate_per_s=None,
        max_gap_s=120,
    )
    assert_allclose(got.amount, [65_532.0])
    assert_array_equal(got.wraps, [1])
