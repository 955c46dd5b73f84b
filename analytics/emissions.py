"""Activity data x factors -> tCO2 (accounting reference sections 2.1-2.6).

Every function accepts floats or float64 arrays and returns a float for all-scalar input, else a
float64 array. Arguments must be scalars or arrays of one common shape (ValueError naming the shapes
otherwise). Validation: amounts and factors must be >= 0 and fractions (oxidation, purity, calcined,
carbon fraction) within [0, 1], else ValueError naming the argument and the first offending value.
NaN is not an error: it propagates to the result (a minute without a value stays without a value).

C -> CO2 uses the exact ratio 44/12 (`CO2_PER_C`), never 3.67. Multiply tCO2 by 1000 for kg.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analytics.units import CO2_PER_C, KG_PER_T

__all__ = [
    "CARBON_ATOMS",
    "CO2_PER_C",
    "C_MOLAR_MASS",
    "STEAM_REFERENCE_KJ_PER_KG",
    "STOICHIOMETRIC_TCO2_PER_T",
    "carbon_balance_t",
    "carbon_content_t",
    "carbonate_ef",
    "carbonate_t",
    "check_fraction",
    "check_non_negative",
    "electricity_t",
    "electrode_t",
    "fuel_combustion_t",
    "gas_carbon_tc_per_1e4nm3",
    "heat_t",
    "hot_water_gj",
    "steam_gj",
    "to_kg",
]

Number = float | NDArray[np.float64]

#: tCO2 per t of pure mineral (molar-mass ratios, IPCC 2006 Vol. 3 ch. 2, as given in reference 2.2).
STOICHIOMETRIC_TCO2_PER_T: Mapping[str, float] = {
    "limestone": 0.43971,  # CaCO3
    "dolomite": 0.47732,  # CaMg(CO3)2
    "magnesite": 0.52197,  # MgCO3
    "siderite": 0.37987,  # FeCO3
}

#: Carbon atoms per molecule of the gas components an analyser reports (reference 2.1).
CARBON_ATOMS: Mapping[str, int] = {
    "CO": 1,
    "CO2": 1,
    "CH4": 1,
    "C2H6": 2,
    "C2H4": 2,
    "C2H2": 2,
    "C3H8": 3,
    "C3H6": 3,
    "C4H10": 4,
    "C4H8": 4,
    "H2": 0,
    "N2": 0,
    "O2": 0,
    "H2O": 0,
    "H2S": 0,
    "Ar": 0,
}
C_MOLAR_MASS = 12.011  # g/mol
#: Feed-water reference enthalpy of the steam convention (about water at 20 degC), kJ/kg.
STEAM_REFERENCE_KJ_PER_KG = 83.74
#: Analysers rarely sum to exactly 100 %; more than this is a wiring or scaling error.
MAX_COMPOSITION_SUM_PCT = 100.5


# --------------------------------------------------------------------------- validation


def _arr(name: str, x: ArrayLike) -> NDArray[np.float64]:
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number or an array of numbers, got {x!r}") from exc


def _first_bad(arr: NDArray[np.float64], bad: NDArray[np.bool_]) -> str:
    if arr.ndim == 0:
        return repr(float(arr))
    i = int(np.flatnonzero(bad.ravel())[0])
    return f"{float(arr.ravel()[i])!r} at index {i}"


def check_non_negative(name: str, x: ArrayLike) -> NDArray[np.float64]:
    """Return x as float64, or raise ValueError if any value is negative (NaN passes).

    Args:
        name: argument name used in the message.
        x: scalar or array.
    """
    arr = _arr(name, x)
    bad = arr < 0
    if np.any(bad):
        raise ValueError(f"{name} must be >= 0, got {_first_bad(arr, bad)}")
    return arr


def check_fraction(name: str, x: ArrayLike) -> NDArray[np.float64]:
    """Return x as float64, or raise ValueError if any value is outside [0, 1] (NaN passes)."""
    arr = _arr(name, x)
    bad = (arr < 0) | (arr > 1)
    if np.any(bad):
        raise ValueError(f"{name} must be a fraction in [0, 1], got {_first_bad(arr, bad)}")
    return arr


def _common_shape(**arrays: NDArray[np.float64]) -> None:
    shapes = {name: a.shape for name, a in arrays.items() if a.ndim > 0}
    if len(set(shapes.values())) > 1:
        desc = ", ".join(f"{k} {v}" for k, v in shapes.items())
        raise ValueError(f"array arguments must have one common shape (or be scalars), got {desc}")


def _out(x: NDArray[np.float64]) -> Number:
    x = np.asarray(x, dtype=np.float64)
    return float(x) if x.ndim == 0 else x


def to_kg(co2_t: ArrayLike) -> Number:
    """tCO2 -> kgCO2 (minute rows are stored in kg)."""
    return _out(_arr("co2_t", co2_t) * KG_PER_T)


# --------------------------------------------------------------------------- 2.1 fuels


def fuel_combustion_t(
    amount: ArrayLike, ncv_gj_per_unit: ArrayLike, cc_tc_per_gj: ArrayLike, oxidation: ArrayLike
) -> Number:
    """CO2_t = AD x NCV x CC x OF x 44/12 (reference 2.1).

    Args:
        amount: activity data in t (solids, liquids) or 10^4 Nm3 (gases), >= 0. For heat metered
            directly in GJ pass ncv_gj_per_unit=1.
        ncv_gj_per_unit: net calorific value, GJ per unit of amount, >= 0.
        cc_tc_per_gj: carbon content per heat, tC/GJ (tables printing tC/TJ: divide by 1000), >= 0.
        oxidation: oxidation fraction in [0, 1].
    """
    ad = check_non_negative("amount", amount)
    ncv = check_non_negative("ncv_gj_per_unit", ncv_gj_per_unit)
    cc = check_non_negative("cc_tc_per_gj", cc_tc_per_gj)
    of = check_fraction("oxidation", oxidation)
    _common_shape(amount=ad, ncv_gj_per_unit=ncv, cc_tc_per_gj=cc, oxidation=of)
    return _out(ad * ncv * cc * of * CO2_PER_C)


def carbon_content_t(amount: ArrayLike, c_tc_per_unit: ArrayLike, oxidation: ArrayLike) -> Number:
    """CO2_t = AD x C_ar x OF x 44/12, carbon per unit measured (elemental analysis as received).

    Args:
        amount: activity data (t, or 10^4 Nm3 with carbon in tC per 10^4 Nm3), >= 0.
        c_tc_per_unit: carbon content, tC per unit of amount, >= 0.
        oxidation: oxidation fraction in [0, 1].
    """
    ad = check_non_negative("amount", amount)
    c = check_non_negative("c_tc_per_unit", c_tc_per_unit)
    of = check_fraction("oxidation", oxidation)
    _common_shape(amount=ad, c_tc_per_unit=c, oxidation=of)
    return _out(ad * c * of * CO2_PER_C)


def gas_carbon_tc_per_1e4nm3(
    composition_pct: Mapping[str, ArrayLike], molar_volume: float = 22.414
) -> Number:
    """Carbon in a gas from its analysis: sum_i (x_i / 100 x n_C,i) x 12.011 / V_m x 10, tC per 10^4 Nm3.

    CO2 in the gas counts (it leaves the stack); H2, N2 and other carbon-free components may be
    listed and contribute nothing. Example (reference 2.1): BFG with 23 % CO and 21 % CO2 gives
    0.44 x 12.011 / 22.414 x 10 = 2.3578 tC per 10^4 Nm3.

    Args:
        composition_pct: volume % per component (keys of `CARBON_ATOMS`, e.g. "CO", "CH4", "C2H6");
            values are scalars or arrays of one shape, each in [0, 100], summing to at most 100.5.
        molar_volume: L/mol at normal conditions; 22.414, or 22.4 as the Chinese guideline rounds.
            Pick one per site and record it.
    """
    if not composition_pct:
        raise ValueError("composition_pct is empty; give the volume % of at least one component")
    if not molar_volume > 0:
        raise ValueError(f"molar_volume must be > 0 L/mol, got {molar_volume!r}")
    unknown = sorted(set(composition_pct) - set(CARBON_ATOMS))
    if unknown:
        raise ValueError(f"unknown gas component(s) {unknown}; known: {sorted(CARBON_ATOMS)}")
    parts = {}
    for name, x in composition_pct.items():
        pct = check_non_negative(f"composition_pct[{name!r}]", x)
        bad = pct > 100
        if np.any(bad):
            raise ValueError(
                f"composition_pct[{name!r}] must be a volume % in [0, 100], got {_first_bad(pct, bad)}"
            )
        parts[name] = pct
    _common_shape(**{f"composition_pct[{k!r}]": v for k, v in parts.items()})
    total = sum(parts.values())
    bad = np.asarray(total > MAX_COMPOSITION_SUM_PCT)
    if np.any(bad):
        raise ValueError(
            f"composition_pct sums to {_first_bad(np.asarray(total), bad)} %, "
            f"above {MAX_COMPOSITION_SUM_PCT}; "
            "check the analyser scaling (fractions vs %)"
        )
    c_mol = sum(parts[k] / 100.0 * CARBON_ATOMS[k] for k in parts)  # mol C per mol gas
    # mol C per Nm3 = c_mol x 1000 / V_m; x 12.011 g/mol = g C per Nm3; x 10^4 Nm3 / 10^6 g/t = x 10 / 1000
    return _out(np.asarray(c_mol * C_MOLAR_MASS / float(molar_volume) * 10.0, dtype=np.float64))


# --------------------------------------------------------------------------- 2.2-2.4 process


def carbonate_ef(mineral: str, purity: ArrayLike) -> Number:
    """EF_k = purity x stoichiometric factor, tCO2 per t of flux (reference 2.2).

    Args:
        mineral: "limestone", "dolomite", "magnesite" or "siderite".
        purity: mass fraction of the carbonate in the flux, [0, 1].
    """
    try:
        stoich = STOICHIOMETRIC_TCO2_PER_T[mineral]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown mineral {mineral!r}; known: {sorted(STOICHIOMETRIC_TCO2_PER_T)} "
            "(for other carbonates give ef_tco2_per_t directly)"
        ) from None
    p = check_fraction("purity", purity)
    return _out(p * stoich)


def carbonate_t(amount_t: ArrayLike, ef_tco2_per_t: ArrayLike, calcined: ArrayLike = 1.0) -> Number:
    """CO2_t = M x EF x F (reference 2.2); F = calcined fraction, default 1.

    Burnt lime (CaO) bought in carries no carbonate CO2: do not pass it here.
    """
    m = check_non_negative("amount_t", amount_t)
    ef = check_non_negative("ef_tco2_per_t", ef_tco2_per_t)
    f = check_fraction("calcined", calcined)
    _common_shape(amount_t=m, ef_tco2_per_t=ef, calcined=f)
    return _out(m * ef * f)


def electrode_t(amount_t: ArrayLike, ef_tco2_per_t: ArrayLike) -> Number:
    """CO2_t = M x EF (reference 2.3, 2.4): electrodes (default 3.663), carbon raisers, purchased inputs.

    EF = carbon fraction x 44/12 where only the carbon fraction is known.
    """
    m = check_non_negative("amount_t", amount_t)
    ef = check_non_negative("ef_tco2_per_t", ef_tco2_per_t)
    _common_shape(amount_t=m, ef_tco2_per_t=ef)
    return _out(m * ef)


BalanceItem = tuple[ArrayLike, ArrayLike] | tuple[ArrayLike, ArrayLike, str]


def _balance_carbon_tc(side: str, items: Sequence[BalanceItem]) -> NDArray[np.float64]:
    total = np.asarray(0.0)
    for i, item in enumerate(items):
        if len(item) == 2:
            amount, c, unit = item[0], item[1], "t"
        elif len(item) == 3:
            amount, c, unit = item
        else:
            raise ValueError(
                f"{side}[{i}] must be (amount_t, carbon_fraction) or (amount, c_tc_per_unit, unit)"
            )
        m = check_non_negative(f"{side}[{i}] amount", amount)
        if unit == "t":
            cf = check_fraction(f"{side}[{i}] carbon_fraction", c)
        elif unit == "1e4Nm3":
            cf = check_non_negative(f"{side}[{i}] c_tc_per_unit", c)
        else:
            raise ValueError(f"{side}[{i}] unit must be 't' or '1e4Nm3', got {unit!r}")
        _common_shape(amount=m, carbon=cf, total=total)
        total = total + m * cf
    return total


def carbon_balance_t(inputs: Sequence[BalanceItem], outputs: Sequence[BalanceItem]) -> Number:
    """CO2_t = (sum_in M x c - sum_out M x c) x 44/12 (reference 2.5).

    A negative result means an output is over-counted or an input is missing. It is returned as
    is, never clipped: the caller must flag it.

    Args:
        inputs: items (amount_t, carbon_fraction in [0, 1]), or (amount, c_tc_per_unit, unit) with
            unit "t" or "1e4Nm3" for gas streams (carbon in tC per 10^4 Nm3, may exceed 1).
        outputs: the same for carbon leaving the unit (product, gas sent out, dust, slag).
    """
    c_in = _balance_carbon_tc("inputs", inputs)
    c_out = _balance_carbon_tc("outputs", outputs)
    _common_shape(inputs=c_in, outputs=c_out)
    return _out((c_in - c_out) * CO2_PER_C)


# --------------------------------------------------------------------------- 2.6 electricity, heat


def electricity_t(
    energy_mwh: ArrayLike, ef_tco2_per_mwh: ArrayLike, *, exported_mwh: ArrayLike = 0.0
) -> Number:
    """CO2_t = (MWh purchased - MWh exported) x EF_grid (reference 2.6); indirect scope.

    The result is negative when exports exceed purchases (whether the boundary credits exports is
    the verifier's call). Self-generated power from BFG/COG must not be passed here.
    """
    e = check_non_negative("energy_mwh", energy_mwh)
    x = check_non_negative("exported_mwh", exported_mwh)
    ef = check_non_negative("ef_tco2_per_mwh", ef_tco2_per_mwh)
    _common_shape(energy_mwh=e, exported_mwh=x, ef_tco2_per_mwh=ef)
    return _out((e - x) * ef)


def heat_t(heat_gj: ArrayLike, ef_tco2_per_gj: ArrayLike, *, exported_gj: ArrayLike = 0.0) -> Number:
    """CO2_t = (GJ purchased - GJ exported) x EF_heat (reference 2.6; default 0.11 tCO2/GJ, verify)."""
    h = check_non_negative("heat_gj", heat_gj)
    x = check_non_negative("exported_gj", exported_gj)
    ef = check_non_negative("ef_tco2_per_gj", ef_tco2_per_gj)
    _common_shape(heat_gj=h, exported_gj=x, ef_tco2_per_gj=ef)
    return _out((h - x) * ef)


def steam_gj(t: ArrayLike, enthalpy_kj_per_kg: ArrayLike) -> Number:
    """Heat in steam metered in tonnes: GJ = t x (h - 83.74) / 1000, h in kJ/kg (reference 2.6, verify).

    Raises ValueError for an enthalpy below the 83.74 kJ/kg reference.
    """
    m = check_non_negative("t", t)
    h = _arr("enthalpy_kj_per_kg", enthalpy_kj_per_kg)
    bad = h < STEAM_REFERENCE_KJ_PER_KG
    if np.any(bad):
        raise ValueError(
            f"enthalpy_kj_per_kg must be >= {STEAM_REFERENCE_KJ_PER_KG} (feed water at about 20 degC), "
            f"got {_first_bad(h, bad)}"
        )
    _common_shape(t=m, enthalpy_kj_per_kg=h)
    return _out(m * (h - STEAM_REFERENCE_KJ_PER_KG) / 1000.0)


def hot_water_gj(t: ArrayLike, temp_c: ArrayLike) -> Number:
    """Heat in hot water metered in tonnes: GJ = t x (T - 20) x 4.1868 / 1000 (reference 2.6, verify)."""
    m = check_non_negative("t", t)
    temp = _arr("temp_c", temp_c)
    bad = temp < 20.0
    if np.any(bad):
        raise ValueError(
            f"temp_c must be >= 20 degC (the reference return temperature), got {_first_bad(temp, bad)}"
        )
    _common_shape(t=m, temp_c=temp)
    return _out(m * (temp - 20.0) * 4.1868 / 1000.0)
