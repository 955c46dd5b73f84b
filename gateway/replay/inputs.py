"""Recorded data for `emgate replay`: files -> per-signal (ts, value) arrays.

Two kinds of file:
- a long CSV with the header `ts,signal,value` (ts in ISO 8601 with a UTC offset, or epoch
  seconds), the format `emgate` itself would record;
- a column-mapped CSV described by a `[[replay.csv]]` entry of the site file (matched on the
  file name): a timestamp column with its format and zone, value columns mapped to signals, or
  for layout `periods` a start, an end and a constant value per row.

Errors name the file, the line and what to check; nothing is guessed:
- naive local times in a zone with daylight saving: a time that does not exist (the spring
  gap) is an error; a time that occurs twice (the autumn repeat) is an error unless the
  mapping's `ambiguous` says which occurrence it is (`earlier`, `later`, or `infer`: from the
  order of the rows, a time going back means the second occurrence);
- a timestamp before 2000, more than a day ahead of now, or after a gap in its file longer than
  the mapping's `max_gap_days`, is refused before anything is written: one wild row would
  otherwise have the replay write every minute between it and the rest;
- the same signal at the same instant twice: with different values an error naming both
  lines; with the same value the repeat is dropped and counted (InputReport);
- a file that is not text in its encoding, or a field longer than the csv module reads.
"""

from __future__ import annotations

import csv
import fnmatch
import math
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from gateway.core.errors import DecodeError
from gateway.replay.wide_csv import read_table
from gateway.settings.site import CsvInputConfig, GatewaySettings

LONG_HEADER = ["ts", "signal", "value"]
#: The earliest timestamp a recording may hold: anything before is a clock that was never set.
EARLIEST_S = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
#: How far ahead of now a recording may reach (a clock a little fast, a zone written wrongly).
AHEAD_TOLERANCE_S = 86400.0
#: The longest gap between consecutive timestamps of a file without a [[replay.csv]] entry.
DEFAULT_MAX_GAP_DAYS = 31.0


@dataclass(frozen=True)
class Series:
    """One signal's recorded readings, sorted by time."""

    ts: NDArray[np.float64]
    values: NDArray[np.float64]


@dataclass
class InputReport:
    """What reading the inputs left out: identical repeats of a reading (same signal, instant and value)."""

    duplicates_dropped: int = 0


# A file's readings of one signal: times, values, and where reading k came from ("file:line").
_Part = tuple[NDArray[np.float64], NDArray[np.float64], Callable[[int], str]]


def read_inputs(paths: list[Path], settings: GatewaySettings, report: InputReport | None = None) -> dict[str, Series]:
    """Read every input file and merge per signal (sorted by time).

    Raises DecodeError naming file:line for anything that cannot be read as it stands (see the
    module's docstring); `report` (when given) counts the identical repeats dropped.
    """
    parts: dict[str, list[_Part]] = defaultdict(list)
    now_s = time.time()
    for path in paths:
        read = _read_file(path, settings)
        for signal in read:
            if signal not in settings.signals:
                raise DecodeError(f"{path}: signal {signal!r} is not declared under [signals] of the site file")
        _check_span(path, read, now_s, _max_gap_days(path, settings))
        for signal, part in read.items():
            parts[signal].append(part)
    out: dict[str, Series] = {}
    dropped = 0
    increasing: dict[int, bool] = {}  # id(times) -> strictly increasing; the columns of a file share one
    for signal, chunks in parts.items():
        if len(chunks) == 1:
            times = chunks[0][0]
            if increasing.setdefault(id(times), bool(np.all(times[1:] > times[:-1]))):
                out[signal] = Series(times, chunks[0][1])  # in order, no repeat: what the sort below gives
                continue
        ts = np.concatenate([c[0] for c in chunks])
        values = np.concatenate([c[1] for c in chunks])
        order = np.argsort(ts, kind="stable")
        ts, values = ts[order], values[order]
        keep = _duplicates(signal, ts, values, order, chunks)
        if keep is not None:
            dropped += int(len(ts) - np.count_nonzero(keep))
            ts, values = ts[keep], values[keep]
        out[signal] = Series(ts, values)
    if report is not None:
        report.duplicates_dropped += dropped
    return out


