"""Pure aggregation of one month of minute results: days x streams x factors, in integer units.

Rounding rule (domain reference 5.6: minutes sum unrounded, round only on output). The smallest
cell of the export is (local day, stream line, factor id). Its minutes are summed exactly per
quality (math.fsum: the correctly rounded sum, whatever order the rows come in), the qualities
added in their sorted order, and the sum is rounded once: CO2 to whole grams, activity to
millionths of its unit (1 g of coal, 1 Wh, 0.01 Nm3). Every other figure (a day, a stream's month, a process, a
scope, the total) is an integer sum of those cells, so a month equals the sum of its days and
the processes add up to the total exactly, to the last printed digit.

Exact at any magnitude, or refused: float64 holds every whole number up to 2**53, so a month
whose CO2 rows add up (in absolute value) to less than 2**53 g (9,007,199,254 t, some 300 times
what the largest steel works emits in a year) gives cells of exact grams and integer sums that
cannot overflow; the same holds for each line's activity in millionths of its unit. A month
beyond that, or holding a value that is not finite, raises SumRangeError naming the line, day and
ledger rows: such a figure came from a reading no plant can make, never from a real month.

A *line* is (process, stream, scope, method, activity_unit): if a stream's unit or scope ever
changed within the month, its parts are kept apart instead of adding unlike quantities.

No I/O here: arrays and plain values in, frozen dataclasses out.
"""

from __future__ import annotations

import calendar
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from gateway.core.errors import GatewayError
from gateway.ledger.month import CELL_FIELDS, CellSums

QUALITIES = ("measured", "partial", "substituted", "missing", "estimated")
SCOPES = ("direct", "indirect")
G_PER_KG = 1000.0
MICRO = 1_000_000  # activity cells are integer millionths of the activity unit
#: Whole numbers are exact in float64 up to this; see the module docstring.
EXACT_LIMIT = 2.0**53
_MONTH = re.compile(r"^([0-9]{4})-([0-9]{2})$")  # ASCII digits only (\d matches full-width ones too)
#: The years a month may lie in: the ledger's epoch seconds start in 1970; year + 1 must be a date.
MONTH_YEARS = range(1970, 9999)


class SumRangeError(GatewayError):
    """A figure of the month cannot be summed exactly (see the module docstring). The attributes
    name the cell holding the offending value: its line, local day, quality, factor and the ledger
    rows (first_seq..last_seq) it sums."""

    def __init__(
        self, message: str, *, line: Line, day: str, quality: str, factor_id: str, first_seq: int, last_seq: int
    ) -> None:
        super().__init__(message)
        self.line, self.day, self.quality, self.factor_id = line, day, quality, factor_id
        self.first_seq, self.last_seq = first_seq, last_seq


@dataclass(frozen=True, slots=True)
class Line:
    """One stream line of the month: the key every figure is grouped by."""

    process: str
    stream: str
    scope: str
    method: str
    activity_unit: str

    def sort_key(self) -> tuple[int, str, str, str, str]:
        order = SCOPES.index(self.scope) if self.scope in SCOPES else len(SCOPES)
        return (order, self.process, self.stream, self.method, self.activity_unit)


@dataclass(frozen=True)
class MonthPeriod:
    """A calendar month in the site's time zone, as epoch seconds [start_s, end_s).

    day_starts_s has one entry per local day plus the month's end; a day is 23 or 25 hours long
    across a daylight-saving change, so days are looked up, never computed as 86,400 s.
    """

    month: str
    timezone: str
    start_s: float
    end_s: float
    day_starts_s: NDArray[np.float64]
    day_labels: tuple[str, ...]
    year_start_s: float
    year_end_s: float

    @property
    def minutes(self) -> int:
        return round((self.end_s - self.start_s) / 60.0)

    @property
    def days(self) -> int:
        return len(self.day_labels)


