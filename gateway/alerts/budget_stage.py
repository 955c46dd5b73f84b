"""AlertStage: the listener that evaluates budgets and alert rules on every closed minute.

It receives the MinuteResults of each closed frame (one minute live, many in a replay),
keeps the year-to-date sums of the budget's scope, evaluates analytics.budget and
analytics.spikes, feeds the measures to AlertRules and stores the resulting events in the
alerts table (the outbox the MQTT sink drains). A frame is evaluated as a whole: its minutes
become arrays, the budget positions and spike baselines of all of them are taken in numpy and
AlertRules.observe_many walks each alert key through them, so a live minute is a frame of one
and a replay's day a frame of 1,440, through the same code and with the same events. After a restart it takes the year to date back
from the ledger's minutes and the active alerts from the alerts table, so neither the budget
nor an alert's id starts over.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from analytics.budget import BudgetPosition
from analytics.spikes import RollingBaseline
from analytics.substitution import MinuteQuality
from gateway.alerts.budget_tracker import DAY_S, BudgetTracker, budget_payload, format_t
from gateway.alerts.deposit import MonthDeposit
from gateway.alerts.model import Alert, iso_at
from gateway.alerts.rules import AlertKey, AlertRules, Observation
from gateway.core.clock import ClockStep
from gateway.core.errors import SinkWriteError
from gateway.core.health import HealthRegistry
from gateway.core.model import MinuteResults
from gateway.ledger.alerts_table import AlertStore
from gateway.settings.alerts import AlertsConfig, BudgetConfig

log = logging.getLogger(__name__)

SOURCE_PREFIXES = ("modbus[", "mqtt[", "hj212[", "opcua[", "s7[")  # health components that are data sources
#: A stream's minute of CO2 beyond this (or not finite) is garbage, never evaluated: the physical
#: bounds of the readings (analytics/units.py) cap a stream's minute at a few thousand t (1e5 t/h of
#: coke is ~5e3 tCO2 a minute) and the largest steel works emits ~60 t a minute in all. A budget
#: alert from such a row would project a shortfall of dozens of digits in t and CNY.
MAX_MINUTE_CO2_KG = 1.0e9


class AlertStage:
    """Budget and alert evaluation per closed minute. Call it with each frame's results.

    Not thread-safe; runs in the pipeline's task like every listener. `notify` is called after
    anything publishable changed (new events, active set, budget position).
    """

    def __init__(
        self,
        site: str,
        tz: str,
        budget: BudgetConfig | None,
        alerts: AlertsConfig,
        store: AlertStore,
        *,
        health: HealthRegistry | None = None,
        influx_backlog: Callable[[], int] | None = None,
        disk_free_bytes: Callable[[], int] | None = None,
        ledger_pending: Callable[[], int] | None = None,
    ) -> None:
        self.site, self.tz = site, tz
        self.budget_cfg, self.cfg, self.store = budget, alerts, store
        self.health, self.influx_backlog = health, influx_backlog
        self.disk_free_bytes, self.ledger_pending = disk_free_bytes, ledger_pending
        self.rules = AlertRules(site, tz)
        self.tracker = BudgetTracker(budget, tz) if budget is not None else None
        sp = alerts.spike
        self._baselines: dict[str, RollingBaseline] = defaultdict(
            lambda: RollingBaseline(
                sp.baseline_minutes,
                min_history=sp.min_history_minutes,
                mad_floor=sp.min_mad_kg,
                off_below=sp.off_below_kg,
                refresh=sp.refresh_minutes,
            )
        )
        self.last_minute_s = float("-inf")
        self.active_version = 0
        self.budget_version = 0
        self._position: tuple[BudgetPosition, float, int] | None = None  # payload built on demand
        self._payload: tuple[int, dict[str, Any]] | None = None
        self.notify: Callable[[], None] = lambda: None  # the pipeline sets the alert publisher's wake-up here
        self.events_total = 0
        self._pending: list[Alert] = []  # events the store refused, retried at the next minute
        self._store_failing = False
        self.deposit_months: list[MonthDeposit] = []  # the last deposit check's findings (status page, /metrics)
        self.deposit_version = 0
        self._clock_step: tuple[ClockStep, str] | None = None  # the last step of the clock, until its alert clears

    def close(self) -> None:
        """Close the alert store's connection (Gateway.close calls this)."""
        self.store.close()

    def restore(self, now_s: float) -> None:
        """Take back the year to date and the active alerts; `now_s` = first minute not closed."""
        self.rules.restore(self.store.active())
        if self.rules.active():
            self.active_version += 1
        if self.tracker is not None:
            self.tracker.restore(self.store, now_s)
            if self.tracker.first_minute_s is not None:
                self.last_minute_s = now_s - 60.0
                self._evaluate_position(now_s)

    def active(self) -> list[Alert]:
        return self.rules.active()

    @property
    def deposits(self) -> list[dict[str, Any]]:
        return [m.details(self.cfg.deposit) for m in self.deposit_months]

    @property
    def budget_position(self) -> dict[str, Any] | None:
        """The latest budget position as the retained JSON object, or None before the first."""
        if self._position is None or self.tracker is None or self.budget_cfg is None:
            return None
        if self._payload is None or self._payload[0] != self.budget_version:
            pos, at_s, year = self._position
            b = self.budget_cfg
            self._payload = (
                self.budget_version,
                budget_payload(
                    self.site,
                    self.tz,
                    b.name,
                    b.scope,
                    year,
                    pos,
                    at_s,
                    b.projection,
                    self.tracker.deviations(pos),
                ),
            )
        return self._payload[1]

    def __call__(self, results: MinuteResults) -> None:
        frame = _Minutes.of(results, self.last_minute_s, self.tracker.scopes if self.tracker else (), self.budget_cfg)
        events: list[Alert] = []
        if frame is not None:
            if frame.same_order:
                events = self._evaluate(frame)
            else:  # processes listed in a different order in some minute: keep each minute's own
                for m in frame.starts.tolist():
                    events += self._evaluate(
                        _Minutes.of(results.take(results.minute_start == m), m - 60.0, frame.scopes, self.budget_cfg)  # type: ignore[arg-type]  # m is one of frame's minutes: it has rows
                    )
        self._publish(events, notify=bool(events) or self._position is not None)

    def observe_deposit(self, months: list[MonthDeposit], at_s: float) -> None:
        """Feed the findings of a deposit check (gateway/alerts/deposit.py) taken at `at_s`.

        One key per month; a month with an active alert that is no longer among `months` (its
        watch ended, or its minutes are gone) is cleared with reason "unwatched".
        """
        cfg = self.cfg.deposit
        events: list[Alert] = []
        seen = set()
        for month in months:
            seen.add(month.month)

            def describe(month: MonthDeposit = month) -> tuple[str, dict[str, Any]]:
                return month.message(cfg), month.details(cfg)

            obs = Observation(month.measure(cfg), figure=month.figure(cfg), describe=describe)
            events += self.rules.observe(("deposit", None, month.month), obs, at_s, cfg, span_s=0.0)
        for alert in self.rules.active():
            if alert.kind == "deposit" and alert.subject not in seen:
                message = f"Deposit {alert.subject}: no longer watched (watch_days_after_due passed, or no minutes of it left)"
                gone = Observation(0.0, message, {"month": alert.subject, "reason": "unwatched"}, figure=0.0)
                events += self.rules.observe(("deposit", None, alert.subject), gone, at_s, cfg, span_s=0.0)
        self.deposit_months = months
        self.deposit_version += 1
        self._publish(events, notify=True)

    def observe_clock_step(self, step: ClockStep, consequence: str) -> None:
        """Raise the data_quality alert `clock_step` now (`_clock_step_at`): a step back closes
        no minute until the clock is past the last one closed, so this cannot wait for a frame.
        It clears at the first closed minute ending a minute after the step (`_clock_step_rule`)."""
        self._clock_step = (step, consequence)
        key: AlertKey = ("data_quality", None, "clock_step")
        cfg = self.cfg.data_quality.clock_step
        events = self.rules.observe(key, self._clock_step_observation(1.0), _clock_step_at(step), cfg, span_s=0.0)
        self._publish(events, notify=bool(events))

    def _clock_step_observation(self, measure: float) -> Observation:
        assert self._clock_step is not None
        step, consequence = self._clock_step
        size_s = step.size_s
        details = {
            "step_s": size_s,
            "expected": iso_at(step.expected_s, self.tz),
            "observed": iso_at(step.observed_s, self.tz),
            "consequence": consequence,
        }
        if measure:
            way = "forward" if size_s > 0 else "back"
            message = (
                f"Gateway clock stepped {way} by {abs(size_s):,.0f} s, from {details['expected']} to "
                f"{details['observed']}: {consequence}"
            )
        else:
            message = f"Gateway clock: minutes close again after the step of {size_s:+,.0f} s"
        return Observation(measure, message, details, figure=round(size_s))

    def _clock_step_rule(self, lo: int, at: NDArray[np.float64], rank: int) -> list[tuple[int, int, Alert]]:
        """The clock_step alert over a frame's minutes: measure 1 up to a minute after the step, then 0."""
        key: AlertKey = ("data_quality", None, "clock_step")
        if self._clock_step is None:
            # an alert restored at a restart (its step was before it): cleared at the first minute
            if not any(a.kind == key[0] and a.subject == key[2] for a in self.rules.active()):
                return []
            gone = Observation(0.0, "Gateway clock: minutes close again after a step (before the restart)", {})
            return [
                (lo + i, rank, e)
                for i, e in self.rules.observe_many(key, np.zeros(len(at)), at, self.cfg.data_quality.clock_step, lambda i: gone)
            ]
        step_at = _clock_step_at(self._clock_step[0])
        measure = np.where(at < step_at + 60.0, 1.0, 0.0)
        times = np.maximum(at, step_at)  # minutes a step forward jumped over end before it was seen
        stepped, steady = self._clock_step_observation(1.0), self._clock_step_observation(0.0)
        out = [
            (lo + i, rank, e)
            for i, e in self.rules.observe_many(
                key,
                measure,
                times,
                self.cfg.data_quality.clock_step,
                lambda i: stepped if measure[i] else steady,
                figures=np.full(len(at), stepped.figure),
            )
        ]
        if len(at) and not measure[-1]:
            self._clock_step = None  # cleared (or a disabled rule): nothing more to follow
        return out

    def _publish(self, events: list[Alert], *, notify: bool) -> None:
        """Store the events (and any the store refused before), then wake the publisher."""
        if events:
            self.events_total += len(events)
            self.active_version += 1
        self._pending.extend(events)
        if self._pending:
            try:
                self.store.add(self._pending)
            except SinkWriteError as exc:
                # keep them and try again at the next minute; an alert must not stop the pipeline
                if not self._store_failing:
                    log.error("%s; %d alert event(s) held in memory", exc, len(self._pending))
                self._store_failing = True
            else:
                if self._store_failing:
                    log.info(
                        "alert store %s: writable again, %d event(s) stored",
                        self.store.path,
                        len(self._pending),
                    )
                self._pending.clear()
                self._store_failing = False
        if notify:
            self.notify()

    def _evaluate(self, frame: _Minutes) -> list[Alert]:
        """Every rule over the frame's minutes; the events in the order minute-by-minute
        evaluation gives them: by minute, then budget, intensity, spikes, coverage, devices,
        backlog (processes in their order within the minute)."""
        found: list[tuple[int, int, Alert]] = []  # (minute, rule rank, event)
        at_s = frame.starts + 60.0
        lo = 0
        while lo < len(at_s):
            hi = len(at_s)
            if self.tracker is not None:
                hi = lo + self.tracker.year_run(frame.starts[lo:])
                found += self._budget_rules(frame, lo, hi, at_s)
            found += self._spike_rules(frame, lo, hi, at_s)
            found += self._quality_rules(frame, lo, hi, at_s)
            lo = hi
        self.last_minute_s = float(frame.starts[-1])
        found.sort(key=lambda x: (x[0], x[1]))
        return [e for _, _, e in found]

    def _evaluate_position(self, at_s: float) -> BudgetPosition | None:
        assert self.tracker is not None
        pos = self.tracker.position(at_s)
        if pos is None or self.tracker.year is None:
            return None
        self._position = (pos, at_s, self.tracker.year)
        self.budget_version += 1
        return pos

    def _budget_rules(self, frame: _Minutes, lo: int, hi: int, at_s: NDArray[np.float64]) -> list[tuple[int, int, Alert]]:
        assert self.tracker is not None and self.budget_cfg is not None
        tracker, b = self.tracker, self.budget_cfg
        sums = tracker.add_minutes(
            frame.starts[lo:hi], frame.processes, frame.scoped_t[lo:hi], frame.has_scoped[lo:hi], frame.production_t[lo:hi]
        )
        at = at_s[lo:hi]
        many = tracker.positions(at, sums)
        if many is None or tracker.year is None:
            return []
        year = tracker.year
        self._position = (many.at(len(at) - 1), float(at[-1]), year)
        self.budget_version += len(at)
        first = int(np.searchsorted((at - (tracker.first_minute_s or 0.0)) / DAY_S >= b.projection_min_days, True))
        if first >= len(at):
            return []
        at = at[first:]

        def budget_at(i: int) -> Observation:
            j = first + i
            pos = many.at(j)

            def describe_budget() -> tuple[str, dict[str, Any]]:
                word = "shortfall" if pos.shortfall_t > 0 else "surplus"
                message = (
                    f"Budget {year} ({b.scope}): projected year-end {format_t(pos.projected_year_end_t)} tCO2 vs "
                    f"allowance {format_t(pos.allowance_t)} t, {word} {format_t(abs(pos.shortfall_t))} t = "
                    f"{abs(pos.shortfall_cny):,.0f} CNY at {pos.price_cny_per_t:g} CNY/t"
                )
                details = {
                    "year": year,
                    "scope": b.scope,
                    "budget": b.name,
                    "allowance_t": pos.allowance_t,
                    "projected_year_end_t": pos.projected_year_end_t,
                    "shortfall_t": pos.shortfall_t,
                    "shortfall_cny": pos.shortfall_cny,
                    "price_cny_per_t": pos.price_cny_per_t,
                    "actual_t": pos.actual_t,
                    "trajectory_t": pos.trajectory_t,
                    "gap_t": pos.gap_t,
                    "projection_method": b.projection,
                    "processes": {
                        d.process: {"deviation_t": d.deviation_t, "share": d.share}
                        for d in tracker.deviations(pos, sums.by_process_at(j))
                    },
                }
                return message, details

            return Observation(pos.over_fraction, figure=pos.shortfall_t, scale=pos.allowance_t, describe=describe_budget)

        out = [
            (lo + first + i, 0, e)
            for i, e in self.rules.observe_many(
                ("budget", None, b.name),
                many.over_fraction[first:],
                at,
                self.cfg.budget,
                budget_at,
                figures=many.shortfall_t[first:],
                scales=many.allowance_t[first:],
            )
        ]
        bench = many.benchmark_t_per_t
        if bench and many.recent_intensity_t_per_t is not None and many.has_recent_intensity is not None:
            rows = first + np.flatnonzero(many.has_recent_intensity[first:])
            over = many.recent_intensity_t_per_t[rows] / bench - 1.0

            def intensity_at(i: int) -> Observation:
                pos, o = many.at(int(rows[i])), float(over[i])
                recent = pos.recent_intensity_t_per_t

                def describe_intensity() -> tuple[str, dict[str, Any]]:
                    msg = (
                        f"CO2 intensity {recent:.3f} t/t product over the last {b.projection_window_days:g} d, "
                        f"{o * 100:+.1f} % vs benchmark {bench:.3f} t/t"
                    )
                    return msg, {
                        "intensity_t_per_t": recent,
                        "benchmark_t_per_t": bench,
                        "year_to_date_t_per_t": pos.intensity_t_per_t,
                        "window_days": b.projection_window_days,
                    }

                return Observation(o, describe=describe_intensity)

            out += [
                (lo + int(rows[i]), 1, e)
                for i, e in self.rules.observe_many(
                    ("intensity", None, b.name), over, at_s[lo:hi][rows], self.cfg.intensity, intensity_at
                )
            ]
        return out

    def _spike_rules(self, frame: _Minutes, lo: int, hi: int, at_s: NDArray[np.float64]) -> list[tuple[int, int, Alert]]:
        cfg = self.cfg.spike
        if not cfg.enabled:
            return []
        out: list[tuple[int, int, Alert]] = []
        for k, process in enumerate(frame.processes):
            rows = lo + np.flatnonzero(frame.present[lo:hi, k])
            if not len(rows):
                continue
            kg_all = frame.co2_kg[rows, k]
            scores, medians, mads = self._baselines[process].update_many(kg_all)
            scored = np.flatnonzero(~np.isnan(scores))  # NaN: not operating, or baseline still too short
            if not len(scored):
                continue
            at, rows = at_s[rows[scored]], rows[scored]
            kgs, zs, meds, ms = kg_all[scored], scores[scored], medians[scored], mads[scored]

            def spike_at(i: int, process: str = process, kgs=kgs, zs=zs, meds=meds, ms=ms) -> Observation:
                kg, score, median, mad = float(kgs[i]), float(zs[i]), float(meds[i]), float(ms[i])

                def describe() -> tuple[str, dict[str, Any]]:
                    msg = (
                        f"{process}: CO2 {kg:,.1f} kg/min vs its {cfg.baseline_minutes / 60:g} h baseline "
                        f"{median:,.1f} kg/min (robust z {score:.1f})"
                    )
                    return msg, {
                        "co2_kg_per_min": kg,
                        "baseline_median_kg": median,
                        "baseline_mad_kg": mad,
                        "robust_z": score,
                    }

                return Observation(score, describe=describe)

            out += [(int(rows[i]), 2 + k, e) for i, e in self.rules.observe_many(("spike", process, ""), zs, at, cfg, spike_at)]
        return out

    def _quality_rules(self, frame: _Minutes, lo: int, hi: int, at_s: NDArray[np.float64]) -> list[tuple[int, int, Alert]]:
        dq = self.cfg.data_quality
        out: list[tuple[int, int, Alert]] = []
        floor = 1.0 - min(dq.coverage.raise_at.values())
        n_proc = len(frame.processes)
        for k, process in enumerate(frame.processes):
            rows = lo + np.flatnonzero(frame.present[lo:hi, k])
            if not len(rows):
                continue
            covs = frame.coverage[rows, k]

            def coverage_at(i: int, process: str = process, covs: NDArray[np.float64] = covs) -> Observation:
                cov = float(covs[i])

                def describe() -> tuple[str, dict[str, Any]]:
                    return (
                        f"{process}: data coverage {cov * 100:.0f} % in the last minute (alert below {floor * 100:.0f} %)",
                        {"coverage": cov},
                    )

                return Observation(1.0 - cov, describe=describe)

            out += [
                (int(rows[i]), 2 + n_proc + k, e)
                for i, e in self.rules.observe_many(
                    ("data_quality", process, "coverage"), 1.0 - covs, at_s[rows], dq.coverage, coverage_at
                )
            ]
        at = at_s[lo:hi]
        rank = 2 + 2 * n_proc
        if self.health is not None:
            for name, comp in list(self.health.components.items()):
                if not name.startswith(SOURCE_PREFIXES):
                    continue
                lost = 0.0 if comp.ok else 1.0
                msg = f"Device {name} lost: {comp.last_error}" if lost else f"Device {name} is delivering again"
                device = Observation(
                    lost,
                    msg,
                    {
                        "component": name,
                        "last_error": comp.last_error,
                        "consecutive_errors": comp.consecutive_errors,
                    },
                    figure=lost,
                )
                constant = np.full(len(at), lost)
                out += [
                    (lo + i, rank, e)
                    for i, e in self.rules.observe_many(
                        ("data_quality", None, f"device:{name}"),
                        constant,
                        at,
                        dq.device,
                        lambda i, device=device: device,  # type: ignore[misc]  # mypy infers no lambda with a default argument
                        figures=constant,
                    )
                ]
                rank += 1
        out += self._ledger_disk_rules(lo, at, rank)
        rank += 2
        if self.influx_backlog is not None:
            backlog = float(self.influx_backlog())
            msg = f"InfluxDB backlog: {backlog:,.0f} minute rows not yet written (kept in the ledger)"
            rows_obs = Observation(backlog, msg, {"backlog_rows": backlog})
            out += [
                (lo + i, rank, e)
                for i, e in self.rules.observe_many(
                    ("data_quality", None, "influx_backlog"),
                    np.full(len(at), backlog),
                    at,
                    dq.influx_backlog,
                    lambda i: rows_obs,
                )
            ]
        out += self._clock_step_rule(lo, at, rank + 1)
        return out


    def _ledger_disk_rules(self, lo: int, at: NDArray[np.float64], rank: int) -> list[tuple[int, int, Alert]]:
        """The ledger's disk: free space against its budget, and results the disk refused (held in memory)."""
        dq = self.cfg.data_quality
        out: list[tuple[int, int, Alert]] = []
        if self.disk_free_bytes is not None:
            try:
                free_mb = self.disk_free_bytes() / 1e6
            except OSError as exc:
                log.warning("alerts: cannot read the free space of the ledger's disk: %s", exc)
            else:
                budget = dq.disk.min_free_mb
                short = (budget - free_mb) / budget
                msg = f"Ledger disk: {free_mb:,.0f} MB free, below the {budget:,.0f} MB budget" if short >= 0 else (
                    f"Ledger disk: {free_mb:,.0f} MB free again (budget {budget:,.0f} MB)"
                )
                disk = Observation(short, msg, {"free_mb": free_mb, "min_free_mb": budget}, figure=round(free_mb))
                out += [
                    (lo + i, rank, e)
                    for i, e in self.rules.observe_many(
                        ("data_quality", None, "ledger_disk"), np.full(len(at), short), at, dq.disk, lambda i: disk
                    )
                ]
        if self.ledger_pending is not None:
            held = float(self.ledger_pending())
            msg = (
                f"Ledger: the disk refuses writes; {held:,.0f} minute result(s) held in memory, written when it takes them again"
                if held
                else "Ledger: writing again; the results held in memory are stored"
            )
            pending = Observation(held, msg, {"held_rows": held})
            out += [
                (lo + i, rank + 1, e)
                for i, e in self.rules.observe_many(
                    ("data_quality", None, "ledger_write"), np.full(len(at), held), at, dq.ledger_pending, lambda i: pending
                )
            ]
        return out


