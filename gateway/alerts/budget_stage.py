"""AlertStage: the listener that evaluates budgets and alert rules on every closed minute.

It receives the list[MinuteResult] of each closed frame (one minute live, many in a replay),
keeps the year-to-date sums of the budget's scope, evaluates analytics.budget and
analytics.spikes, feeds the measures to AlertRules and stores the resulting events in the
alerts table (the outbox the MQTT sink drains). After a restart it takes the year to date back
from the ledger's minutes and the active alerts from the alerts table, so neither the budget
nor an alert's id starts over.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from analytics.budget import BudgetPosition
from analytics.spikes import RollingBaseline
from gateway.alert_settings import AlertsConfig, BudgetConfig
from gateway.alerts.budget_tracker import BudgetTracker, budget_payload, format_t
from gateway.alerts.model import Alert
from gateway.alerts.rules import AlertRules, Observation
from gateway.alerts.store import AlertStore
from gateway.errors import SinkWriteError
from gateway.health import HealthRegistry
from gateway.model import MinuteResult

log = logging.getLogger(__name__)

SOURCE_PREFIXES = ("modbus[", "mqtt[")  # health components that are data sources


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
    ) -> None:
        self.site, self.tz = site, tz
        self.budget_cfg, self.cfg, self.store = budget, alerts, store
        self.health, self.influx_backlog = health, influx_backlog
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
        self.notify: Callable[[], None] = lambda: None
        self.events_total = 0
        self._pending: list[Alert] = []  # events the store refused, retried at the next minute
        self._store_failing = False

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

    def __call__(self, results: list[MinuteResult]) -> None:
        by_minute: dict[float, list[MinuteResult]] = defaultdict(list)
        for r in results:
            by_minute[r.minute_start].append(r)
        events: list[Alert] = []
        for minute_start in sorted(by_minute):
            if minute_start <= self.last_minute_s:
                continue  # already counted (a frame re-delivered after a restart)
            events.extend(self.on_minute(minute_start, by_minute[minute_start]))
            self.last_minute_s = minute_start
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
        if events or self._position is not None:
            self.notify()

    def on_minute(self, minute_start: float, rows: Iterable[MinuteResult]) -> list[Alert]:
        """Evaluate one closed minute; returns the events it produced (not yet stored)."""
        at_s = minute_start + 60.0
        co2_kg: dict[str, float] = {}
        scoped_t: dict[str, float] = {}
        coverage: dict[str, list[float]] = {}
        production_t = 0.0
        scopes = self.tracker.scopes if self.tracker else ()
        prod = self.budget_cfg.production if self.budget_cfg else None
        for r in rows:
            p = r.process
            co2_kg[p] = co2_kg.get(p, 0.0) + r.co2_kg
            cov = 0.0 if r.quality == "missing" else r.coverage
            if p in coverage:
                coverage[p].append(cov)
            else:
                coverage[p] = [cov]
            if r.scope in scopes:
                scoped_t[p] = scoped_t.get(p, 0.0) + r.co2_kg / 1000.0
            if prod is not None and p == prod.process and r.stream == prod.stream:
                production_t += r.activity
        events: list[Alert] = []
        if self.tracker is not None:
            self.tracker.add_minute(minute_start, scoped_t, production_t)
            events += self._budget_rules(at_s)
        events += self._spike_rules(at_s, co2_kg)
        events += self._quality_rules(at_s, coverage)
        return events

    def _evaluate_position(self, at_s: float) -> BudgetPosition | None:
        assert self.tracker is not None
        pos = self.tracker.position(at_s)
        if pos is None or self.tracker.year is None:
            return None
        self._position = (pos, at_s, self.tracker.year)
        self.budget_version += 1
        return pos

    def _budget_rules(self, at_s: float) -> list[Alert]:
        assert self.tracker is not None and self.budget_cfg is not None
        pos = self._evaluate_position(at_s)
        if pos is None or self.tracker.data_days(at_s) < self.budget_cfg.projection_min_days:
            return []
        b, year, tracker = self.budget_cfg, self.tracker.year, self.tracker

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
                    for d in tracker.deviations(pos)
                },
            }
            return message, details

        events = self.rules.observe(
            ("budget", None, b.name),
            Observation(
                pos.over_fraction, figure=pos.shortfall_t, scale=pos.allowance_t, describe=describe_budget
            ),
            at_s,
            self.cfg.budget,
        )
        bench, recent = pos.benchmark_t_per_t, pos.recent_intensity_t_per_t
        if bench and recent is not None:
            over = recent / bench - 1.0

            def describe_intensity() -> tuple[str, dict[str, Any]]:
                msg = (
                    f"CO2 intensity {recent:.3f} t/t product over the last {b.projection_window_days:g} d, "
                    f"{over * 100:+.1f} % vs benchmark {bench:.3f} t/t"
                )
                return msg, {
                    "intensity_t_per_t": recent,
                    "benchmark_t_per_t": bench,
                    "year_to_date_t_per_t": pos.intensity_t_per_t,
                    "window_days": b.projection_window_days,
                }

            events += self.rules.observe(
                ("intensity", None, b.name),
                Observation(over, describe=describe_intensity),
                at_s,
                self.cfg.intensity,
            )
        return events

    def _spike_rules(self, at_s: float, co2_kg: dict[str, float]) -> list[Alert]:
        cfg = self.cfg.spike
        if not cfg.enabled:
            return []
        events: list[Alert] = []
        for process, kg in co2_kg.items():
            base = self._baselines[process]
            score = base.update(kg)
            if score != score:  # NaN: not operating, or baseline still too short
                continue
            median, mad = base.median, base.mad

            def describe(
                process: str = process,
                kg: float = kg,
                score: float = score,
                median: float = median,
                mad: float = mad,
            ) -> tuple[str, dict[str, Any]]:
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

            events += self.rules.observe(
                ("spike", process, ""), Observation(score, describe=describe), at_s, cfg
            )
        return events

    def _quality_rules(self, at_s: float, coverage: dict[str, list[float]]) -> list[Alert]:
        dq = self.cfg.data_quality
        events: list[Alert] = []
        floor = 1.0 - min(dq.coverage.raise_at.values())
        for process, values in coverage.items():
            cov = sum(values) / len(values)

            def describe(process: str = process, cov: float = cov) -> tuple[str, dict[str, Any]]:
                return (
                    f"{process}: data coverage {cov * 100:.0f} % in the last minute "
                    f"(alert below {floor * 100:.0f} %)",
                    {"coverage": cov},
                )

            events += self.rules.observe(
                ("data_quality", process, "coverage"),
                Observation(1.0 - cov, describe=describe),
                at_s,
                dq.coverage,
            )
        if self.health is not None:
            for name, comp in list(self.health.components.items()):
                if not name.startswith(SOURCE_PREFIXES):
                    continue
                lost = 0.0 if comp.ok else 1.0
                msg = (
                    f"Device {name} lost: {comp.last_error}" if lost else f"Device {name} is delivering again"
                )
                events += self.rules.observe(
                    ("data_quality", None, f"device:{name}"),
                    Observation(
                        lost,
                        msg,
                        {
                            "component": name,
                            "last_error": comp.last_error,
                            "consecutive_errors": comp.consecutive_errors,
                        },
                        figure=lost,
                    ),
                    at_s,
                    dq.device,
                )
        if self.influx_backlog is not None:
            backlog = float(self.influx_backlog())
            msg = f"InfluxDB backlog: {backlog:,.0f} minute rows not yet written (kept in the ledger)"
            events += self.rules.observe(
                ("data_quality", None, "influx_backlog"),
                Observation(backlog, msg, {"backlog_rows": backlog}),
                at_s,
                dq.influx_backlog,
            )
        return events


def attach_alerts(gw: Any) -> AlertStage:
    """Wire the stage (and the MQTT sink, if [alerts.mqtt] is set) into a built Gateway."""
    from gateway.supervisor import supervise  # here, not at the top: the supervisor imports us

    s = gw.settings
    store = AlertStore(s.ledger.path)
    influx = gw.influx
    stage = AlertStage(
        s.site.name,
        s.site.timezone,
        s.budget,
        s.alerts,
        store,
        health=gw.health,
        influx_backlog=(lambda: influx.counters.backlog) if influx is not None else None,
    )
    stage.restore(gw.window.next_minute)
    gw.listeners.append(stage)
    if s.alerts.mqtt is not None:
        from gateway.alerts.mqtt_sink import AlertMqttSink  # imports aiomqtt, only when configured

        health = gw.health.get("alerts-mqtt")
        sink = AlertMqttSink(s.alerts.mqtt, s.site.name, store, stage, health, gw.clock)
        stage.notify = sink.notify

        async def run_sink() -> None:
            await supervise(lambda: sink, s.retry, health, gw.clock)

        run_sink.task_name = "alerts-mqtt"  # type: ignore[attr-defined]
        gw.extra_tasks.append(run_sink)
    return stage
