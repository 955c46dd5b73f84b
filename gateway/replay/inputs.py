"""Recorded data for `emgate replay`: files -> per-signal (ts, value) arrays.

Two kinds of file:
- a long CSV with the header `ts,signal,value` (ts in ISO 8601 with a UTC offset, or epoch
  seconds), the format `emgate` itself would record;
- a column-mapped CSV described by a `[[replay.csv]]` entry of the site file (matched on the
  file name): a timestamp column with its format and zone, value columns mapped to signals, or
  for layout `periods` a start, an end and a constant value per row.

Errors name the file, the line and what to check; nothing is guessed.
"""

from __future__ import annotations

import csv
import fnmatch
import warnings
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from gateway.core.errors import DecodeError
from gateway.settings.site import CsvInputConfig, GatewaySettings

LONG_HEADER = ["ts", "signal", "value"]


@dataclass(frozen=True)
class Series:
    """One signal's recorded readings, sorted by time."""

    ts: NDArray[np.float64]
    values: NDArray[np.float64]


def read_inputs(paths: list[Path], settings: GatewaySettings) -> dict[str, Series]:
    """Read every input file and merge per signal (sorted by time)."""
    parts: dict[str, list[tuple[NDArray[np.float64], NDArray[np.float64]]]] = defaultdict(list)
    for path in paths:
        for signal, (ts, values) in _read_one(path, settings).items():
            if signal not in settings.signals:
                raise DecodeError(f"{path}: signal {signal!r} is not declared under [signals] of the site file")
            parts[signal].append((ts, values))
    out: dict[str, Series] = {}
    for signal, chunks in parts.items():
        ts = np.concatenate([c[0] for c in chunks])
        values = np.concatenate([c[1] for c in chunks])
        order = np.argsort(ts, kind="stable")
        out[signal] = Series(ts[order], values[order])
    return out


def _read_one(path: Path, settings: GatewaySettings) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]:
    if not path.is_file():
        raise DecodeError(f"{path}: no such file; check the --input path")
    mapping = next((m for m in settings.replay.csv if fnmatch.fnmatch(path.name, m.match)), None)
    if mapping is not None:
        tz = ZoneInfo(mapping.timezone or settings.site.timezone)
        if mapping.layout == "periods":
            return _read_periods(path, mapping, tz)
        return _read_columns(path, mapping, tz)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh), [])
    if [h.strip() for h in header] == LONG_HEADER:
        return _read_long(path, ZoneInfo(settings.site.timezone))
    raise DecodeError(
        f"{path}: header {header[:4]} is neither 'ts,signal,value' nor matched by a [[replay.csv]] entry "
        f"(patterns: {[m.match for m in settings.replay.csv] or 'none'}); add a mapping to the site file"
    )


def parse_time(text: str, fmt: str, tz: ZoneInfo, *, where: str) -> float:
    """One timestamp -> epoch seconds. Naive times are in `tz`."""
    try:
        if fmt == "epoch_s":
            return float(text)
        if fmt == "epoch_ms":
            return float(text) / 1000.0
        dt = datetime.fromisoformat(text.strip()) if fmt == "iso8601" else datetime.strptime(text.strip(), fmt)
    except ValueError as exc:
        raise DecodeError(f"{where}: timestamp {text!r} does not match format {fmt!r} ({exc})") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.timestamp()


def _read_long(path: Path, tz: ZoneInfo) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]:
    ts_by: dict[str, list[float]] = defaultdict(list)
    val_by: dict[str, list[float]] = defaultdict(list)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            where = f"{path}:{line}"
            if len(row) != 3:
                raise DecodeError(f"{where}: expected 3 fields ts,signal,value, got {len(row)}")
            fmt = "epoch_s" if row[0].replace(".", "", 1).isdigit() else "iso8601"
            ts_by[row[1]].append(parse_time(row[0], fmt, tz, where=where))
            val_by[row[1]].append(_number(row[2], where))
    return {s: (np.asarray(ts_by[s]), np.asarray(val_by[s])) for s in ts_by}


def _number(text: str, where: str) -> float:
    if text.strip() == "":
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise DecodeError(f"{where}: value {text!r} is not a number") from None


def _header_index(path: Path, header: list[str], names: list[str]) -> list[int]:
    clean = [h.strip() for h in header]
    missing = [n for n in names if n not in clean]
    if missing:
        raise DecodeError(f"{path}: column(s) {missing} not in the header {clean}; check [[replay.csv]] columns")
    return [clean.index(n) for n in names]


