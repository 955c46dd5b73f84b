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
