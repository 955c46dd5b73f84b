"""`emgate calc`: one emission calculation from a JSON document on stdin, for auditors.

    echo '{"method": "fuel_combustion", "amount": 120.5, "amount_unit": "1e4Nm3",
           "ncv_gj_per_unit": 33.0, "cc_tc_per_gj": 0.0708, "oxidation": 0.99}' | emgate calc

prints JSON with co2_t, co2_kg, the method, the ef used where one is derived, the inputs as
validated, and warnings (a negative carbon balance or net electricity export is reported, never
clipped). The arithmetic is analytics.emissions, the same code the gateway runs per minute.

Methods and keys (every other key is an error):
    fuel_combustion  amount, amount_unit ("t" | "1e4Nm3" | "GJ"), ncv_gj_per_unit, cc_tc_per_gj, oxidation
                     For "GJ" the amount is heat: leave ncv_gj_per_unit out (or give 1).
    carbon_content   amount, amount_unit ("t" | "1e4Nm3"), c_tc_per_unit, oxidation
    carbonate        amount_t, and ef_tco2_per_t, or mineral (limestone | dolomite | magnesite |
                     siderite) with purity; optional calcined (default 1)
    electrode        amount_t, ef_tco2_per_t
    carbon_balance   inputs, outputs: lists of {amount_t, carbon_fraction}
                     or {amount_1e4nm3, c_tc_per_1e4nm3} for gas streams
    electricity      energy_mwh, ef_tco2_per_mwh; optional exported_mwh (default 0)
    heat             heat_gj, ef_tco2_per_gj; optional exported_gj (default 0)

Numbers must be JSON numbers (not strings), finite; amounts and factors >= 0, fractions in [0, 1].
Bad input prints one line on stderr naming the problem and the key, and exits 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Annotated, Any, Literal
from warnings import catch_warnings, simplefilter

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from analytics import emissions

EXIT_OK = 0
EXIT_INPUT = 2

NonNeg = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class FuelCombustion(_Model):
    method: Literal["fuel_combustion"]
    amount: NonNeg
    amount_unit: Literal["t", "1e4Nm3", "GJ"]
    ncv_gj_per_unit: NonNeg | None = None
    cc_tc_per_gj: NonNeg
    oxidation: Fraction

    @model_validator(mode="after")
    def _ncv_matches_unit(self) -> FuelCombustion:
        if self.amount_unit == "GJ":
            if self.ncv_gj_per_unit not in (None, 1.0):
                raise ValueError(
                    "ncv_gj_per_unit must be left out (or 1) when amount_unit is 'GJ': the amount is heat"
                )
        elif self.ncv_gj_per_unit is None:
            raise ValueError(f"ncv_gj_per_unit is required when amount_unit is {self.amount_unit!r}")
        return self

    def co2_t(self) -> float:
        ncv = 1.0 if self.ncv_gj_per_unit is None else self.ncv_gj_per_unit
        return float(emissions.fuel_combustion_t(self.amount, ncv, self.cc_tc_per_gj, self.oxidation))


class CarbonContent(_Model):
    method: Literal["carbon_content"]
    amount: NonNeg
    amount_unit: Literal["t", "1e4Nm3"]
    c_tc_per_unit: NonNeg
    oxidation: Fraction

    def co2_t(self) -> float:
        return float(emissions.carbon_content_t(self.amount, self.c_tc_per_unit, self.oxidation))


class Carbonate(_Model):
    method: Literal["carbonate"]
    amount_t: NonNeg
    ef_tco2_per_t: NonNeg | None = None
    mineral: Literal["limestone", "dolomite", "magnesite", "siderite"] | None = None
    purity: Fraction | None = None
    calcined: Fraction = 1.0

    @model_validator(mode="after")
    def _one_factor(self) -> Carbonate:
        by_mineral = self.mineral is not None or self.purity is not None
        if self.ef_tco2_per_t is not None and by_mineral:
            raise ValueError("give either ef_tco2_per_t or mineral with purity, not both")
        if self.ef_tco2_per_t is None and (self.mineral is None or self.purity is None):
            raise ValueError("give ef_tco2_per_t, or mineral and purity")
        return self

    def ef(self) -> float:
        if self.ef_tco2_per_t is not None:
            return self.ef_tco2_per_t
        assert self.mineral is not None and self.purity is not None  # _one_factor requires both then
        return float(emissions.carbonate_ef(self.mineral, self.purity))

    def co2_t(self) -> float:
        return float(emissions.carbonate_t(self.amount_t, self.ef(), self.calcined))


class Electrode(_Model):
    method: Literal["electrode"]
    amount_t: NonNeg
    ef_tco2_per_t: NonNeg

    def co2_t(self) -> float:
        return float(emissions.electrode_t(self.amount_t, self.ef_tco2_per_t))


class BalanceItem(_Model):
    amount_t: NonNeg | None = None
    carbon_fraction: Fraction | None = None
    amount_1e4nm3: NonNeg | None = None
    c_tc_per_1e4nm3: NonNeg | None = None

    @model_validator(mode="after")
    def _one_pair(self) -> BalanceItem:
        mass = (self.amount_t, self.carbon_fraction)
        gas = (self.amount_1e4nm3, self.c_tc_per_1e4nm3)
        ok_mass = None not in mass and gas == (None, None)
        ok_gas = None not in gas and mass == (None, None)
        if not (ok_mass or ok_gas):
            raise ValueError("give amount_t with carbon_fraction, or amount_1e4nm3 with c_tc_per_1e4nm3")
        return self

    def as_tuple(self) -> tuple[float, float] | tuple[float, float, str]:
        if self.amount_t is not None:
            assert self.carbon_fraction is not None  # _one_pair admits complete pairs only
            return (self.amount_t, self.carbon_fraction)
        assert self.amount_1e4nm3 is not None and self.c_tc_per_1e4nm3 is not None  # likewise
        return (self.amount_1e4nm3, self.c_tc_per_1e4nm3, "1e4Nm3")


class CarbonBalance(_Model):
    method: Literal["carbon_balance"]
    inputs: list[BalanceItem] = Field(min_length=1)
    outputs: list[BalanceItem] = Field(default_factory=list)

    def co2_t(self) -> float:
        return float(emissions.carbon_balance_t([i.as_tuple() for i in self.inputs], [o.as_tuple() for o in self.outputs]))


class Electricity(_Model):
    method: Literal["electricity"]
    energy_mwh: NonNeg
    ef_tco2_per_mwh: NonNeg
    exported_mwh: NonNeg = 0.0

    def co2_t(self) -> float:
        return float(emissions.electricity_t(self.energy_mwh, self.ef_tco2_per_mwh, exported_mwh=self.exported_mwh))


class Heat(_Model):
    method: Literal["heat"]
    heat_gj: NonNeg
    ef_tco2_per_gj: NonNeg
    exported_gj: NonNeg = 0.0

    def co2_t(self) -> float:
        return float(emissions.heat_t(self.heat_gj, self.ef_tco2_per_gj, exported_gj=self.exported_gj))


CalcRequest = Annotated[
    FuelCombustion | CarbonContent | Carbonate | Electrode | CarbonBalance | Electricity | Heat,
    Field(discriminator="method"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(CalcRequest)
METHODS = (
    "fuel_combustion",
    "carbon_content",
    "carbonate",
    "electrode",
    "carbon_balance",
    "electricity",
    "heat",
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `emgate calc`."""
    parser = subparsers.add_parser(
        "calc",
        help="compute CO2 for one activity from a JSON document on stdin (auditor check)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=run)


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc[1:] if loc and loc[0] in METHODS else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        kind = err["type"]
        if kind == "union_tag_not_found":
            problems.append(f"method: missing; one of {', '.join(METHODS)}")
            continue
        if kind == "union_tag_invalid":
            problems.append(f"method: unknown method {err['ctx']['tag']!r}; one of {', '.join(METHODS)}")
            continue
        where = _path(tuple(err["loc"])) or "input"
        msg = err["msg"].removeprefix("Value error, ")
        if kind == "missing":
            problems.append(f"{where}: missing")
        elif kind == "extra_forbidden":
            problems.append(f"{where}: unknown key")
        elif kind == "value_error":
            problems.append(f"{where}: {msg}")
        else:
            problems.append(f"{where}: {msg} (got {err.get('input')!r})")
    return "; ".join(problems)


def _fail(message: str) -> int:
    print(f"emgate calc: {message}", file=sys.stderr)
    return EXIT_INPUT


def run(args: argparse.Namespace) -> int:
    """Read one JSON request on stdin, print the result as JSON on stdout.

    Returns:
        0 on success, 2 for missing, malformed or impossible input (one line on stderr).
    """
    try:
        text = sys.stdin.read()
    except UnicodeDecodeError as exc:
        return _fail(f"stdin is not UTF-8 text (byte {exc.start}: {exc.reason}); pipe one JSON object in UTF-8")
    if not text.strip():
        return _fail(
            "stdin is empty; pipe one JSON object with a 'method' key, e.g. "
            'echo \'{"method": "electrode", "amount_t": 2, "ef_tco2_per_t": 3.663}\' | emgate calc'
        )
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        return _fail(f"stdin is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except RecursionError:
        return _fail("stdin nests JSON arrays or objects too deeply; a request is one flat object with a 'method' key")
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        return _fail(f"stdin holds a number that cannot be read: {exc}; give amounts as JSON numbers of ordinary size")
    if not isinstance(doc, dict):
        return _fail(f"stdin must hold one JSON object with a 'method' key, got a JSON {type(doc).__name__}")
    try:
        req = _ADAPTER.validate_python(doc)
    except ValidationError as exc:
        return _fail(f"invalid input: {_describe(exc)}")
    try:
        with catch_warnings():
            simplefilter("ignore", RuntimeWarning)  # numpy's overflow warning: checked below
            co2_t = float(req.co2_t())
    except ValueError as exc:  # the analytics checks; the models should have caught it already
        return _fail(f"invalid input: {exc}")
    if not math.isfinite(co2_t) or not math.isfinite(co2_t * 1000.0):
        return _fail(
            f"the result overflows a float (co2_t {co2_t!r}): the amounts and factors given are too large "
            "to multiply; check their units and magnitude"
        )

    result: dict[str, Any] = {"method": req.method, "co2_t": co2_t, "co2_kg": co2_t * 1000.0}
    if isinstance(req, Carbonate):
        result["ef_tco2_per_t"] = req.ef()
    warnings = []
    if co2_t < 0 and isinstance(req, CarbonBalance):
        warnings.append(
            "negative carbon balance: an output is over-counted or an input is missing; "
            "reported as is, not clipped"
        )
    elif co2_t < 0:
        warnings.append(
            "negative result: exports exceed purchases; check whether the boundary credits exports"
        )
    result["warnings"] = warnings
    result["inputs"] = req.model_dump(exclude={"method"}, exclude_none=True)
    print(json.dumps(result, indent=2, allow_nan=False))
    return EXIT_OK