def _read_file(path: Path, settings: GatewaySettings) -> dict[str, _Part]:
    """_read_one, with a file that is not text in its encoding (or not in any the csv module
    reads) reported as such."""
    mapping = _mapping(path, settings)
    encoding = mapping.encoding if mapping is not None else "utf-8-sig"
    try:
        return _read_one(path, settings)
    except UnicodeError as exc:
        at = f" (byte {exc.start})" if isinstance(exc, UnicodeDecodeError) else ""
        fix = (
            'give its encoding (e.g. encoding = "latin-1" or "utf-16") in its [[replay.csv]] entry'
            if mapping is not None
            else "save it as UTF-8 (a ts,signal,value file is read as UTF-8)"
        )
        raise DecodeError(f"{path}: not {encoding} text{at}: {exc}; {fix}") from None
    except LookupError:
        raise DecodeError(
            f"{path}: encoding {encoding!r} of its [[replay.csv]] entry is not one Python knows; check its spelling"
        ) from None
    except csv.Error as exc:  # only from the header or a reader without _rows
        raise DecodeError(f"{path}: cannot be read as CSV: {exc}") from None


def _mapping(path: Path, settings: GatewaySettings) -> CsvInputConfig | None:
    return next((m for m in settings.replay.csv if fnmatch.fnmatch(path.name, m.match)), None)


def _max_gap_days(path: Path, settings: GatewaySettings) -> float:
    mapping = _mapping(path, settings)
    return mapping.max_gap_days if mapping is not None else DEFAULT_MAX_GAP_DAYS


def _rows(reader: Any, path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line, row) of a csv reader's non-empty rows; a row the csv module cannot read is named by its line."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            hint = "; a field longer than 128 KB is not a reading: check the file" if "field larger" in str(exc) else ""
            raise DecodeError(f"{path}:{reader.line_num}: not readable as CSV: {exc}{hint}") from None
        if row:
            yield reader.line_num, row


def _check_span(path: Path, read: dict[str, _Part], now_s: float, max_gap_days: float) -> None:
    """Refuse a file with a timestamp before 2000, more than a day ahead of now, or after a gap
    longer than `max_gap_days`: the replay would write every minute in between."""
    latest_s = now_s + AHEAD_TOLERANCE_S
    parts = list(read.values())
    if parts and all(ts is parts[0][0] and where is parts[0][2] for ts, _v, where in parts):
        # the columns of one file share their times and rows: one copy has the same bad rows and
        # the same gaps, with the same rows on either side of the widest (both sides scale alike)
        parts = parts[:1]
    for ts, _values, where in parts:
        bad = np.flatnonzero(~((ts >= EARLIEST_S) & (ts <= latest_s)))  # NaN included
        if len(bad):
            k = int(bad[0])
            t = float(ts[k])
            when = utc_iso(t) if math.isfinite(t) and abs(t) < 1e11 else repr(t)
            raise DecodeError(
                f"{where(k)}: timestamp {when} is implausible (before 2000-01-01 or more than a day after now, "
                f"{utc_iso(now_s)}); check this row and the clock of the device that recorded it. Nothing was written"
            )
    if not math.isfinite(max_gap_days) or max_gap_days <= 0:
        return
    stamps = [(ts, where) for ts, _v, where in parts if len(ts)]
    if not stamps:
        return
    all_ts = np.concatenate([t for t, _ in stamps])
    owner = np.repeat(np.arange(len(stamps)), [len(t) for t, _ in stamps])
    index = np.concatenate([np.arange(len(t)) for t, _ in stamps])
    order = np.argsort(all_ts, kind="stable")
    gaps = np.diff(all_ts[order])
    limit_s = max_gap_days * 86400.0
    over = np.flatnonzero(gaps > limit_s)
    if len(over):
        k = int(over[np.argmax(gaps[over])])
        a, b = order[k], order[k + 1]
        # the wild row is on the side of the gap with fewer rows: the last before it, or the first after it
        wild, other = (a, b) if k + 1 < len(order) - k - 1 else (b, a)
        wild_at, other_at = stamps[owner[wild]][1](int(index[wild])), stamps[owner[other]][1](int(index[other]))
        raise DecodeError(
            f"{wild_at}: timestamp {utc_iso(float(all_ts[wild]))} is {gaps[k] / 86400.0:,.1f} days from the rest of the "
            f"file (the nearest: {other_at}, {utc_iso(float(all_ts[other]))}), more than max_gap_days = {max_gap_days:g}; "
            "check the row (a wrong date?), or raise max_gap_days in the file's [[replay.csv]] entry. Nothing was written"
        )


