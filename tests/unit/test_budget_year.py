"""A synthetic year of minute results through the alert stage: the 2018 allowance example.

A plant with a 2018 allowance of 400 tCO2 (calendar-linear, 82.8 CNY/t) emits 440 t over the
year with a daily shape, lower weekends, a seasonal swing and noise. The stage must raise one
budget alert early, keep it (no flapping) and its projection must converge on the real total.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway.alerts.budget_stage import AlertStage
from gateway.alerts.budget_tracker import year_month_edges
from gateway.core.model import MinuteResult
from gateway.ledger.alerts_table import AlertStore
from gateway.settings.alerts import AlertsConfig, BudgetConfig
from tests.factories import minute_result, results_of

TZ = "Asia/Seoul"  # the UCI steel plant's zone (UTC+9, no DST)
TOTAL_T = 440.0


def synthetic_year_kg(edges: np.ndarray, seed: int = 7) -> np.ndarray:
    """CO2 kg per minute of 2018 summing to exactly TOTAL_T tonnes."""
    n = int((edges[-1] - edges[0]) // 60)
    t = np.arange(n) * 60.0
    day_frac = (t % 86400.0) / 86400.0
    weekday = ((t // 86400.0).astype(int)) % 7  # 1 Jan 2018 was a Monday
    shape = 1.0 + 0.4 * np.sin(2 * np.pi * (day_frac - 0.25))
    shape *= np.where(weekday >= 5, 0.6, 1.0)
    shape *= 1.0 + 0.2 * np.cos(2 * np.pi * t / (edges[-1] - edges[0]))  # winter high, summer low
    shape *= np.random.default_rng(seed).lognormal(0.0, 0.3, n)
    return shape / shape.sum() * TOTAL_T * 1000.0


def minute_rows(starts: np.ndarray, kg: np.ndarray) -> list[MinuteResult]:
    return [
        minute_result(
            minute_start=float(m),
            site="uci",
            process="plant",
            stream="grid",
            method="electricity",
            activity=0.0,
            activity_unit="MWh",
            co2_kg=float(c),
            factor_id="f",
            ef_kg_per_unit=0.0,
        )
        for m, c in zip(starts, kg, strict=True)
    ]


@pytest.fixture
def stage(tmp_path: Path) -> AlertStage:
    budget = BudgetConfig(years=[{"year": 2018, "allowance_t": 400.0}], carbon_price_cny_per_t=82.8)
    alerts = AlertsConfig(spike={"enabled": False})
    return AlertStage("uci", TZ, budget, alerts, AlertStore(tmp_path / "ledger.sqlite"))


def test_year_2018_projection_converges_and_alerts_once(stage: AlertStage) -> None:
    edges = year_month_edges(2018, TZ)
    kg = synthetic_year_kg(edges)
    starts = edges[0] + np.arange(len(kg)) * 60.0
    assert len(kg) == 525_600
    errors: list[tuple[float, float]] = []  # (elapsed fraction, relative projection error)
    chunk = 1440  # a replay closes a day per frame
    for i in range(0, len(kg), chunk):
        stage(results_of(minute_rows(starts[i : i + chunk], kg[i : i + chunk])))
        pos = stage.budget_position
        assert pos is not None
        errors.append((pos["elapsed_fraction"], abs(pos["projected_year_end_t"] - TOTAL_T) / TOTAL_T))

    pos = stage.budget_position
    assert pos is not None
    assert pos["actual_t"] == pytest.approx(TOTAL_T, rel=1e-9)
    assert pos["projected_year_end_t"] == pytest.approx(TOTAL_T, rel=1e-9)
    assert pos["shortfall_t"] == pytest.approx(40.0, rel=1e-6)
    assert pos["shortfall_cny"] == pytest.approx(40.0 * 82.8, rel=1e-6)
    assert pos["trajectory_t"] == pytest.approx(400.0)

    err = np.array(errors)
    # Converges: the recent-rate method is wrong only on the part of the year still ahead (here
    # by the seasonal swing), so the error shrinks with the time left. After the first month:
    later = err[err[:, 0] > 1 / 12]
    assert np.all(later[:, 1] <= 0.3 * (1.0 - later[:, 0]) + 0.005), later[
        later[:, 1] > 0.3 * (1.0 - later[:, 0])
    ]
    assert err[err[:, 0] > 0.92, 1].max() < 0.02
    assert err[-1, 1] < 1e-9

    events = stage.store.events()
    budget = [e for e in events if e.kind == "budget"]
    assert budget[0].state == "raised"
    assert "cleared" not in [e.state for e in budget]
    raised = budget[0]
    assert raised.at.startswith("2018-01-0") and raised.at.endswith("+09:00")
    assert {"allowance_t", "projected_year_end_t", "shortfall_t", "shortfall_cny"} <= raised.details.keys()
    assert raised.details["allowance_t"] == 400.0
    assert "tCO2" in raised.message and "CNY" in raised.message
    # updates are material and rate-limited: about twenty over a year, not one per minute
    print(
        f"budget events: {len(budget)}, first raised {raised.at} ({raised.severity}), "
        f"last {budget[-1].state} {budget[-1].at} {budget[-1].severity}: {budget[-1].message}"
    )
    assert len(budget) < 30
    assert [a.kind for a in stage.active()] == ["budget"]
