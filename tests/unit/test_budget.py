"""Tables for analytics.budget: trajectories, projections, intensity allowances, deviations."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from numpy.testing import assert_allclose

from analytics.budget import (
    BudgetInputs,
    budget_position,
    budget_positions,
    latest_price,
    month_progress,
    planned_production_to,
    process_deviations,
    profile_share_to,
)

DAY = 86400.0
EDGES = np.array(
    [datetime(2018, m, 1, tzinfo=UTC).timestamp() for m in range(1, 13)] + [datetime(2019, 1, 1, tzinfo=UTC).timestamp()]
)
START, END = float(EDGES[0]), float(EDGES[-1])
YEAR = END - START  # 365 days


def at(month: int, day: int, hour: int = 0) -> float:
    return datetime(2018, month, day, hour, tzinfo=UTC).timestamp()


def inputs(**kw: object) -> BudgetInputs:
    base: dict[str, object] = {"month_edges_s": EDGES, "recent_window_s": 7 * DAY, "price_cny_per_t": 82.8}
    base.update(kw)
    return BudgetInputs(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("t", "month", "fraction"),
    [
        (START, 0, 0.0),
        (at(1, 16, 12), 0, 0.5),  # 15.5 of 31 days
        (at(2, 15), 1, 0.5),
        (at(12, 31, 12), 11, 30.5 / 31),
        (END + 10, 11, 1.0),
        (START - 10, 0, 0.0),
    ],
)
def test_month_progress(t: float, month: int, fraction: float) -> None:
    i, f = month_progress(EDGES, t)
    assert i == month
    assert f == pytest.approx(fraction)


@pytest.mark.parametrize(
    ("t", "share"),
    [
        (START, 0.0),
        (at(2, 1), 2 / 13),  # January weighs 2, the other months 1
        (at(2, 15), 2.5 / 13),
        (at(7, 1), 7 / 13),
        (END, 1.0),
    ],
)
def test_profile_share(t: float, share: float) -> None:
    assert profile_share_to(EDGES, np.array([2.0] + [1.0] * 11), t) == pytest.approx(share)


def test_calendar_linear_half_year_recent_rate() -> None:
    now = START + YEAR / 2
    recent = 7 * 1.2  # t in the last 7 days: 1.2 t/day
    pos = budget_position(inputs(now_s=now, actual_t=220.0, recent_actual_t=recent, allowance_t=400.0))
    assert pos.trajectory_t == pytest.approx(200.0)
    assert pos.gap_t == pytest.approx(20.0)
    assert pos.elapsed_fraction == pytest.approx(0.5)
    # to date + recent rate x time left: 220 + 1.2 t/d x 182.5 d = 439
    assert pos.projected_year_end_t == pytest.approx(220.0 + 1.2 * 182.5)
    assert pos.shortfall_t == pytest.approx(39.0)
    assert pos.shortfall_cny == pytest.approx(39.0 * 82.8)
    assert pos.over_fraction == pytest.approx(39.0 / 400.0)


def test_year_end_projection_is_the_actual_total() -> None:
    pos = budget_position(inputs(now_s=END, actual_t=441.5, recent_actual_t=9.0, allowance_t=400.0))
    assert pos.projected_year_end_t == pytest.approx(441.5)
    assert pos.trajectory_t == pytest.approx(400.0)


def test_surplus_is_negative_shortfall() -> None:
    now = START + YEAR / 4
    pos = budget_position(inputs(now_s=now, actual_t=80.0, recent_actual_t=7 * 80 / (YEAR / 4 / DAY), allowance_t=400.0))
    assert pos.projected_year_end_t == pytest.approx(320.0)
    assert pos.shortfall_t == pytest.approx(-80.0)
    assert pos.shortfall_cny == pytest.approx(-80.0 * 82.8)


def test_monthly_profile_trajectory_and_plan_ratio_projection() -> None:
    profile = np.array([2.0] + [1.0] * 11)
    now = at(2, 1)
    # emissions exactly on plan in the last 7 days of January: 2/13 x 390 t / 31 d x 7 d
    recent = 390.0 * 2 / 13 / 31 * 7
    common = {
        "now_s": now,
        "actual_t": 60.0,
        "recent_actual_t": recent,
        "allowance_t": 390.0,
        "trajectory": "monthly_profile",
        "monthly_profile": profile,
    }
    on_plan = budget_position(inputs(**common, projection="plan_ratio"))
    assert on_plan.trajectory_t == pytest.approx(60.0)
    assert on_plan.projected_year_end_t == pytest.approx(390.0)  # on plan now and to date: on allowance
    # the time-rate method extrapolates January's heavy weight to the whole year
    by_rate = budget_position(inputs(**common))
    assert by_rate.projected_year_end_t == pytest.approx(60.0 + recent / (7 * DAY) * (END - now))
    assert by_rate.projected_year_end_t > 500.0


def test_intensity_allowance_from_a_production_signal() -> None:
    now = START + 100 * DAY
    pos = budget_position(
        inputs(
            now_s=now,
            actual_t=1900.0,
            recent_actual_t=140.0,
            benchmark_t_per_t=1.8,
            production_t=1000.0,
            recent_production_t=70.0,
            trajectory="production_weighted",
        )
    )
    p_year = 1000.0 + 70.0 / 7 * 265
    assert pos.projected_production_t == pytest.approx(p_year)
    assert pos.allowance_t == pytest.approx(1.8 * p_year)
    assert pos.trajectory_t == pytest.approx(1.8 * 1000.0)  # benchmark x production to date
    assert pos.intensity_t_per_t == pytest.approx(1.9)
    assert pos.recent_intensity_t_per_t == pytest.approx(2.0)
    assert pos.projected_year_end_t == pytest.approx(1900.0 + 20.0 * 265)
    assert pos.shortfall_t == pytest.approx(1900.0 + 20.0 * 265 - 1.8 * p_year)


def test_intensity_allowance_from_a_monthly_plan_only() -> None:
    plan = np.full(12, 1000.0)
    now = at(4, 1)
    pos = budget_position(
        inputs(
            now_s=now,
            actual_t=5600.0,
            recent_actual_t=7 * 60.0,
            benchmark_t_per_t=1.8,
            production_plan_t=plan,
        )
    )
    assert pos.production_t == pytest.approx(3000.0)
    assert pos.projected_production_t == pytest.approx(12000.0)
    assert pos.allowance_t == pytest.approx(21600.0)
    assert planned_production_to(plan, EDGES, at(4, 16)) == pytest.approx(3500.0)


def test_absolute_allowance_production_weighted_with_plan() -> None:
    plan = np.full(12, 1000.0)
    pos = budget_position(
        inputs(
            now_s=at(4, 1),
            actual_t=100.0,
            recent_actual_t=7.0,
            allowance_t=400.0,
            trajectory="production_weighted",
            production_plan_t=plan,
            production_t=2400.0,
            recent_production_t=180.0,
        )
    )
    # to date 2400 t + 9 months of plan = 11,400 t; A(t) = 400 x 2400 / 11400
    assert pos.projected_production_t == pytest.approx(11400.0)
    assert pos.trajectory_t == pytest.approx(400.0 * 2400 / 11400)


@pytest.mark.parametrize(
    ("actual", "subs", "trajectory", "share", "expected"),
    [
        # no sub-budgets: deviation split in proportion to emissions
        ({"bf": 60.0, "sinter": 40.0}, {}, 90.0, 0.5, {"bf": 6.0, "sinter": 4.0}),
        # bf has a sub-budget of 100 t/year (50 due at share 0.5); sinter gets the rest of A(t)=90
        ({"bf": 60.0, "sinter": 40.0}, {"bf": 100.0}, 90.0, 0.5, {"bf": 10.0, "sinter": 0.0}),
        # a budgeted process with no emissions yet
        ({"sinter": 40.0}, {"bf": 100.0}, 90.0, 0.5, {"bf": -50.0, "sinter": 0.0}),
    ],
)
def test_process_deviations(
    actual: dict[str, float],
    subs: dict[str, float],
    trajectory: float,
    share: float,
    expected: dict[str, float],
) -> None:
    devs = {d.process: d for d in process_deviations(actual, subs, trajectory, share)}
    assert {p: round(d.deviation_t, 9) for p, d in devs.items()} == expected
    total = sum(actual.values()) - trajectory
    assert sum(d.deviation_t for d in devs.values()) == pytest.approx(total)
    if total:
        assert sum(d.share or 0.0 for d in devs.values()) == pytest.approx(1.0)


def test_latest_price() -> None:
    dates = np.array([at(1, 1), at(3, 1), at(6, 1)])
    prices = np.array([80.0, 88.13, 105.66])
    got = [latest_price(dates, prices, t) for t in (at(1, 1) - 1, at(1, 5), at(3, 1), at(12, 1))]
    assert_allclose(got, [80.0, 80.0, 88.13, 105.66])
    with pytest.raises(ValueError, match="equal non-empty"):
        latest_price(dates, prices[:2], at(1, 5))


def test_needs_exactly_one_allowance_kind() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        budget_position(inputs(now_s=START, actual_t=0.0, recent_actual_t=0.0, allowance_t=1.0, benchmark_t_per_t=1.0))
    with pytest.raises(ValueError, match="needs production"):
        budget_position(inputs(now_s=START, actual_t=0.0, recent_actual_t=0.0, benchmark_t_per_t=1.0))


@pytest.mark.parametrize("trajectory", ["calendar_linear", "monthly_profile", "production_weighted"])
@pytest.mark.parametrize("projection", ["recent_rate", "plan_ratio"])
def test_positions_of_many_instants_are_the_single_positions(trajectory: str, projection: str) -> None:
    rng = np.random.default_rng(2)
    n = 50
    now = rng.uniform(START - 86400.0, END + 86400.0, n)
    arrays = {
        "now_s": now,
        "actual_t": rng.uniform(0, 500, n),
        "recent_actual_t": rng.uniform(0, 50, n),
        "recent_window_s": rng.choice([0.0, 3600.0, 30 * 86400.0], n),
        "production_t": np.where(np.arange(n) % 7 == 0, 0.0, rng.uniform(0, 1e5, n)),
        "recent_production_t": np.where(np.arange(n) % 5 == 0, 0.0, rng.uniform(0, 1e4, n)),
        "price_cny_per_t": rng.uniform(50, 90, n),
    }
    fixed = {
        "month_edges_s": EDGES,
        "trajectory": trajectory,
        "projection": projection,
        "monthly_profile": rng.uniform(0.5, 2.0, 12),
        "benchmark_t_per_t": 0.9,
    }
    many = budget_positions(BudgetInputs(**fixed, **arrays))  # type: ignore[arg-type]
    for i in range(n):
        single = budget_position(BudgetInputs(**fixed, **{k: float(v[i]) for k, v in arrays.items()}))  # type: ignore[arg-type]
        assert many.at(i) == single