def _duplicates(
    signal: str, ts: NDArray[np.float64], values: NDArray[np.float64], order: NDArray[np.intp], chunks: list[_Part]
) -> NDArray[np.bool_] | None:
    """Which sorted readings to keep: None when no instant repeats; repeats of the same value are
    dropped; a repeat with another value raises DecodeError naming both rows."""
    same = ts[1:] == ts[:-1]
    if not same.any():
        return None
    a_vals, b_vals = values[:-1][same], values[1:][same]
    differ = ~((a_vals == b_vals) | (np.isnan(a_vals) & np.isnan(b_vals)))
    if differ.any():
        k = int(np.flatnonzero(same)[np.argmax(differ)])
        bounds = np.cumsum([0, *(len(c[0]) for c in chunks)])

        def where(i: int) -> str:
            src = int(order[i])
            c = int(np.searchsorted(bounds, src, side="right") - 1)
            return chunks[c][2](src - int(bounds[c]))

        raise DecodeError(
            f"{where(k + 1)}: signal {signal!r} at {utc_iso(float(ts[k]))} has value {float(values[k + 1])!r}, but "
            f"{where(k)} gives {float(values[k])!r} for the same instant; keep one of the two rows"
        )
    keep = np.ones(len(ts), dtype=bool)
    keep[1:][same] = False
    return keep


def _read_one(path: Path, settings: GatewaySettings) -> dict[str, _Part]:
    if not path.is_file():
        raise DecodeError(f"{path}: no such file; check the --input path")
    mapping = _mapping(path, settings)
    if mapping is not None:
        tz = ZoneInfo(mapping.timezone or settings.site.timezone)
        if mapping.layout == "periods":
            return _read_periods(path, mapping, tz)
        return _read_columns(path, mapping, tz)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        header = next((row for _, row in _rows(csv.reader(fh), path)), [])
    if [h.strip() for h in header] == LONG_HEADER:
        return _read_long(path, ZoneInfo(settings.site.timezone))
    raise DecodeError(
        f"{path}: header {header[:4]} is neither 'ts,signal,value' nor matched by a [[replay.csv]] entry "
        f"(patterns: {[m.match for m in settings.replay.csv] or 'none'}); add a mapping to the site file"
    )


