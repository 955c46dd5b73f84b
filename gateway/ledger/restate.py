"""Restatement: recompute stored minutes with the factors the configuration resolves now.

A factor can change after its minutes were recorded: the lab's NCV for a coal delivery arrives
weeks later and is entered as a site override with a validity period, or a default is replaced.
The ledger never rewrites a row; a restatement appends, for each current row whose value
changes, a correction row that supersedes it with a reason (gateway/ledger/store.py,
`Ledger.correct`). The month export then reports the changed figures as a restatement.

What is recomputed, per current row in [from, to): the factor of the row's stream (the
`[[streams]]` entry with its process and stream) is resolved for the row's minute, exactly as
the live emission stage does (gateway/stages/emissions.py), and

    ef_kg_per_unit = ef_tco2_per_unit x 1000;   co2_kg = activity x ef_kg_per_unit x sign

from the row's stored activity. Activity, coverage, quality and flags are kept: only the factor
changed. A stream's minute covered by a lab result of that stream in force (the ledger's
evidence, gateway/ledger/evidence.py) uses it and names "lab:<sample_id>"; the resolution is
analytics.evidence.resolve_stream, the one the live stage uses. A row changes when its co2_kg, ef_kg_per_unit or factor id differ. Rows that cannot be
recomputed from the configuration (another site, a stream no longer configured, a factor now
per another activity unit) are left alone and counted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from analytics.evidence import LabResult, resolve_stream
from analytics.factors import FactorTable, UnknownFactorError
from gateway.core.errors import ConfigError
from gateway.core.model import MinuteResult
from gateway.ledger.store import Ledger
from gateway.settings.site import GatewaySettings, StreamConfig

# Relative difference below which a recomputed value is the stored one: the live stage computes
# in numpy and SQLite stores IEEE doubles, so an unchanged factor reproduces the value exactly;
# the tolerance only keeps a last-bit difference from becoming a correction row.
_REL_TOL = 1e-12


@dataclass
class ProcessTotals:
    """Rows and CO2 of one process over the range, before and after the restatement."""

    rows: int = 0
    changed: int = 0
    old_co2_kg: float = 0.0
    new_co2_kg: float = 0.0


@dataclass
class RestatePlan:
    """What a restatement would change. `corrections` pairs the superseded seq with the new result."""

    from_s: float
    to_s: float
    corrections: list[tuple[int, MinuteResult]] = field(default_factory=list)
    by_process: dict[str, ProcessTotals] = field(default_factory=dict)
    rows_checked: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # why a row was left alone -> rows

    @property
    def old_co2_kg(self) -> float:
        return sum(t.old_co2_kg for t in self.by_process.values())

    @property
    def new_co2_kg(self) -> float:
        return sum(t.new_co2_kg for t in self.by_process.values())


def plan_restatement(
    settings: GatewaySettings,
    factors: FactorTable,
    rows: Iterable[tuple[int, MinuteResult]],
    from_s: float,
    to_s: float,
    labs: Mapping[tuple[str, str], Sequence[LabResult]] | None = None,
) -> RestatePlan:
    """Recompute current ledger rows (seq, result) with the factors of `settings`.

    Args:
        settings: the site configuration (its streams name the factor ids).
        factors: the site's factor table (library plus overrides, as `site_factor_table` builds it).
        rows: current rows, e.g. `ledger.reader.current(from_s=..., to_s=...)`.
        from_s, to_s: the range the rows were read for (reported only).
        labs: the lab results in force per (process, stream) (`analytics.evidence.labs_in_force`
            of the ledger's lab records); None or empty: factors only.

    Returns:
        The plan: corrections for rows whose value changes, and totals per process.

    Raises:
        ConfigError: a stream's factor is unknown or not valid at one of the minutes.
    """
    plan = RestatePlan(from_s, to_s)
    streams: dict[tuple[str, str], StreamConfig] = {(s.process, s.stream): s for s in settings.streams}
    labs = labs or {}
    by_factor: dict[tuple[str, str, str], list[tuple[int, MinuteResult, StreamConfig]]] = {}
    for seq, r in rows:
        plan.rows_checked += 1
        totals = plan.by_process.setdefault(r.process, ProcessTotals())
        totals.rows += 1
        totals.old_co2_kg += r.co2_kg
        totals.new_co2_kg += r.co2_kg  # replaced below when the row changes
        why = None
        cfg = streams.get((r.process, r.stream))
        if r.site != settings.site.name:
            why = f"site {r.site!r} is not the configured site {settings.site.name!r}"
        elif cfg is None:
            why = "stream no longer configured"
        if why is not None:
            plan.skipped[why] = plan.skipped.get(why, 0) + 1
            continue
        assert cfg is not None  # else `why` says so
        by_factor.setdefault((cfg.factor, cfg.process, cfg.stream), []).append((seq, r, cfg))
    for (factor_id, process, stream), items in by_factor.items():
        try:
            unit = factors.get(factor_id).unit
            resolved = resolve_stream(
                factors, factor_id, np.array([r.minute_start for _, r, _ in items]), labs.get((process, stream), ())
            )
        except (UnknownFactorError, ValueError) as exc:
            raise ConfigError(
                f"restatement: factor {factor_id!r}: {exc}; check [factors] of the site file and config/factors/"
            ) from exc
        ef_kg_all = (np.asarray(resolved.ef_tco2_per_unit) * 1000.0).tolist()
        ids = [str(i) for i in resolved.factor_ids]
        for (seq, r, cfg), ef_kg, used in zip(items, ef_kg_all, ids, strict=True):
            if r.activity_unit != unit:
                why = f"factor {factor_id!r} is per {unit}, the row's activity is in {r.activity_unit}"
                plan.skipped[why] = plan.skipped.get(why, 0) + 1
                continue
            co2_kg = r.activity * ef_kg * float(cfg.sign)  # the order of the live stage's arithmetic
            if _same(co2_kg, r.co2_kg) and _same(ef_kg, r.ef_kg_per_unit) and used == r.factor_id:
                continue
            new = dataclasses.replace(r, co2_kg=co2_kg, ef_kg_per_unit=ef_kg, factor_id=used)
            plan.corrections.append((seq, new))
            totals = plan.by_process[r.process]
            totals.changed += 1
            totals.new_co2_kg += co2_kg - r.co2_kg
    plan.corrections.sort(key=lambda c: c[0])
    return plan


def apply_restatement(ledger: Ledger, plan: RestatePlan, reason: str) -> list[int]:
    """Append the plan's corrections with `reason`, all or nothing; returns the new rows' seqs."""
    if not plan.corrections:
        return []
    return ledger.correct(plan.corrections, reason)


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_REL_TOL, abs_tol=0.0)


def format_plan(plan: RestatePlan) -> str:
    """The table `emgate ledger restate` prints: rows and CO2 (t) per process, old and new."""
    lines = [
        f"{'process':20} {'rows':>8} {'changed':>8} {'old co2_t':>14} {'new co2_t':>14} {'diff co2_t':>12}",
    ]
    for process in sorted(plan.by_process):
        t = plan.by_process[process]
        lines.append(
            f"{process:20} {t.rows:>8} {t.changed:>8} {t.old_co2_kg / 1000:>14.3f} {t.new_co2_kg / 1000:>14.3f} "
            f"{(t.new_co2_kg - t.old_co2_kg) / 1000:>+12.3f}"
        )
    changed = sum(t.changed for t in plan.by_process.values())
    lines.append(
        f"{'total':20} {plan.rows_checked:>8} {changed:>8} {plan.old_co2_kg / 1000:>14.3f} {plan.new_co2_kg / 1000:>14.3f} "
        f"{(plan.new_co2_kg - plan.old_co2_kg) / 1000:>+12.3f}"
    )
    for why, n in sorted(plan.skipped.items()):
        lines.append(f"left alone: {n} row(s): {why}")
    return "\n".join(lines)
