"""Allowance budgets: trajectory, year-end projection and shortfall (domain reference, section 6).

Pure: plain numbers and numpy arrays in, a frozen BudgetPosition out; no clock, no I/O. Times
are epoch seconds; the caller turns the compliance year (a calendar year in the site's zone)
into `month_edges_s`, 13 epoch seconds from 1 January 00:00 to the next 1 January 00:00.
Masses are tCO2, production t of product, prices CNY per tCO2.

Trajectory A(t), the allowance "used so far" if emissions ran on plan:
    calendar_linear      A(t) = A_year x elapsed / year
    monthly_profile      A(t) = A_year x (shares of months done + current share x month elapsed)
    production_weighted  A(t) = A_year x P(to date) / P_year       (absolute allowance)
                         A(t) = benchmark x P(to date)             (intensity allowance)

Projected year-end emissions E_proj (method "recent_rate", the default):
    E_proj = E(to date) + rate_recent x seconds left,  rate_recent = E(last window) / window
and (method "plan_ratio", for uneven trajectories):
    E_proj = E(to date) + r x (A_year - A(t)),  r = E(last window) / (A(t) - A(t - window))
falling back to recent_rate where the trajectory did not move in the window. The window is the
last `projection_window_days`, shortened to the elapsed part of the year early on.

An intensity allowance is A_year = benchmark x P_year_projected, where P_year_projected is
production to date plus the plan for the rest of the year if a plan is given, else production
to date plus the recent production rate x seconds left.

Shortfall = E_proj - A_year (negative: surplus), x price in CNY.

Per-process share of the deviation D = E - A(t): a process with a sub-budget deviates by
E_p - A_p(t), where A_p(t) follows the site trajectory's shape; the processes without one share
what is left of A(t) in proportion to their emissions. The deviations add up to D exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

Trajectory = Literal["calendar_linear", "production_weighted", "monthly_profile"]
Projection = Literal["recent_rate", "plan_ratio"]


def month_progress(month_edges_s: NDArray[np.float64], t: float) -> tuple[int, float]:
    """(index of the month holding t, elapsed fraction of it), clamped to the year."""
    edges = np.asarray(month_edges_s, dtype=np.float64)
    if edges.shape != (13,):
        raise ValueError(f"month_edges_s must have 13 edges, got shape {edges.shape}")
    if t <= edges[0]:
        return 0, 0.0
    if t >= edges[-1]:
        return 11, 1.0
    i = int(np.searchsorted(edges, t, side="right")) - 1
    return i, float((t - edges[i]) / (edges[i + 1] - edges[i]))


def profile_share_to(month_edges_s: NDArray[np.float64], weights: NDArray[np.float64], t: float) -> float:
    """Fraction (0..1) of a 12-month profile due by time t, linear inside a month."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (12,) or w.sum() <= 0:
        raise ValueError(f"weights must be 12 values with a positive sum, got shape {w.shape}, sum {w.sum()}")
    shares = w / w.sum()
    i, frac = month_progress(month_edges_s, t)
    return float(shares[:i].sum() + shares[i] * frac)


def calendar_share_to(month_edges_s: NDArray[np.float64], t: float) -> float:
    start, end = float(month_edges_s[0]), float(month_edges_s[12])
    return min(1.0, max(0.0, (t - start) / (end - start)))


@dataclass(frozen=True, slots=True)
class BudgetInputs:
    """Everything one evaluation needs. Masses t, times epoch s; see the module docstring."""

    now_s: float
    month_edges_s: NDArray[np.float64]
    actual_t: float
    recent_actual_t: float
    recent_window_s: float
    allowance_t: float | None = None
    benchmark_t_per_t: float | None = None
    trajectory: Trajectory = "calendar_linear"
    projection: Projection = "recent_rate"
    monthly_profile: NDArray[np.float64] | None = None
    production_t: float | None = None  # to date; None when only a plan is known
    recent_production_t: float | None = None
    production_plan_t: NDArray[np.float64] | None = None  # 12 months
    price_cny_per_t: float = 0.0


@dataclass(frozen=True, slots=True)
class ProcessDeviation:
    process: str
    actual_t: float
    trajectory_t: float
    deviation_t: float
    share: float | None  # of the site deviation; None when the site is exactly on trajectory


@dataclass(frozen=True, slots=True)
class BudgetPosition:
    """The budget at one instant. Negative shortfall is a surplus."""

    allowance_t: float  # final allowance (projected, for an intensity allowance)
    trajectory_t: float  # A(now)
    actual_t: float
    gap_t: float  # actual - trajectory
    projected_year_end_t: float
    shortfall_t: float
    shortfall_cny: float
    price_cny_per_t: float
    elapsed_fraction: float
    production_t: float | None
    projected_production_t: float | None
    intensity_t_per_t: float | None  # year to date
    recent_intensity_t_per_t: float | None  # over the projection window
    benchmark_t_per_t: float | None
    trajectory_share: float  # A(now) / A_year, for process_deviations

    @property
    def over_fraction(self) -> float:
        """(projected - allowance) / allowance: the budget alert's measure."""
        return self.shortfall_t / self.allowance_t if self.allowance_t > 0 else float("inf")


def planned_production_to(plan_t: NDArray[np.float64], month_edges_s: NDArray[np.float64], t: float) -> float:
    """Planned production (t) from the start of the year to t, linear inside a month."""
    plan = np.asarray(plan_t, dtype=np.float64)
    i, frac = month_progress(month_edges_s, t)
    return float(plan[:i].sum() + plan[i] * frac)


