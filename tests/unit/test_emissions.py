"""analytics.emissions and analytics.units: formulas of reference sections 2 and 5.5, hand-worked."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from analytics import units
from analytics.emissions import (
    CO2_PER_C,
    carbon_balance_t,
    carbon_content_t,
    carbonate_ef,
    carbonate_t,
    electricity_t,
    electrode_t,
    fuel_combustion_t,
    gas_carbon_tc_per_1e4nm3,
    heat_t,
    hot_water_gj,
    steam_gj,
    to_kg,
)


def test_co2_per_c_is_the_exact_ratio() -> None:
    assert CO2_PER_C == 44 / 12
    assert CO2_PER_C != 3.67
    assert_allclose(CO2_PER_C * 3, 11.0, rtol=1e-15)


@pytest.mark.parametrize(
    ("amount", "ncv", "cc", "of", "expected"),
    [
        # cn.bfg, 100 x 10^4 Nm3: 33 x 0.0708 = 2.3364; x 0.99 = 2.313036; x 100 = 231.3036;
        # x 44/12 = 848.1132
        pytest.param(100.0, 33.0, 0.0708, 0.99, 848.1132, id="bfg-cn"),
        # cn.coke, 10 t: 28.435 x 0.02942 = 0.8365577; x 0.93 = 0.777998661; x 10 = 7.77998661;
        # x 44/12 = 28.52661757
        pytest.param(10.0, 28.435, 0.02942, 0.93, 28.52661757, id="coke-cn"),
        # heat metered in GJ (NCV 1): 1000 GJ natural gas x 0.0153 x 1.0 x 44/12 = 15.3 x 3.6667 = 56.1
        pytest.param(1000.0, 1.0, 0.0153, 1.0, 56.1, id="heat-basis-gj"),
        # zero consumption is zero
        pytest.param(0.0, 33.0, 0.0708, 0.99, 0.0, id="zero"),
    ],
)
def test_fuel_combustion(amount: float, ncv: float, cc: float, of: float, expected: float) -> None:
    got = fuel_combustion_t(amount, ncv, cc, of)
    assert isinstance(got, float)
    assert_allclose(got, expected, rtol=1e-12)


def test_fuel_combustion_arrays_and_scalar_factors() -> None:
    # per-minute BFG volumes 1, 2, 0.5 (10^4 Nm3) x 8.481132 tCO2 per 10^4 Nm3 (= 848.1132 / 100)
    got = fuel_combustion_t(np.array([1.0, 2.0, 0.5]), 33.0, 0.0708, 0.99)
    assert_allclose(got, [8.481132, 16.962264, 4.240566], rtol=1e-12)
    # per-minute NCV from a calorimeter: 1 x 30 x 0.0708 x 0.99 x 44/12 = 7.71012
    got = fuel_combustion_t(np.array([1.0, 1.0]), np.array([33.0, 30.0]), 0.0708, 0.99)
    assert_allclose(got, [8.481132, 7.71012], rtol=1e-12)


def test_carbon_content() -> None:
    # 50 t coal with 85 % C as received, OF 0.98: 50 x 0.85 = 42.5; x 0.98 = 41.65; x 44/12 = 152.716666...
    assert_allclose(carbon_content_t(50.0, 0.85, 0.98), 152.71666666666667, rtol=1e-12)


@pytest.mark.parametrize(
    ("mineral", "purity", "ef"),
    [
        ("limestone", 1.0, 0.43971),
        ("dolomite", 1.0, 0.47732),
        ("magnesite", 1.0, 0.52197),
        ("siderite", 1.0, 0.37987),
        ("limestone", 0.9, 0.395739),  # 0.9 x 0.43971
    ],
)
def test_carbonate_ef(mineral: str, purity: float, ef: float) -> None:
    assert_allclose(carbonate_ef(mineral, purity), ef, rtol=1e-12)


def test_carbonate() -> None:
    # 1000 t limestone at guideline default 0.440 -> 440 t
    assert_allclose(carbonate_t(1000.0, 0.440), 440.0, rtol=1e-12)
    # 1000 t limestone, purity 0.9, 95 % calcined: 1000 x 0.395739 x 0.95 = 375.95205
    assert_allclose(carbonate_t(1000.0, carbonate_ef("limestone", 0.9), 0.95), 375.95205, rtol=1e-12)


def test_electrode() -> None:
    # 2 t electrode x 3.663 = 7.326
    assert_allclose(electrode_t(2.0, 3.663), 7.326, rtol=1e-12)


def test_carbon_balance_bof_heat() -> None:
    # inputs: hot metal 100 t x 4.5 % C = 4.5 tC; scrap 20 t x 0.2 % = 0.04 tC
    # outputs: steel 115 t x 0.42 % = 0.483 tC
    # (4.54 - 0.483) x 44/12 = 4.057 x 3.6666... = 14.875666...
    got = carbon_balance_t([(100.0, 0.045), (20.0, 0.002)], [(115.0, 0.0042)])
    assert_allclose(got, 14.875666666666667, rtol=1e-12)


def test_carbon_balance_gas_stream_in_1e4nm3() -> None:
    # coke 50 t x 0.86 = 43 tC in; BFG sent out 10 x 10^4 Nm3 x 2.3578 tC/10^4 Nm3 = 23.578 tC
    # (43 - 23.578) x 44/12 = 19.422 x 3.6666... = 71.214
    got = carbon_balance_t([(50.0, 0.86)], [(10.0, 2.3578, "1e4Nm3")])
    assert_allclose(got, 71.214, rtol=1e-12)


def test_negative_carbon_balance_is_reported_not_clipped() -> None:
    # 1 t x 0.1 in, 2 t x 0.1 out: (0.1 - 0.2) x 44/12 = -0.366666...
    assert_allclose(carbon_balance_t([(1.0, 0.1)], [(2.0, 0.1)]), -0.36666666666666664, rtol=1e-12)


def test_electricity_uci_january() -> None:
    # UCI steel plant, January 2018: 126,238.29 kWh = 126.23829 MWh x 0.4585 = 57.880255965 t
    # (the data README quotes 57.88 t)
    assert_allclose(electricity_t(126.23829, 0.4585), 57.880255965, rtol=1e-12)
    # net export is negative, reported as is: (10 - 12) x 0.5 = -1
    assert_allclose(electricity_t(10.0, 0.5, exported_mwh=12.0), -1.0)


def test_heat_and_steam() -> None:
    assert_allclose(heat_t(100.0, 0.11), 11.0, rtol=1e-12)  # 100 GJ x 0.11
    # 10 t steam at h = 2776.2 kJ/kg: 10 x (2776.2 - 83.74) / 1000 = 26.9246 GJ
    assert_allclose(steam_gj(10.0, 2776.2), 26.9246, rtol=1e-12)
    # 100 t hot water at 70 degC: 100 x 50 x 4.1868 / 1000 = 20.934 GJ
    assert_allclose(hot_water_gj(100.0, 70.0), 20.934, rtol=1e-12)


def test_gas_carbon_bfg_example() -> None:
    # reference 2.1: 23 % CO + 21 % CO2 -> 0.44 x 12.011 / 22.414 x 10 = 0.44 x 5.35870 = 2.35783
    got = gas_carbon_tc_per_1e4nm3({"CO": 23.0, "CO2": 21.0, "H2": 3.0, "N2": 53.0})
    assert_allclose(got, 2.3578299277, rtol=1e-9)
    # close to the default 33.0 x 0.0708 = 2.3364 (within 1 %)
    assert abs(got / 2.3364 - 1) < 0.01
    # ethane counts twice: 10 % C2H6 -> 0.2 x 5.35870 = 1.07174; with V_m = 22.4: 0.2 x 12.011 / 22.4 x 10
    assert_allclose(gas_carbon_tc_per_1e4nm3({"C2H6": 10.0}), 1.0717408762, rtol=1e-9)
    assert_allclose(gas_carbon_tc_per_1e4nm3({"C2H6": 10.0}, molar_volume=22.4), 1.0724107143, rtol=1e-9)


def test_gas_carbon_arrays() -> None:
    got = gas_carbon_tc_per_1e4nm3({"CO": np.array([23.0, 0.0]), "CO2": np.array([21.0, 0.0])})
    assert_allclose(got, [2.3578299277, 0.0], rtol=1e-9)


def test_to_kg() -> None:
    assert to_kg(1.5) == 1500.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: fuel_combustion_t(-1.0, 33.0, 0.0708, 0.99), r"amount must be >= 0, got -1\.0"),
        (
            lambda: fuel_combustion_t(1.0, 33.0, 0.0708, 1.2),
            r"oxidation must be a fraction in \[0, 1\], got 1\.2",
        ),
        (lambda: fuel_combustion_t(np.array([1.0, -2.0]), 33.0, 0.0708, 0.99), "at index 1"),
        (lambda: carbonate_ef("chalk", 1.0), "unknown mineral 'chalk'"),
        (lambda: carbonate_ef("limestone", 1.1), "purity"),
        (lambda: carbonate_t(10.0, 0.44, calcined=-0.1), "calcined"),
        (lambda: carbon_balance_t([(1.0, 1.5)], []), r"inputs\[0\] carbon_fraction"),
        (lambda: carbon_balance_t([(1.0, 0.5)], [(-1.0, 0.5)]), r"outputs\[0\] amount"),
        (lambda: electricity_t(-5.0, 0.5), "energy_mwh"),
        (lambda: heat_t(5.0, -0.11), "ef_tco2_per_gj"),
        (lambda: steam_gj(1.0, 50.0), "enthalpy_kj_per_kg"),
        (lambda: gas_carbon_tc_per_1e4nm3({"CO": 23.0, "XYZ": 1.0}), "unknown gas component"),
        (lambda: gas_carbon_tc_per_1e4nm3({"CO": 0.6, "CO2": 110.0}), r"\[0, 100\]"),
        (lambda: gas_carbon_tc_per_1e4nm3({"CO": 60.0, "CO2": 50.0}), "sums to"),
        (
            lambda: fuel_combustion_t(np.ones(3), np.ones(2), 0.0708, 0.99),
            r"amount \(3,\), ncv_gj_per_unit \(2,\)",
        ),
    ],
)
def test_validation_errors(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_nan_propagates() -> None:
    got = fuel_combustion_t(np.array([1.0, np.nan]), 33.0, 0.0708, 0.99)
    assert np.isnan(got[1]) and got[0] > 0


@pytest.mark.parametrize(
    ("func", "x", "expected"),
    [
        (units.nm3_to_1e4nm3, 25_000.0, 2.5),
        (units.kwh_to_mwh, 1500.0, 1.5),
        (units.mwh_to_gj, 2.0, 7.2),  # 2 x 3.6
        (units.gj_to_mwh, 7.2, 2.0),
        (units.kw_s_to_kwh, 7200.0, 2.0),  # 7200 kW s / 3600
        (units.per_hour_s_to_amount, 3600.0, 1.0),
        (units.kcal_per_kg_to_gj_per_t, 5000.0, 20.934),  # 5000 x 4.1868 / 1000
        (units.tc_per_tj_to_tc_per_gj, 70.8, 0.0708),
        (units.tc_to_tco2, 12.0, 44.0),
        (units.kg_to_t, 2500.0, 2.5),
        (units.t_to_kg, 2.5, 2500.0),
    ],
)
def test_unit_conversions(func, x: float, expected: float) -> None:
    assert_allclose(func(x), expected, rtol=1e-12)


def test_actual_to_normal_m3() -> None:
    # 1000 m3 at 202.65 kPa abs and 0 degC = 2000 Nm3; at 101.325 kPa and 273.15 degC = 500 Nm3
    assert_allclose(units.actual_to_normal_m3(1000.0, 202.65, 0.0), 2000.0, rtol=1e-12)
    assert_allclose(units.actual_to_normal_m3(1000.0, 101.325, 273.15), 500.0, rtol=1e-12)
