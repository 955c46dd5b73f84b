"""The alert stage on minute results: spikes, intensity, data quality, restore, prices, config."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from gateway.alerts.budget_stage import AlertStage
from gateway.alerts.budget_tracker import PriceTable, year_month_edges
from gateway.alerts.model import json_safe
from gateway.core.errors import ConfigError, SinkWriteError
from gateway.core.health import HealthRegistry
from gateway.core.model import MinuteResult
from gateway.ledger.alerts_table import AlertStore
from gateway.ledger.store import Ledger
from gateway.settings.alerts import AlertsConfig, BudgetConfig
from tests.factories import minute_result, results_of

TZ = "Asia/Shanghai"
T0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
FACTOR_F = {"factor_id": "f", "ef_kg_per_unit": 0.0}  # the budget reads co2_kg only


def row(
    i: int,
    process: str,
    co2_kg: float,
    *,
    stream: str = "s",
    scope: str = "direct",
    activity: float = 0.0,
    coverage: float = 1.0,
) -> MinuteResult:
    return minute_result(
        i, process, stream, co2_kg, start=T0, site="w", scope=scope, activity=activity, coverage=coverage, **FACTOR_F
    )


def quiet_alerts(**kw: object) -> AlertsConfig:
    """Only the rules a test asks for."""
    off = {"enabled": False, "raise_at": {"warning": 1.0}, "clear_at": 0.0}
    base: dict[str, object] = {
        "spike": {"enabled": False},
        "data_quality": {"coverage": off, "device": off, "influx_backlog": off},
    }
    base.update(kw)
    return AlertsConfig(**base)  # type: ignore[arg-type]


def test_spike_raised_after_its_minimum_duration_and_cleared(tmp_path: Path) -> None:
    alerts = quiet_alerts(
        spike={
            "baseline_minutes": 120,
            "min_history_minutes": 30,
            "refresh_minutes": 1,
            "min_mad_kg": 1.0,
            "min_duration_s": 180,
            "clear_duration_s": 120,
        }
    )
    stage = AlertStage("w", TZ, None, alerts, AlertStore(tmp_path / "l.sqlite"))
    co2 = 500.0 + np.random.default_rng(1).normal(0.0, 5.0, 200)
    co2[100:102] += 200.0  # two minutes: too short
    co2[150:156] += 200.0  # six minutes: a spike
    for i, kg in enumerate(co2):
        stage(results_of([row(i, "blast_furnace", float(kg)), row(i, "sinter", 100.0)]))
    events = stage.store.events()
    assert [(e.kind, e.process, e.state) for e in events] == [
        ("spike", "blast_furnace", "raised"),
        ("spike", "blast_furnace", "cleared"),
    ]
    raised, cleared = events
    assert raised.at_s == T0 + 60.0 * 153  # the third spike minute closes at 150 + 3 minutes
    assert raised.severity == "critical"  # 200 kg over a MAD of about 5 kg
    assert "blast_furnace: CO2" in raised.message and "kg/min" in raised.message
    assert raised.details["robust_z"] > 10
    assert cleared.at_s == T0 + 60.0 * 158  # two quiet minutes after the spike's last
    assert stage.active() == []


def test_intensity_alert_from_a_production_stream(tmp_path: Path) -> None:
    budget = BudgetConfig(
        years=[{"year": 2026, "benchmark_t_per_t": 1.8}],
        carbon_price_cny_per_t=88.13,
        production={"process": "bof", "stream": "crude_steel"},
        projection_window_days=1,
        projection_min_days=0,
    )
    alerts = quiet_alerts(intensity={"raise_at": {"warning": 0.05}, "clear_at": 0.0, "min_duration_s": 600})
    stage = AlertStage("w", TZ, budget, alerts, AlertStore(tmp_path / "l.sqlite"))
    # 1 t of steel a minute; 1.7 t CO2 for an hour, then 2.0 t (11 % over the benchmark)
    for i in range(180):
        kg = 1700.0 if i < 60 else 2000.0
        stage(results_of([row(i, "bf", kg), row(i, "bof", 0.0, stream="crude_steel", activity=1.0)]))
    events = [e for e in stage.store.events() if e.kind == "intensity"]
    assert [e.state for e in events][:1] == ["raised"]
    assert events[0].details["benchmark_t_per_t"] == 1.8
    assert "t/t" in events[0].message
    pos = stage.budget_position
    assert pos is not None
    assert pos["production_t"] == pytest.approx(180.0)
    assert pos["intensity_t_per_t"] == pytest.approx((60 * 1.7 + 120 * 2.0) / 180)


def test_device_lost_and_influx_backlog(tmp_path: Path) -> None:
    health = HealthRegistry()
    dev = health.get("modbus[bf-1]")
    health.get("alerts-mqtt").failed("broker away")  # not a data source: no alert
    backlog = [0]
    alerts = quiet_alerts(data_quality={"coverage": {"enabled": False, "raise_at": {"warning": 1.0}, "clear_at": 0.0}})
    stage = AlertStage(
        "w",
        TZ,
        None,
        alerts,
        AlertStore(tmp_path / "l.sqlite"),
        health=health,
        influx_backlog=lambda: backlog[0],
    )
    stage(results_of([row(0, "bf", 1.0)]))
    dev.failed("no reply to read_holding_registers(0, count=4) within 0.5s")
    backlog[0] = 20_000
    for i in range(1, 8):
        stage(results_of([row(i, "bf", 1.0)]))
    dev.succeeded(T0)
    for i in range(8, 10):
        stage(results_of([row(i, "bf", 1.0)]))
    got = [(e.subject, e.state, e.severity) for e in stage.store.events()]
    assert got == [
        ("device:modbus[bf-1]", "raised", "warning"),
        ("influx_backlog", "raised", "warning"),
        ("device:modbus[bf-1]", "cleared", "warning"),
    ]
    lost = stage.store.events()[0]
    assert lost.message.startswith("Device modbus[bf-1] lost: no reply") and lost.process is None


def test_budget_restored_from_the_ledger_and_minutes_not_counted_twice(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    budget = BudgetConfig(years=[{"year": 2026, "allowance_t": 100.0}], carbon_price_cny_per_t=80.0, scope="direct+indirect")
    ledger = Ledger(path)
    rows = [results_of([row(i, "bf", 1000.0), row(i, "grid", 500.0, scope="indirect")]) for i in range(10)]
    first = AlertStage("w", TZ, budget, quiet_alerts(), AlertStore(path))
    for r in rows:
        ledger.append(r)
        first(r)
    before = first.budget_position
    assert before is not None and before["actual_t"] == pytest.approx(15.0)

    again = AlertStage("w", TZ, budget, quiet_alerts(), AlertStore(path))
    again.restore(T0 + 600.0)
    restored = again.budget_position
    assert restored is not None
    for key in ("actual_t", "projected_year_end_t", "trajectory_t", "shortfall_cny"):
        assert restored[key] == pytest.approx(before[key]), key
    again(rows[-1])  # a minute re-delivered after the restart is not counted again
    assert again.budget_position["actual_t"] == pytest.approx(15.0)  # type: ignore[index]
    direct = AlertStage("w", TZ, budget.model_copy(update={"scope": "direct"}), quiet_alerts(), AlertStore(path))
    direct.restore(T0 + 600.0)
    assert direct.budget_position["actual_t"] == pytest.approx(10.0)  # type: ignore[index]
    ledger.close()


def test_year_rollover_starts_a_new_year(tmp_path: Path) -> None:
    budget = BudgetConfig(
        years=[{"year": 2025, "allowance_t": 10.0}, {"year": 2026, "allowance_t": 20.0}],
        carbon_price_cny_per_t=80.0,
    )
    stage = AlertStage("w", TZ, budget, quiet_alerts(), AlertStore(tmp_path / "l.sqlite"))
    new_year = year_month_edges(2026, TZ)[0]
    for k in range(-2, 2):
        m = new_year + 60.0 * k
        one = minute_result(minute_start=m, site="w", process="bf", stream="s", method="x", activity=0.0, co2_kg=1e3, **FACTOR_F)
        stage(results_of([one]))
    pos = stage.budget_position
    assert pos is not None
    assert pos["year"] == 2026 and pos["allowance_t"] == 20.0 and pos["actual_t"] == pytest.approx(2.0)
    assert year_month_edges(2026, TZ)[0] == datetime(2025, 12, 31, 16, tzinfo=UTC).timestamp()


def test_price_file(tmp_path: Path) -> None:
    f = tmp_path / "prices.csv"
    f.write_text("date,price_cny_per_t\n2024-11-13,105.66\n2025-03-01,88.13\n")
    prices = PriceTable(BudgetConfig(years=[{"year": 2025, "allowance_t": 1.0}], price_file=f), TZ)
    assert prices.at(datetime(2025, 1, 1, tzinfo=UTC).timestamp()) == 105.66
    assert prices.at(datetime(2025, 6, 1, tzinfo=UTC).timestamp()) == 88.13
    f.write_text("2025-03-01;88.13\n")
    with pytest.raises(ConfigError, match="line 1"):
        PriceTable(BudgetConfig(years=[{"year": 2025, "allowance_t": 1.0}], price_file=f), TZ)


@pytest.mark.parametrize(
    ("budget", "match"),
    [
        ({"years": [{"year": 2026, "allowance_t": 1.0}]}, "carbon_price_cny_per_t or price_file"),
        ({"years": [{"year": 2026}], "carbon_price_cny_per_t": 1}, "exactly one of allowance_t"),
        (
            {"years": [{"year": 2026, "benchmark_t_per_t": 1.8}], "carbon_price_cny_per_t": 1},
            "needs \\[budget.production\\]",
        ),
        (
            {
                "years": [{"year": 2026, "allowance_t": 1.0, "trajectory": "monthly_profile"}],
                "carbon_price_cny_per_t": 1,
            },
            "needs monthly_profile",
        ),
        (
            {
                "years": [{"year": 2026, "allowance_t": 1.0, "processes": [{"process": "bf", "allowance_t": 2.0}]}],
                "carbon_price_cny_per_t": 1,
            },
            "exceed allowance_t",
        ),
        (
            {"years": [{"year": 2026, "allowance_t": 1.0}], "carbon_price_cny_per_t": 1, "scope": "indirect"},
            "scope",
        ),
        (
            {"years": [{"year": 2026, "allowance_t": 1.0}], "carbon_price_cny_per_t": 1, "alowance": 3},
            "Extra inputs",
        ),
    ],
)
def test_budget_config_errors(budget: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        BudgetConfig(**budget)  # type: ignore[arg-type]


def test_settings_from_toml(tmp_path: Path) -> None:
    from gateway.settings.load import load_settings

    site = tmp_path / "site.toml"
    site.write_text(
        '[site]\nname = "works"\n\n[budget]\nscope = "direct"\ncarbon_price_cny_per_t = 82.8\n\n'
        "[[budget.years]]\nyear = 2018\nallowance_t = 400.0\n\n"
        "[alerts]\nenabled = true\n[alerts.mqtt]\nport = 1883\n[alerts.budget]\n"
        "raise_at = { warning = 0.0, critical = 0.2 }\nclear_at = -0.02\n"
    )
    s = load_settings(site)
    assert s.budget is not None and s.budget.years[0].allowance_t == 400.0
    assert s.alerts.mqtt is not None and s.alerts.budget.raise_at == {"warning": 0.0, "critical": 0.2}
    site.write_text('[site]\nname = "works"\n[alerts]\nenable = true\n')
    with pytest.raises(ConfigError):
        load_settings(site)


def test_opening_balance_for_a_gateway_started_mid_year(tmp_path: Path) -> None:
    budget = BudgetConfig(years=[{"year": 2026, "allowance_t": 100.0, "opening_t": 40.0}], carbon_price_cny_per_t=80.0)
    stage = AlertStage("w", TZ, budget, quiet_alerts(), AlertStore(tmp_path / "l.sqlite"))
    stage(results_of([row(0, "bf", 1000.0)]))
    pos = stage.budget_position
    assert pos is not None
    assert pos["actual_t"] == pytest.approx(41.0)
    # the recent rate comes from the gateway's own minutes only: 1 t/min for the time left
    end = year_month_edges(2026, TZ)[-1]
    assert pos["projected_year_end_t"] == pytest.approx(41.0 + (end - (T0 + 60.0)) / 60.0)


def test_store_failure_holds_events_and_keeps_the_pipeline_running(tmp_path: Path) -> None:
    alerts = quiet_alerts(data_quality={"coverage": {"raise_at": {"warning": 0.25}, "clear_at": 0.1, "min_duration_s": 0}})
    stage = AlertStage("w", TZ, None, alerts, AlertStore(tmp_path / "l.sqlite"))
    real_add = stage.store.add
    calls = []

    def failing_add(events: list) -> int:  # type: ignore[type-arg]
        calls.append(len(events))
        if len(calls) == 1:
            raise SinkWriteError("alert store: disk full", retryable=True)
        return real_add(events)

    stage.store.add = failing_add  # type: ignore[method-assign]
    stage(results_of([row(0, "bf", 1.0, coverage=0.2)]))  # raise: the store refuses it
    assert stage.store.events() == []
    stage(results_of([row(1, "bf", 1.0, coverage=0.2)]))  # next minute: stored then
    assert [e.state for e in stage.store.events()] == ["raised"]
    assert calls == [1, 1]


def test_details_never_hold_nan() -> None:
    assert json_safe({"a": float("nan"), "b": [1.0, float("inf")], "c": "x"}) == {
        "a": None,
        "b": [1.0, None],
        "c": "x",
    }


def test_restore_uses_the_ledgers_current_view_with_corrections(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    budget = BudgetConfig(years=[{"year": 2026, "allowance_t": 100.0}], carbon_price_cny_per_t=80.0)
    ledger = Ledger(path)
    for i in range(3):
        ledger.append(results_of([row(i, "bf", 1000.0)]))
    seq = ledger.reader.current_seq(T0 + 60.0, "bf", "s")
    assert seq is not None
    ledger.correct([(seq, row(1, "bf", 4000.0))], reason="lab NCV restated")
    stage = AlertStage("w", TZ, budget, quiet_alerts(), AlertStore(path))
    stage.restore(T0 + 180.0)
    assert stage.budget_position["actual_t"] == pytest.approx(6.0)  # type: ignore[index]
    ledger.close()


def _plant_minutes(t0: float, n: int) -> list[MinuteResult]:
    """Two processes over n minutes, with spikes, daily stops, coverage gaps and an indirect stream,
    listed as the emission stage lists a frame: stream by stream, each in minute order."""
    rng = np.random.default_rng(7)
    bf = 100.0 + rng.normal(0.0, 3.0, n)
    sinter = 200.0 + rng.normal(0.0, 3.0, n)
    for s in range(50, n, 611):
        bf[s : s + 3 + s % 5] += 90.0
    sinter[(np.arange(n) % 1440) < 60] = 0.0  # stopped for an hour a day
    cover = np.where((np.arange(n) // 400) % 5 == 1, 0.5, 1.0)
    out = []
    for name, kg, cov, stream, scope in (
        ("bf", bf, cover, "fuel", "direct"),
        ("sinter", sinter, np.ones(n), "fuel", "direct"),
        ("bf", np.full(n, 20.0), np.ones(n), "power", "indirect"),
    ):
        for i in range(n):
            quality = "missing" if cov[i] < 1.0 and i % 3 == 0 else "measured"
            out.append(
                minute_result(
                    i,
                    name,
                    stream,
                    float(kg[i]),
                    start=t0,
                    site="w",
                    scope=scope,
                    activity=float(kg[i]) / 100.0,
                    coverage=float(cov[i]),
                    quality=quality,
                    **FACTOR_F,
                )
            )
    return out


@pytest.mark.parametrize("frame_minutes", [1440, 100_000])
def test_a_frame_of_many_minutes_raises_what_minute_by_minute_frames_raise(tmp_path: Path, frame_minutes: int) -> None:
    """A replay's day-long frames and a live gateway's one-minute frames give the same events,
    to the last digit of every figure, across a change of compliance year."""
    t0 = datetime(2025, 12, 30, 12, tzinfo=UTC).timestamp()
    n = 3000
    budget = BudgetConfig(
        scope="direct+indirect",
        carbon_price_cny_per_t=80.0,
        projection_min_days=0.2,
        projection_window_days=1,
        production={"process": "bf", "stream": "fuel"},
        years=[
            {"year": 2025, "allowance_t": 50.0},
            {"year": 2026, "benchmark_t_per_t": 0.28, "processes": [{"process": "bf", "share": 0.4}]},
        ],
    )
    alerts = AlertsConfig(
        enabled=True,
        spike={"baseline_minutes": 240, "min_history_minutes": 30, "refresh_minutes": 5, "off_below_kg": 5.0},
        budget={"raise_at": {"warning": 0.0}, "clear_at": -0.05, "min_duration_s": 600, "min_update_interval_s": 1800},
        intensity={"raise_at": {"warning": 0.05, "critical": 0.15}, "clear_at": 0.0, "min_duration_s": 600},
    )
    rows = _plant_minutes(t0, n)

    def run(name: str, frames: list[list[MinuteResult]]) -> list[str]:
        stage = AlertStage("w", TZ, budget, alerts, AlertStore(tmp_path / f"{name}.sqlite"))
        stage.restore(t0)
        for frame in frames:
            stage(results_of(frame))
        events = [e.to_json() for e in stage.store.events()]
        events.append(str(stage.budget_position))
        stage.close()
        return events

    by_minute: dict[float, list[MinuteResult]] = {}
    for r in rows:
        by_minute.setdefault(r.minute_start, []).append(r)
    live = run("live", list(by_minute.values()))
    frames = []
    for lo in range(0, n, frame_minutes):  # stream by stream within each frame, as compute() lists them
        span = (t0 + 60.0 * lo, t0 + 60.0 * (lo + frame_minutes))
        frames.append([r for r in rows if span[0] <= r.minute_start < span[1]])
    replayed = run("replay", frames)
    kinds = {
        json_kind
        for json_kind in ("spike", "budget", "intensity", "data_quality")
        if any(f'"kind":"{json_kind}"' in e for e in live)
    }
    assert kinds == {"spike", "budget", "intensity", "data_quality"}  # every rule took part
    assert replayed == live
