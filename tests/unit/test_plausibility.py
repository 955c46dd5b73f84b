"""Plausibility before accounting (hardening finding 1).

Every reading is held to its signal's bounds where readings of any source enter the minute
window: the physical bounds of its unit and kind (analytics/units.py), tightened by the site file.
A reading outside them, infinite or NaN, is flagged and never counted as measured; the minute is
then partial or substituted like one with a missing reading, and its rows say `out_of_range`.
The budget never evaluates a minute of absurd CO2.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from analytics import units
from analytics.aggregate import counter_deltas, minute_edges
from gateway.alerts.budget_stage import AlertStage
from gateway.codec import decode_registers, parse_payload
from gateway.core.errors import ConfigError
from gateway.core.model import MinuteResult, SampleBatch, SampleQuality
from gateway.core.signals import SignalTable
from gateway.ledger.alerts_table import AlertStore
from gateway.settings.alerts import BudgetConfig
from gateway.settings.factors import factor_table_of
from gateway.settings.load import load_settings
from gateway.settings.site import GatewaySettings, SignalConfig
from gateway.stages.emissions import EmissionCalculator
from gateway.stages.minute import MinuteFrame, MinuteWindow
from tests.factories import minute_result, results_of, site_settings
from tests.oracles.modbus_reference import apply_point

T0 = 1_767_225_600.0  # 2026-01-01T00:00Z
FLOAT32_MAX = float(np.finfo(np.float32).max)  # 3.4028235e38: what a FLOAT32 register holds at most

GOOD, OUT, NO = SampleQuality.GOOD, SampleQuality.OUT_OF_RANGE, SampleQuality.NO_READING


def site(**coke: object) -> GatewaySettings:
    return site_settings(
        "t",
        window={"delay_s": 2.0},
        signals={
            "coke": {"unit": "t/h", "max_gap_s": 3.0, **coke},
            "meter": {"kind": "counter", "unit": "kWh", "counter_bits": 32, "max_gap_s": 3.0},
            "usage": {"kind": "interval_total", "unit": "kWh", "interval_s": 60.0, "interval_label": "start"},
        },
        streams=[
            {"process": "bf", "stream": "coke", "signal": "coke", "method": "fuel_combustion", "factor": "cn.coke"},
            {
                "process": "site",
                "stream": "power",
                "signal": "meter",
                "method": "electricity",
                "factor": "cn.grid.2023.national_avg",
            },
            {
                "process": "site",
                "stream": "usage",
                "signal": "usage",
                "method": "electricity",
                "factor": "cn.grid.2023.national_avg",
            },
        ],
    )


def run(
    readings: dict[str, list[tuple[float, float, int]]], minutes: int = 2, s: GatewaySettings | None = None
) -> tuple[MinuteFrame, list[MinuteResult], MinuteWindow]:
    """Close `minutes` minutes from (second, value, quality) readings per signal, one batch per second."""
    s = s or site()
    table = SignalTable.from_settings(s)
    window = MinuteWindow(table, s.window, next_minute=T0)
    by_second: dict[float, list[tuple[int, float, int]]] = {}
    for name, rows in readings.items():
        for k, value, q in rows:
            by_second.setdefault(k, []).append((table.id(name), value, q))
    for k in sorted(by_second):
        rows = by_second[k]
        window.ingest(
            SampleBatch(
                "mqtt",
                np.array([r[0] for r in rows], np.int32),
                np.full(len(rows), T0 + k),
                np.array([r[1] for r in rows]),
                np.array([r[2] for r in rows], np.uint8),
            )
        )
    frame = window.close(minutes)
    return frame, EmissionCalculator(s, factor_table_of(s.factors)).compute(frame).rows(), window


def coke_rate(value_at: dict[int, tuple[float, int]] | None = None, seconds: int = 125) -> list[tuple[float, float, int]]:
    """60 t/h every second (1 t a minute), with the given (value, quality) at some seconds."""
    value_at = value_at or {}
    return [(float(k), *value_at.get(k, (60.0, GOOD))) for k in range(seconds)]


def rows_of(results: list[MinuteResult], stream: str) -> list[MinuteResult]:
    return [r for r in results if r.stream == stream]


# --------------------------------------------------------------------------- the bounds table


def test_every_rate_unit_has_a_physical_bound() -> None:
    assert units._RATE_QUANTITY.keys() == units._INTEGRATED.keys()
    for unit in units._INTEGRATED:
        lo, hi = units.rate_bounds(unit)
        assert -hi < lo < 0 < hi < math.inf, unit
        # the same physical limit whatever the unit: a rate's bound per second in its amount unit
        per_s = units.amount_bounds_per_s(units.integrated_unit(unit))
        assert per_s is not None and per_s[1] == pytest.approx(hi / units.time_unit_s(unit), rel=1e-12), unit
    assert units.rate_bounds("t/h") == (-10.0, 1e5)
    assert units.rate_bounds("kg/h") == (-1e4, 1e8)
    assert units.rate_bounds("Nm3/h")[1] == 1e7 and units.rate_bounds("1e4Nm3/h")[1] == pytest.approx(1e3)
    assert units.rate_bounds("MW")[1] == pytest.approx(1e4) and units.rate_bounds("kW")[1] == 1e7
    assert units.amount_bounds_per_s("pcs") is None
    with pytest.raises(ValueError, match="unknown rate unit 'foo/h'"):
        units.rate_bounds("foo/h")


def test_reading_bounds_by_kind() -> None:
    assert SignalConfig(unit="t/h").reading_bounds() == (-10.0, 1e5)
    assert SignalConfig(unit="t/h", min=0, max=120).reading_bounds() == (0.0, 120.0)
    lo, hi = SignalConfig(kind="interval_total", unit="kWh", interval_s=900).reading_bounds()
    assert (lo, hi) == pytest.approx((-250.0, 2.5e6))  # -1 MW and 10 GW for a quarter hour
    assert SignalConfig(kind="counter", unit="kWh", counter_bits=16).reading_bounds() == (0.0, math.nextafter(65536.0, 0.0))
    # an instant value and an interval total in a unit no rate has: finite only, unless the site says more
    assert SignalConfig(kind="instant", unit="degC").reading_bounds() == (-np.finfo(float).max, np.finfo(float).max)
    assert SignalConfig(kind="instant", unit="degC", min=0, max=1800).reading_bounds() == (0.0, 1800.0)
    assert SignalConfig(kind="counter", unit="kWh").max_increase_per_s() == pytest.approx(1e7 / 3600)
    assert SignalConfig(kind="counter", unit="kWh", max_rate_per_s=1.0).max_increase_per_s() == 1.0
    assert SignalConfig(kind="counter", unit="pcs").max_increase_per_s() is None


# --------------------------------------------------------------------------- readings in the window


def test_a_float32_maximum_on_a_point_without_bounds_is_flagged_not_counted() -> None:
    """The finding: 3.4e38 t/h was a GOOD reading and the minute 'measured' with it."""
    frame, results, window = run({"coke": coke_rate({30: (FLOAT32_MAX, GOOD)})})
    coke = frame.signals["coke"]
    # the segments either side of second 30 are uncovered: 58 s of 60 t/h, scaled to the minute
    assert coke.amount.tolist() == pytest.approx([1.0, 1.0], rel=1e-12)
    assert coke.coverage.tolist() == pytest.approx([58 / 60, 1.0])
    assert coke.bad_samples.tolist() == [1, 0] and coke.out_of_range.tolist() == [1, 0]
    first, second = rows_of(results, "coke")
    assert first.quality == "partial" and "out_of_range=1" in first.flags.split(";")
    assert 0 < first.co2_kg < 5_000 and second.quality == "measured" and second.flags == ""
    assert window.counters.out_of_range == 1


def test_modbus_and_mqtt_readings_get_the_same_treatment() -> None:
    """A FLOAT32 point without min/max decodes 0x7F7F 0xFFFF as a GOOD 3.4e38; an MQTT payload
    of 1e308 parses as a number. Both are flagged where they enter the window."""
    raw = decode_registers([0x7F7F, 0xFFFF], "FLOAT32", "ABCD")
    value, quality = apply_point(raw)
    assert value == FLOAT32_MAX and quality is GOOD  # nothing upstream knows a t/h cannot be that
    ((signal, _, mqtt_value),) = parse_payload(b"1e308", "number", topic="plant/coke", value_signal="coke", received_ts=T0)
    assert signal == "coke" and mqtt_value == 1e308
    frame, results, _ = run({"coke": coke_rate({20: (value, int(quality)), 40: (mqtt_value, GOOD)})})
    assert frame.signals["coke"].out_of_range.tolist() == [2, 0]
    assert frame.signals["coke"].amount.tolist() == pytest.approx([1.0, 1.0], rel=1e-12)
    assert "out_of_range=2" in rows_of(results, "coke")[0].flags


@pytest.mark.parametrize(
    ("value", "quality"),
    [(-50.0, OUT), (math.inf, OUT), (-math.inf, OUT), (1e308, OUT), (math.nan, NO)],
    ids=["negative", "inf", "-inf", "1e308", "nan"],
)
def test_negative_and_non_finite_rates_are_flagged(value: float, quality: SampleQuality) -> None:
    frame, results, _ = run({"coke": coke_rate({30: (value, GOOD)})})
    coke = frame.signals["coke"]
    assert coke.amount.tolist() == pytest.approx([1.0, 1.0], rel=1e-12)
    assert coke.bad_samples.tolist() == [1, 0]
    assert coke.out_of_range.tolist() == ([1, 0] if quality == OUT else [0, 0])
    assert rows_of(results, "coke")[0].quality == "partial"


def test_meter_noise_below_zero_is_a_reading() -> None:
    frame, _, _ = run({"coke": coke_rate({30: (-2.0, GOOD)})})
    assert frame.signals["coke"].bad_samples.tolist() == [0, 0]
    assert frame.signals["coke"].quality.tolist() == [0, 0]  # measured


def test_a_minute_of_implausible_readings_is_substituted_never_measured() -> None:
    readings = {k: (5e5, GOOD) for k in range(60, 120)}  # minute 1: 500,000 t/h throughout
    frame, results, _ = run({"coke": coke_rate(readings, seconds=185)}, minutes=3)
    coke = rows_of(results, "coke")
    assert [r.quality for r in coke] == ["partial", "substituted", "measured"]
    assert coke[1].activity == pytest.approx(1.0)  # last_good: the minute before
    assert "rule=last_good" in coke[1].flags and "out_of_range=60" in coke[1].flags
    assert frame.signals["coke"].amount.max() == pytest.approx(1.0)


def test_a_site_bound_tightens_the_physical_one() -> None:
    s = site(min=0.0, max=120.0)
    frame, results, _ = run({"coke": coke_rate({30: (150.0, GOOD), 40: (-1.0, GOOD), 50: (119.0, GOOD)})}, s=s)
    coke = frame.signals["coke"]
    assert coke.out_of_range.tolist() == [2, 0]  # 150 and -1; 119 is a reading
    assert coke.coverage[0] == pytest.approx(56 / 60)
    assert "out_of_range=2" in rows_of(results, "coke")[0].flags


def test_readings_flagged_upstream_keep_their_quality() -> None:
    """A reading a source already flagged (a Modbus point's min/max, a comm error) is left as it is."""
    frame, _, window = run({"coke": coke_rate({30: (200.0, OUT), 40: (math.nan, SampleQuality.COMM_ERROR)})})
    assert frame.signals["coke"].out_of_range.tolist() == [1, 0]
    assert frame.signals["coke"].bad_samples.tolist() == [2, 0]
    assert window.counters.out_of_range == 0  # the window flagged nothing itself


def test_an_interval_total_beyond_its_bound_is_missing_not_measured() -> None:
    rows = [(0.0, 5.0, GOOD), (60.0, 1e308, GOOD), (120.0, 5.0, GOOD)]
    frame, results, _ = run({"usage": rows}, minutes=3)
    usage = rows_of(results, "usage")
    assert [r.quality for r in usage] == ["measured", "substituted", "measured"]
    assert frame.signals["usage"].amount.tolist() == pytest.approx([5.0, 5.0, 5.0])  # last_good
    assert "out_of_range=1" in usage[1].flags


def test_a_counter_beyond_its_width_is_flagged_instead_of_failing_the_close() -> None:
    """A counter reading >= 2**bits made counter_deltas raise ValueError at the close."""
    rows = [(float(k), 1000.0 + k, GOOD) for k in range(125)]
    rows[30] = (30.0, 2.0**40, GOOD)
    frame, _, _ = run({"meter": rows})
    meter = frame.signals["meter"]
    assert meter.amount.tolist() == pytest.approx([60.0, 60.0])  # the next reading carries the count
    assert meter.out_of_range.tolist() == [1, 0]


def test_an_implausible_counter_increase_is_not_counted() -> None:
    """A jump of 1e9 kWh in a second (a garbled word, a swapped meter) is not energy."""
    rows = [(float(k), 1000.0 + k + (1e9 if k >= 30 else 0.0), GOOD) for k in range(125)]
    frame, results, _ = run({"meter": rows})
    meter = frame.signals["meter"]
    assert meter.amount.tolist() == pytest.approx([60.0, 60.0])  # 59 s of 1 kWh/s, scaled to the minute
    assert meter.coverage.tolist() == pytest.approx([59 / 60, 1.0])
    assert meter.out_of_range.tolist() == [1, 0]
    power = rows_of(results, "power")
    assert power[0].quality == "partial" and "out_of_range=1" in power[0].flags


def test_counter_deltas_max_increase() -> None:
    ts = np.arange(0.0, 121.0, 10.0)
    counts = np.array([0, 10, 20, 30, 5000, 5010, 5020, 5030, 5040, 5050, 5060, 5070, 5080], dtype=np.float64)
    e = minute_edges(0.0, 2)
    plain = counter_deltas(ts, counts, e, bits=32, scale=1.0, max_rate_per_s=None, max_gap_s=30)
    assert plain.amount.sum() == 5080.0 and plain.implausible.tolist() == [0, 0]
    got = counter_deltas(ts, counts, e, bits=32, scale=1.0, max_rate_per_s=None, max_gap_s=30, max_increase_per_s=10.0)
    # 4970 in 10 s is above 10/s x 10 s x 1.5 + 1 count: not counted, its 10 s uncovered
    assert got.amount.tolist() == [30.0 + 20.0, 60.0]
    assert got.covered_s.tolist() == [50.0, 60.0]
    assert got.implausible.tolist() == [1, 0] and got.resets.tolist() == [0, 0]
    # a wrap that would need more than the bound is not counted either
    wrap = counter_deltas(
        np.array([0.0, 1.0]), np.array([65535.0, 60000.0]), minute_edges(0.0, 1), bits=16, scale=1.0,
        max_rate_per_s=None, max_gap_s=30, max_increase_per_s=10.0,
    )  # fmt: skip
    assert wrap.amount.tolist() == [0.0] and wrap.implausible.tolist() == [1] and wrap.wraps.tolist() == [0]


def test_a_checkpoint_is_held_to_the_bounds_too() -> None:
    s = site()
    table = SignalTable.from_settings(s)
    old = MinuteWindow(table, s.window, next_minute=T0)
    old._lo[:] = -np.inf  # as a version without bounds buffered it
    old._hi[:] = np.inf
    for k, value, q in coke_rate({30: (FLOAT32_MAX, GOOD)}):
        old.ingest(
            SampleBatch(
                "dev", np.array([table.id("coke")], np.int32), np.array([T0 + k]), np.array([value]), np.array([q], np.uint8)
            )
        )
    resumed = MinuteWindow(table, s.window, next_minute=T0)
    resumed.import_state(old.export_state())
    assert resumed.close(2).signals["coke"].amount.tolist() == pytest.approx([1.0, 1.0], rel=1e-12)


# --------------------------------------------------------------------------- the site file


@pytest.mark.parametrize(
    ("signal", "message"),
    [
        ({"unit": "t/h", "max": 2e5}, "max 200000 is above the physical bound 100000 of a rate in t/h"),
        ({"unit": "t/h", "min": -100.0}, "min -100 is below the physical bound -10 of a rate in t/h"),
        ({"unit": "t/h", "min": 50.0, "max": 50.0}, "min 50 is not below max 50"),
        ({"unit": "t/h", "min": 80.0, "max": 20.0}, "min 80 is not below max 20"),
        ({"unit": "t/h", "max": math.inf}, "finite number"),
        ({"unit": "t/h", "min": math.nan}, "finite number"),
        ({"kind": "interval_total", "unit": "kWh", "max": 1e7}, "physical bound 2.5e+06 of an interval total in kWh over 900 s"),
        ({"kind": "counter", "unit": "kWh", "max": 10.0}, "a counter's readings are bounded by counter_bits"),
        ({"kind": "counter", "unit": "kWh", "max_rate_per_s": 1e5}, "max_rate_per_s 100000 kWh/s is above the physical bound"),
    ],
)
def test_bad_site_bounds_are_refused(signal: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match="signals") as exc:
        GatewaySettings(site={"name": "t"}, signals={"coke": signal})
    assert message in str(exc.value)


def test_bad_site_bounds_are_named_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text('[site]\nname = "t"\n\n[signals.coke]\nunit = "t/h"\nmin = 0\nmax = 200000\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    (problem,) = exc.value.problems
    assert problem.startswith(f"{path}:4: signals.coke: ")
    assert "max 200000 is above the physical bound 100000 of a rate in t/h" in problem and "check the unit" in problem


# --------------------------------------------------------------------------- the budget


def test_absurd_minutes_never_reach_the_budget(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    budget = BudgetConfig(years=[{"year": 2026, "allowance_t": 100.0}], carbon_price_cny_per_t=80.0)
    stage = AlertStage("w", "UTC", budget, _no_alerts(), AlertStore(tmp_path / "l.sqlite"))

    def minute(i: int, co2_kg: float) -> MinuteResult:
        return minute_result(i, "bf", "coke", co2_kg, start=T0, site="w", activity=1.0, factor_id="f", ef_kg_per_unit=0.0)

    with caplog.at_level(logging.WARNING, logger="gateway.alerts.budget_stage"):
        for i in range(10):
            stage(results_of([minute(i, 3.4e38 * 3000.0 if i == 4 else 1000.0)]))
        stage(results_of([minute(10, math.inf)]))
    pos = stage.budget_position
    assert pos is not None and pos["actual_t"] == pytest.approx(9.0)
    assert math.isfinite(pos["shortfall_cny"]) and abs(pos["shortfall_cny"]) < 1e9
    assert not [e for e in stage.store.events() if e.kind == "budget"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and "left out of the budget and spike alerts" in warnings[0] and "bf/coke" in warnings[0]


def _no_alerts():  # type: ignore[no-untyped-def]
    from gateway.settings.alerts import AlertsConfig

    off = {"enabled": False, "raise_at": {"warning": 1.0}, "clear_at": 0.0}
    return AlertsConfig(spike={"enabled": False}, data_quality={"coverage": off, "device": off, "influx_backlog": off})
