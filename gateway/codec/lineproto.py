"""InfluxDB line protocol, both ways: text -> numeric field values, and points -> text.

    measurement[,tag=value...] field=value[,field=value...] [timestamp]

Escaping follows the InfluxDB reference: in the measurement a backslash escapes comma and
space; in tag keys, tag values and field keys it escapes comma, equals sign and space; in
quoted string field values it escapes the double quote and the backslash. A backslash
before any other character is literal. Field values: floats (`1`, `-1.5e3`), integers
(`12i`), unsigned integers (`12u`), booleans (t/T/true/True/TRUE and the f forms, as 1/0)
and strings (`"..."`, skipped: no signal is numeric text). Empty lines and `#` comment
lines are skipped. The timestamp is in nanoseconds; without one the receive time is used.

Encoding. The same escaping rules, written once (`escape_key`, `quote_string`), serve every
point the gateway writes to InfluxDB: a minute (`MinutePointEncoder`, the hot path of draining a
backlog, fed by the ledger's outbox) and an alert event (`point_line`, gateway/alerts/
influx_lines.py). Timestamps are written in seconds (the sink writes with precision s). InfluxDB
takes no newline inside a value, so a string field's newlines are written as spaces.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.core.errors import DecodeError
from gateway.core.model import MinuteResult

__all__ = [
    "LineField",
    "MinutePointEncoder",
    "escape_key",
    "minute_line",
    "packed_minute",
    "parse_lines",
    "point_line",
    "quote_string",
]

_MEASUREMENT_ESCAPES = frozenset(", ")
_KEY_ESCAPES = frozenset(",= ")
_FLOAT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+i")
_UNSIGNED = re.compile(r"\d+u")
_TIMESTAMP = re.compile(r"-?\d+")
_TRUE = frozenset({"t", "T", "true", "True", "TRUE"})
_FALSE = frozenset({"f", "F", "false", "False", "FALSE"})
_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1


@dataclass(frozen=True, slots=True)
class LineField:
    """One numeric field of one line; `ts_ns` is None when the line has no timestamp."""

    measurement: str
    field: str
    value: float
    ts_ns: int | None


class _LineError(Exception):
    """Why one line is malformed; turned into DecodeError with the line number."""


def _read_token(line: str, pos: int, stops: str, escapes: frozenset[str]) -> tuple[str, int]:
    out: list[str] = []
    end = len(line)
    while pos < end:
        ch = line[pos]
        if ch == "\\" and pos + 1 < end and line[pos + 1] in escapes:
            out.append(line[pos + 1])
            pos += 2
            continue
        if ch in stops:
            break
        out.append(ch)
        pos += 1
    return "".join(out), pos


def _expect(line: str, pos: int, ch: str, what: str) -> int:
    if pos >= len(line) or line[pos] != ch:
        found = "end of line" if pos >= len(line) else repr(line[pos])
        raise _LineError(f"expected {what} at column {pos + 1}, found {found}")
    return pos + 1


def _skip_string(line: str, pos: int) -> int:
    """Skip a quoted string starting at line[pos] == '"'; return the position after it."""
    pos += 1
    while pos < len(line):
        if line[pos] == "\\":
            pos += 2
        elif line[pos] == '"':
            return pos + 1
        else:
            pos += 1
    raise _LineError("unterminated string field value")


def _number(text: str, key: str) -> float:
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    if _INTEGER.fullmatch(text):
        digits = text[:-1]
        if len(digits.lstrip("+-")) > 19 or not -_INT64_MAX - 1 <= int(digits) <= _INT64_MAX:
            raise _LineError(f"field {key!r}: integer {text} is outside the int64 range")
        return float(int(digits))
    if _UNSIGNED.fullmatch(text):
        if len(text) > 21 or int(text[:-1]) > _UINT64_MAX:
            raise _LineError(f"field {key!r}: unsigned {text} is outside the uint64 range")
        return float(int(text[:-1]))
    if _FLOAT.fullmatch(text):
        value = float(text)
        if not math.isfinite(value):
            raise _LineError(f"field {key!r}: float {text} is out of range")
        return value
    if not text:
        raise _LineError(f"field {key!r} has no value")
    raise _LineError(f"field {key!r}: {text[:40]!r} is not a float, integer (12i), unsigned (12u) or boolean")


def _parse_line(line: str) -> list[LineField]:
    measurement, pos = _read_token(line, 0, ", ", _MEASUREMENT_ESCAPES)
    if not measurement:
        raise _LineError("missing measurement")
    while pos < len(line) and line[pos] == ",":
        key, pos = _read_token(line, pos + 1, ",= ", _KEY_ESCAPES)
        pos = _expect(line, pos, "=", "'=' after a tag key")
        value, pos = _read_token(line, pos, ",= ", _KEY_ESCAPES)
        if not key or not value:
            raise _LineError(f"empty tag key or value near column {pos + 1}")
    pos = _expect(line, pos, " ", "a space before the fields")

    parsed: list[tuple[str, float]] = []
    while True:
        key, pos = _read_token(line, pos, ",= ", _KEY_ESCAPES)
        if not key:
            raise _LineError(f"missing field key at column {pos + 1}")
        pos = _expect(line, pos, "=", f"'=' after field key {key!r}")
        if pos < len(line) and line[pos] == '"':
            pos = _skip_string(line, pos)
        else:
            end = pos
            while end < len(line) and line[end] not in ", ":
                end += 1
            parsed.append((key, _number(line[pos:end], key)))
            pos = end
        if pos < len(line) and line[pos] == ",":
            pos += 1
            continue
        break

    ts_ns: int | None = None
    if pos < len(line):
        pos = _expect(line, pos, " ", "a space before the timestamp")
        stamp = line[pos:].strip()
        if stamp:
            if not _TIMESTAMP.fullmatch(stamp) or len(stamp.lstrip("-")) > 19:
                raise _LineError(f"timestamp {stamp[:40]!r} is not an integer in nanoseconds")
            ts_ns = int(stamp)
            if not -_INT64_MAX - 1 <= ts_ns <= _INT64_MAX:
                raise _LineError(f"timestamp {stamp} is outside the int64 nanosecond range")
    return [LineField(measurement, key, value, ts_ns) for key, value in parsed]


def parse_lines(text: str) -> list[LineField]:
    """Parse line protocol text into its numeric fields, in order.

    Raises:
        DecodeError: A malformed line; the message names the line number and the reason.
    """
    fields: list[LineField] = []
    for number, raw_line in enumerate(text.split("\n"), start=1):
        line = raw_line.rstrip("\r").lstrip(" \t")
        if not line.strip() or line.startswith("#"):
            continue
        try:
            fields.extend(_parse_line(line))
        except _LineError as exc:
            raise DecodeError(f"line protocol line {number}: {exc}") from None
    return fields


# -- encoding -----------------------------------------------------------------------------------


def escape_key(value: str) -> str:
    """A measurement, tag key, tag value or field key as line protocol writes it: backslash,
    comma, equals sign and space escaped with a backslash."""
    return value.replace("\\", "\\\\").replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def quote_string(value: str) -> str:
    """A string field value: in double quotes, backslash and double quote escaped, newlines as spaces."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def point_line(measurement: str, tags: Iterable[tuple[str, str]], fields: Iterable[tuple[str, str | float]], ts_s: float) -> str:
    """One point: tags in the order given, string fields quoted, numbers as Python writes a
    float (non-finite ones left out: InfluxDB refuses them), the timestamp in whole seconds."""
    head = ",".join([escape_key(measurement), *(f"{escape_key(k)}={escape_key(v)}" for k, v in tags)])
    body = ",".join(
        f"{escape_key(k)}={quote_string(v)}" if isinstance(v, str) else f"{escape_key(k)}={float(v)!r}"
        for k, v in fields
        if isinstance(v, str) or math.isfinite(v)
    )
    return f"{head} {body} {int(ts_s)}"