def month_period(month: str, timezone: str) -> MonthPeriod:
    """The month `YYYY-MM` in IANA zone `timezone`. Raises ValueError for a malformed month."""
    m = _MONTH.match(month)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"month {month!r} is not YYYY-MM in ASCII digits (e.g. 2026-11)")
    if int(m.group(1)) not in MONTH_YEARS:
        raise ValueError(f"month {month!r}: YYYY-MM with a year from {MONTH_YEARS.start} to {MONTH_YEARS.stop - 1}")
    year, mon = int(m.group(1)), int(m.group(2))
    tz = ZoneInfo(timezone)
    ndays = calendar.monthrange(year, mon)[1]
    first = datetime(year, mon, 1)
    starts = [(first + timedelta(days=d)).replace(tzinfo=tz).timestamp() for d in range(ndays + 1)]
    labels = tuple((first + timedelta(days=d)).strftime("%Y-%m-%d") for d in range(ndays))
    return MonthPeriod(
        month=month,
        timezone=timezone,
        start_s=starts[0],
        end_s=starts[-1],
        day_starts_s=np.asarray(starts, dtype=np.float64),
        day_labels=labels,
        year_start_s=datetime(year, 1, 1, tzinfo=tz).timestamp(),
        year_end_s=datetime(year + 1, 1, 1, tzinfo=tz).timestamp(),
    )


@dataclass(frozen=True)
class MonthRows:
    """The current-view rows of one month, columnar, in ledger (seq) order.

    line and factor index `lines` and `factor_ids`; quality indexes QUALITIES (-1: a label this
    version does not know, treated as flagged). flags holds each row's flag string ("" if none).
    """

    seq: NDArray[np.int64]
    minute_start: NDArray[np.float64]
    line: NDArray[np.int32]
    factor: NDArray[np.int32]
    activity: NDArray[np.float64]
    co2_kg: NDArray[np.float64]
    ef_kg_per_unit: NDArray[np.float64]
    coverage: NDArray[np.float64]
    quality: NDArray[np.int8]
    flags: tuple[str, ...]
    lines: tuple[Line, ...]
    factor_ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.seq)


def rows_from_records(records: Sequence[Sequence[object]]) -> MonthRows:
    """Columnar MonthRows from record tuples in RECORD_FIELDS order (gateway/ledger/month.py;
    ledger order kept).

    Lines and factor ids are numbered in sorted order, so the numbering depends only on the
    content, not on which row came first.
    """
    n = len(records)
    if n == 0:
        e_f, e_i = np.zeros(0, np.float64), np.zeros(0, np.int32)
        return MonthRows(
            np.zeros(0, np.int64), e_f, e_i, e_i, e_f, e_f, e_f, e_f, np.zeros(0, np.int8), (), (), ()
        )
    cols = list(zip(*records, strict=True))
    line_keys = list(zip(cols[2], cols[3], cols[4], cols[5], cols[7], strict=True))
    distinct = sorted((Line(*k) for k in set(line_keys)), key=Line.sort_key)
    line_index = {
        (ln.process, ln.stream, ln.scope, ln.method, ln.activity_unit): i for i, ln in enumerate(distinct)
    }
    factor_ids = tuple(sorted(set(cols[9])))
    factor_index = {f: i for i, f in enumerate(factor_ids)}
    q_index = {q: i for i, q in enumerate(QUALITIES)}
    return MonthRows(
        seq=np.fromiter(cols[0], np.int64, n),
        minute_start=np.fromiter(cols[1], np.float64, n),
        line=np.fromiter((line_index[k] for k in line_keys), np.int32, n),
        factor=np.fromiter((factor_index[f] for f in cols[9]), np.int32, n),
        activity=np.fromiter(cols[6], np.float64, n),
        co2_kg=np.fromiter(cols[8], np.float64, n),
        ef_kg_per_unit=np.fromiter(cols[10], np.float64, n),
        coverage=np.fromiter(cols[11], np.float64, n),
        quality=np.fromiter((q_index.get(q, -1) for q in cols[12]), np.int8, n),
        flags=tuple(cols[13]),
        lines=tuple(distinct),
        factor_ids=factor_ids,
    )


