"""CEMS: a stack's CO2 mass flow from its measured CO2 concentration and dry flue-gas flow.

    co2_kg_per_h = concentration [kg CO2 / Nm3 dry] x dry flow [Nm3 / h]

Both readings must be on the same basis: dry gas at normal conditions (0 degC, 101.325 kPa),
as CEMS report them (HJ 75: 标干). Concentration units: "%" (volume % of dry gas), "ppm"
(umol/mol of dry gas), "mg/m3" (mg per Nm3 of dry gas). Volume fractions become mass through
the molar volume of an ideal gas at normal conditions, 22.414 L/mol (CO2's real molar volume
there is 22.26 L/mol, 0.7 % less; the CEMS and the authority use the ideal one).

Pure numpy: arrays (or floats) in, float64 out; NaN propagates (a missing reading stays
missing, never a zero). A negative concentration (an analyser's zero drift) is passed through:
the minute stage's plausibility bounds judge the resulting rate.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analytics.units import S_PER_H, S_PER_MIN

CO2_MOLAR_MASS_G_PER_MOL = 44.0095
MOLAR_VOLUME_L_PER_MOL = 22.414  # ideal gas at 0 degC, 101.325 kPa
#: kg of CO2 per Nm3 of pure CO2 by the ideal molar volume: 1.96348.
CO2_KG_PER_NM3 = CO2_MOLAR_MASS_G_PER_MOL / MOLAR_VOLUME_L_PER_MOL

#: kg CO2 per Nm3 of dry gas for one unit of concentration.
CONCENTRATION_KG_PER_NM3: Mapping[str, float] = {
    "%": CO2_KG_PER_NM3 / 100.0,
    "ppm": CO2_KG_PER_NM3 * 1e-6,
    "mg/m3": 1e-6,
}
#: Nm3/h per unit of dry flow.
FLOW_NM3_PER_H: Mapping[str, float] = {"Nm3/h": 1.0, "Nm3/min": S_PER_MIN, "Nm3/s": S_PER_H}
#: kg/h per unit of the CO2 mass flow produced.
MASS_PER_H_IN_KG: Mapping[str, float] = {"kg/h": 1.0, "t/h": 1000.0}


def co2_mass_flow(
    concentration: ArrayLike,
    concentration_unit: str,
    dry_flow: ArrayLike,
    flow_unit: str,
    out_unit: str = "kg/h",
) -> float | NDArray[np.float64]:
    """CO2 mass flow in `out_unit` ("kg/h" or "t/h") from concentration x dry flow.

    Raises ValueError for an unknown unit (naming the known ones) or arrays of different shapes.
    """
    for unit, table, what in (
        (concentration_unit, CONCENTRATION_KG_PER_NM3, "concentration"),
        (flow_unit, FLOW_NM3_PER_H, "dry flow"),
        (out_unit, MASS_PER_H_IN_KG, "CO2 mass flow"),
    ):
        if unit not in table:
            raise ValueError(f"{what} unit {unit!r} is not one of {sorted(table)}")
    c = np.asarray(concentration, dtype=np.float64)
    q = np.asarray(dry_flow, dtype=np.float64)
    if c.shape != q.shape and c.ndim and q.ndim:
        raise ValueError(f"concentration and dry flow differ in shape: {c.shape} and {q.shape}")
    k = CONCENTRATION_KG_PER_NM3[concentration_unit] * FLOW_NM3_PER_H[flow_unit] / MASS_PER_H_IN_KG[out_unit]
    out = c * q * k
    return float(out) if out.ndim == 0 else out