class LocalTimes:
    """Naive local times -> instants in zone `tz`, refusing what daylight saving makes unclear.

    `ambiguous` says which instant a time that occurs twice (the autumn repeat) is: error,
    earlier, later, or infer (from the order of the rows: the first occurrence until a time goes
    back, then the second). A time that does not exist (the spring gap) is always an error.
    """

    def __init__(self, tz: ZoneInfo, ambiguous: str = "error") -> None:
        self.tz = tz
        self.ambiguous = ambiguous
        self._last_s = -math.inf

    def instant(self, dt: datetime, where: str) -> float:
        if dt.tzinfo is not None:
            t = dt.timestamp()
            self._last_s = t
            return t
        first = dt.replace(tzinfo=self.tz, fold=0)
        second = dt.replace(tzinfo=self.tz, fold=1)
        if first.utcoffset() == second.utcoffset():  # the usual case: one instant
            t = first.timestamp()
        elif first.astimezone(UTC).astimezone(self.tz).replace(tzinfo=None) != dt:
            raise DecodeError(
                f"{where}: local time {dt.isoformat(sep=' ')} does not exist in {self.tz.key} (clocks went forward); "
                "check the row: a recorder on local time writes no such time"
            )
        else:
            t = self._resolve(dt, first.timestamp(), second.timestamp(), where)
        self._last_s = t
        return t

    def _resolve(self, dt: datetime, earlier_s: float, later_s: float, where: str) -> float:
        if self.ambiguous == "earlier":
            return earlier_s
        if self.ambiguous == "later":
            return later_s
        if self.ambiguous == "infer":
            return later_s if earlier_s <= self._last_s else earlier_s
        raise DecodeError(
            f"{where}: local time {dt.isoformat(sep=' ')} occurs twice in {self.tz.key} (clocks went back): "
            f"{utc_iso(earlier_s)} or {utc_iso(later_s)}; say which in the file's [[replay.csv]] entry with "
            'ambiguous = "earlier", "later" or "infer" (the order of the rows), or record in UTC or with an offset'
        )


def parse_time(text: str, fmt: str, tz: ZoneInfo | LocalTimes, *, where: str) -> float:
    """One timestamp -> epoch seconds. Naive times are in `tz` (a LocalTimes says how to read
    the times daylight saving repeats; a bare zone refuses them)."""
    try:
        if fmt == "epoch_s":
            return float(text)
        if fmt == "epoch_ms":
            return float(text) / 1000.0
        dt = datetime.fromisoformat(text.strip()) if fmt == "iso8601" else datetime.strptime(text.strip(), fmt)
    except ValueError as exc:
        raise DecodeError(f"{where}: timestamp {text!r} does not match format {fmt!r} ({exc})") from None
    local = tz if isinstance(tz, LocalTimes) else LocalTimes(tz)
    return local.instant(dt, where)


def _read_long(path: Path, tz: ZoneInfo) -> dict[str, _Part]:
    ts_by: dict[str, list[float]] = defaultdict(list)
    val_by: dict[str, list[float]] = defaultdict(list)
    line_by: dict[str, list[int]] = defaultdict(list)
    local = LocalTimes(tz)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = _rows(csv.reader(fh), path)
        next(rows, None)
        for line, row in rows:
            where = f"{path}:{line}"
            if len(row) != 3:
                raise DecodeError(f"{where}: expected 3 fields ts,signal,value, got {len(row)}")
            fmt = "epoch_s" if row[0].replace(".", "", 1).isdigit() else "iso8601"
            ts_by[row[1]].append(parse_time(row[0], fmt, local, where=where))
            val_by[row[1]].append(_number(row[2], where))
            line_by[row[1]].append(line)
    return {s: (np.asarray(ts_by[s]), np.asarray(val_by[s]), _at_lines(path, line_by[s])) for s in ts_by}


def _at_lines(path: Path, lines: list[int]) -> Callable[[int], str]:
    return lambda k: f"{path}:{lines[k]}"


def _number(text: str, where: str) -> float:
    if text.strip() == "":
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise DecodeError(f"{where}: value {text!r} is not a number") from None


def _header_index(path: Path, header: list[str], names: list[str]) -> list[int]:
    clean = [h.strip() for h in header]
    first: dict[str, int] = {}
    for i, h in enumerate(clean):
        first.setdefault(h, i)  # a name that repeats is its first column, as list.index finds it
    missing = [n for n in names if n not in first]
    if missing:
        raise DecodeError(f"{path}: column(s) {missing} not in the header {clean}; check [[replay.csv]] columns")
    return [first[n] for n in names]


