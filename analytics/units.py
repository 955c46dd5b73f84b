"""Unit conversions of the accounting reference (section 5.5 and the conventions at its top).

Every function accepts a float or a numpy array and returns the same kind (float64 for arrays).
NaN propagates; nothing is validated here because a conversion cannot be wrong for any input.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Exact C -> CO2 mass ratio (44/12). Never 3.67.
CO2_PER_C = 44.0 / 12.0

NM3_PER_1E4NM3 = 10_000.0
KWH_PER_MWH = 1_000.0
GJ_PER_MWH = 3.6
KJ_PER_KCAL = 4.1868
KG_PER_T = 1_000.0
GJ_PER_TJ = 1_000.0
S_PER_H = 3_600.0
S_PER_MIN = 60.0

#: Normal conditions for Nm3: 0 degC and 101.325 kPa.
NORMAL_PRESSURE_KPA = 101.325
ZERO_C_IN_K = 273.15

Number = float | NDArray[np.float64]


def _f(x: ArrayLike) -> Number:
    arr = np.asarray(x, dtype=np.float64)
    return float(arr) if arr.ndim == 0 else arr


def nm3_to_1e4nm3(volume_nm3: ArrayLike) -> Number:
    """Nm3 -> 10^4 Nm3 (the activity unit of the Chinese gas tables)."""
    return _f(np.asarray(volume_nm3, dtype=np.float64) / NM3_PER_1E4NM3)


def kwh_to_mwh(energy_kwh: ArrayLike) -> Number:
    """kWh -> MWh."""
    return _f(np.asarray(energy_kwh, dtype=np.float64) / KWH_PER_MWH)


def mwh_to_gj(energy_mwh: ArrayLike) -> Number:
    """MWh -> GJ (1 MWh = 3.6 GJ)."""
    return _f(np.asarray(energy_mwh, dtype=np.float64) * GJ_PER_MWH)


def gj_to_mwh(energy_gj: ArrayLike) -> Number:
    """GJ -> MWh."""
    return _f(np.asarray(energy_gj, dtype=np.float64) / GJ_PER_MWH)


def kw_s_to_kwh(power_kw_s: ArrayLike) -> Number:
    """An integral of kW over seconds -> kWh (divide by 3600)."""
    return _f(np.asarray(power_kw_s, dtype=np.float64) / S_PER_H)


def per_hour_s_to_amount(rate_per_h_s: ArrayLike) -> Number:
    """An integral of a per-hour rate (t/h, Nm3/h) over seconds -> amount (t, Nm3)."""
    return _f(np.asarray(rate_per_h_s, dtype=np.float64) / S_PER_H)


def kcal_per_kg_to_gj_per_t(ncv_kcal_per_kg: ArrayLike) -> Number:
    """NCV in kcal/kg -> GJ/t: x 4.1868 kJ/kcal x 1000 kg/t / 10^6 kJ/GJ = x 4.1868 / 1000."""
    return _f(np.asarray(ncv_kcal_per_kg, dtype=np.float64) * KJ_PER_KCAL / 1_000.0)


def tc_per_tj_to_tc_per_gj(cc_tc_per_tj: ArrayLike) -> Number:
    """Carbon content per heat as printed in the Chinese tables (tC/TJ) -> tC/GJ."""
    return _f(np.asarray(cc_tc_per_tj, dtype=np.float64) / GJ_PER_TJ)


def tc_to_tco2(carbon_t: ArrayLike) -> Number:
    """Tonnes of carbon -> tonnes of CO2 (x 44/12 exactly)."""
    return _f(np.asarray(carbon_t, dtype=np.float64) * CO2_PER_C)


def kg_to_t(mass_kg: ArrayLike) -> Number:
    """kg -> t."""
    return _f(np.asarray(mass_kg, dtype=np.float64) / KG_PER_T)


def t_to_kg(mass_t: ArrayLike) -> Number:
    """t -> kg."""
    return _f(np.asarray(mass_t, dtype=np.float64) * KG_PER_T)


def actual_to_normal_m3(flow_m3: ArrayLike, p_abs_kpa: ArrayLike, temp_c: ArrayLike) -> Number:
    """Actual m3 (or m3/h) at p_abs and T -> Nm3: Q x (p_abs / 101.325) x 273.15 / (273.15 + T).

    Most DCS flow tags are already Nm3/h; use this only for meters that report actual volume.
    """
    q = np.asarray(flow_m3, dtype=np.float64)
    p = np.asarray(p_abs_kpa, dtype=np.float64)
    t = np.asarray(temp_c, dtype=np.float64)
    return _f(q * (p / NORMAL_PRESSURE_KPA) * ZERO_C_IN_K / (ZERO_C_IN_K + t))
