"""integrate_rate_many gives what integrate_rate gives signal by signal (to the last bit or so:
see the module docstring of analytics/batch.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.aggregate import integrate_rate, minute_edges
from analytics.batch import integrate_rate_many

T0 = 1_767_225_600.0


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_signals=st.integers(1, 40),
    n_minutes=st.integers(1, 30),
    max_gap_s=st.sampled_from([2.0, 3.0, 10.0, 900.0]),
    method=st.sampled_from(["trapezoid", "left"]),
    close_lag_s=st.sampled_from([None, 0.0, 2.0, 30.0]),
)
def test_many_equals_one_by_one(
    seed: int, n_signals: int, n_minutes: int, max_gap_s: float, method: str, close_lag_s: float | None
) -> None:
    rng = np.random.default_rng(seed)
    edges = minute_edges(T0, n_minutes)
    ts_parts, val_parts = [], []
    for _ in range(n_signals):
        count = int(rng.integers(0, 200))
        ts = np.sort(rng.uniform(T0 - 30, T0 + n_minutes * 60 + 30, count))
        ts = np.unique(np.round(ts, int(rng.integers(0, 7))))
        values = rng.normal(40, 10, ts.size)
        values[rng.random(ts.size) < 0.05] = np.nan
        ts_parts.append(ts)
        val_parts.append(values)
    bounds = np.concatenate(([0], np.cumsum([p.size for p in ts_parts]))).astype(np.int64)
    kwargs = {"time_unit_s": 3600.0, "max_gap_s": max_gap_s, "method": method, "close_lag_s": close_lag_s}
    amount, covered = integrate_rate_many(np.concatenate(ts_parts), np.concatenate(val_parts), bounds, edges, **kwargs)
    for k in range(n_signals):
        a, c = integrate_rate(ts_parts[k], val_parts[k], edges, **kwargs)
        # the batch sums a minute's pieces in another order: a few ulps apart (seed 11280: 2.3e-14 relative)
        np.testing.assert_allclose(amount[k], a, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(covered[k], c, rtol=1e-14, atol=1e-12)


def test_signals_never_join() -> None:
    # two signals whose readings would bridge if they were one series
    edges = minute_edges(T0, 1)
    ts = np.array([T0, T0 + 30, T0 + 31, T0 + 60])
    values = np.array([60.0, 60.0, 120.0, 120.0])
    amount, covered = integrate_rate_many(ts, values, np.array([0, 2, 4]), edges, time_unit_s=3600, max_gap_s=60)
    np.testing.assert_allclose(amount[:, 0], [0.5, 58 / 60])  # 60 t/h for 30 s; 120 t/h for 29 s
    np.testing.assert_allclose(covered[:, 0], [30.0, 29.0])


def test_a_held_level_stays_in_its_signal() -> None:
    # step signals: the first one's last level (60 t/h from 30 s) holds max_gap_s = 20 s, to 50 s,
    # and does not run on into the second one's minute
    edges = minute_edges(T0, 1)
    ts = np.array([T0, T0 + 30, T0 + 40])
    values = np.array([60.0, 60.0, 120.0])
    amount, covered = integrate_rate_many(ts, values, np.array([0, 2, 3]), edges, time_unit_s=3600, max_gap_s=20, method="left")
    np.testing.assert_allclose(covered[:, 0], [40.0, 20.0])  # [0,20) and [30,50); [40,60)
    np.testing.assert_allclose(amount[:, 0], [40 / 60, 40 / 60])


@pytest.mark.parametrize("empty_at", [0, 1, 2])
def test_empty_signals(empty_at: int) -> None:
    edges = minute_edges(T0, 2)
    parts = [np.array([T0, T0 + 60, T0 + 120]) for _ in range(3)]
    parts[empty_at] = np.empty(0)
    bounds = np.concatenate(([0], np.cumsum([p.size for p in parts])))
    ts = np.concatenate(parts)
    amount, _ = integrate_rate_many(ts, np.full(ts.size, 60.0), bounds, edges, time_unit_s=3600, max_gap_s=60)
    expected = np.ones((3, 2))
    expected[empty_at] = 0.0
    np.testing.assert_allclose(amount, expected)