def _read_columns(path: Path, m: CsvInputConfig, tz: ZoneInfo) -> dict[str, _Part]:
    cols = list(m.columns)
    with path.open(encoding=m.encoding, newline="") as fh:
        header = next((row for _, row in _rows(csv.reader(fh, delimiter=m.delimiter), path)), [])
        t_i, *v_i = _header_index(path, header, [m.timestamp_column, *cols])
    table = read_table(path, m.encoding, m.delimiter, header, t_i, v_i)  # a plain export, column-wise
    if table is not None:
        stamps, v_arr, lines = table
    else:
        numeric = _numeric_table(path, m, [t_i, *v_i]) if m.timestamp_format in ("epoch_s", "epoch_ms") else None
        if numeric is not None:
            t_arr = numeric[:, 0] / (1000.0 if m.timestamp_format == "epoch_ms" else 1.0)
            return _finish_columns(m, tz, t_arr, numeric[:, 1:], lambda k: f"{path}:{_data_lines(path, m.encoding, m.delimiter)[k]}")
        stamps, v_arr, lines = _read_cells(path, m, t_i, v_i)
    local = LocalTimes(tz, m.ambiguous)
    if m.timestamp_format in ("epoch_s", "epoch_ms"):
        try:
            t_arr = np.asarray(stamps, dtype=np.float64) / (1000.0 if m.timestamp_format == "epoch_ms" else 1.0)
        except ValueError:
            t_arr = np.array(
                [parse_time(x, m.timestamp_format, local, where=f"{path}:{n}") for x, n in zip(stamps, lines, strict=True)]
            )
    else:
        t_arr = np.array(
            [parse_time(x, m.timestamp_format, local, where=f"{path}:{n}") for x, n in zip(stamps, lines, strict=True)]
        )
    return _finish_columns(m, tz, t_arr, v_arr, _at_lines(path, lines))


def _read_cells(path: Path, m: CsvInputConfig, t_i: int, v_i: list[int]) -> tuple[list[str], NDArray[np.float64], list[int]]:
    """The timestamp cells, the value columns as floats and each row's line, row by row with the
    csv module: any file it reads, and a bad cell named by its line."""
    with path.open(encoding=m.encoding, newline="") as fh:
        rows = _rows(csv.reader(fh, delimiter=m.delimiter), path)
        next(rows, None)
        stamps: list[str] = []
        cells: list[list[str]] = []
        lines: list[int] = []
        for line, row in rows:
            stamps.append(row[t_i] if t_i < len(row) else "")
            cells.append([row[i] if i < len(row) else "" for i in v_i])
            lines.append(line)
    return stamps, _numbers(path, cells, len(v_i), lines), lines


@cache
def _data_lines(path: Path, encoding: str, delimiter: str) -> list[int]:
    """The line of each data row of a CSV file (blank lines skipped, as numpy's reader skips
    them): read again only to name a row in an error."""
    with path.open(encoding=encoding, newline="") as fh:
        lines = [line for line, _row in _rows(csv.reader(fh, delimiter=delimiter), path)]
    return lines[1:]