@dataclass(frozen=True)
class FactorUse:
    """How much of one line's month used one factor id (an evidence item)."""

    line: int
    factor: int
    minutes: int
    activity_u: int  # millionths of the line's activity unit
    co2_g: int
    ef_kg_per_unit_min: float
    ef_kg_per_unit_max: float
    first_minute_s: float
    last_minute_s: float


@dataclass(frozen=True)
class MonthTables:
    """Everything the export prints, as integers where they are summed.

    day_* arrays are [days, lines]; quality_minutes is [days, lines, len(QUALITIES)];
    quality_co2_g is [lines, len(QUALITIES)] (CO2 of the minutes of each quality, for shares).
    flagged holds the minutes whose quality is not measured or that carry a flag, one row each.
    """

    period: MonthPeriod
    lines: tuple[Line, ...]
    factor_ids: tuple[str, ...]
    day_co2_g: NDArray[np.int64]
    day_activity_u: NDArray[np.int64]
    day_minutes: NDArray[np.int64]
    day_coverage_sum: NDArray[np.float64]
    quality_minutes: NDArray[np.int64]
    quality_co2_g: NDArray[np.int64]
    factor_uses: tuple[FactorUse, ...]
    flagged: MonthRows
    flag_minutes: tuple[dict[str, int], ...]  # per line: flag name -> minutes carrying it
    rows: int  # minute rows in the month
    first_seq: int | None
    last_seq: int | None

    @property
    def line_co2_g(self) -> NDArray[np.int64]:
        return self.day_co2_g.sum(axis=0)

    @property
    def line_activity_u(self) -> NDArray[np.int64]:
        return self.day_activity_u.sum(axis=0)


def month_rows_inside(rows: MonthRows, period: MonthPeriod) -> tuple[MonthRows, int]:
    """The rows whose minute lies in the period, and how many were left out."""
    keep = (rows.minute_start >= period.start_s) & (rows.minute_start < period.end_s)
    return _take(rows, np.flatnonzero(keep)), int(len(rows) - keep.sum())


def _take(rows: MonthRows, idx: NDArray[np.int64]) -> MonthRows:
    return MonthRows(
        rows.seq[idx],
        rows.minute_start[idx],
        rows.line[idx],
        rows.factor[idx],
        rows.activity[idx],
        rows.co2_kg[idx],
        rows.ef_kg_per_unit[idx],
        rows.coverage[idx],
        rows.quality[idx],
        tuple(rows.flags[i] for i in idx.tolist()),
        rows.lines,
        rows.factor_ids,
    )


def flagged_rows(rows: MonthRows) -> MonthRows:
    """Rows whose quality is not measured or that carry a flag."""
    has_flags = np.fromiter((bool(f) for f in rows.flags), bool, len(rows))
    return _take(rows, np.flatnonzero((rows.quality != 0) | has_flags))


def cells_from_rows(rows: MonthRows, period: MonthPeriod) -> list[tuple[Any, ...]]:
    """Cell records (CELL_FIELDS, gateway/ledger/month.py) from minute rows inside the period, in
    Python: the reference the ledger's month reader (SQLite's sums, the native walk's) is tested against."""
    day = np.searchsorted(period.day_starts_s, rows.minute_start, side="right") - 1
    groups: dict[tuple[object, ...], CellSums] = {}
    for i in range(len(rows)):
        ln = rows.lines[rows.line[i]]
        q = int(rows.quality[i])
        key = (
            int(day[i]),
            ln.process,
            ln.stream,
            ln.scope,
            ln.method,
            ln.activity_unit,
            rows.factor_ids[rows.factor[i]],
            QUALITIES[q] if q >= 0 else "unknown",
        )
        ef, t, seq = float(rows.ef_kg_per_unit[i]), float(rows.minute_start[i]), int(rows.seq[i])
        cell = groups.get(key)
        if cell is None:
            groups[key] = cell = CellSums(ef, t, seq)
        cell.add(1, (float(rows.co2_kg[i]),), (float(rows.activity[i]),), (float(rows.coverage[i]),), (ef, ef, t, t, seq, seq))
    return [cell.record(key) for key, cell in groups.items()]


