"""Closed minutes -> CO2 per process and stream, each minute with its factor and quality.

For every configured stream: activity = the signal's minute amount converted to the factor's
unit (t, 10^4 Nm3, MWh, GJ); co2_kg = activity x the factor's tCO2 per unit x 1000 x sign. The
factor is resolved per minute, so a lab value with a validity period takes over exactly from
its first minute. The arithmetic itself lives in analytics; this stage only wires it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat

import numpy as np

from analytics.factors import FactorTable
from analytics.substitution import MinuteQuality
from gateway.errors import ConfigError
from gateway.model import MinuteResult
from gateway.settings import GatewaySettings, StreamConfig
from gateway.stages.minute import MinuteFrame
from gateway.units import conversion

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
}


@dataclass(frozen=True)
class _Stream:
    cfg: StreamConfig
    to_factor_unit: float
    factor_unit: str


class EmissionCalculator:
    """Turns MinuteFrames into MinuteResults for the configured streams."""

    def __init__(self, settings: GatewaySettings, factors: FactorTable) -> None:
        self.site = settings.site.name
        self.factors = factors
        problems: list[str] = []
        self._streams: list[_Stream] = []
        for s in settings.streams:
            where = f"stream {s.process}/{s.stream}"
            try:
                factor = factors.get(s.factor)
            except (KeyError, ValueError) as exc:
                problems.append(
                    f"{where}: factor {s.factor!r} is not in the factor library ({exc}); check [factors] and config/factors/"
                )
                continue
            if factor.kind not in _METHOD_KINDS[s.method]:
                problems.append(f"{where}: method {s.method} cannot use factor {s.factor!r} of kind {factor.kind}")
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
        if problems:
            raise ConfigError(f"{len(problems)} stream problem(s)", problems)
        self._to_unit = np.array([st.to_factor_unit for st in self._streams])
        self._sign = np.array([float(st.cfg.sign) for st in self._streams])
        self._estimated = np.array([st.cfg.estimated for st in self._streams], dtype=bool)
        self._balance_in = np.array([st.cfg.method == "carbon_balance" and st.cfg.sign > 0 for st in self._streams], dtype=bool)
        self._by_factor: dict[str, list[int]] = {}
        for k, st in enumerate(self._streams):
            self._by_factor.setdefault(st.cfg.factor, []).append(k)

    def compute(self, frame: MinuteFrame) -> list[MinuteResult]:
        """All streams' minute results, computed as (stream x minute) arrays in one pass."""
        if not self._streams:
            return []
        starts = frame.starts
        minutes = [frame.signals[st.cfg.signal] for st in self._streams]
        amount = np.stack([m.amount for m in minutes])
        activity = amount * self._to_unit[:, None]
        ef_kg = np.empty_like(activity)
        ids: list[list[str]] = [[]] * len(self._streams)
        for factor_id, rows in self._by_factor.items():  # one lookup per factor per frame
            ef_t, used = self.factors.resolve_many(factor_id, starts)
            ef_kg[rows] = np.asarray(ef_t) * 1000.0
            used_list = [str(u) for u in used]
            for r in rows:
                ids[r] = used_list
        co2_kg = activity * ef_kg * self._sign[:, None]
        quality = np.stack([m.quality for m in minutes])
        labels = _LABELS[quality]
        labels[self._estimated] = np.where(
            np.isin(labels[self._estimated], ("measured", "partial")), "estimated", labels[self._estimated]
        )
        flagged = np.stack([(m.bad_samples > 0) | (m.resets > 0) | (m.rule != "") for m in minutes])
        flagged |= self._balance_in[:, None] & (co2_kg < 0)
        starts_l, act_l, co2_l, ef_l = starts.tolist(), activity.tolist(), co2_kg.tolist(), ef_kg.tolist()
        cov_l, lab_l = np.stack([m.coverage for m in minutes]).tolist(), labels.tolist()
        results: list[MinuteResult] = []
        n = len(starts_l)
        for k, st in enumerate(self._streams):
            cfg, sm = st.cfg, minutes[k]
            flags = [""] * n
            for j in np.flatnonzero(flagged[k]).tolist():
                flags[j] = self._flags(sm, j, cfg, co2_l[k][j])
            # map() builds the results from columns without a Python-level loop per minute
            results.extend(
                map(
                    MinuteResult,
                    starts_l,
                    repeat(self.site, n),
                    repeat(cfg.process, n),
                    repeat(cfg.stream, n),
                    repeat(cfg.effective_scope, n),
                    repeat(cfg.method, n),
                    act_l[k],
                    repeat(st.factor_unit, n),
                    co2_l[k],
                    ids[k],
                    ef_l[k],
                    cov_l[k],
                    lab_l[k],
                    flags,
                )
            )
        return results

    @staticmethod
    def _flags(sm, j: int, cfg: StreamConfig, co2_kg: float) -> str:  # type: ignore[no-untyped-def]
        flags = []
        if sm.rule[j]:
            flags.append(f"rule={sm.rule[j]}")
        if sm.bad_samples[j]:
            flags.append(f"bad_samples={int(sm.bad_samples[j])}")
        if sm.resets[j]:
            flags.append(f"counter_resets={int(sm.resets[j])}")
        if cfg.method == "carbon_balance" and cfg.sign > 0 and co2_kg < 0:
            flags.append("negative_balance")
        return ";".join(sorted(flags))


_LABELS = np.array([q.label for q in sorted(MinuteQuality, key=int)])
