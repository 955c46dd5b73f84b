"""The one unit table: conversions of the accounting reference (section 5.5 and the conventions
at its top), unit names (what a rate integrates to, how an amount converts to a factor's unit)
and the physical bounds of a reading in each unit.

Every conversion function accepts a float or a numpy array and returns the same kind (float64
for arrays). NaN propagates; nothing is validated there because a conversion cannot be wrong for
any input. Activity data is reported in the unit of the factor applied to it (t, 10^4 Nm3, MWh,
GJ), so a stream's amount is converted once, with `conversion`, by the exact ratios below.
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
MJ_PER_GJ = 1_000.0
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


# --- Unit names ------------------------------------------------------------------------------

# Rate unit -> the unit its time integral has.
_INTEGRATED = {
    "t/h": "t",
    "kg/h": "kg",
    "t/min": "t",
    "kg/min": "kg",
    "kg/s": "kg",
    "Nm3/h": "Nm3",
    "Nm3/min": "Nm3",
    "1e4Nm3/h": "1e4Nm3",
    "kW": "kWh",
    "MW": "MWh",
    "GJ/h": "GJ",
    "MJ/h": "MJ",
}
# Seconds in the time unit of each rate unit (t/h -> 3600: t/h x s / 3600 = t).
_TIME_UNIT_S = {
    "t/h": S_PER_H,
    "kg/h": S_PER_H,
    "t/min": S_PER_MIN,
    "kg/min": S_PER_MIN,
    "kg/s": 1.0,
    "Nm3/h": S_PER_H,
    "Nm3/min": S_PER_MIN,
    "1e4Nm3/h": S_PER_H,
    "kW": S_PER_H,
    "MW": S_PER_H,
    "GJ/h": S_PER_H,
    "MJ/h": S_PER_H,
}
# (from, to) -> multiplier.
_CONVERT = {
    ("kg", "t"): 1.0 / KG_PER_T,
    ("Nm3", "1e4Nm3"): 1.0 / NM3_PER_1E4NM3,
    ("kWh", "MWh"): 1.0 / KWH_PER_MWH,
    ("MJ", "GJ"): 1.0 / MJ_PER_GJ,
    ("kWh", "GJ"): GJ_PER_MWH / KWH_PER_MWH,
    ("MWh", "GJ"): GJ_PER_MWH,
}


def integrated_unit(rate_unit: str) -> str:
    """The unit of a rate's time integral; raises ValueError for an unknown rate unit."""
    try:
        return _INTEGRATED[rate_unit]
    except KeyError:
        raise ValueError(f"unknown rate unit {rate_unit!r}; use one of {', '.join(sorted(_INTEGRATED))}") from None


def time_unit_s(rate_unit: str) -> float:
    """Seconds in the time unit of a rate (t/h -> 3600)."""
    try:
        return _TIME_UNIT_S[rate_unit]
    except KeyError:
        raise ValueError(f"unknown rate unit {rate_unit!r}") from None


def conversion(from_unit: str, to_unit: str) -> float:
    """Multiplier taking an amount in from_unit to to_unit; ValueError when they do not convert."""
    if from_unit == to_unit:
        return 1.0
    try:
        return _CONVERT[(from_unit, to_unit)]
    except KeyError:
        raise ValueError(f"cannot convert {from_unit} to {to_unit}") from None


# --- Physical bounds: plausibility before accounting ------------------------------------------
# A reading outside these bounds measures nothing a steel works has: the minute window flags it
# OUT_OF_RANGE and it is never counted as measured (gateway/stages/minute.py). They are generous
# on purpose, ten times the largest equipment of an integrated works, so that no real reading
# trips them whatever the plant; a site tightens them per signal ([signals.NAME] min and max, and
# max_rate_per_s for a counter), never widens them (GatewaySettings refuses that).
#
# The largest flow of each quantity in an integrated works, in one rate unit per quantity:
_LARGEST: dict[str, float] = {
    # t/h: ore-unloading and stockyard belts carry up to ~10,000 t/h, the largest mass flow of a
    # works (a sinter strand makes ~1,500 t/h, a large blast furnace ~600 t/h of hot metal).
    "mass": 1.0e4,
    # Nm3/h: a large blast furnace makes ~1e6 Nm3/h of BFG, the largest gas flow of a works
    # (its cold blast is ~4e5 Nm3/h, a coke plant's COG ~2e5 Nm3/h, an oxygen plant ~1e5 Nm3/h).
    "gas": 1.0e6,
    # kW: a whole integrated works draws ~1e3 MW (an EAF ~1e2 MW, a ladle furnace ~2e1 MW).
    "power": 1.0e6,
    # GJ/h: a whole works' fuel input, ~20 GJ per t of steel at ~1,500 t/h of steel (3e4 GJ/h),
    # rounded up.
    "heat": 1.0e5,
}
#: A bound is this many times the largest flow: a new or larger unit still fits under it.
_HEADROOM = 10.0
#: Rates are not negative, except by a meter's zero drift at no flow: 0.1 % of the span of the
#: largest meter of the quantity (-10 t/h, -1,000 Nm3/h, -1,000 kW, -100 GJ/h).
_ZERO_DRIFT = 1.0e-3
# Rate unit -> (quantity, this unit per the quantity's unit in _LARGEST).
_RATE_QUANTITY: dict[str, tuple[str, float]] = {
    "t/h": ("mass", 1.0),
    "kg/h": ("mass", 1e3),
    "t/min": ("mass", 1.0 / 60.0),
    "kg/min": ("mass", 1e3 / 60.0),
    "kg/s": ("mass", 1e3 / 3600.0),
    "Nm3/h": ("gas", 1.0),
    "Nm3/min": ("gas", 1.0 / 60.0),
    "1e4Nm3/h": ("gas", 1e-4),
    "kW": ("power", 1.0),
    "MW": ("power", 1e-3),
    "GJ/h": ("heat", 1.0),
    "MJ/h": ("heat", 1e3),
}


def rate_bounds(rate_unit: str) -> tuple[float, float]:
    """(lowest, highest) plausible reading of a rate in `rate_unit`; ValueError for an unknown unit."""
    try:
        quantity, per = _RATE_QUANTITY[rate_unit]
    except KeyError:
        raise ValueError(f"unknown rate unit {rate_unit!r}; use one of {', '.join(sorted(_RATE_QUANTITY))}") from None
    largest = _LARGEST[quantity] * per
    return -_ZERO_DRIFT * largest, _HEADROOM * largest


def amount_bounds_per_s(amount_unit: str) -> tuple[float, float] | None:
    """(lowest, highest) plausible amount per second of elapsed time in `amount_unit` (t, Nm3,
    kWh, GJ, ...): the rate bounds of the unit's rates. A counter's increase and an interval
    total are bounded by these times their seconds. None for a unit no rate integrates to."""
    per_s = [
        (lo / _TIME_UNIT_S[r], hi / _TIME_UNIT_S[r])
        for r, (lo, hi) in ((r, rate_bounds(r)) for r, a in _INTEGRATED.items() if a == amount_unit)
    ]
    if not per_s:
        return None
    return max(b[0] for b in per_s), min(b[1] for b in per_s)  # the rates of one amount agree; take the tightest