def _production(inp: BudgetInputs) -> tuple[float | None, float | None, float | None]:
    """(production to date, recent production, projected year production)."""
    edges, now = inp.month_edges_s, inp.now_s
    end = float(edges[-1])
    plan = inp.production_plan_t
    p_now, p_recent = inp.production_t, inp.recent_production_t
    if p_now is None and plan is not None:
        p_now = planned_production_to(plan, edges, now)
        p_recent = p_now - planned_production_to(plan, edges, now - inp.recent_window_s)
    if p_now is None:
        return None, None, None
    if plan is not None:
        p_year = p_now + float(np.sum(plan)) - planned_production_to(plan, edges, now)
    elif inp.recent_window_s > 0 and p_recent is not None:
        p_year = p_now + p_recent / inp.recent_window_s * max(0.0, end - now)
    else:
        p_year = p_now
    return p_now, p_recent, p_year


def budget_position(inp: BudgetInputs) -> BudgetPosition:
    """Evaluate a budget at `inp.now_s`. Raises ValueError on inputs that cannot be evaluated."""
    edges = inp.month_edges_s
    if not isinstance(edges, np.ndarray) or edges.shape != (13,):
        raise ValueError(f"month_edges_s must be an array of 13 edges, got {edges!r}")
    if (inp.allowance_t is None) == (inp.benchmark_t_per_t is None):
        raise ValueError("give exactly one of allowance_t or benchmark_t_per_t")
    now, end = inp.now_s, float(edges[-1])
    p_now, p_recent, p_year = _production(inp)

    if inp.benchmark_t_per_t is not None:
        if p_year is None:
            raise ValueError("an intensity allowance needs production (a signal or a plan)")
        allowance = inp.benchmark_t_per_t * p_year
    else:
        allowance = float(inp.allowance_t)  # type: ignore[arg-type]

    def share_to(t: float) -> float:
        if inp.trajectory == "calendar_linear":
            return calendar_share_to(edges, t)
        if inp.trajectory == "monthly_profile":
            if inp.monthly_profile is None:
                raise ValueError("trajectory monthly_profile needs monthly_profile")
            return profile_share_to(edges, inp.monthly_profile, t)
        # production_weighted: the share of the year's production made by t
        if p_year is None or p_year <= 0:
            return calendar_share_to(edges, t)
        if t >= now:
            return min(1.0, (p_now or 0.0) / p_year)
        return min(1.0, max(0.0, ((p_now or 0.0) - (p_recent or 0.0)) / p_year))

    traj_share = share_to(now)
    trajectory = allowance * traj_share
    left_s = max(0.0, end - now)
    window = inp.recent_window_s
    rate_t_per_s = inp.recent_actual_t / window if window > 0 else 0.0
    projected = inp.actual_t + rate_t_per_s * left_s
    if inp.projection == "plan_ratio" and window > 0:
        planned_recent = allowance * (traj_share - share_to(now - window))
        if planned_recent > 1e-12 * max(allowance, 1.0):
            projected = inp.actual_t + inp.recent_actual_t / planned_recent * allowance * (1.0 - traj_share)

    shortfall = projected - allowance
    intensity = inp.actual_t / p_now if p_now else None
    recent_intensity = inp.recent_actual_t / p_recent if p_recent else None
    return BudgetPosition(
        allowance_t=allowance,
        trajectory_t=trajectory,
        actual_t=inp.actual_t,
        gap_t=inp.actual_t - trajectory,
        projected_year_end_t=projected,
        shortfall_t=shortfall,
        shortfall_cny=shortfall * inp.price_cny_per_t,
        price_cny_per_t=inp.price_cny_per_t,
        elapsed_fraction=calendar_share_to(edges, now),
        production_t=p_now,
        projected_production_t=p_year,
        intensity_t_per_t=intensity,
        recent_intensity_t_per_t=recent_intensity,
        benchmark_t_per_t=inp.benchmark_t_per_t,
        trajectory_share=traj_share,
    )


def process_deviations(
    actual_t: dict[str, float], allowance_t: dict[str, float], trajectory_t: float, trajectory_share: float
) -> tuple[ProcessDeviation, ...]:
    """Split the site deviation (sum of actual - trajectory) between processes; see module doc."""
    budgeted = {p: a * trajectory_share for p, a in allowance_t.items()}
    rest_traj = trajectory_t - sum(budgeted.values())
    rest_actual = sum(v for p, v in actual_t.items() if p not in budgeted)
    total_dev = sum(actual_t.values()) - trajectory_t
    out = []
    for p in sorted(set(actual_t) | set(budgeted)):
        e = actual_t.get(p, 0.0)
        if p in budgeted:
            traj = budgeted[p]
        else:
            traj = rest_traj * (e / rest_actual) if rest_actual else 0.0
        dev = e - traj
        share = dev / total_dev if abs(total_dev) > 1e-12 else None
        out.append(ProcessDeviation(p, e, traj, dev, share))
    return tuple(out)


def latest_price(dates_s: NDArray[np.float64], prices: NDArray[np.float64], t: float) -> float:
    """The price of the latest date not after t (the first price before the first date)."""
    d = np.asarray(dates_s, dtype=np.float64)
    p = np.asarray(prices, dtype=np.float64)
    if d.shape != p.shape or d.ndim != 1 or len(d) == 0:
        raise ValueError(f"dates and prices must be equal non-empty 1-D arrays, got {d.shape} and {p.shape}")
    i = int(np.searchsorted(d, t, side="right")) - 1
    return float(p[max(i, 0)])