def _numeric_table(path: Path, m: CsvInputConfig, usecols: list[int]) -> NDArray[np.float64] | None:
    """The used columns of an all-numeric file (epoch times, every cell a number) in one C pass;
    None when any row is not that simple (an empty or quoted cell, a short row): the row-by-row
    reader then reads it and names the line of any bad cell."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "input contained no data" included
            return np.loadtxt(
                path,
                delimiter=m.delimiter,
                skiprows=1,
                usecols=usecols,
                dtype=np.float64,
                encoding=m.encoding,
                comments=None,
                ndmin=2,
            )
    except (ValueError, UserWarning):
        return None


def _finish_columns(
    m: CsvInputConfig, tz: ZoneInfo, t_arr: NDArray[np.float64], v_arr: NDArray[np.float64], where: Callable[[int], str]
) -> dict[str, _Part]:
    cols = list(m.columns)
    if m.midnight_is_end_of_day and len(t_arr):
        t_arr = np.array([_end_of_day(t, tz) for t in t_arr.tolist()])
    if m.zero_rows == "missing" and len(v_arr):
        v_arr[np.all(v_arr == 0.0, axis=1)] = np.nan
    return {m.columns[c]: (t_arr, v_arr[:, k], where) for k, c in enumerate(cols)}


def _end_of_day(t: float, tz: ZoneInfo) -> float:
    """A reading stamped 00:00 belongs to the end of its date (24:00)."""
    local = datetime.fromtimestamp(t, tz)
    if local.hour == 0 and local.minute == 0 and local.second == 0:
        return (local + timedelta(days=1)).timestamp()
    return t


def _numbers(path: Path, cells: list[list[str]], width: int, lines: list[int]) -> NDArray[np.float64]:
    """Cells -> floats in one numpy conversion; empty cells are NaN; a bad cell is named by line."""
    raw = np.array(cells, dtype=str).reshape(len(cells), width)
    empty = np.char.str_len(np.char.strip(raw)) == 0
    try:
        values = np.where(empty, "nan", raw).astype(np.float64)
    except ValueError:
        for row, line in zip(cells, lines, strict=True):
            for text in row:
                _number(text, f"{path}:{line}")
        raise
    return values


def _read_periods(path: Path, m: CsvInputConfig, tz: ZoneInfo) -> dict[str, _Part]:
    """Rows of (start, end, value) -> a step signal: its level at every change point.

    Overlapping periods add up. Integrated with the left rule, the step signal's integral is
    exactly the sum of value x duration over the rows. A change point is named in errors by the
    row that starts (or else ends) there.
    """
    cols = list(m.columns)
    out: dict[str, _Part] = {}
    with path.open(encoding=m.encoding, newline="") as fh:
        rows = _rows(csv.reader(fh, delimiter=m.delimiter), path)
        header = next((row for _, row in rows), [])
        s_i, e_i, *v_i = _header_index(path, header, [m.start_column or "", m.end_column or "", *cols])
        starts, ends, vals, lines = [], [], [], []
        start_times, end_times = LocalTimes(tz, m.ambiguous), LocalTimes(tz, m.ambiguous)
        for line, row in rows:
            where = f"{path}:{line}"
            s = parse_time(row[s_i], m.timestamp_format, start_times, where=where)
            e = parse_time(row[e_i], m.timestamp_format, end_times, where=where)
            if e < s:
                raise DecodeError(f"{where}: period ends before it starts ({row[s_i]} > {row[e_i]})")
            starts.append(s)
            ends.append(e)
            vals.append([_number(row[i], where) for i in v_i])
            lines.append(line)
    start_a, end_a, val_a = np.asarray(starts), np.asarray(ends), np.asarray(vals).reshape(len(vals), len(cols))
    row_lines = lines + lines  # the rows of t below: starts, then ends
    for k, c in enumerate(cols):
        t = np.concatenate([start_a, end_a])
        delta = np.concatenate([val_a[:, k], -val_a[:, k]])
        points, first, inverse = np.unique(t, return_index=True, return_inverse=True)
        level = np.cumsum(np.bincount(inverse, weights=delta, minlength=len(points)), dtype=np.float64)
        level[np.abs(level) < 1e-12] = 0.0  # cumulative sums of floats leave dust at zero
        point_lines = [row_lines[i] for i in first.tolist()]
        out[m.columns[c]] = (points, level, _at_lines(path, point_lines))
    return out


def utc_iso(ts: float, tz: ZoneInfo | None = None) -> str:
    return datetime.fromtimestamp(ts, tz or UTC).isoformat()
