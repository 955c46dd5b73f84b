"""What the export says: summary.json's document and the tables behind the CSV files and sheets.

Built from MonthTables (integers) plus context the ledger does not hold: which signal and device
measure each stream (site configuration) and where each factor comes from (factor library). The
schema is documented in docs/export.md; change both together and bump SUMMARY_SCHEMA.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from gateway.export.tables import QUALITIES, SCOPES, Line, MonthTables, grams_to_t, micro_to_units
from gateway.export.times import local_time, local_times, utc_times

SUMMARY_SCHEMA = "emgate.export.summary/1"
ROUNDING = (
    "cells (local day x stream x factor) rounded to 1 g CO2 and 1e-6 activity unit; "
    "every other figure sums cells exactly"
)
COMPLIANCE_SCOPE = "direct"
_FACTOR_KEYS = (
    "source",
    "year",
    "status",
    "overrides",
    "ncv_gj_per_unit",
    "cc_tc_per_gj",
    "oxidation",
    "c_tc_per_unit",
    "mineral",
    "purity",
    "series",
    "variant",
    "region",
    "data_year",
)


@dataclass(frozen=True)
class StreamSource:
    """How a stream is measured, from the site configuration (empty if the stream left the config)."""

    signal: str = ""
    signal_kind: str = ""
    signal_unit: str = ""
    measured_by: str = ""


@dataclass(frozen=True)
class Column:
    key: str  # CSV header
    title: str  # workbook header, with the unit
    number_format: str | None = None
    width: int = 14


@dataclass
class Sheet:
    """One table: written as `filename` (CSV) and as sheet `title` of the workbook."""

    filename: str
    title: str
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)
    totals: list[list[Any]] = field(default_factory=list)  # workbook only (CSV stays one row kind)
    note: str = ""


#: How a spreadsheet recognises a formula (or DDE call) in a cell's text: by its first character.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(text: str) -> str:
    """Cell text as data, never a formula: text that starts like one (= + - @, a tab or a
    carriage return: a factor's source, a reason, a name from the site file) gets a leading
    apostrophe, as spreadsheets write text typed to look like a formula. Every CSV and XLSX
    cell of the export passes here (monthly._csv_bytes, workbook.py)."""
    return "'" + text if text.startswith(FORMULA_START) else text


@dataclass(frozen=True)
class ExportContext:
    """Everything besides the ledger rows that goes into the documents."""

    site: str
    sources: Mapping[tuple[str, str], StreamSource]
    factors: Mapping[str, Mapping[str, Any]]  # id -> Factor.to_dict() of the site's factor table
    ledger: Mapping[str, Any]  # head_seq, head_hash, ... (see monthly.py)
    budget: Mapping[str, Any] | None  # {"allowance_t", "scope", "method"} or None


def kg_to_t_factor(ef_kg_per_unit: float) -> float:
    """kgCO2/unit as stored in the ledger -> tCO2/unit to 12 digits (0.5306, not 0.5306000000000001)."""
    return float(f"{ef_kg_per_unit / 1000.0:.12g}")


def _pct(num: float, den: float) -> float | None:
    return round(100.0 * num / den, 4) if den else None


def build_summary(tables: MonthTables, ctx: ExportContext) -> dict[str, Any]:
    """The summary.json document (see docs/export.md for every key)."""
    p = tables.period
    tz = ZoneInfo(p.timezone)
    line_g = tables.line_co2_g
    scopes: dict[str, Any] = {}
    for scope in SCOPES:
        by_proc: dict[str, int] = {}
        for i, ln in enumerate(tables.lines):
            if ln.scope == scope:
                by_proc[ln.process] = by_proc.get(ln.process, 0) + int(line_g[i])
        scopes[scope] = {
            "scope": scope,
            "compliance": scope == COMPLIANCE_SCOPE,
            "co2_t": grams_to_t(sum(by_proc.values())),
            "by_process": {k: grams_to_t(v) for k, v in sorted(by_proc.items())},
            "data_quality": _quality(tables, [i for i, ln in enumerate(tables.lines) if ln.scope == scope]),
        }
    other = sorted({ln.scope for ln in tables.lines} - set(SCOPES))
    if other:  # a scope this version does not know: reported, never folded into direct or indirect
        for scope in other:
            idx = [i for i, ln in enumerate(tables.lines) if ln.scope == scope]
            scopes[scope] = {
                "scope": scope,
                "compliance": False,
                "co2_t": grams_to_t(int(line_g[idx].sum())),
                "by_process": {},
                "data_quality": _quality(tables, idx),
            }
    total_by_proc: dict[str, int] = {}  # direct + indirect only: an unknown scope is never added in
    for i, ln in enumerate(tables.lines):
        if ln.scope in SCOPES:
            total_by_proc[ln.process] = total_by_proc.get(ln.process, 0) + int(line_g[i])
    return {
        "schema": SUMMARY_SCHEMA,
        "month": p.month,
        "site": ctx.site,
        "timezone": p.timezone,
        "period": {
            "start": local_time(p.start_s, tz),
            "end": local_time(p.end_s, tz),
            "start_utc_s": p.start_s,
            "end_utc_s": p.end_s,
            "days": p.days,
            "minutes": p.minutes,
        },
        "co2_t": grams_to_t(sum(total_by_proc.values())),
        "co2_scope": "direct+indirect",
        "compliance_co2_t": scopes[COMPLIANCE_SCOPE]["co2_t"],
        "compliance_scope": COMPLIANCE_SCOPE,
        "by_process": {k: grams_to_t(v) for k, v in sorted(total_by_proc.items())},
        "by_process_scope": "direct+indirect",
        "scopes": scopes,
        "streams": [_stream(tables, i, ln, ctx, tz) for i, ln in enumerate(tables.lines)],
        "data_quality": _quality(tables, list(range(len(tables.lines)))),
        "budget": dict(ctx.budget) if ctx.budget else None,
        "ledger": dict(ctx.ledger),
        "rounding": ROUNDING,
    }


def _quality(tables: MonthTables, idx: list[int]) -> dict[str, Any]:
    p = tables.period
    expected = p.minutes * len(idx)
    qm = tables.quality_minutes[:, idx, :].sum(axis=(0, 1)) if idx else np.zeros(len(QUALITIES), np.int64)
    qc = tables.quality_co2_g[idx, :].sum(axis=0) if idx else np.zeros(len(QUALITIES), np.int64)
    rows = int(tables.day_minutes[:, idx].sum()) if idx else 0
    cov = float(tables.day_coverage_sum[:, idx].sum()) if idx else 0.0
    total_g = int(tables.line_co2_g[idx].sum()) if idx else 0
    sub, est = QUALITIES.index("substituted"), QUALITIES.index("estimated")
    flags: dict[str, int] = {}
    for i in idx:
        for k, v in tables.flag_minutes[i].items():
            flags[k] = flags.get(k, 0) + v
    return {
        "minutes_expected": expected,
        "minutes_present": rows,
        "minutes_absent": expected - rows,
        "coverage_pct": _pct(cov, expected),
        "quality_minutes": {q: int(qm[k]) for k, q in enumerate(QUALITIES)},
        "substituted_minutes": int(qm[sub]),
        "estimated_minutes": int(qm[est]),
        "substituted_co2_t": grams_to_t(int(qc[sub])),
        "estimated_co2_t": grams_to_t(int(qc[est])),
        "substituted_estimated_share_pct": _pct(int(qc[sub]) + int(qc[est]), total_g),
        "flag_minutes": {k: flags[k] for k in sorted(flags)},
    }


def _stream(tables: MonthTables, i: int, ln: Line, ctx: ExportContext, tz: ZoneInfo) -> dict[str, Any]:
    src = ctx.sources.get((ln.process, ln.stream), StreamSource())
    return {
        "process": ln.process,
        "stream": ln.stream,
        "scope": ln.scope,
        "method": ln.method,
        "activity": micro_to_units(int(tables.line_activity_u[i])),
        "activity_unit": ln.activity_unit,
        "co2_t": grams_to_t(int(tables.line_co2_g[i])),
        "signal": src.signal or None,
        "signal_kind": src.signal_kind or None,
        "measured_by": src.measured_by or None,
        "factors": [_factor_use(tables, u, ctx, tz) for u in tables.factor_uses if u.line == i],
        "data_quality": _quality(tables, [i]),
    }


def _factor_use(tables: MonthTables, u: Any, ctx: ExportContext, tz: ZoneInfo) -> dict[str, Any]:
    fid = tables.factor_ids[u.factor]
    info = ctx.factors.get(fid)
    out: dict[str, Any] = {
        "id": fid,
        "minutes": u.minutes,
        "activity": micro_to_units(u.activity_u),
        "co2_t": grams_to_t(u.co2_g),
        "ef_tco2_per_unit": kg_to_t_factor(u.ef_kg_per_unit_min)
        if u.ef_kg_per_unit_min == u.ef_kg_per_unit_max
        else None,
        "ef_tco2_per_unit_range": None
        if u.ef_kg_per_unit_min == u.ef_kg_per_unit_max
        else [kg_to_t_factor(u.ef_kg_per_unit_min), kg_to_t_factor(u.ef_kg_per_unit_max)],
        "first_minute": local_time(u.first_minute_s, tz),
        "last_minute": local_time(u.last_minute_s, tz),
        # a lab result is the ledger's evidence; `production` (production minutes) is no factor
        "in_factor_library": info is not None and not fid.startswith("lab:") and fid != "production",
    }
    if info is not None:
        for k in _FACTOR_KEYS:
            if k in info:
                out[k] = info[k]
        out["valid_from"] = local_time(info["valid_from"], tz) if info.get("valid_from") is not None else None
        out["valid_to"] = local_time(info["valid_to"], tz) if info.get("valid_to") is not None else None
    return out


# -- tables (CSV files and workbook sheets) ------------------------------------------------------
T6 = "0.000000"
T3 = "#,##0.000"


def build_sheets(tables: MonthTables, ctx: ExportContext) -> list[Sheet]:
    """Daily per stream, daily per process, evidence items and flagged minutes, in that order."""
    return [_daily(tables), _daily_process(tables), _evidence(tables, ctx), _flagged(tables)]


def _scope_totals(
    values: Mapping[str, float], ncols: int, label_col: int, value_col: int, unit: float = 1e6
) -> list[list[Any]]:
    out = []
    for scope in sorted(values, key=lambda s: (SCOPES.index(s) if s in SCOPES else 9, s)):
        row: list[Any] = [None] * ncols
        row[0] = "Total"
        row[label_col] = scope
        row[value_col] = values[scope] / unit
        out.append(row)
    return out


def _daily(t: MonthTables) -> Sheet:
    cols = [
        Column("date", "Date (local)", None, 12),
        Column("process", "Process", None, 18),
        Column("stream", "Stream", None, 22),
        Column("scope", "Scope", None, 9),
        Column("method", "Method", None, 16),
        Column("activity", "Activity", "#,##0.000###", 14),
        Column("activity_unit", "Activity unit", None, 10),
        Column("co2_t", "CO2 (t)", T3, 13),
        Column("minutes", "Minutes (count)", "0", 10),
        Column("coverage_pct", "Coverage (%)", "0.00", 11),
        Column("substituted_minutes", "Substituted (min)", "0", 12),
        Column("estimated_minutes", "Estimated (min)", "0", 12),
    ]
    sub, est = QUALITIES.index("substituted"), QUALITIES.index("estimated")
    sheet = Sheet("daily.csv", "Daily by stream", cols)
    per_day_min = (np.diff(t.period.day_starts_s) / 60.0).round().astype(np.int64)
    for d, label in enumerate(t.period.day_labels):
        for i, ln in enumerate(t.lines):
            sheet.rows.append(
                [
                    label,
                    ln.process,
                    ln.stream,
                    ln.scope,
                    ln.method,
                    micro_to_units(int(t.day_activity_u[d, i])),
                    ln.activity_unit,
                    grams_to_t(int(t.day_co2_g[d, i])),
                    int(t.day_minutes[d, i]),
                    round(100.0 * float(t.day_coverage_sum[d, i]) / int(per_day_min[d]), 4),
                    int(t.quality_minutes[d, i, sub]),
                    int(t.quality_minutes[d, i, est]),
                ]
            )
    totals: dict[str, int] = {}
    for i, ln in enumerate(t.lines):
        totals[ln.scope] = totals.get(ln.scope, 0) + int(t.line_co2_g[i])
    sheet.totals = _scope_totals(totals, len(cols), 3, 7)
    return sheet


def process_day_grams(t: MonthTables) -> tuple[list[tuple[str, str]], np.ndarray]:
    """(scope, process) keys and their [days, keys] CO2 grams (for the chart and the by-process table)."""
    keys = sorted(
        {(ln.scope, ln.process) for ln in t.lines},
        key=lambda k: (SCOPES.index(k[0]) if k[0] in SCOPES else 9, k),
    )
    index = {k: j for j, k in enumerate(keys)}
    out = np.zeros((t.period.days, len(keys)), np.int64)
    for i, ln in enumerate(t.lines):
        out[:, index[(ln.scope, ln.process)]] += t.day_co2_g[:, i]
    return keys, out


def _daily_process(t: MonthTables) -> Sheet:
    cols = [
        Column("date", "Date (local)", None, 12),
        Column("scope", "Scope", None, 9),
        Column("process", "Process", None, 18),
        Column("co2_t", "CO2 (t)", T3, 13),
    ]
    sheet = Sheet("daily_by_process.csv", "Daily by process", cols)
    keys, grams = process_day_grams(t)
    for d, label in enumerate(t.period.day_labels):
        for j, (scope, process) in enumerate(keys):
            sheet.rows.append([label, scope, process, grams_to_t(int(grams[d, j]))])
    totals: dict[str, int] = {}
    for j, (scope, _) in enumerate(keys):
        totals[scope] = totals.get(scope, 0) + int(grams[:, j].sum())
    sheet.totals = _scope_totals(totals, len(cols), 1, 3)
    return sheet


def _evidence(t: MonthTables, ctx: ExportContext) -> Sheet:
    tz = ZoneInfo(t.period.timezone)
    cols = [
        Column("month", "Month", None, 9),
        Column("process", "Process", None, 18),
        Column("stream", "Stream", None, 22),
        Column("scope", "Scope", None, 9),
        Column("method", "Method", None, 16),
        Column("signal", "Signal", None, 22),
        Column("signal_kind", "Signal kind", None, 12),
        Column("measured_by", "Measured by", None, 30),
        Column("activity", "Activity", "#,##0.000###", 14),
        Column("activity_unit", "Activity unit", None, 10),
        Column("factor_id", "Factor id", None, 26),
        Column("factor_source", "Factor source", None, 50),
        Column("factor_status", "Status", None, 10),
        Column("factor_year", "Year", "0", 7),
        Column("valid_from", "Valid from (local)", None, 18),
        Column("valid_to", "Valid to (local)", None, 18),
        Column("ncv_gj_per_unit", "NCV (GJ/unit)", "0.000###", 11),
        Column("cc_tc_per_gj", "CC (tC/GJ)", "0.000000", 11),
        Column("oxidation", "Oxidation (fraction)", "0.000", 10),
        Column("c_tc_per_unit", "Carbon (tC/unit)", "0.000000", 11),
        Column("ef_tco2_per_unit", "EF (tCO2/unit)", "0.000000", 12),
        Column("first_minute", "First minute (local)", None, 18),
        Column("last_minute", "Last minute (local)", None, 18),
        Column("minutes", "Minutes (count)", "0", 10),
        Column("co2_t", "CO2 (t)", T3, 13),
    ]
    sheet = Sheet(
        "evidence.csv",
        "Evidence",
        cols,
        note="one row per stream and factor id used; activity and CO2 of the minutes that used it",
    )
    totals: dict[str, int] = {}
    for u in t.factor_uses:
        ln = t.lines[u.line]
        src = ctx.sources.get((ln.process, ln.stream), StreamSource())
        fid = t.factor_ids[u.factor]
        info = ctx.factors.get(fid, {})
        ef = kg_to_t_factor(u.ef_kg_per_unit_min) if u.ef_kg_per_unit_min == u.ef_kg_per_unit_max else None
        sheet.rows.append(
            [
                t.period.month,
                ln.process,
                ln.stream,
                ln.scope,
                ln.method,
                src.signal,
                src.signal_kind,
                src.measured_by,
                micro_to_units(u.activity_u),
                ln.activity_unit,
                fid,
                info.get("source", "(not in the factor library)"),
                info.get("status", ""),
                info.get("year"),
                local_time(info["valid_from"], tz) if info.get("valid_from") is not None else "",
                local_time(info["valid_to"], tz) if info.get("valid_to") is not None else "",
                info.get("ncv_gj_per_unit"),
                info.get("cc_tc_per_gj"),
                info.get("oxidation"),
                info.get("c_tc_per_unit"),
                ef,
                local_time(u.first_minute_s, tz),
                local_time(u.last_minute_s, tz),
                u.minutes,
                grams_to_t(u.co2_g),
            ]
        )
        totals[ln.scope] = totals.get(ln.scope, 0) + u.co2_g
    sheet.totals = _scope_totals(totals, len(cols), 3, len(cols) - 1)
    return sheet


def _flagged(t: MonthTables) -> Sheet:
    tz = ZoneInfo(t.period.timezone)
    cols = [
        Column("seq", "Ledger row", "0", 10),
        Column("minute_utc", "Minute (UTC)", None, 18),
        Column("minute_local", "Minute (local)", None, 22),
        Column("process", "Process", None, 18),
        Column("stream", "Stream", None, 22),
        Column("scope", "Scope", None, 9),
        Column("quality", "Quality", None, 11),
        Column("coverage", "Coverage (fraction)", "0.000", 10),
        Column("activity", "Activity", "0.000000", 12),
        Column("activity_unit", "Activity unit", None, 10),
        Column("co2_kg", "CO2 (kg)", "#,##0.000", 12),
        Column("flags", "Flags", None, 40),
    ]
    sheet = Sheet(
        "flagged_minutes.csv",
        "Flagged minutes",
        cols,
        note="minutes whose quality is not 'measured' or that carry a flag",
    )
    rows = t.flagged
    line = [rows.lines[i] for i in rows.line.tolist()]
    quality = [QUALITIES[q] if q >= 0 else "unknown" for q in rows.quality.tolist()]
    co2 = rows.co2_kg.tolist()
    sheet.rows = [
        [seq, utc, local, ln.process, ln.stream, ln.scope, q, coverage, activity, ln.activity_unit, kg, flags]
        for seq, utc, local, ln, q, coverage, activity, kg, flags in zip(
            rows.seq.tolist(),
            utc_times(rows.minute_start),
            local_times(rows.minute_start, tz),
            line,
            quality,
            rows.coverage.tolist(),
            rows.activity.tolist(),
            co2,
            rows.flags,
            strict=True,
        )
    ]
    kg_by_scope: dict[str, float] = {}
    for ln, kg in zip(line, co2, strict=True):  # in row order: the totals are float sums
        kg_by_scope[ln.scope] = kg_by_scope.get(ln.scope, 0.0) + kg
    sheet.totals = _scope_totals(kg_by_scope, len(cols), 5, 10, unit=1.0)
    return sheet