def _read_columns(path: Path, m: CsvInputConfig, tz: ZoneInfo) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]:
    cols = list(m.columns)
    with path.open(encoding=m.encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=m.delimiter)
        header = next(reader, [])
        t_i, *v_i = _header_index(path, header, [m.timestamp_column, *cols])
    numeric = _numeric_table(path, m, [t_i, *v_i]) if m.timestamp_format in ("epoch_s", "epoch_ms") else None
    if numeric is not None:
        t_arr = numeric[:, 0] / (1000.0 if m.timestamp_format == "epoch_ms" else 1.0)
        return _finish_columns(m, tz, t_arr, numeric[:, 1:])
    with path.open(encoding=m.encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=m.delimiter)
        next(reader, [])
        stamps: list[str] = []
        cells: list[list[str]] = []
        for row in reader:
            if row:
                stamps.append(row[t_i] if t_i < len(row) else "")
                cells.append([row[i] if i < len(row) else "" for i in v_i])
    v_arr = _numbers(path, cells, len(cols))
    if m.timestamp_format in ("epoch_s", "epoch_ms"):
        try:
            t_arr = np.asarray(stamps, dtype=np.float64) / (1000.0 if m.timestamp_format == "epoch_ms" else 1.0)
        except ValueError:
            t_arr = np.array([parse_time(x, m.timestamp_format, tz, where=f"{path}:{k + 2}") for k, x in enumerate(stamps)])
    else:
        t_arr = np.array([parse_time(x, m.timestamp_format, tz, where=f"{path}:{k + 2}") for k, x in enumerate(stamps)])
    return _finish_columns(m, tz, t_arr, v_arr)


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
    m: CsvInputConfig, tz: ZoneInfo, t_arr: NDArray[np.float64], v_arr: NDArray[np.float64]
) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]:
    cols = list(m.columns)
    if m.midnight_is_end_of_day and len(t_arr):
        t_arr = np.array([_end_of_day(t, tz) for t in t_arr.tolist()])
    if m.zero_rows == "missing" and len(v_arr):
        v_arr[np.all(v_arr == 0.0, axis=1)] = np.nan
    return {m.columns[c]: (t_arr, v_arr[:, k]) for k, c in enumerate(cols)}


def _end_of_day(t: float, tz: ZoneInfo) -> float:
    """A reading stamped 00:00 belongs to the end of its date (24:00)."""
    local = datetime.fromtimestamp(t, tz)
    if local.hour == 0 and local.minute == 0 and local.second == 0:
        return (local + timedelta(days=1)).timestamp()
    return t


def _numbers(path: Path, cells: list[list[str]], width: int) -> NDArray[np.float64]:
    """Cells -> floats in one numpy conversion; empty cells are NaN; a bad cell is named by line."""
    raw = np.array(cells, dtype=str).reshape(len(cells), width)
    empty = np.char.str_len(np.char.strip(raw)) == 0
    try:
        values = np.where(empty, "nan", raw).astype(np.float64)
    except ValueError:
        for k, row in enumerate(cells):
            for text in row:
                _number(text, f"{path}:{k + 2}")
        raise
    return values


def _read_periods(path: Path, m: CsvInputConfig, tz: ZoneInfo) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Rows of (start, end, value) -> a step signal: its level at every change point.

    Overlapping periods add up. Integrated with the left rule, the step signal's integral is
    exactly the sum of value x duration over the rows.
    """
    cols = list(m.columns)
    out: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
    with path.open(encoding=m.encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=m.delimiter)
        header = next(reader, [])
        s_i, e_i, *v_i = _header_index(path, header, [m.start_column or "", m.end_column or "", *cols])
        starts, ends, vals = [], [], []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            where = f"{path}:{line}"
            s = parse_time(row[s_i], m.timestamp_format, tz, where=where)
            e = parse_time(row[e_i], m.timestamp_format, tz, where=where)
            if e < s:
                raise DecodeError(f"{where}: period ends before it starts ({row[s_i]} > {row[e_i]})")
            starts.append(s)
            ends.append(e)
            vals.append([_number(row[i], where) for i in v_i])
    start_a, end_a, val_a = np.asarray(starts), np.asarray(ends), np.asarray(vals).reshape(len(vals), len(cols))
    for k, c in enumerate(cols):
        t = np.concatenate([start_a, end_a])
        delta = np.concatenate([val_a[:, k], -val_a[:, k]])
        points, inverse = np.unique(t, return_inverse=True)
        level = np.cumsum(np.bincount(inverse, weights=delta, minlength=len(points)), dtype=np.float64)
        level[np.abs(level) < 1e-12] = 0.0  # cumulative sums of floats leave dust at zero
        out[m.columns[c]] = (points, level)
    return out


def utc_iso(ts: float, tz: ZoneInfo | None = None) -> str:
    return datetime.fromtimestamp(ts, tz or UTC).isoformat()
