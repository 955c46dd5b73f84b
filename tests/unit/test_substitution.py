"""analytics.substitution: coverage threshold, quality codes, substitution rules, live == replay."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from analytics.substitution import (
    FinalizedMinutes,
    MinuteQuality,
    SubstitutionHistory,
    finalize_minutes,
)

M, P, S, X = (MinuteQuality.MEASURED, MinuteQuality.PARTIAL, MinuteQuality.SUBSTITUTED, MinuteQuality.MISSING)


def test_quality_codes_and_labels() -> None:
    assert [int(q) for q in MinuteQuality] == [0, 1, 2, 3, 4]
    assert [q.label for q in MinuteQuality] == ["measured", "partial", "substituted", "missing", "estimated"]


@pytest.mark.parametrize(
    ("amount", "covered", "expected", "quality"),
    [
        pytest.param(1.0, 60.0, 1.0, M, id="full"),  # coverage 1: unchanged
        pytest.param(0.9, 45.0, 1.2, P, id="partial-at-threshold"),  # 45/60 = 0.75 >= 0.75; 0.9 / 45 x 60 = 1.2
        pytest.param(1.0, 50.0, 1.2, P, id="partial"),  # 1.0 / 50 x 60 = 1.2
        pytest.param(0.5, 44.9, 0.0, X, id="below-threshold-no-history"),  # nothing to substitute from
    ],
)
def test_single_minute_coverage(amount: float, covered: float, expected: float, quality: MinuteQuality) -> None:
    out = finalize_minutes(np.array([amount]), np.array([covered]))
    assert_allclose(out.amount, [expected], rtol=1e-12)
    assert_allclose(out.coverage, [covered / 60.0])
    assert_array_equal(out.quality, [quality])


# measured minutes 5, 1, 2 then two uncovered minutes
AMOUNTS = np.array([5.0, 1.0, 2.0, 0.3, 0.0])
COVERED = np.array([60.0, 60.0, 60.0, 20.0, 0.0])


@pytest.mark.parametrize(
    ("rule", "fill", "quality"),
    [
        pytest.param("none", 0.0, X, id="none"),
        pytest.param("last_good", 2.0, S, id="last_good"),  # last measured minute = 2
        pytest.param("hour_average", 8.0 / 3.0, S, id="hour_average"),  # (5 + 1 + 2) / 3
        pytest.param("lookback_max", 5.0, S, id="lookback_max"),  # max(5, 1, 2)
    ],
)
def test_rules(rule: str, fill: float, quality: MinuteQuality) -> None:
    out = finalize_minutes(AMOUNTS, COVERED, rule=rule)
    assert_allclose(out.amount, [5, 1, 2, fill, fill], rtol=1e-15)
    assert_array_equal(out.quality, [M, M, M, quality, quality])
    assert list(out.rule_used) == ["", "", "", rule, rule]
    assert_allclose(out.coverage[3:], [20 / 60, 0.0])  # raw coverage kept


@pytest.mark.parametrize("rule", ["last_good", "hour_average", "lookback_max"])
def test_no_history_means_missing_not_invented(rule: str) -> None:
    out = finalize_minutes(np.array([3.0, 4.0]), np.array([0.0, 10.0]), rule=rule)
    assert_array_equal(out.amount, [0.0, 0.0])
    assert_array_equal(out.quality, [X, X])
    assert list(out.rule_used) == [rule, rule]


def test_hour_average_uses_the_hour_before_the_gap() -> None:
    # minute 0 measured 100; minutes 1-9 uncovered; minutes 10-69 measured 1; minutes 70-199 uncovered.
    # The hour ending with the last measured minute (69) is minutes 10-69 -> mean 1 (the 100 at minute 0 is
    # 70 minutes before and excluded), and stays 1 through the whole 130-minute gap.
    amount = np.zeros(200)
    covered = np.zeros(200)
    amount[0], covered[0] = 100.0, 60.0
    amount[10:70], covered[10:70] = 1.0, 60.0
    out = finalize_minutes(amount, covered, rule="hour_average")
    assert_allclose(out.amount[70:], 1.0, rtol=1e-15)
    # during the first gap the hour before is minute 0 alone -> 100
    assert_allclose(out.amount[1:10], 100.0)
    assert np.all(out.quality[70:] == S)


def test_lookback_counts_operating_minutes() -> None:
    # same series: with lookback 1440 the highest measured minute is 100; with lookback 60 the last 60
    # measured minutes are minutes 10-69 -> max 1.
    amount = np.zeros(100)
    covered = np.zeros(100)
    amount[0], covered[0] = 100.0, 60.0
    amount[10:70], covered[10:70] = 1.0, 60.0
    assert_allclose(finalize_minutes(amount, covered, rule="lookback_max").amount[70:], 100.0)
    assert_allclose(finalize_minutes(amount, covered, rule="lookback_max", lookback_minutes=60).amount[70:], 1.0)


def test_substitute_uses_full_minute_of_partial_minute() -> None:
    # minute 0 partial: 1.0 over 50 s -> 1.2 per minute; minute 1 uncovered -> last_good 1.2 (not 1.0)
    out = finalize_minutes(np.array([1.0, 0.0]), np.array([50.0, 0.0]))
    assert_allclose(out.amount, [1.2, 1.2])
    assert_array_equal(out.quality, [P, S])


def test_nan_amount_is_not_measured() -> None:
    out = finalize_minutes(np.array([2.0, np.nan]), np.array([60.0, 60.0]))
    assert_array_equal(out.amount, [2.0, 2.0])
    assert_array_equal(out.quality, [M, S])


def test_history_carries_between_calls() -> None:
    first = finalize_minutes(np.array([7.0]), np.array([60.0]))
    assert first.history.last_good == 7.0
    second = finalize_minutes(np.array([0.0]), np.array([0.0]), history=first.history)
    assert_array_equal(second.amount, [7.0])
    assert second.history.next_slot == 2
    with pytest.raises(ValueError):
        first.history.amounts[0] = 1.0  # read-only: the state cannot change behind the caller's back


@pytest.mark.parametrize("capacity_minutes", [60, 1440])
def test_extended_is_the_history_of_measured_minutes(capacity_minutes: int) -> None:
    """The gateway extends a history without finalize_minutes when every minute was measured."""
    amount, covered = _random_day(5, 200)
    h = finalize_minutes(amount, covered, rule="hour_average", lookback_minutes=capacity_minutes).history
    measured = np.arange(1.0, 71.0)
    want = finalize_minutes(measured, np.full(70, 60.0), history=h, lookback_minutes=capacity_minutes).history
    for got in (h.extended(measured), h.extended(measured[:30]).extended(measured[30:])):
        assert_array_equal(got.amounts, want.amounts)
        assert_array_equal(got.slots, want.slots)
        assert (got.next_slot, got.capacity) == (want.next_slot, want.capacity) == (270, capacity_minutes)
        assert not got.amounts.flags.writeable


def _random_day(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    amount = rng.uniform(0.5, 3.0, n) * rng.choice([1.0, 1e-3, 1e3], n)  # mixed magnitudes stress rounding
    covered = np.where(rng.random(n) < 0.7, 60.0, rng.uniform(0, 60, n))
    covered[200:500] = 0.0  # a 5-hour outage
    covered[n - 90 :] = rng.uniform(0, 40, 90)
    amount[covered < 45] *= rng.random(int(np.sum(covered < 45)))
    return amount, covered


@pytest.mark.parametrize("rule", ["none", "last_good", "hour_average", "lookback_max"])
@pytest.mark.parametrize("lookback", [1440, 90])
def test_live_and_replay_are_identical(rule: str, lookback: int) -> None:
    n = 3 * 1440
    amount, covered = _random_day(11, n)
    kw = {"rule": rule, "lookback_minutes": lookback}

    whole = finalize_minutes(amount, covered, **kw)

    days: list[FinalizedMinutes] = []
    h = None
    for d in range(3):
        r = finalize_minutes(amount[d * 1440 : (d + 1) * 1440], covered[d * 1440 : (d + 1) * 1440], history=h, **kw)
        days.append(r)
        h = r.history

    live: list[FinalizedMinutes] = []
    h = None
    for i in range(n):
        r = finalize_minutes(amount[i : i + 1], covered[i : i + 1], history=h, **kw)
        live.append(r)
        h = r.history

    for name in ("amount", "coverage", "quality", "rule_used"):
        ref = getattr(whole, name)
        assert_array_equal(np.concatenate([getattr(r, name) for r in days]), ref, err_msg=f"day batches: {name}")
        assert_array_equal(np.concatenate([getattr(r, name) for r in live]), ref, err_msg=f"live: {name}")
    for state in (days[-1].history, live[-1].history):
        assert_array_equal(state.amounts, whole.history.amounts)
        assert_array_equal(state.slots, whole.history.slots)
        assert state.next_slot == whole.history.next_slot == n
    # the series really exercised substitution
    assert np.sum(whole.quality == (X if rule == "none" else S)) > 300


def test_history_built_for_another_lookback_is_rejected() -> None:
    h = finalize_minutes(np.array([1.0]), np.array([60.0]), lookback_minutes=1440).history
    with pytest.raises(ValueError, match="lookback_minutes=120"):
        finalize_minutes(np.array([1.0]), np.array([60.0]), history=h, lookback_minutes=120)


def test_empty_history_constructor() -> None:
    h = SubstitutionHistory.empty(30)
    assert h.capacity == 60 and h.last_good is None and h.next_slot == 0


@pytest.mark.parametrize(
    ("amount", "covered", "kwargs", "match"),
    [
        (np.ones(2), np.ones(3), {}, r"\(2,\) and \(3,\)"),
        (np.ones(1), np.array([61.0]), {}, "covered_s"),
        (np.ones(1), np.array([-1.0]), {}, "covered_s"),
        (np.ones(1), np.ones(1), {"rule": "median"}, "rule"),
        (np.ones(1), np.ones(1), {"threshold": 0.0}, "threshold"),
    ],
)
def test_bad_input_raises(amount, covered, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        finalize_minutes(amount, covered, **kwargs)


def test_threshold_tolerates_float_noise_in_covered_seconds() -> None:
    # 45 s arrives as 45 - 1e-12 after differencing epoch seconds: still 0.75 coverage, so measured
    # (partial): 0.9 / 45 x 60 = 1.2
    out = finalize_minutes(np.array([0.9]), np.array([45.0 - 1e-12]))
    assert_array_equal(out.quality, [P])
    assert_allclose(out.amount, [1.2], rtol=1e-9)
