"""Unit names: what a rate integrates to, and how an amount converts to a factor's unit.

Activity data is reported in the unit of the factor applied to it (t, 10^4 Nm3, MWh, GJ), so
a stream's amount is converted once, here, with the exact ratios of the domain reference 5.5.
"""

from __future__ import annotations

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
    "t/h": 3600.0,
    "kg/h": 3600.0,
    "t/min": 60.0,
    "kg/min": 60.0,
    "kg/s": 1.0,
    "Nm3/h": 3600.0,
    "Nm3/min": 60.0,
    "1e4Nm3/h": 3600.0,
    "kW": 3600.0,
    "MW": 3600.0,
    "GJ/h": 3600.0,
    "MJ/h": 3600.0,
}
# (from, to) -> multiplier.
_CONVERT = {
    ("kg", "t"): 1e-3,
    ("Nm3", "1e4Nm3"): 1e-4,
    ("kWh", "MWh"): 1e-3,
    ("MJ", "GJ"): 1e-3,
    ("kWh", "GJ"): 3.6e-3,
    ("MWh", "GJ"): 3.6,
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
