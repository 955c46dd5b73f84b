"""InfluxDB line protocol -> numeric field values (the parsing side only).

    measurement[,tag=value...] field=value[,field=value...] [timestamp_ns]

Escaping follows the InfluxDB reference: in the measurement a backslash escapes comma and
space; in tag keys, tag values and field keys it escapes comma, equals sign and space; in
quoted string field values it escapes the double quote and the backslash. A backslash
before any other character is literal. Field values: floats (`1`, `-1.5e3`), integers
(`12i`), unsigned integers (`12u`), booleans (t/T/true/True/TRUE and the f forms, as 1/0)
and strings (`"..."`, skipped: no signal is numeric text). Empty lines and `#` comment
lines are skipped. The timestamp is in nanoseconds; without one the receive time is used.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from gateway.core.errors import DecodeError

__all__ = ["LineField", "parse_lines"]

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