def aggregate_month(rows: MonthRows, period: MonthPeriod) -> MonthTables:
    """MonthTables from minute rows (rows outside the period are left out). Small months and tests;
    the export itself reads the month's cells from the ledger (gateway/ledger/month.py, same rules)."""
    inside, _ = month_rows_inside(rows, period)
    return aggregate_cells(cells_from_rows(inside, period), flagged_rows(inside), period)


def aggregate_cells(
    cells: Sequence[tuple[Any, ...]], flagged: MonthRows, period: MonthPeriod
) -> MonthTables:
    """Sum cell records (CELL_FIELDS) into day x line x factor figures; see the module docstring.

    CO2 and activity of a (day, line, factor) are the float sums of its quality cells, rounded
    once to grams and millionths. NaN never occurs (the ledger refuses it).

    Raises:
        SumRangeError: a CO2 or activity sum is not finite, or the month is beyond what whole
            grams (millionths) hold exactly; see the module docstring.
    """
    n = len(cells)
    # Cells in one order whoever built them: the sums across a cell's qualities below are float
    # additions in this order.
    cells = sorted(cells, key=lambda c: c[:8])
    cols: list[tuple[Any, ...]] = list(zip(*cells, strict=True)) if n else [()] * len(CELL_FIELDS)
    line_keys = list(zip(cols[1], cols[2], cols[3], cols[4], cols[5], strict=True))
    lines = tuple(sorted((Line(*k) for k in set(line_keys)), key=Line.sort_key))
    line_index = {
        (ln.process, ln.stream, ln.scope, ln.method, ln.activity_unit): i for i, ln in enumerate(lines)
    }
    factor_ids = tuple(sorted(set(cols[6])))
    factor_index = {f: i for i, f in enumerate(factor_ids)}
    q_index = {q: i for i, q in enumerate(QUALITIES)}
    nl, nd, nf, nq = len(lines), period.days, max(len(factor_ids), 1), len(QUALITIES)

    day = np.fromiter(cols[0], np.int64, n)
    line = np.fromiter((line_index[k] for k in line_keys), np.int64, n)
    factor = np.fromiter((factor_index[f] for f in cols[6]), np.int64, n)
    q = np.fromiter((q_index.get(x, -1) for x in cols[7]), np.int64, n)
    minutes = np.fromiter(cols[8], np.int64, n)
    co2_kg = np.fromiter(cols[9], np.float64, n)
    activity = np.fromiter(cols[10], np.float64, n)
    coverage = np.fromiter(cols[11], np.float64, n)
    _check_exact(cols, lines, line, co2_kg, activity, period)

    # Sparse (day, line, factor) cells: a site may have thousands of lines and factor ids.
    key = (day * nl + line) * nf + factor
    cell, inverse = np.unique(key, return_inverse=True)
    co2_g = np.rint(np.bincount(inverse, weights=co2_kg, minlength=len(cell)) * G_PER_KG).astype(np.int64)
    act_u = np.rint(np.bincount(inverse, weights=activity, minlength=len(cell)) * MICRO).astype(np.int64)
    cell_day, rest = np.divmod(cell, nl * nf)
    cell_line, cell_factor = np.divmod(rest, nf)
    day_co2_g = np.zeros((nd, nl), np.int64)
    day_act_u = np.zeros((nd, nl), np.int64)
    np.add.at(day_co2_g, (cell_day, cell_line), co2_g)
    np.add.at(day_act_u, (cell_day, cell_line), act_u)

    dl = day * nl + line
    day_minutes = np.bincount(dl, weights=minutes, minlength=nd * nl).reshape(nd, nl).round().astype(np.int64)
    day_cov = np.asarray(np.bincount(dl, weights=coverage, minlength=nd * nl), np.float64).reshape(nd, nl)
    known = q >= 0
    qm = np.bincount(dl[known] * nq + q[known], weights=minutes[known], minlength=nd * nl * nq)
    qc = np.bincount(line[known] * nq + q[known], weights=co2_kg[known], minlength=nl * nq)

    uses = _factor_uses(cols, line, factor, minutes, cell_line, cell_factor, co2_g, act_u, nf)
    flag_minutes: list[dict[str, int]] = [{} for _ in range(nl)]
    # A month's flagged minutes repeat a few flag strings per line: count those, then their names.
    for (li, flags), minutes_flagged in Counter(zip(flagged.line.tolist(), flagged.flags, strict=True)).items():
        ln = flagged.lines[li]
        counts = flag_minutes[line_index[(ln.process, ln.stream, ln.scope, ln.method, ln.activity_unit)]]
        for name in flag_names(flags):
            counts[name] = counts.get(name, 0) + minutes_flagged
    seqs = (min(cols[16]), max(cols[17])) if n else (None, None)
    return MonthTables(
        period=period,
        lines=lines,
        factor_ids=factor_ids,
        day_co2_g=day_co2_g,
        day_activity_u=day_act_u,
        day_minutes=day_minutes,
        day_coverage_sum=day_cov,
        quality_minutes=qm.reshape(nd, nl, nq).round().astype(np.int64),
        quality_co2_g=np.rint(qc * G_PER_KG).astype(np.int64).reshape(nl, nq),
        factor_uses=uses,
        flagged=flagged,
        flag_minutes=tuple({k: c[k] for k in sorted(c)} for c in flag_minutes),
        rows=int(minutes.sum()),
        first_seq=seqs[0],
        last_seq=seqs[1],
    )


