"""analytics.cems: CO2 mass flow from concentration x dry flow, every unit, NaN kept."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from analytics.cems import CO2_KG_PER_NM3, co2_mass_flow


def test_co2_density_at_normal_conditions() -> None:
    assert CO2_KG_PER_NM3 == pytest.approx(1.96348, abs=1e-5)  # 44.0095 g/mol / 22.414 L/mol


@pytest.mark.parametrize(
    ("conc", "conc_unit", "flow", "flow_unit", "out_unit", "expected"),
    [
        # a sinter stack: 10 % CO2 in 100,000 Nm3/h of dry gas -> 0.1 x 1.96348 x 1e5 kg/h
        (10.0, "%", 1e5, "Nm3/h", "kg/h", 19_634.83),
        (100_000.0, "ppm", 1e5, "Nm3/h", "kg/h", 19_634.83),  # 1e5 ppm = 10 %
        (196_348.3, "mg/m3", 1e5, "Nm3/h", "kg/h", 19_634.83),
        (10.0, "%", 1e5 / 3600.0, "Nm3/s", "kg/h", 19_634.83),  # HJ 212 sends a00000 in m3/s
        (10.0, "%", 1e5 / 60.0, "Nm3/min", "t/h", 19.63483),
    ],
)
def test_units(conc: float, conc_unit: str, flow: float, flow_unit: str, out_unit: str, expected: float) -> None:
    assert co2_mass_flow(conc, conc_unit, flow, flow_unit, out_unit) == pytest.approx(expected, rel=2e-5)


def test_arrays_and_nan() -> None:
    out = co2_mass_flow(np.array([10.0, math.nan, 5.0]), "%", np.array([1e5, 1e5, math.nan]), "Nm3/h")
    assert isinstance(out, np.ndarray)
    assert_allclose(out[0], 19_634.83, rtol=2e-5)
    assert math.isnan(out[1]) and math.isnan(out[2])  # a missing reading stays missing, never a zero


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((10.0, "vol%", 1.0, "Nm3/h"), "concentration unit 'vol%'"),
        ((10.0, "%", 1.0, "m3/h"), "dry flow unit 'm3/h'"),
        ((10.0, "%", 1.0, "Nm3/h", "kg"), "CO2 mass flow unit 'kg'"),
        ((np.ones(2), "%", np.ones(3), "Nm3/h"), "differ in shape"),
    ],
)
def test_errors_name_the_unit(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        co2_mass_flow(*args)  # type: ignore[arg-type]
