"""Year-to-date sums of a budget and the budget position's JSON (used by AlertStage).

BudgetTracker keeps the sums of the budget's scope (per process, production, and a rolling
window for the recent rate) for the current compliance year, a calendar year in the site's
zone; it rolls over with the year and can take the year to date back from the ledger. The
arithmetic is analytics.budget; this module only keeps the state and reads the price file.
"""

from __future__ import annotations

import csv
import logging
from collections import defaultdict, deque
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from analytics.budget import (
    BudgetInputs,
    BudgetPosition,
    BudgetPositions,
    ProcessDeviation,
    budget_positions,
    latest_prices,
    process_deviations,
)
from gateway.alerts.model import iso_at, json_safe
from gateway.core.errors import ConfigError
from gateway.ledger.alerts_table import AlertStore
from gateway.settings.alerts import BudgetConfig, BudgetYearConfig

log = logging.getLogger(__name__)

DAY_S = 86400.0


def year_month_edges(year: int, tz: str) -> NDArray[np.float64]:
    """13 epoch seconds: 1 January 00:00 of `year` ... 1 January of the next, in the site's zone."""
    z = ZoneInfo(tz)
    edges = [datetime(year, m, 1, tzinfo=z).timestamp() for m in range(1, 13)]
    edges.append(datetime(year + 1, 1, 1, tzinfo=z).timestamp())
    return np.array(edges, dtype=np.float64)


