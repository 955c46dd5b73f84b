"""Closed minutes -> CO2 per process and stream, each minute with its factor and quality.

For every configured stream: activity = the signal's minute amount converted to the factor's
unit (t, 10^4 Nm3, MWh, GJ); co2_kg = activity x the factor's tCO2 per unit x 1000 x sign. The
factor is resolved per minute, so a lab value with a validity period takes over exactly from
its first minute. The arithmetic itself lives in analytics; this stage only wires it.

Lab evidence: with an `EvidenceSource` attached (the ledger's evidence table), a stream's minute
uses the lab result of that stream valid then, else its factor (analytics/evidence.py,
`resolve_stream`, the one resolution `ledger restate` and `lab import` use too). The source's
head (one indexed row) is read at every compute, so a result imported while the gateway runs
is used from the next minute that closes, without a restart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from analytics.evidence import LabResult, labs_in_force, resolve_stream
from analytics.factors import FactorTable, UnknownFactorError
from analytics.substitution import MinuteQuality
from analytics.units import conversion
from gateway.core.errors import ConfigError
from gateway.core.model import MinuteResults, StreamTable
from gateway.settings.factors import unknown_factor_message
from gateway.settings.site import GatewaySettings, StreamConfig
from gateway.stages.minute import MinuteFrame

PRODUCTION = "production"  # method, scope and factor id of production minutes

# Which factor kinds each method may use.
_METHOD_KINDS = {
    "fuel_combustion": {"fuel"},
    "carbon_content": {"fuel", "material"},
    "carbonate": {"carbonate"},
    "electrode": {"electrode"},
    "material": {"material"},
    "carbon_balance": {"fuel", "material", "carbonate", "electrode"},
    "electricity": {"grid"},
    "heat": {"heat"},
    "cems": {"material"},  # the signal is measured CO2 (t or kg): factor measured.co2, 1 tCO2 per t
}


class EvidenceSource(Protocol):
    """Where the lab records come from: the ledger's evidence table (gateway/ledger/evidence.py)."""

    def head(self) -> tuple[int, str]: ...

    def lab_records(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class _Stream:
    cfg: StreamConfig
    to_factor_unit: float
    factor_unit: str
    production: bool = False  # a `[[production]]` signal: t per minute, no CO2


class EmissionCalculator:
    """Turns MinuteFrames into MinuteResults for the configured streams (`streams`, in order)."""

    def __init__(self, settings: GatewaySettings, factors: FactorTable) -> None:
        self.site = settings.site.name
        self.factors = factors
        problems: list[str] = []
        self._streams: list[_Stream] = []
        for s in settings.streams:
            where = f"stream {s.process}/{s.stream}"
            try:
                factor = factors.get(s.factor)
            except UnknownFactorError:
                problems.append(f"{where}: {unknown_factor_message(factors, s.factor, settings.factors.library)}")
                continue
            if factor.kind not in _METHOD_KINDS[s.method]:
                problems.append(f"{where}: method {s.method} cannot use factor {s.factor!r} of kind {factor.kind}")
                continue
            if s.method == "cems" and (factor.unit != "t" or factor.ef_given_tco2_per_unit != 1.0):
                problems.append(
                    f"{where}: method cems measures CO2 itself; its factor must be 1 tCO2 per t (factor measured.co2), "
                    f"not {s.factor!r} (a {factor.kind} factor per {factor.unit})"
                )
                continue
            amount_unit = settings.signals[s.signal].amount_unit
            try:
                k = conversion(amount_unit, factor.unit)
            except ValueError:
                problems.append(
                    f"{where}: signal {s.signal!r} yields {amount_unit} but factor {s.factor!r} is per {factor.unit}; use a factor per {amount_unit} or a signal in {factor.unit}"
                )
                continue
            self._streams.append(_Stream(s, k, factor.unit))
        # Production (`[[production]]` with a signal): one row per minute like a stream, in t, with
        # method and scope `production`, factor id `production` and CO2 0, so that it is chained,
        # flagged and restated with the minutes; every CO2 total, budget and alert adds 0 for it.
        for p in settings.production:
            if p.signal is None:
                continue
            # model_construct skips validation: method and scope `production` are no stream's choice in a site file
            fields: dict[str, Any] = {
                "process": p.process, "stream": f"production.{p.product}", "signal": p.signal, "method": PRODUCTION,
                "factor": PRODUCTION, "scope": PRODUCTION, "sign": 1, "estimated": False, "balance": "none", "transfer": None,
            }
            pseudo = StreamConfig.model_construct(**fields)
            self._streams.append(_Stream(pseudo, conversion(settings.signals[p.signal].amount_unit, "t"), "t", True))
        if problems:
            raise ConfigError(f"{len(problems)} stream problem(s)", problems)
        self._to_unit = np.array([st.to_factor_unit for st in self._streams])
        self._sign = np.array([float(st.cfg.sign) for st in self._streams])
        self._estimated = np.array([st.cfg.estimated for st in self._streams], dtype=bool)
        self._balance_in = np.array([st.cfg.method == "carbon_balance" and st.cfg.sign > 0 for st in self._streams], dtype=bool)
        # the text of the results: one entry per stream, which every row names by its index
        self.streams = StreamTable(
            (self.site, st.cfg.process, st.cfg.stream, st.cfg.effective_scope, st.cfg.method, st.factor_unit)
            for st in self._streams
        )
        self._rows_of: Mapping[str, int] | None = None
        self._rows = np.empty(0, dtype=np.intp)
        self._by_factor: dict[str, list[int]] = {}
        self._production = [k for k, st in enumerate(self._streams) if st.production]
        for k, st in enumerate(self._streams):
            if not st.production:
                self._by_factor.setdefault(st.cfg.factor, []).append(k)
        self.evidence: EvidenceSource | None = None
        self._evidence_head: tuple[int, str] | None = None
        self._labs: dict[tuple[str, str], list[LabResult]] = {}

    def attach_evidence(self, source: EvidenceSource) -> None:
        """Use the lab results of `source` from the next compute on (and re-read them when its head moves)."""
        self.evidence = source
        self._evidence_head = None

    def close(self) -> None:
        if self.evidence is not None:
            self.evidence.close()
            self.evidence = None

    def labs(self) -> Mapping[tuple[str, str], Sequence[LabResult]]:
        """The lab results in force per (process, stream), re-read when the evidence head moved."""
        if self.evidence is not None:
            head = self.evidence.head()
            if head != self._evidence_head:
                self._labs = labs_in_force(self.evidence.lab_records())
                self._evidence_head = head
        return self._labs

    def compute(self, frame: MinuteFrame) -> MinuteResults:
        """All streams' minute results, computed as (stream x minute) arrays in one pass.

        The results are stream-major: the first stream's minutes in order, then the next stream's.
        """
        if not self._streams:
            return MinuteResults.empty(self.streams)
        starts = frame.starts
        rows = self._rows_in(frame)
        activity = frame.amount[rows] * self._to_unit[:, None]
        ef_kg = np.empty_like(activity)
        ids = np.empty(activity.shape, dtype=object)
        labs = self.labs()
        for factor_id, streams in self._by_factor.items():  # one lookup per factor per frame
            plain = [k for k in streams if (self._streams[k].cfg.process, self._streams[k].cfg.stream) not in labs]
            if plain:
                ef_t, used = resolve_stream(self.factors, factor_id, starts)
                ef_kg[plain] = np.asarray(ef_t) * 1000.0
                ids[plain] = used.astype(object)
            for k in streams:  # a stream with lab results: its own values (streams never share them)
                key = (self._streams[k].cfg.process, self._streams[k].cfg.stream)
                if key in labs:
                    ef_t, used = resolve_stream(self.factors, factor_id, starts, labs[key])
                    ef_kg[k] = np.asarray(ef_t) * 1000.0
                    ids[k] = used.astype(object)
        if self._production:
            ef_kg[self._production] = 0.0
            ids[self._production] = PRODUCTION
        co2_kg = activity * ef_kg * self._sign[:, None]
        quality = frame.quality[rows].astype(np.uint8)
        estimated = quality[self._estimated]
        quality[self._estimated] = np.where(np.isin(estimated, _ESTIMATED_FROM), MinuteQuality.ESTIMATED, estimated)
        rule, bad, resets = frame.rule[rows], frame.bad_samples[rows], frame.resets[rows]
        out_of_range = frame.out_of_range[rows]
        negative = self._balance_in[:, None] & (co2_kg < 0)
        flagged = (bad > 0) | (resets > 0) | (out_of_range > 0) | (rule != "") | negative
        flags = np.full(flagged.shape, "", dtype=object)
        for k, j in zip(*np.nonzero(flagged), strict=True):
            flags[k, j] = _flags(rule[k, j], int(bad[k, j]), int(resets[k, j]), bool(negative[k, j]), int(out_of_range[k, j]))
        # stream-major, as ravel() lists a (stream x minute) array
        n = len(starts)
        return MinuteResults(
            self.streams,
            np.repeat(np.arange(len(self._streams), dtype=np.intp), n),
            np.tile(starts.astype(np.float64, copy=False), len(self._streams)),
            activity.ravel(),
            co2_kg.ravel(),
            ids.ravel(),
            ef_kg.ravel(),
            frame.coverage[rows].ravel().astype(np.float64, copy=False),
            quality.ravel(),
            flags.ravel(),
        )

    def _rows_in(self, frame: MinuteFrame) -> NDArray[np.intp]:
        """The frame rows of the streams' signals; a window's frames share one row mapping."""
        if frame.rows is not self._rows_of:
            self._rows = np.array([frame.rows[st.cfg.signal] for st in self._streams], dtype=np.intp)
            self._rows_of = frame.rows
        return self._rows


def _flags(rule: str, bad_samples: int, resets: int, negative_balance: bool, out_of_range: int = 0) -> str:
    flags = []
    if rule:
        flags.append(f"rule={rule}")
    if bad_samples:
        flags.append(f"bad_samples={bad_samples}")
    if resets:
        flags.append(f"counter_resets={resets}")
    if negative_balance:
        flags.append("negative_balance")
    if out_of_range:  # readings outside their bounds (or implausible counter increases): not counted
        flags.append(f"out_of_range={out_of_range}")
    return ";".join(sorted(flags))


# an estimated stream's measured and partial minutes are labelled estimated
_ESTIMATED_FROM = np.array([MinuteQuality.MEASURED, MinuteQuality.PARTIAL], dtype=np.uint8)