def _check_exact(
    cols: list[tuple[Any, ...]],
    lines: tuple[Line, ...],
    line: NDArray[np.int64],
    co2_kg: NDArray[np.float64],
    activity: NDArray[np.float64],
    period: MonthPeriod,
) -> None:
    """SumRangeError unless every integer figure built from these cells is exact (module docstring).

    The bound is on the sum of absolute values, so that no partial sum in any order (a day, a
    quality share, a process, the total) can pass it either.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        co2_abs_g = np.abs(co2_kg).sum() * G_PER_KG
        act_abs_u = np.bincount(line, weights=np.abs(activity), minlength=len(lines)) * MICRO
    if co2_abs_g < EXACT_LIMIT and np.all(act_abs_u < EXACT_LIMIT):  # NaN fails both
        return
    co2_bad = not co2_abs_g < EXACT_LIMIT
    values = co2_kg if co2_bad else np.where(act_abs_u[line] < EXACT_LIMIT, 0.0, activity)
    i = int(np.argmax(np.where(np.isnan(values), np.inf, np.abs(values))))  # the cell with the worst value
    ln = lines[int(line[i])]
    day_i = int(cols[0][i])
    where = (
        f"{ln.process}/{ln.stream} ({ln.scope}) on {period.day_labels[day_i] if 0 <= day_i < period.days else day_i}, "
        f"quality {cols[7][i]}, factor {cols[6][i]}, ledger rows {cols[16][i]}..{cols[17][i]}"
    )
    if co2_bad:
        value, unit = float(co2_kg[i]), "kg"
        why = (
            f"the month's CO2 adds up to {co2_abs_g / 1e6:,.0f} t, beyond the {EXACT_LIMIT / 1e6:,.0f} t (2**53 g) "
            "whole grams hold exactly, and far beyond any steel works"
        )
    else:
        value, unit = float(activity[i]), ln.activity_unit
        why = (
            f"the line's activity adds up to {float(act_abs_u[line[i]]) / MICRO:,.0f} {unit}, beyond the "
            f"{EXACT_LIMIT / MICRO:,.0f} {unit} (2**53 millionths) that are exact"
        )
    what = f"{'CO2' if co2_bad else 'activity'} of {where}"
    problem = (
        f"{what} sums to {value:.6g} {unit}: {why}" if math.isfinite(value) else f"{what} has no finite sum ({value} {unit})"
    )
    raise SumRangeError(
        f"the month cannot be summed exactly: {problem}",
        line=ln,
        day=period.day_labels[day_i] if 0 <= day_i < period.days else str(day_i),
        quality=str(cols[7][i]),
        factor_id=str(cols[6][i]),
        first_seq=int(cols[16][i]),
        last_seq=int(cols[17][i]),
    )


def _factor_uses(
    cols: list[tuple[object, ...]],
    line: NDArray[np.int64],
    factor: NDArray[np.int64],
    minutes: NDArray[np.int64],
    cell_line: NDArray[np.int64],
    cell_factor: NDArray[np.int64],
    co2_g: NDArray[np.int64],
    act_u: NDArray[np.int64],
    nf: int,
) -> tuple[FactorUse, ...]:
    if len(line) == 0:
        return ()
    groups, inv = np.unique(line * nf + factor, return_inverse=True)
    k = len(groups)
    mins = np.bincount(inv, weights=minutes, minlength=k).round().astype(np.int64)
    ef_min, ef_max = np.full(k, np.inf), np.full(k, -np.inf)
    t_min, t_max = np.full(k, np.inf), np.full(k, -np.inf)
    np.minimum.at(ef_min, inv, np.fromiter(cols[12], np.float64, len(line)))
    np.maximum.at(ef_max, inv, np.fromiter(cols[13], np.float64, len(line)))
    np.minimum.at(t_min, inv, np.fromiter(cols[14], np.float64, len(line)))
    np.maximum.at(t_max, inv, np.fromiter(cols[15], np.float64, len(line)))
    cell_group = np.searchsorted(groups, cell_line * nf + cell_factor)
    g_co2, g_act = np.zeros(k, np.int64), np.zeros(k, np.int64)
    np.add.at(g_co2, cell_group, co2_g)
    np.add.at(g_act, cell_group, act_u)
    return tuple(
        FactorUse(
            line=int(g // nf),
            factor=int(g % nf),
            minutes=int(mins[j]),
            activity_u=int(g_act[j]),
            co2_g=int(g_co2[j]),
            ef_kg_per_unit_min=float(ef_min[j]),
            ef_kg_per_unit_max=float(ef_max[j]),
            first_minute_s=float(t_min[j]),
            last_minute_s=float(t_max[j]),
        )
        for j, g in enumerate(groups.tolist())
    )


def flag_names(flags: str) -> list[str]:
    """Flag names for counting: `bad_samples=3` -> `bad_samples`; `rule=last_good` stays whole."""
    out = []
    for token in filter(None, flags.split(";")):
        name, sep, value = token.partition("=")
        out.append(name if sep and _is_number(value) else token)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def calendar_linear_allowance_t(
    allowance_year_t: float, period: MonthPeriod, at_s: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Month-to-date allowance at `at_s` (domain 6.2, calendar-linear): A_year x elapsed / year."""
    year_s = period.year_end_s - period.year_start_s
    return allowance_year_t * (np.asarray(at_s, np.float64) - period.start_s) / year_s


def grams_to_t(g: int) -> float:
    """Whole grams as tonnes; the float prints as the exact 6-decimal figure."""
    return int(g) / 1e6


def micro_to_units(u: int) -> float:
    return int(u) / MICRO
