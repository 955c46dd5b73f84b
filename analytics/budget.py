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
    i, frac = month_progress_many(edges, np.array([t], dtype=np.float64))
    return int(i[0]), float(frac[0])


def month_progress_many(
    month_edges_s: NDArray[np.float64], t: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """month_progress for an array of times (edges already checked)."""
    edges = month_edges_s
    i = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, 11)
    with np.errstate(invalid="ignore"):
        frac = (t - edges[i]) / (edges[i + 1] - edges[i])
    frac = np.where(t <= edges[0], 0.0, np.where(t >= edges[-1], 1.0, frac))
    return i, frac


def _prefix_sums(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """values[:i].sum() for i = 0..12, each taken as that very sum (numpy sums pairwise, a
    running cumsum would differ in the last bit)."""
    return np.array([values[:i].sum() for i in range(13)], dtype=np.float64)


def profile_share_to(month_edges_s: NDArray[np.float64], weights: NDArray[np.float64], t: float) -> float:
    """Fraction (0..1) of a 12-month profile due by time t, linear inside a month."""
    return float(_profile_share_many(month_edges_s, weights, np.array([t], dtype=np.float64))[0])


def _profile_share_many(
    month_edges_s: NDArray[np.float64], weights: NDArray[np.float64], t: NDArray[np.float64]
) -> NDArray[np.float64]:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (12,) or w.sum() <= 0:
        raise ValueError(f"weights must be 12 values with a positive sum, got shape {w.shape}, sum {w.sum()}")
    shares = w / w.sum()
    i, frac = month_progress_many(np.asarray(month_edges_s, dtype=np.float64), t)
    share: NDArray[np.float64] = _prefix_sums(shares)[i] + shares[i] * frac
    return share


def _calendar_share_many(month_edges_s: NDArray[np.float64], t: NDArray[np.float64]) -> NDArray[np.float64]:
    start, end = float(month_edges_s[0]), float(month_edges_s[12])
    return np.minimum(1.0, np.maximum(0.0, (t - start) / (end - start)))


@dataclass(frozen=True, slots=True)
class BudgetInputs:
    """Everything one evaluation needs. Masses t, times epoch s; see the module docstring.

    The fields typed `float | NDArray` may be arrays of one length, to evaluate several
    instants in one call (budget_positions).
    """

    now_s: float | NDArray[np.float64]
    month_edges_s: NDArray[np.float64]
    actual_t: float | NDArray[np.float64]
    recent_actual_t: float | NDArray[np.float64]
    recent_window_s: float | NDArray[np.float64]
    allowance_t: float | None = None
    benchmark_t_per_t: float | None = None
    trajectory: Trajectory = "calendar_linear"
    projection: Projection = "recent_rate"
    monthly_profile: NDArray[np.float64] | None = None
    production_t: float | NDArray[np.float64] | None = None  # to date; None when only a plan is known
    recent_production_t: float | NDArray[np.float64] | None = None
    production_plan_t: NDArray[np.float64] | None = None  # 12 months
    price_cny_per_t: float | NDArray[np.float64] = 0.0


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
    edges = np.asarray(month_edges_s, dtype=np.float64)
    return float(_planned_many(np.asarray(plan_t, dtype=np.float64), edges, np.array([t], dtype=np.float64))[0])


def _planned_many(plan: NDArray[np.float64], edges: NDArray[np.float64], t: NDArray[np.float64]) -> NDArray[np.float64]:
    i, frac = month_progress_many(edges, t)
    return _prefix_sums(plan)[i] + plan[i] * frac


@dataclass(frozen=True, slots=True)
class BudgetPositions:
    """BudgetPosition's fields for several instants, as arrays (None: not defined for this budget).

    intensity and recent intensity are NaN where production is 0 (None in a BudgetPosition).
    """

    allowance_t: NDArray[np.float64]
    trajectory_t: NDArray[np.float64]
    actual_t: NDArray[np.float64]
    gap_t: NDArray[np.float64]
    projected_year_end_t: NDArray[np.float64]
    shortfall_t: NDArray[np.float64]
    shortfall_cny: NDArray[np.float64]
    price_cny_per_t: NDArray[np.float64]
    elapsed_fraction: NDArray[np.float64]
    production_t: NDArray[np.float64] | None
    projected_production_t: NDArray[np.float64] | None
    intensity_t_per_t: NDArray[np.float64] | None
    has_intensity: NDArray[np.bool_] | None
    recent_intensity_t_per_t: NDArray[np.float64] | None
    has_recent_intensity: NDArray[np.bool_] | None
    benchmark_t_per_t: float | None
    trajectory_share: NDArray[np.float64]

    @property
    def over_fraction(self) -> NDArray[np.float64]:
        """BudgetPosition.over_fraction for every instant."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.allowance_t > 0, self.shortfall_t / self.allowance_t, np.inf)

    def at(self, i: int) -> BudgetPosition:
        """The position at instant i."""

        def opt(values: NDArray[np.float64] | None, defined: NDArray[np.bool_] | None = None) -> float | None:
            if values is None or (defined is not None and not defined[i]):
                return None
            return float(values[i])

        return BudgetPosition(
            allowance_t=float(self.allowance_t[i]),
            trajectory_t=float(self.trajectory_t[i]),
            actual_t=float(self.actual_t[i]),
            gap_t=float(self.gap_t[i]),
            projected_year_end_t=float(self.projected_year_end_t[i]),
            shortfall_t=float(self.shortfall_t[i]),
            shortfall_cny=float(self.shortfall_cny[i]),
            price_cny_per_t=float(self.price_cny_per_t[i]),
            elapsed_fraction=float(self.elapsed_fraction[i]),
            production_t=opt(self.production_t),
            projected_production_t=opt(self.projected_production_t),
            intensity_t_per_t=opt(self.intensity_t_per_t, self.has_intensity),
            recent_intensity_t_per_t=opt(self.recent_intensity_t_per_t, self.has_recent_intensity),
            benchmark_t_per_t=self.benchmark_t_per_t,
            trajectory_share=float(self.trajectory_share[i]),
        )


_Arrays = tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]


def _production(inp: BudgetInputs, now: NDArray[np.float64], window: NDArray[np.float64]) -> _Arrays | None:
    """(production to date, recent production, projected year production), or None without any."""
    edges = inp.month_edges_s
    end = float(edges[-1])
    plan = None if inp.production_plan_t is None else np.asarray(inp.production_plan_t, dtype=np.float64)
    if inp.production_t is None and plan is None:
        return None
    if inp.production_t is None:
        assert plan is not None
        p_now = _planned_many(plan, edges, now)
        p_recent = p_now - _planned_many(plan, edges, now - window)
    else:
        p_now = np.broadcast_to(np.asarray(inp.production_t, dtype=np.float64), now.shape)
        recent = inp.recent_production_t
        p_recent = np.broadcast_to(np.asarray(np.nan if recent is None else recent, dtype=np.float64), now.shape)
    if plan is not None:
        p_year = p_now + float(np.sum(plan)) - _planned_many(plan, edges, now)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            by_rate = p_now + p_recent / window * np.maximum(0.0, end - now)
        use_rate = window > 0
        if inp.production_t is not None and inp.recent_production_t is None:
            use_rate = np.zeros(now.shape, dtype=bool)
        p_year = np.where(use_rate, by_rate, p_now)
    if inp.recent_production_t is None and inp.production_t is not None:
        p_recent = np.zeros(now.shape)  # `p_recent or 0.0` where it is not known
    return p_now, p_recent, p_year


def budget_position(inp: BudgetInputs) -> BudgetPosition:
    """Evaluate a budget at `inp.now_s`. Raises ValueError on inputs that cannot be evaluated."""
    return budget_positions(inp).at(0)


def budget_positions(inp: BudgetInputs) -> BudgetPositions:
    """Evaluate a budget at one or several instants: now_s, actual_t, recent_actual_t,
    recent_window_s, production_t, recent_production_t and price_cny_per_t may be arrays of one
    length (the rest are per budget). Element i is exactly what inputs holding element i give.

    Raises ValueError on inputs that cannot be evaluated.
    """
    edges = inp.month_edges_s
    if not isinstance(edges, np.ndarray) or edges.shape != (13,):
        raise ValueError(f"month_edges_s must be an array of 13 edges, got {edges!r}")
    if (inp.allowance_t is None) == (inp.benchmark_t_per_t is None):
        raise ValueError("give exactly one of allowance_t or benchmark_t_per_t")
    now = np.atleast_1d(np.asarray(inp.now_s, dtype=np.float64))
    shape = now.shape

    def arr(x: float | NDArray[np.float64]) -> NDArray[np.float64]:
        return np.broadcast_to(np.asarray(x, dtype=np.float64), shape)

    actual, recent_actual, window = arr(inp.actual_t), arr(inp.recent_actual_t), arr(inp.recent_window_s)
    price = arr(inp.price_cny_per_t)
    end = float(edges[-1])
    production = _production(inp, now, window)

    if inp.benchmark_t_per_t is not None:
        if production is None:
            raise ValueError("an intensity allowance needs production (a signal or a plan)")
        allowance = inp.benchmark_t_per_t * production[2]
    else:
        allowance = arr(float(inp.allowance_t))  # type: ignore[arg-type]  # not None: exactly one of the two is given (checked above)

    def share_to(t: NDArray[np.float64]) -> NDArray[np.float64]:
        if inp.trajectory == "calendar_linear":
            return _calendar_share_many(edges, t)
        if inp.trajectory == "monthly_profile":
            if inp.monthly_profile is None:
                raise ValueError("trajectory monthly_profile needs monthly_profile")
            return _profile_share_many(edges, inp.monthly_profile, t)
        # production_weighted: the share of the year's production made by t
        calendar = _calendar_share_many(edges, t)
        if production is None:
            return calendar
        p_now, p_recent, p_year = production
        with np.errstate(divide="ignore", invalid="ignore"):
            made = np.where(
                t >= now, np.minimum(1.0, p_now / p_year), np.minimum(1.0, np.maximum(0.0, (p_now - p_recent) / p_year))
            )
        return np.where(p_year <= 0, calendar, made)

    traj_share = share_to(now)
    trajectory = allowance * traj_share
    left_s = np.maximum(0.0, end - now)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate_t_per_s = np.where(window > 0, recent_actual / window, 0.0)
        projected = actual + rate_t_per_s * left_s
        if inp.projection == "plan_ratio":
            planned_recent = allowance * (traj_share - share_to(now - window))
            by_plan = actual + recent_actual / planned_recent * allowance * (1.0 - traj_share)
            use_plan = (window > 0) & (planned_recent > 1e-12 * np.maximum(allowance, 1.0))
            projected = np.where(use_plan, by_plan, projected)
    shortfall = projected - allowance
    p_now = p_recent = p_year = intensity = recent_intensity = has_i = has_ri = None
    if production is not None:
        p_now, p_recent, p_year = production
        has_i, has_ri = p_now != 0, p_recent != 0
        with np.errstate(divide="ignore", invalid="ignore"):
            intensity, recent_intensity = actual / p_now, recent_actual / p_recent
        if inp.production_t is not None and inp.recent_production_t is None:
            has_ri = np.zeros(shape, dtype=bool)
    return BudgetPositions(
        allowance_t=allowance,
        trajectory_t=trajectory,
        actual_t=actual,
        gap_t=actual - trajectory,
        projected_year_end_t=projected,
        shortfall_t=shortfall,
        shortfall_cny=shortfall * price,
        price_cny_per_t=price,
        elapsed_fraction=_calendar_share_many(edges, now),
        production_t=p_now,
        projected_production_t=p_year,
        intensity_t_per_t=intensity,
        has_intensity=has_i,
        recent_intensity_t_per_t=recent_intensity,
        has_recent_intensity=has_ri,
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
    return float(latest_prices(dates_s, prices, np.array([t], dtype=np.float64))[0])


def latest_prices(dates_s: NDArray[np.float64], prices: NDArray[np.float64], t: NDArray[np.float64]) -> NDArray[np.float64]:
    """latest_price for an array of times."""
    d = np.asarray(dates_s, dtype=np.float64)
    p = np.asarray(prices, dtype=np.float64)
    if d.shape != p.shape or d.ndim != 1 or len(d) == 0:
        raise ValueError(f"dates and prices must be equal non-empty 1-D arrays, got {d.shape} and {p.shape}")
    i = np.searchsorted(d, t, side="right") - 1
    return p[np.maximum(i, 0)]
