"""The factor table: default emission factors, site overrides and their validity (reference section 3).

A *default* entry holds one factor from one source (ids like "cn.bfg", "ipcc2006.bfg",
"cn.grid.2022.national_avg"). A site *override* (a lab NCV for a coal delivery, a monthly gas
analysis) names the default it replaces with `overrides = "<id>"` and a validity period; fields it
leaves out are inherited from that default (kind and unit always are, and must not change). At a
given time an id resolves to the override valid then, else to the default; every minute row names
the id it used.

Entry keys (dicts as read from the TOML library or the site config):
    id, kind, unit, source, year, status            required (kind and unit inherited by overrides)
    ncv_gj_per_unit, cc_tc_per_gj, oxidation        fuels (NCV x CC x OF x 44/12)
    c_tc_per_unit                                   carbon per unit (fuels with OF, electrodes, materials)
    ef_tco2_per_unit                                a factor given directly (field ef_given_tco2_per_unit)
    mineral, purity                                 carbonates (purity x stoichiometric factor)
    valid_from, valid_to                            epoch s, or datetimes with a UTC offset; [from, to)
    overrides                                       id of the default this entry replaces
    name, series, variant, region, data_year, note  description (grid key: data_year, series, variant, region)

`year` is the year the value refers to: the data year for grid and heat factors, the edition of the
guideline or the sample year for fuel and process factors. `status` is "confirmed" or "verify"
(reference section 3: verify = commonly quoted, to be confirmed by the plant).

Pure: no file access here (gateway.settings.factors reads the TOML).
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analytics.emissions import STOICHIOMETRIC_TCO2_PER_T
from analytics.units import CO2_PER_C

KINDS = ("fuel", "carbonate", "electrode", "material", "grid", "heat")
UNITS = ("t", "1e4Nm3", "GJ", "MWh")
STATUSES = ("confirmed", "verify")
_KIND_UNITS = {"grid": ("MWh",), "heat": ("GJ",), "carbonate": ("t",), "electrode": ("t",)}

_NUMBERS = ("ncv_gj_per_unit", "cc_tc_per_gj", "c_tc_per_unit", "ef_tco2_per_unit")
_FRACTIONS = ("oxidation", "purity")
_STRINGS = (
    "id",
    "kind",
    "unit",
    "source",
    "status",
    "mineral",
    "overrides",
    "name",
    "series",
    "variant",
    "region",
    "note",
)
_INTS = ("year", "data_year")
_TIMES = ("valid_from", "valid_to")
_KEYS = frozenset(_NUMBERS + _FRACTIONS + _STRINGS + _INTS + _TIMES)
_REQUIRED = ("id", "kind", "unit", "source", "year", "status")
_OVERRIDE_REQUIRED = ("id", "overrides", "source", "year", "status")
# Fields an override inherits from its default when it leaves them out.
_INHERITED = (
    "kind",
    "unit",
    "ncv_gj_per_unit",
    "cc_tc_per_gj",
    "oxidation",
    "c_tc_per_unit",
    "ef_tco2_per_unit",
    "mineral",
    "purity",
    "name",
    "series",
    "variant",
    "region",
    "data_year",
)


class FactorTableError(ValueError):
    """An entry of the factor table is invalid. `factor_ids` names the entries involved."""

    def __init__(self, message: str, factor_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.factor_ids = factor_ids


class UnknownFactorError(LookupError):
    """No factor with that id, or none valid at the requested time.

    A LookupError, not a KeyError: catch this class around `get`, `resolve` and `resolve_many`.
    """


def close_ids(factor_id: str, known: Iterable[str], n: int = 3) -> tuple[str, ...]:
    """The ids of `known` closest to a misspelt `factor_id` (difflib ratio >= 0.6), best first."""
    return tuple(difflib.get_close_matches(factor_id, list(known), n=n))


def did_you_mean(suggestions: tuple[str, ...]) -> str:
    """'; did you mean 'a' or 'b'?' for a message, or '' when there is nothing close."""
    if not suggestions:
        return ""
    return "; did you mean " + " or ".join(repr(s) for s in suggestions) + "?"


@dataclass(frozen=True)
class Factor:
    """One emission factor with its provenance.

    Attributes:
        id: unique id, e.g. "cn.bfg".
        kind: "fuel", "carbonate", "electrode", "material", "grid" or "heat".
        unit: activity unit the factor applies to: "t", "1e4Nm3", "GJ" or "MWh".
        source, year, status: provenance (see the module docstring).
        ncv_gj_per_unit, cc_tc_per_gj, oxidation: fuel parameters.
        c_tc_per_unit: carbon content, tC per unit.
        ef_given_tco2_per_unit: a factor given directly (entry key "ef_tco2_per_unit").
        mineral, purity: carbonate parameters.
        valid_from, valid_to: validity [from, to) in epoch s; None = unbounded.
        overrides: id of the default this entry replaces, or None for a default.
        name, series, variant, region, data_year, note: description.
    """

    id: str
    kind: str
    unit: str
    source: str
    year: int
    status: str
    ncv_gj_per_unit: float | None = None
    cc_tc_per_gj: float | None = None
    oxidation: float | None = None
    c_tc_per_unit: float | None = None
    ef_given_tco2_per_unit: float | None = None
    mineral: str | None = None
    purity: float | None = None
    valid_from: float | None = None
    valid_to: float | None = None
    overrides: str | None = None
    name: str | None = None
    series: str | None = None
    variant: str | None = None
    region: str | None = None
    data_year: int | None = None
    note: str | None = None

    def ef_tco2_per_unit(self) -> float:
        """tCO2 per unit of activity (per `unit`).

        fuel: ef given, else C x OF x 44/12, else NCV x CC x OF x 44/12 (NCV = 1 for unit GJ);
        carbonate: ef given, else purity x stoichiometric factor of `mineral`;
        electrode, material: ef given, else C x 44/12; grid, heat: ef given.

        Raises:
            ValueError: the entry lacks a parameter (e.g. a coal default without NCV: the
                plant must supply its lab NCV as an override).
        """
        if self.ef_given_tco2_per_unit is not None:
            return self.ef_given_tco2_per_unit
        if self.kind == "fuel":
            if self.c_tc_per_unit is not None and self.oxidation is not None:
                return self.c_tc_per_unit * self.oxidation * CO2_PER_C
            ncv = 1.0 if self.unit == "GJ" and self.ncv_gj_per_unit is None else self.ncv_gj_per_unit
            if ncv is not None and self.cc_tc_per_gj is not None and self.oxidation is not None:
                return ncv * self.cc_tc_per_gj * self.oxidation * CO2_PER_C
            missing = [
                k for k in ("ncv_gj_per_unit", "cc_tc_per_gj", "oxidation") if getattr(self, k) is None
            ]
            raise ValueError(
                f"factor {self.id!r} ({self.source}) has no {', '.join(missing)}; "
                "add a site override with the lab value (reference 3.1: coal NCV is measured per delivery)"
            )
        if self.kind == "carbonate" and self.mineral is not None and self.purity is not None:
            return self.purity * STOICHIOMETRIC_TCO2_PER_T[self.mineral]
        if self.kind in ("electrode", "material") and self.c_tc_per_unit is not None:
            return self.c_tc_per_unit * CO2_PER_C
        raise ValueError(f"factor {self.id!r} has no parameters to compute tCO2 per {self.unit}")

    def valid_at(self, ts: float) -> bool:
        """True if ts (epoch s) lies in [valid_from, valid_to)."""
        return (self.valid_from is None or ts >= self.valid_from) and (
            self.valid_to is None or ts < self.valid_to
        )

    def to_dict(self) -> dict[str, Any]:
        """The entry as a dict with the entry keys (None fields left out), plus the computed ef."""
        d = {k: v for k, v in asdict(self).items() if v is not None}
        if "ef_given_tco2_per_unit" in d:
            d["ef_tco2_per_unit"] = d.pop("ef_given_tco2_per_unit")
        return d


class ResolvedFactors(NamedTuple):
    """Result of `FactorTable.resolve_many`: one ef and the id that gave it, per timestamp."""

    ef_tco2_per_unit: NDArray[np.float64]
    factor_ids: NDArray[np.str_]


def _where(entry: Mapping[str, Any], index: int) -> str:
    fid = entry.get("id")
    return f"factor {fid!r}" if isinstance(fid, str) and fid else f"factor entry #{index}"


def _epoch(value: Any, where: str, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise FactorTableError(
            f"{where}: {key}: expected epoch seconds or a datetime with offset, got {value!r}"
        )
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise FactorTableError(f"{where}: {key}: must be finite, got {value!r}")
        return float(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise FactorTableError(f"{where}: {key}: {value!r} is not an ISO 8601 datetime") from None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise FactorTableError(
                f"{where}: {key}: {value.isoformat()} has no UTC offset; write it as e.g. "
                f"{value.isoformat()}+08:00 or with Z for UTC"
            )
        return value.timestamp()
    if isinstance(value, date):
        raise FactorTableError(
            f"{where}: {key}: a date ({value.isoformat()}) is ambiguous; give a datetime with offset, "
            f"e.g. {value.isoformat()}T00:00:00+08:00"
        )
    raise FactorTableError(f"{where}: {key}: expected epoch seconds or a datetime with offset, got {value!r}")


def _parse(entry: Mapping[str, Any], index: int) -> dict[str, Any]:
    """Type-check one raw entry; returns normalised values (times as epoch s)."""
    if not isinstance(entry, Mapping):
        raise FactorTableError(f"factor entry #{index}: expected a table of keys, got {type(entry).__name__}")
    where = _where(entry, index)
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise FactorTableError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_KEYS)}", _ids(entry))
    required = _OVERRIDE_REQUIRED if entry.get("overrides") is not None else _REQUIRED
    for key in required:
        if entry.get(key) is None:
            raise FactorTableError(f"{where}: {key}: missing (required: {', '.join(required)})", _ids(entry))
    out: dict[str, Any] = {}
    for key, value in entry.items():
        if value is None:
            continue
        if key in _STRINGS:
            if not isinstance(value, str) or not value.strip():
                raise FactorTableError(
                    f"{where}: {key}: expected a non-empty string, got {value!r}", _ids(entry)
                )
        elif key in _INTS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise FactorTableError(
                    f"{where}: {key}: expected an integer year, got {value!r}", _ids(entry)
                )
        elif key in _NUMBERS or key in _FRACTIONS:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise FactorTableError(
                    f"{where}: {key}: expected a finite number, got {value!r}", _ids(entry)
                )
            if value < 0:
                raise FactorTableError(f"{where}: {key}: must be >= 0, got {value!r}", _ids(entry))
            if key in _FRACTIONS and value > 1:
                raise FactorTableError(
                    f"{where}: {key}: must be a fraction in [0, 1], got {value!r}", _ids(entry)
                )
            value = float(value)
        elif key in _TIMES:
            value = _epoch(value, where, key)
        out[key] = value
    return out


def _ids(entry: Mapping[str, Any]) -> tuple[str, ...]:
    fid = entry.get("id") if isinstance(entry, Mapping) else None
    return (fid,) if isinstance(fid, str) else ()


def _build(d: dict[str, Any]) -> Factor:
    """Check a complete (merged) entry and make the Factor."""
    fid = d["id"]
    where = f"factor {fid!r}"

    def fail(key: str, problem: str) -> FactorTableError:
        return FactorTableError(f"{where}: {key}: {problem}", (fid,))

    if d["kind"] not in KINDS:
        raise fail("kind", f"{d['kind']!r} is not one of {KINDS}")
    if d["unit"] not in UNITS:
        raise fail("unit", f"{d['unit']!r} is not one of {UNITS}")
    allowed_units = _KIND_UNITS.get(d["kind"])
    if allowed_units and d["unit"] not in allowed_units:
        raise fail("unit", f"a {d['kind']} factor applies to {allowed_units}, got {d['unit']!r}")
    if d["status"] not in STATUSES:
        raise fail("status", f"{d['status']!r} is not one of {STATUSES}")
    if "mineral" in d and d["mineral"] not in STOICHIOMETRIC_TCO2_PER_T:
        raise fail("mineral", f"unknown mineral {d['mineral']!r}; known: {sorted(STOICHIOMETRIC_TCO2_PER_T)}")
    vf, vt = d.get("valid_from"), d.get("valid_to")
    if vf is not None and vt is not None and not vf < vt:
        raise fail("valid_to", f"must be after valid_from ({vt!r} <= {vf!r})")
    kind = d["kind"]
    has = set(d)
    if kind == "fuel":
        if d["unit"] == "GJ" and d.get("ncv_gj_per_unit") not in (None, 1.0):
            raise fail("ncv_gj_per_unit", "a fuel metered in GJ has no NCV (leave it out or set 1)")
        if not (
            {"ef_tco2_per_unit"} <= has
            or {"c_tc_per_unit", "oxidation"} <= has
            or {"cc_tc_per_gj", "oxidation"} <= has
        ):
            raise fail(
                "cc_tc_per_gj",
                "a fuel needs cc_tc_per_gj and oxidation (NCV may come from a lab "
                "override), or c_tc_per_unit and oxidation, or ef_tco2_per_unit",
            )
    elif kind == "carbonate":
        if "ef_tco2_per_unit" not in has and not {"mineral", "purity"} <= has:
            raise fail("ef_tco2_per_unit", "a carbonate needs ef_tco2_per_unit, or mineral and purity")
    elif kind in ("electrode", "material"):
        if "ef_tco2_per_unit" not in has and "c_tc_per_unit" not in has:
            raise fail("ef_tco2_per_unit", f"a {kind} factor needs ef_tco2_per_unit or c_tc_per_unit")
    elif "ef_tco2_per_unit" not in has:
        raise fail("ef_tco2_per_unit", f"a {kind} factor needs ef_tco2_per_unit")
    kwargs = dict(d)
    if "ef_tco2_per_unit" in kwargs:
        kwargs["ef_given_tco2_per_unit"] = kwargs.pop("ef_tco2_per_unit")
    return Factor(**kwargs)


class FactorTable:
    """Validated set of factors; resolves an id at a time to the override valid then or the default.

    Args:
        entries: dicts with the keys listed in the module docstring.

    Raises:
        FactorTableError: an entry is invalid, an id repeats, an override names an unknown id or
            another override, changes kind or unit, or overlaps another override of the same id.
    """

    def __init__(self, entries: Iterable[Mapping[str, Any]]) -> None:
        parsed = [_parse(e, i) for i, e in enumerate(entries)]
        seen: dict[str, int] = {}
        for i, d in enumerate(parsed):
            if d["id"] in seen:
                raise FactorTableError(
                    f"factor {d['id']!r}: id: defined twice (entries #{seen[d['id']]} and #{i})", (d["id"],)
                )
            seen[d["id"]] = i
        by_id = {d["id"]: d for d in parsed}
        self._factors: dict[str, Factor] = {}
        self._overrides: dict[str, list[Factor]] = {}
        for d in parsed:
            if "overrides" not in d:
                self._factors[d["id"]] = _build(d)
        for d in parsed:
            base_id = d.get("overrides")
            if base_id is None:
                continue
            base = by_id.get(base_id)
            if base is None or "overrides" in base:
                what = "is not in the table" if base is None else "is itself an override"
                defaults = (i for i, e in by_id.items() if "overrides" not in e)
                hint = did_you_mean(close_ids(base_id, defaults)) if base is None else ""
                raise FactorTableError(
                    f"factor {d['id']!r}: overrides: {base_id!r} {what}; name a default id{hint}",
                    (d["id"], base_id),
                )
            for key in ("kind", "unit"):
                if key in d and d[key] != base[key]:
                    raise FactorTableError(
                        f"factor {d['id']!r}: {key}: {d[key]!r} differs from {base[key]!r} of {base_id!r}; "
                        "an override must keep the kind and activity unit",
                        (d["id"], base_id),
                    )
            merged = {k: base[k] for k in _INHERITED if k in base}
            if "ncv_gj_per_unit" in d or "cc_tc_per_gj" in d:
                merged.pop("c_tc_per_unit", None)  # a new NCV/CC must not be shadowed by inherited C
            if set(d) & {"ncv_gj_per_unit", "cc_tc_per_gj", "c_tc_per_unit", "mineral", "purity"}:
                merged.pop("ef_tco2_per_unit", None)  # new parameters replace an inherited direct ef
            merged.update(d)
            self._factors[d["id"]] = f = _build(merged)
            self._overrides.setdefault(base_id, []).append(f)
        for base_id, group in self._overrides.items():
            group.sort(key=lambda f: -math.inf if f.valid_from is None else f.valid_from)
            for a, b in itertools.pairwise(group):
                a_end = math.inf if a.valid_to is None else a.valid_to
                b_start = -math.inf if b.valid_from is None else b.valid_from
                if b_start < a_end:
                    raise FactorTableError(
                        f"factor {b.id!r}: valid_from: overlaps {a.id!r}; overrides of {base_id!r} "
                        "must not overlap in time",
                        (a.id, b.id),
                    )

    def __len__(self) -> int:
        return len(self._factors)

    def __contains__(self, factor_id: object) -> bool:
        return factor_id in self._factors

    def ids(self) -> list[str]:
        """All ids, defaults and overrides, sorted."""
        return sorted(self._factors)

    def get(self, factor_id: str) -> Factor:
        """The entry with this id, ignoring validity and overrides."""
        try:
            return self._factors[factor_id]
        except KeyError:
            close = close_ids(factor_id, self._factors)
            raise UnknownFactorError(
                f"no factor {factor_id!r} in the factor table{did_you_mean(close) or '; check the id'}"
            ) from None

    def select(self, **criteria: Any) -> list[Factor]:
        """Default entries whose fields equal all criteria, e.g. select(kind="grid", data_year=2022,
        series="mee_nbs_annual", variant="national_avg", region="national")."""
        names = {f.name for f in fields(Factor)}
        bad = sorted(set(criteria) - names)
        if bad:
            raise ValueError(f"unknown Factor field(s) {bad}")
        return [
            f
            for f in self._factors.values()
            if f.overrides is None and all(getattr(f, k) == v for k, v in criteria.items())
        ]

    def resolve(self, factor_id: str, at_ts: float) -> Factor:
        """The factor to use for `factor_id` at epoch second `at_ts`.

        Returns the override of that id valid at at_ts if there is one, else the entry itself.

        Raises:
            UnknownFactorError: unknown id, or neither an override nor the entry is valid then.
        """
        at_ts = float(at_ts)
        if not math.isfinite(at_ts):
            raise ValueError(f"at_ts must be finite epoch seconds, got {at_ts!r}")
        entry = self.get(factor_id)
        for f in self._overrides.get(factor_id, ()):
            if f.valid_at(at_ts):
                return f
        if entry.valid_at(at_ts):
            return entry
        raise UnknownFactorError(
            f"factor {factor_id!r} is not valid at {_iso(at_ts)} (valid {_iso(entry.valid_from)} to "
            f"{_iso(entry.valid_to)}) and no override covers it; add an override or fix the validity"
        )

    def uncovered(self, factor_id: str) -> list[tuple[float | None, float | None]]:
        """The periods [from, to) in which `factor_id` resolves to nothing: neither the entry nor
        one of its overrides is valid then (None = unbounded). Empty when every moment has a
        value, which a stream's factor needs: a minute in a gap could not be computed.

        Raises:
            UnknownFactorError: unknown id.
        """
        entry = self.get(factor_id)
        spans = sorted(
            (-math.inf if f.valid_from is None else f.valid_from, math.inf if f.valid_to is None else f.valid_to)
            for f in [entry, *self._overrides.get(factor_id, ())]
        )
        gaps: list[tuple[float | None, float | None]] = []
        reached = -math.inf
        for start, end in spans:
            if start > reached:
                gaps.append((None if reached == -math.inf else reached, start))
            reached = max(reached, end)
        if reached < math.inf:
            gaps.append((reached, None))
        return gaps

    def resolve_many(self, factor_id: str, ts: ArrayLike) -> ResolvedFactors:
        """Vectorised `resolve` for replay: ef (tCO2 per unit) and the id used, per timestamp.

        Args:
            factor_id: a default (or override) id.
            ts: float64 epoch seconds, any order.

        Returns:
            ResolvedFactors(ef_tco2_per_unit float64, factor_ids str), same shape as ts.
        """
        t = np.asarray(ts, dtype=np.float64)
        if not np.all(np.isfinite(t)):
            raise ValueError("ts must be finite epoch seconds; found NaN or inf")
        entry = self.get(factor_id)
        group = self._overrides.get(factor_id, [])
        width = max(len(f.id) for f in [entry, *group])
        ef = np.full(t.shape, np.nan)
        ids = np.full(t.shape, "", dtype=f"<U{width}")
        done = np.zeros(t.shape, dtype=bool)
        for f in [*group, entry]:  # overrides first; they do not overlap each other
            m = ~done & _valid_mask(f, t)
            if np.any(m):
                ef[m] = f.ef_tco2_per_unit()
                ids[m] = f.id
                done |= m
        if not np.all(done):
            first = float(t[~done].ravel()[0])
            raise UnknownFactorError(
                f"factor {factor_id!r} is not valid at {_iso(first)} and no override covers it; "
                "add an override or fix the validity"
            )
        return ResolvedFactors(ef, ids)


def _valid_mask(f: Factor, t: NDArray[np.float64]) -> NDArray[np.bool_]:
    m = np.ones(t.shape, dtype=bool)
    if f.valid_from is not None:
        m &= t >= f.valid_from
    if f.valid_to is not None:
        m &= t < f.valid_to
    return m


def _iso(ts: float | None) -> str:
    if ts is None:
        return "unbounded"
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")
