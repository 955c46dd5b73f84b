"""Tables for analytics.spikes: robust baseline, scores, minimum duration, operating state."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from analytics.spikes import (
    MAD_TO_SIGMA,
    RollingBaseline,
    detect_spikes,
    robust_baseline,
    spike_scores,
    sustained,
)


@pytest.mark.parametrize(
    ("values", "median", "mad"),
    [
        ([1.0, 2.0, 3.0, 4.0, 100.0], 3.0, 1.0 * MAD_TO_SIGMA),  # the outlier moves neither
        ([5.0, 5.0, 5.0], 5.0, 0.0),
        ([1.0, np.nan, 3.0], 2.0, 1.0 * MAD_TO_SIGMA),  # NaN is no data
        ([np.nan], np.nan, np.nan),
    ],
)
def test_robust_baseline(values: list[float], median: float, mad: float) -> None:
    assert_allclose(robust_baseline(np.array(values)), (median, mad), equal_nan=True)


def test_mad_matches_sigma_for_normal_noise() -> None:
    x = np.random.default_rng(1).normal(100.0, 5.0, 200_000)
    med, mad = robust_baseline(x)
    assert med == pytest.approx(100.0, abs=0.05)
    assert mad == pytest.approx(5.0, rel=0.01)


def test_flat_baseline_uses_the_floor() -> None:
    x = np.array([10.0] * 30 + [50.0])
    scores = spike_scores(x, window=30, min_history=10, mad_floor=2.0)
    assert np.isnan(scores[:10]).all()  # not enough history
    assert_allclose(scores[10:30], 0.0)
    assert scores[30] == pytest.approx(20.0)  # (50 - 10) / floor 2


@pytest.mark.parametrize(
    ("spike_len", "min_duration", "flagged"),
    [
        (2, 3, []),  # too short to count
        (3, 3, [42]),  # counts from its third minute
        (5, 3, [42, 43, 44]),
        (5, 1, [40, 41, 42, 43, 44]),
    ],
)
def test_minimum_duration(spike_len: int, min_duration: int, flagged: list[int]) -> None:
    rng = np.random.default_rng(3)
    x = 100.0 + rng.normal(0.0, 2.0, 60)
    x[40 : 40 + spike_len] += 40.0
    got = detect_spikes(x, window=30, k=6.0, min_duration=min_duration, min_history=20, mad_floor=0.5)
    assert np.flatnonzero(got).tolist() == flagged


def test_stops_are_not_scored_and_do_not_drag_the_baseline() -> None:
    x = np.array([100.0] * 40 + [0.0] * 30 + [101.0] * 5)
    scores = spike_scores(x, window=30, min_history=10, mad_floor=1.0, off_below=5.0)
    assert np.isnan(scores[40:70]).all()
    assert_allclose(scores[70:], 1.0)  # back at the old level: (101 - 100) / floor 1, not a spike
    without = spike_scores(x, window=30, min_history=10, mad_floor=1.0)
    assert without[70] > 50  # the baseline of the stop would call the restart a spike


def test_baseline_survives_contamination() -> None:
    rng = np.random.default_rng(5)
    x = 100.0 + rng.normal(0.0, 2.0, 400)
    x[rng.choice(300, 90, replace=False)] += 80.0  # 30 % of the history are spikes
    x[399] = 160.0
    scores = spike_scores(x, window=300, min_history=50, mad_floor=0.5)
    assert scores[399] > 6.0


def test_sustained_runs() -> None:
    m = np.array([1, 1, 0, 1, 1, 1, 0, 1], dtype=bool)
    assert sustained(m, 2).tolist() == [False, True, False, False, True, True, False, False]
    with pytest.raises(ValueError, match="min_duration"):
        sustained(m, 0)


def test_rolling_baseline_matches_the_batch_form() -> None:
    rng = np.random.default_rng(9)
    x = 50.0 + rng.normal(0.0, 3.0, 300)
    x[::37] = 0.0  # some stops
    x[200:205] += 30.0
    batch = spike_scores(x, window=60, min_history=20, mad_floor=0.5, off_below=1.0)
    roll = RollingBaseline(60, min_history=20, mad_floor=0.5, off_below=1.0)
    live = np.array([roll.update(v) for v in x])
    assert_allclose(live, batch, equal_nan=True)


def test_rolling_baseline_refresh_stays_close() -> None:
    rng = np.random.default_rng(11)
    x = 50.0 + rng.normal(0.0, 3.0, 2000)
    exact = spike_scores(x, window=500, min_history=100, mad_floor=0.5)
    roll = RollingBaseline(500, min_history=100, mad_floor=0.5, refresh=5)
    live = np.array([roll.update(v) for v in x])
    ok = ~np.isnan(exact)
    assert np.abs(live[ok] - exact[ok]).max() < 0.2


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="1-D"):
        spike_scores(np.zeros((2, 2)), window=5, min_history=1, mad_floor=1.0)
    with pytest.raises(ValueError, match="mad_floor"):
        spike_scores(np.zeros(3), window=5, min_history=1, mad_floor=0.0)
    with pytest.raises(ValueError, match="bad baseline"):
        RollingBaseline(0, min_history=1, mad_floor=1.0)


def test_update_many_is_update_minute_by_minute_to_the_bit() -> None:
    rng = np.random.default_rng(5)
    x = 50.0 + rng.normal(0.0, 3.0, 3000)
    x[rng.random(3000) < 0.05] = np.nan
    x[rng.random(3000) < 0.05] = 0.0
    one = RollingBaseline(200, min_history=30, mad_floor=0.5, off_below=1.0, refresh=5)
    live = [(one.update(v), one.median, one.mad) for v in x]
    many = RollingBaseline(200, min_history=30, mad_floor=0.5, off_below=1.0, refresh=5)
    got: list[tuple[float, float, float]] = []
    at = 0
    for size in [1, 2, 150, 7, 1440, 1, 900, 10_000]:
        scores, medians, mads = many.update_many(x[at : at + size])
        got += zip(scores.tolist(), medians.tolist(), mads.tolist(), strict=True)
        at += size
    assert len(got) == len(live)
    for (s0, m0, d0), (s1, m1, d1) in zip(live, got, strict=True):
        assert s0 == s1 or (np.isnan(s0) and np.isnan(s1))
        if not np.isnan(s0):
            assert (m0, d0) == (m1, d1)