class PriceTable:
    """A constant carbon price, or the dated rows of a price file (date,price_cny_per_t)."""

    def __init__(self, cfg: BudgetConfig, tz: str) -> None:
        if cfg.price_file is None:
            self.dates_s = np.array([0.0])
            self.prices = np.array([float(cfg.carbon_price_cny_per_t or 0.0)])
            return
        self.dates_s, self.prices = read_price_file(cfg.price_file, tz)

    def at(self, t: float) -> float:
        return float(self.at_many(np.array([t], dtype=np.float64))[0])

    def at_many(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        if len(self.prices) == 1:
            return np.full(len(t), float(self.prices[0]))
        return latest_prices(self.dates_s, self.prices, t)


def read_price_file(path: Path, tz: str) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Read 'date,price_cny_per_t' rows (ISO dates, a header line allowed) sorted by date."""
    rows: list[tuple[float, float]] = []
    z = ZoneInfo(tz)
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for n, row in enumerate(csv.reader(fh), start=1):
                if not row or row[0].strip().startswith("#") or (n == 1 and not row[0].strip()[:1].isdigit()):
                    continue
                try:
                    day = datetime.fromisoformat(row[0].strip()).replace(tzinfo=z)
                    rows.append((day.timestamp(), float(row[1])))
                except (ValueError, IndexError) as exc:
                    raise ConfigError(
                        f"budget.price_file {path} line {n}: {exc}; expected 'YYYY-MM-DD,price_cny_per_t'"
                    ) from None
    except OSError as exc:
        raise ConfigError(f"budget.price_file {path}: cannot read: {exc.strerror}; check the path") from None
    if not rows:
        raise ConfigError(f"budget.price_file {path}: no price rows; expected 'YYYY-MM-DD,price_cny_per_t'")
    rows.sort()
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])


class BudgetTracker:
    """Year-to-date and recent-window sums of one budget's scope; rolls over with the year."""

    def __init__(self, cfg: BudgetConfig, tz: str) -> None:
        self.cfg, self.tz = cfg, tz
        self.scopes: tuple[str, ...] = ("direct",) if cfg.scope == "direct" else ("direct", "indirect")
        self.prices = PriceTable(cfg, tz)
        self.window_s = cfg.projection_window_days * DAY_S
        self.year: int | None = None
        self.year_cfg: BudgetYearConfig | None = None
        self.edges = np.zeros(13)
        self._reset(None)

    def _reset(self, year: int | None) -> None:
        self.year = year
        self.year_cfg = self.cfg.year(year) if year is not None else None
        if year is not None:
            self.edges = year_month_edges(year, self.tz)
            if self.year_cfg is None:
                log.warning(
                    "budget %r: no allowance configured for %d; add a [[budget.years]] entry with year = %d to evaluate it",
                    self.cfg.name,
                    year,
                    year,
                )
        y = self.year_cfg
        self._profile = np.array(y.monthly_profile) if y is not None and y.monthly_profile else None
        self._plan = np.array(y.production_plan_t) if y is not None and y.production_plan_t else None
        self.by_process_t: dict[str, float] = defaultdict(float)
        # a gateway started mid-year adds what the plant emitted before its first minute
        self.total_t = self.year_cfg.opening_t if self.year_cfg is not None else 0.0
        self.production_t = 0.0
        self.first_minute_s: float | None = None
        self._recent: deque[tuple[float, float, float]] = deque()
        self._recent_t = 0.0
        self._recent_prod_t = 0.0

    def _year_of(self, minute_start: float) -> int:
        return datetime.fromtimestamp(minute_start, ZoneInfo(self.tz)).year

    def year_run(self, starts: NDArray[np.float64]) -> int:
        """Enter the compliance year of starts[0]; returns how many of `starts` (sorted) lie in it."""
        first = float(starts[0])
        if self.year is None or not (self.edges[0] <= first < self.edges[-1]):
            self._reset(self._year_of(first))
        return int(np.searchsorted(starts, self.edges[-1], side="left"))

    def add_minutes(
        self,
        starts: NDArray[np.float64],
        processes: list[str],
        co2_t: NDArray[np.float64],
        has_co2: NDArray[np.bool_],
        production_t: NDArray[np.float64],
    ) -> MinuteSums:
        """Add consecutive closed minutes of the current year (see year_run); returns the sums
        after each. co2_t[i, k] is the scope's tCO2 of processes[k] in minute i (has_co2 False:
        no row in the scope). The sums are taken in the order minute-by-minute adds would take
        them, so they are the same numbers to the last bit.
        """
        n = len(starts)
        before = dict(self.by_process_t)
        total = np.zeros(n)
        by_process: dict[str, NDArray[np.float64]] = {}
        first_at: dict[str, int] = {}
        for k, proc in enumerate(processes):
            col = np.where(has_co2[:, k], co2_t[:, k], 0.0)
            total = total + col
            if has_co2[:, k].any():
                by_process[proc] = np.cumsum(np.concatenate(([self.by_process_t.get(proc, 0.0)], col)))[1:]
                if proc not in self.by_process_t:
                    first_at[proc] = int(np.argmax(has_co2[:, k]))
        total_t = np.cumsum(np.concatenate(([self.total_t], total)))[1:]
        production_sum_t = np.cumsum(np.concatenate(([self.production_t], production_t)))[1:]
        recent_t, recent_prod_t = self._add_recent(starts, total, production_t)
        new_keys = sorted(first_at, key=lambda q: (first_at[q], processes.index(q)))
        for proc in new_keys:
            self.by_process_t[proc] = 0.0  # keep the order in which processes first appeared
        for proc, values in by_process.items():
            self.by_process_t[proc] = float(values[-1])
        self.total_t, self.production_t = float(total_t[-1]), float(production_sum_t[-1])
        if self.first_minute_s is None:
            self.first_minute_s = float(starts[0])
        return MinuteSums(total_t, production_sum_t, recent_t, recent_prod_t, by_process, before, new_keys, first_at)

    def _add_recent(
        self, starts: NDArray[np.float64], total: NDArray[np.float64], production: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        # a plain loop on purpose: the window's running sums must take their additions and
        # subtractions in this order to stay the same floats as a live gateway's
        recent, rt, rp, w = self._recent, self._recent_t, self._recent_prod_t, self.window_s
        out_t: list[float] = []
        out_p: list[float] = []
        for m, tot, prod in zip(starts.tolist(), total.tolist(), production.tolist(), strict=True):
            recent.append((m, tot, prod))
            rt += tot
            rp += prod
            while recent and recent[0][0] < m + 60.0 - w:
                _, old_t, old_p = recent.popleft()
                rt -= old_t
                rp -= old_p
            out_t.append(rt)
            out_p.append(rp)
        self._recent_t, self._recent_prod_t = rt, rp
        return np.array(out_t), np.array(out_p)

    def restore(self, store: AlertStore, now_s: float) -> None:
        """Take the year to date (up to `now_s`, the first minute not closed) from the ledger."""
        self._reset(self._year_of(now_s - 60.0))
        start = float(self.edges[0])
        for p, kg in store.ledger_sums(start, now_s, self.scopes).items():
            self.by_process_t[p] = kg / 1000.0
        self.total_t = sum(self.by_process_t.values()) + (self.year_cfg.opening_t if self.year_cfg else 0.0)
        prod = self.cfg.production
        if prod is not None:
            self.production_t = store.ledger_production_t(start, now_s, prod.process, prod.stream)
        window = store.ledger_minutes(
            max(start, now_s - self.window_s),
            now_s,
            self.scopes,
            (prod.process, prod.stream) if prod else None,
        )
        for m, kg, p_t in window:
            self._recent.append((m, kg / 1000.0, p_t))
            self._recent_t += kg / 1000.0
            self._recent_prod_t += p_t
        first = store.ledger_first_minute(start, now_s)
        self.first_minute_s = first
        if self.total_t:
            log.info(
                "budget %s: %.3f tCO2 (%s) from %s to date restored from the ledger",
                self.year,
                self.total_t,
                self.cfg.scope,
                iso_at(first or start, self.tz),
            )

    def data_days(self, now_s: float) -> float:
        return 0.0 if self.first_minute_s is None else (now_s - self.first_minute_s) / DAY_S

    def position(self, now_s: float) -> BudgetPosition | None:
        """The budget at `now_s` (the end of the last closed minute); None without a year config."""
        sums = None if self.first_minute_s is None else MinuteSums.held(self)
        many = self.positions(np.array([now_s], dtype=np.float64), sums)
        return None if many is None else many.at(0)

    def positions(self, now_s: NDArray[np.float64], sums: MinuteSums | None) -> BudgetPositions | None:
        """The budget at each of `now_s`, with the sums after each minute (add_minutes)."""
        y = self.year_cfg
        if y is None or self.first_minute_s is None or sums is None:
            return None
        window = np.minimum(self.window_s, now_s - self.first_minute_s)
        has_signal = self.cfg.production is not None
        return budget_positions(
            BudgetInputs(
                now_s=now_s,
                month_edges_s=self.edges,
                actual_t=sums.total_t,
                recent_actual_t=sums.recent_t,
                recent_window_s=window,
                allowance_t=y.allowance_t,
                benchmark_t_per_t=y.benchmark_t_per_t,
                trajectory=y.trajectory,
                projection=self.cfg.projection,
                monthly_profile=self._profile,
                production_t=sums.production_t if has_signal else None,
                recent_production_t=sums.recent_production_t if has_signal else None,
                production_plan_t=self._plan,
                price_cny_per_t=self.prices.at_many(now_s),
            )
        )

    def deviations(self, pos: BudgetPosition, by_process_t: dict[str, float] | None = None) -> tuple[ProcessDeviation, ...]:
        """Each process's part of the deviation from the trajectory (analytics.budget).

        `by_process_t`: the year to date per process at the position's minute (default: now).
        """
        y = self.year_cfg
        subs = {
            p.process: p.allowance_t if p.allowance_t is not None else pos.allowance_t * (p.share or 0.0)
            for p in (y.processes if y else [])
        }
        actual = dict(self.by_process_t) if by_process_t is None else by_process_t
        return process_deviations(actual, subs, pos.trajectory_t, pos.trajectory_share)


class MinuteSums:
    """The tracker's sums after each minute of one add_minutes call (arrays by minute)."""

    def __init__(
        self,
        total_t: NDArray[np.float64],
        production_t: NDArray[np.float64],
        recent_t: NDArray[np.float64],
        recent_production_t: NDArray[np.float64],
        by_process: dict[str, NDArray[np.float64]],
        before: dict[str, float],
        new_keys: list[str],
        first_at: dict[str, int],
    ) -> None:
        self.total_t, self.production_t = total_t, production_t
        self.recent_t, self.recent_production_t = recent_t, recent_production_t
        self._by_process, self._before, self._new_keys, self._first_at = by_process, before, new_keys, first_at

    @classmethod
    def held(cls, tracker: BudgetTracker) -> MinuteSums:
        """The tracker's current sums as a run of one minute."""

        def one(x: float) -> NDArray[np.float64]:
            return np.array([x], dtype=np.float64)

        return cls(
            one(tracker.total_t),
            one(tracker.production_t),
            one(tracker._recent_t),
            one(tracker._recent_prod_t),
            {},
            dict(tracker.by_process_t),
            [],
            {},
        )

    def by_process_at(self, i: int) -> dict[str, float]:
        """The year to date per process after minute i, in the order processes first appeared."""
        out = {p: float(self._by_process[p][i]) if p in self._by_process else v for p, v in self._before.items()}
        for p in self._new_keys:
            if self._first_at[p] <= i:
                out[p] = float(self._by_process[p][i])
        return out


def format_t(x: float) -> str:
    return f"{x:,.1f}" if abs(x) >= 10 else f"{x:,.2f}"


def budget_payload(
    site: str,
    tz: str,
    name: str,
    scope: str,
    year: int,
    pos: BudgetPosition,
    at_s: float,
    method: str,
    processes: tuple[ProcessDeviation, ...],
) -> dict[str, Any]:
    """The retained budget position (topic <prefix>/<site>/budget); schema in docs/alerts.md."""
    position = {
        "site": site,
        "budget": name,
        "scope": scope,
        "year": year,
        "at": iso_at(at_s, tz),
        "allowance_t": pos.allowance_t,
        "trajectory_t": pos.trajectory_t,
        "actual_t": pos.actual_t,
        "gap_t": pos.gap_t,
        "projected_year_end_t": pos.projected_year_end_t,
        "shortfall_t": pos.shortfall_t,
        "shortfall_cny": pos.shortfall_cny,
        "price_cny_per_t": pos.price_cny_per_t,
        "elapsed_fraction": pos.elapsed_fraction,
        "projection_method": method,
        "production_t": pos.production_t,
        "projected_production_t": pos.projected_production_t,
        "intensity_t_per_t": pos.intensity_t_per_t,
        "recent_intensity_t_per_t": pos.recent_intensity_t_per_t,
        "benchmark_t_per_t": pos.benchmark_t_per_t,
        "processes": [
            {
                "process": d.process,
                "actual_t": d.actual_t,
                "trajectory_t": d.trajectory_t,
                "deviation_t": d.deviation_t,
                "share": d.share,
            }
            for d in processes
        ],
    }
    return json_safe(position)