class MinutePointEncoder:
    """Minute rows, packed as the ledger's outbox returns them, -> line protocol, caching the
    escaped series key and string fields.

    A packed row is (seq, minute_start, activity, co2_kg, coverage, series_key, state_key):
    series_key the JSON array [site, process, stream, scope, activity_unit], state_key the JSON
    array [quality, flags, is a correction (0/1)] (gateway/ledger/outbox.py says why SQLite
    builds them as JSON; `packed_minute` builds one from a MinuteResult).

    A point carries what the dashboards chart and the alerts watch, not the whole ledger row:
    tags site, process, stream, scope and activity_unit (the point's key: a correction keeps
    all five, Ledger.correct refuses one that does not); fields co2_kg, activity, coverage,
    quality, and flags when the minute has any. Method, factor id and emission factor stay in
    the ledger (`emgate ledger show`) and the monthly export, where an auditor reads them. influxd
    spends its CPU per field value: this point costs it about half of what the full row did
    (bench/ledger_drain.py measures both sides), which decides how fast a backlog drains.

    Flags are left out when empty, except on a correction: it sends flags="" so that a minute
    whose flags were cleared does not keep the old ones (a write only replaces the fields it
    sends). The caches keep encoding to a few microseconds per row for a 24 h backlog of
    10,000 streams: only the three numbers and the timestamp change from row to row.
    """

    def __init__(self, measurement: str) -> None:
        self._measurement = escape_key(measurement)
        self._series: dict[str, str] = {}
        self._strings: dict[str, str] = {}

    def _new_series(self, key: str) -> str:
        site, process, stream, scope, unit = json.loads(key)
        s = (
            f"{self._measurement},activity_unit={escape_key(unit)},process={escape_key(process)},scope={escape_key(scope)},"
            f"site={escape_key(site)},stream={escape_key(stream)} "
        )
        if len(self._series) < 1_000_000:
            self._series[key] = s
        return s

    def _new_strings(self, key: str) -> str:
        quality, flags, correction = json.loads(key)
        s = f"quality={quote_string(quality)}"
        if flags or correction:
            s += f",flags={quote_string(flags)}"
        if len(self._strings) < 100_000:
            self._strings[key] = s
        return s

    def lines(self, rows: Sequence[Sequence[Any]]) -> str:
        """Packed rows as a line-protocol body; non-finite numbers are left out."""
        series, strings = self._series, self._strings
        out = []
        for _, ts, act, co2, cov, skey, fkey in rows:
            head = series.get(skey) or self._new_series(skey)
            text = strings.get(fkey) or self._new_strings(fkey)
            total = co2 + act + cov
            if total - total == 0.0:  # all three finite (inf or NaN anywhere makes this NaN)
                out.append(f"{head}co2_kg={co2!r},activity={act!r},coverage={cov!r},{text} {int(ts)}")
            else:  # InfluxDB refuses inf; leave the field out rather than lose the point
                nums = "".join(
                    f"{n}={v!r}," for n, v in (("co2_kg", co2), ("activity", act), ("coverage", cov)) if math.isfinite(v)
                )
                out.append(f"{head}{nums}{text} {int(ts)}")
        return "\n".join(out)


def packed_minute(seq: int, r: MinuteResult, *, correction: bool = False) -> tuple[Any, ...]:
    """A MinuteResult as the packed row MinutePointEncoder takes (the outbox's layout)."""
    return (
        seq,
        r.minute_start,
        r.activity,
        r.co2_kg,
        r.coverage,
        json.dumps([r.site, r.process, r.stream, r.scope, r.activity_unit]),
        json.dumps([r.quality, r.flags, int(correction)]),
    )


def minute_line(r: MinuteResult, measurement: str) -> str:
    """One minute result as an InfluxDB line (second precision)."""
    return MinutePointEncoder(measurement).lines([packed_minute(0, r)])
