"""Lab results as factors: a sample's measured values replace a stream's factor for its period.

One lab result belongs to one stream (process/stream) and is valid in [valid_from, valid_to)
(epoch s). For a fuel it gives the NCV and the carbon per GJ of one sample; the oxidation
fraction still comes from the stream's factor (the default or site override valid at that
minute):  ef_tco2_per_unit = NCV x CC x OF x 44/12 (NCV = 1 for a fuel metered in GJ).
For a material, electrode or carbonate it gives the carbon fraction (t C per t):
ef_tco2_per_unit = C x 44/12 (for a carbonate this is the carbonate's carbon, which equals
purity x the stoichiometric factor).

`resolve_stream` is the one resolution every path uses: the live emission stage, the replay
(the same stage), `ledger restate` and `lab import`'s restatement. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from analytics.factors import Factor, FactorTable, ResolvedFactors
from analytics.units import CO2_PER_C

LAB_PREFIX = "lab:"
#: factor kinds whose lab result is a carbon fraction (t C per t); a fuel's is NCV and carbon per GJ
CARBON_FRACTION_KINDS = ("material", "electrode", "carbonate")
LAB_KINDS = ("fuel", *CARBON_FRACTION_KINDS)


@dataclass(frozen=True)
class LabResult:
    """One accredited lab sample for one stream, valid in [valid_from, valid_to) (epoch s)."""

    sample_id: str
    process: str
    stream: str
    valid_from: float
    valid_to: float
    ncv_gj_per_unit: float | None = None
    carbon_tc_per_gj: float | None = None
    carbon_fraction: float | None = None

    @property
    def factor_id(self) -> str:
        """The id a minute row records when it used this result: "lab:<sample_id>"."""
        return LAB_PREFIX + self.sample_id

    def ef_tco2_per_unit(self, factor: Factor) -> float:
        """tCO2 per unit of `factor.unit` from this sample, with `factor`'s oxidation for a fuel.

        Raises:
            ValueError: the sample lacks the values `factor`'s kind needs, or a fuel factor has
                no oxidation fraction.
        """
        if factor.kind == "fuel":
            ncv = 1.0 if factor.unit == "GJ" else self.ncv_gj_per_unit
            if ncv is None or self.carbon_tc_per_gj is None:
                raise ValueError(f"lab sample {self.sample_id!r}: a fuel needs ncv_gj_per_unit and carbon_tc_per_gj")
            if factor.oxidation is None:
                raise ValueError(
                    f"lab sample {self.sample_id!r}: factor {factor.id!r} has no oxidation fraction to apply to it"
                )
            return ncv * self.carbon_tc_per_gj * factor.oxidation * CO2_PER_C
        if factor.kind in CARBON_FRACTION_KINDS:
            if self.carbon_fraction is None:
                raise ValueError(f"lab sample {self.sample_id!r}: a {factor.kind} needs carbon_fraction")
            return self.carbon_fraction * CO2_PER_C
        raise ValueError(f"lab sample {self.sample_id!r}: a {factor.kind} factor takes no lab values")


def resolve_stream(factors: FactorTable, factor_id: str, ts: ArrayLike, labs: Sequence[LabResult] = ()) -> ResolvedFactors:
    """The factor of one stream per minute: its lab result valid then, else what `factor_id` resolves to.

    Args:
        factors: the site's factor table.
        factor_id: the stream's configured factor id.
        ts: float64 epoch seconds (minute starts), any order.
        labs: the stream's lab results in force (superseded ones left out); they must not
            overlap in time (the import refuses overlaps).

    Returns:
        ResolvedFactors(ef_tco2_per_unit float64, factor_ids str), same shape as ts; a minute
        on a lab result names "lab:<sample_id>".

    Raises:
        UnknownFactorError: `factor_id` is unknown or not valid at a minute no lab result covers
            (and at any lab minute: the oxidation comes from it).
        ValueError: a lab result lacks the values the factor's kind needs.
    """
    t = np.asarray(ts, dtype=np.float64)
    base = factors.resolve_many(factor_id, t)
    if not labs:
        return base
    ef = np.array(base.ef_tco2_per_unit, dtype=np.float64, copy=True)
    ids = base.factor_ids.astype(object)
    for lab in labs:
        m = (t >= lab.valid_from) & (t < lab.valid_to)
        if not np.any(m):
            continue
        for used in np.unique(base.factor_ids[m]):  # the oxidation of the factor valid at each minute
            mm = m & (base.factor_ids == used)
            ef[mm] = lab.ef_tco2_per_unit(factors.get(str(used)))
        ids[m] = lab.factor_id
    return ResolvedFactors(ef, ids.astype(str))


def labs_in_force(records: Sequence[dict[str, object]]) -> dict[tuple[str, str], list[LabResult]]:
    """Stored lab records (oldest first) -> per (process, stream) the results in force, by validity.

    A record that a later one names in `supersedes` is out of force as a whole: the corrected
    result replaces it, and minutes it covered that the new one does not fall back to the factor.
    """
    superseded = {str(s) for r in records for s in _names(r.get("supersedes"))}
    out: dict[tuple[str, str], list[LabResult]] = {}
    for r in records:
        sid = str(r["sample_id"])
        if sid in superseded:
            continue
        process, _, stream = str(r["stream"]).partition("/")
        lab = LabResult(
            sid,
            process,
            stream,
            float(r["valid_from"]),  # type: ignore[arg-type]  # stored as a JSON number
            float(r["valid_to"]),  # type: ignore[arg-type]  # stored as a JSON number
            _opt(r.get("ncv_gj_per_unit")),
            _opt(r.get("carbon_tc_per_gj")),
            _opt(r.get("carbon_fraction")),
        )
        out.setdefault((process, stream), []).append(lab)
    for labs in out.values():
        labs.sort(key=lambda lab: lab.valid_from)
    return out


def _names(value: object) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [value] if isinstance(value, str) and value else []


def _opt(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]  # a JSON number
