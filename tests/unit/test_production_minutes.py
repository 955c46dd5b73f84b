"""Production minutes from the emission stage: a `[[production]]` signal becomes one ledger row per
minute (stream production.<product>, scope, method and factor id `production`, t, CO2 0) with the
signal's coverage, quality and flags, beside the streams' rows, which it leaves unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.core.model import MinuteResult, SampleBatch, SampleQuality
from gateway.core.signals import SignalTable
from gateway.settings.factors import factor_table_of
from gateway.stages.emissions import EmissionCalculator
from gateway.stages.minute import MinuteWindow
from tests.factories import site_settings

T0 = 1_767_225_600.0  # 2026-01-01T00:00Z


def _rows(production: list[dict[str, object]]) -> list[MinuteResult]:
    s = site_settings(
        "t",
        window={"delay_s": 2.0},
        signals={"coke": {"unit": "t/h", "max_gap_s": 3.0}, "hm": {"unit": "t/h", "max_gap_s": 3.0}},
        streams=[{"process": "bf", "stream": "coke", "signal": "coke", "method": "fuel_combustion", "factor": "cn.coke"}],
        production=production,
    )
    table = SignalTable.from_settings(s)
    window = MinuteWindow(table, s.window, next_minute=T0)
    for k in range(125):  # coke 60 t/h, hot metal 180 t/h, every second; hot metal silent in 70..100 s
        ids = [table.id("coke")] + ([table.id("hm")] if not 70 <= k < 100 else [])
        vals = [60.0] + ([180.0] if not 70 <= k < 100 else [])
        window.ingest(
            SampleBatch(
                "mqtt",
                np.array(ids, np.int32),
                np.full(len(ids), T0 + k),
                np.array(vals),
                np.full(len(ids), SampleQuality.GOOD, np.uint8),
            )
        )
    return EmissionCalculator(s, factor_table_of(s.factors)).compute(window.close(2)).rows()


def test_production_rows_carry_tonnes_and_no_co2() -> None:
    with_prod = _rows([{"process": "bf", "product": "hot_metal", "signal": "hm", "source": "WB-3"}])
    without = _rows([])
    streams = [r for r in with_prod if r.scope != "production"]
    assert [(r.stream, r.co2_kg, r.activity) for r in streams] == [(r.stream, r.co2_kg, r.activity) for r in without]
    prod = [r for r in with_prod if r.scope == "production"]
    assert [r.stream for r in prod] == ["production.hot_metal"] * 2
    assert all(
        (r.method, r.factor_id, r.activity_unit, r.co2_kg, r.ef_kg_per_unit) == ("production", "production", "t", 0.0, 0.0)
        for r in prod
    )
    assert prod[0].activity == pytest.approx(3.0, rel=1e-12)  # 180 t/h for a minute
    assert prod[0].quality == "measured" and prod[0].coverage == 1.0
    assert prod[1].coverage < 1.0  # the silent half minute: partial or substituted, flagged like any stream