def _clock_step_at(step: ClockStep) -> float:
    """When a step's alert is raised: the new time, or after a step back the old one, so that alert
    times never go backwards (a clear before it would stop the raise: reraise_after_s)."""
    return max(step.observed_s, step.expected_s)


class _Minutes:
    """A frame's results as (minute x process) arrays, for the minutes after `after_s`.

    Sums are taken in the results' order, as a dict accumulated row by row would take them.
    Processes are numbered in the order they first appear; `same_order` tells whether every
    minute lists its processes in that order (the emission stage always does).
    """

    starts: NDArray[np.float64]
    processes: list[str]
    present: NDArray[np.bool_]
    co2_kg: NDArray[np.float64]
    coverage: NDArray[np.float64]
    scoped_t: NDArray[np.float64]
    has_scoped: NDArray[np.bool_]
    production_t: NDArray[np.float64]
    same_order: bool
    scopes: tuple[str, ...]

    @classmethod
    def of(cls, results: MinuteResults, after_s: float, scopes: tuple[str, ...], budget: BudgetConfig | None) -> _Minutes | None:
        later = results.minute_start > after_s  # earlier: counted already (a re-delivered frame)
        # production minutes (scope production, CO2 0) are no emission: they would dilute a
        # process's coverage and feed its spike baseline with zeros, so no rule sees them
        later &= (results.streams.column("scope") != "production")[results.stream_ids]
        rows = results if later.all() else results.take(later)
        plausible = np.abs(rows.co2_kg) <= MAX_MINUTE_CO2_KG  # NaN fails it
        if not plausible.all():
            first = int(np.argmin(plausible))
            log.warning(
                "alerts: %d minute row(s) with CO2 not finite or beyond %.0e kg left out of the budget and spike alerts "
                "(first: %s/%s at %s, %r kg); no plant emits that: check the signal's unit and bounds",
                int(np.count_nonzero(~plausible)),
                MAX_MINUTE_CO2_KG,
                rows.text("process")[first],
                rows.text("stream")[first],
                iso_at(float(rows.minute_start[first]), "UTC"),
                float(rows.co2_kg[first]),
            )
            rows = rows.take(plausible)
        if not len(rows):
            return None
        self = cls()
        self.scopes = scopes
        self.processes, proc = rows.codes("process")
        n_proc = len(self.processes)
        self.starts, minute = np.unique(rows.minute_start, return_inverse=True)
        minute = minute.reshape(-1)
        cells = len(self.starts) * n_proc
        cell = minute * n_proc + proc
        shape = (len(self.starts), n_proc)
        count = np.bincount(cell, minlength=cells)
        self.present = (count > 0).reshape(shape)
        self.co2_kg = np.bincount(cell, weights=rows.co2_kg, minlength=cells).reshape(shape)  # type: ignore[assignment]  # with weights bincount returns float64; numpy's stub says intp
        cov = np.where(rows.quality == MinuteQuality.MISSING, 0.0, rows.coverage)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.coverage = (np.bincount(cell, weights=cov, minlength=cells) / count).reshape(shape)
        # which streams count toward the budget, and which one is the production, once per stream
        streams = rows.streams
        in_scope = np.array([s in scopes for s in streams.column("scope").tolist()], dtype=bool)[rows.stream_ids]
        self.scoped_t = np.bincount(cell[in_scope], weights=rows.co2_kg[in_scope] / 1000.0, minlength=cells).reshape(shape)  # type: ignore[assignment]  # with weights bincount returns float64; numpy's stub says intp
        self.has_scoped = (np.bincount(cell[in_scope], minlength=cells) > 0).reshape(shape)
        prod = budget.production if budget is not None else None
        if prod is not None:
            made_by = (streams.column("process") == prod.process) & (streams.column("stream") == prod.stream)
            made = made_by.astype(bool)[rows.stream_ids]
            self.production_t = np.bincount(minute[made], weights=rows.activity[made], minlength=len(self.starts))  # type: ignore[assignment]  # with weights bincount returns float64; numpy's stub says intp
        else:
            self.production_t = np.zeros(len(self.starts))
        # each minute's processes in order of their first row there
        first_row = np.full(cells, len(rows), dtype=np.int64)
        np.minimum.at(first_row, cell, np.arange(len(rows)))
        first_row = first_row.reshape(shape)
        seen = np.maximum.accumulate(np.where(self.present, first_row, -1), axis=1)
        self.same_order = bool(np.all(~self.present[:, 1:] | (first_row[:, 1:] > seen[:, :-1])))
        return self

