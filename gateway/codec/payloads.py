"""MQTT payload -> (signal, ts, value) samples, for the MQTT source.

Three formats: JSON (configured field paths), a bare ASCII decimal number, and InfluxDB
line protocol. `parse_payload` raises `DecodeError` for every payload it cannot use and
nothing else, so the source can count bad payloads per topic and carry on; the tests fuzz
it with random bytes and random JSON to hold that promise. Bad *options* (an unknown
format, a malformed field path) raise `ValueError`; call `validate_payload_options` at
startup to report them as configuration errors before the first message arrives.

Only finite numbers become samples: NaN, Infinity and numbers beyond float range are
decode errors. JSON true/false and line protocol booleans become 1.0/0.0; strings are
never read as numbers (a JSON field holding "12.5" is a decode error).
"""

from __future__ import annotations

import enum
import functools
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.codec.lineproto import parse_lines
from gateway.core.errors import DecodeError

__all__ = ["PayloadFormat", "Sample", "parse_field_path", "parse_payload", "validate_payload_options"]

Sample = tuple[str, float, float]
"""(signal, ts in epoch seconds, value)."""

TIMESTAMP_FORMATS = ("epoch_s", "epoch_ms", "iso8601")
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_PATH_SEGMENT = re.compile(r"([^.\[\]]*)((?:\[-?\d+\])*)")
_INDEX = re.compile(r"-?\d+")
_ASCII_SPACE = " \t\r\n\f\v"


class PayloadFormat(enum.StrEnum):
    """How a topic's payloads are encoded. Case-insensitive: `PayloadFormat("JSON")` works."""

    JSON = "json"
    NUMBER = "number"  # one ASCII decimal number, surrounding whitespace allowed
    INFLUX = "influx"  # InfluxDB line protocol

    @classmethod
    def _missing_(cls, value: object) -> PayloadFormat | None:
        if isinstance(value, str):
            return cls._value2member_map_.get(value.strip().lower())  # type: ignore[return-value]  # the map holds this enum's members; typeshed says Enum
        return None


@functools.lru_cache(maxsize=4096)
def parse_field_path(path: str) -> tuple[str | int, ...]:
    """Split a JSON field path into keys and list indexes.

    `"data.flow"` -> `("data", "flow")`, `"values[0]"` -> `("values", 0)`,
    `"[1].rows[-1].v"` -> `(1, "rows", -1, "v")`. Keys cannot contain `.`, `[` or `]`.

    Raises:
        ValueError: The path is empty or malformed.
    """
    if not isinstance(path, str) or not path:
        raise ValueError(f"field path must be a non-empty string, got {path!r}")
    steps: list[str | int] = []
    for i, segment in enumerate(path.split(".")):
        match = _PATH_SEGMENT.fullmatch(segment)
        if match is None or not (match.group(1) or (i == 0 and match.group(2))):
            raise ValueError(
                f"field path {path!r}: bad segment {segment!r}; use keys and [index], e.g. data.values[0]"
            )
        if match.group(1):
            steps.append(match.group(1))
        steps.extend(int(index) for index in _INDEX.findall(match.group(2)))
    return tuple(steps)


def validate_payload_options(
    fmt: PayloadFormat | str,
    *,
    fields: Mapping[str, str] | None = None,
    value_signal: str | None = None,
    timestamp_field: str | None = None,
    timestamp_format: str = "epoch_s",
) -> PayloadFormat:
    """Check the options `parse_payload` takes, without a payload; returns the format.

    Raises:
        ValueError: What is wrong and what to set instead.
    """
    fmt = PayloadFormat(fmt)
    if fmt is PayloadFormat.JSON:
        if not fields:
            raise ValueError("JSON payloads need fields: a mapping of field path -> signal name")
        for path in fields:
            parse_field_path(path)
        if timestamp_field is not None:
            parse_field_path(timestamp_field)
            if timestamp_format not in TIMESTAMP_FORMATS and "%" not in timestamp_format:
                raise ValueError(
                    f"timestamp_format {timestamp_format!r} is not one of {', '.join(TIMESTAMP_FORMATS)} "
                    "or a strftime pattern such as '%Y-%m-%d %H:%M:%S'"
                )
    elif timestamp_field is not None:
        raise ValueError(f"timestamp_field applies to JSON payloads only, not to {fmt}")
    if fmt is PayloadFormat.NUMBER and not value_signal:
        raise ValueError("bare number payloads need value_signal: the signal name of the number")
    return fmt


def parse_payload(
    payload: bytes | bytearray | memoryview,
    fmt: PayloadFormat | str,
    *,
    topic: str,
    fields: Mapping[str, str] | None = None,
    value_signal: str | None = None,
    timestamp_field: str | None = None,
    timestamp_format: str = "epoch_s",
    received_ts: float,
) -> list[Sample]:
    """Parse one MQTT payload into samples.

    Args:
        payload: The message payload.
        fmt: JSON, NUMBER or INFLUX.
        topic: The message topic; named in error messages.
        fields: JSON: field path (`"data.flow"`, `"values[0]"`) -> signal name; required.
            INFLUX: `"measurement.field"` -> signal name; when empty or None every numeric
            field becomes signal `"measurement.field"`. Unused for NUMBER.
        value_signal: NUMBER: the signal name of the number.
        timestamp_field: JSON: path of the sample time; None uses `received_ts`.
        timestamp_format: "epoch_s", "epoch_ms" (JSON numbers), "iso8601" (naive -> UTC),
            or a strftime pattern (naive -> UTC).
        received_ts: When the message arrived, epoch seconds; the time of NUMBER samples,
            of JSON samples without `timestamp_field` and of line protocol without timestamps.

    Returns:
        (signal, ts, value) per sample with finite ts and value. JSON fields missing from
        the payload, or null, are skipped; INFLUX string fields and unmapped fields too.

    Raises:
        DecodeError: The payload cannot be used; the message says why. Also when a JSON
            payload has none of the configured fields or a line protocol payload none of
            the mapped ones, so a wrong path or mapping shows up in the per-topic count.
        ValueError: Bad options (see `validate_payload_options`).
        TypeError: `payload` is not bytes-like.
    """
    fmt = validate_payload_options(
        fmt,
        fields=fields,
        value_signal=value_signal,
        timestamp_field=timestamp_field,
        timestamp_format=timestamp_format,
    )
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
    where = f"topic {topic!r}"
    data = bytes(payload)
    if not data.strip(_ASCII_SPACE.encode()):
        raise DecodeError(f"{where}: empty payload")
    try:
        if fmt is PayloadFormat.NUMBER:
            assert value_signal is not None  # checked by validate_payload_options
            return [(value_signal, received_ts, _parse_number(data, where))]
        if fmt is PayloadFormat.JSON:
            assert fields  # checked by validate_payload_options
            return _parse_json(data, where, fields, timestamp_field, timestamp_format, received_ts)
        return _parse_influx(data, where, fields, received_ts)
    except (ValueError, OverflowError, RecursionError) as exc:
        # Safety net: the parsers raise DecodeError themselves; a library error slipping
        # past them must still be a counted bad payload, not a crashed source.
        raise DecodeError(f"{where}: {type(exc).__name__}: {exc}"[:300]) from exc


def _parse_number(data: bytes, where: str) -> float:
    try:
        text = data.decode("ascii").strip(_ASCII_SPACE)
    except UnicodeDecodeError:
        raise DecodeError(f"{where}: bare number payload is not ASCII") from None
    if not _DECIMAL.fullmatch(text):
        raise DecodeError(f"{where}: {text[:40]!r} is not a decimal number")
    value = float(text)
    if not math.isfinite(value):
        raise DecodeError(f"{where}: {text[:40]!r} is beyond float range")
    return value


def _kind(node: Any) -> str:
    if node is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(node), "a number"
    )


_MISSING = object()


def _lookup(doc: Any, path: str, where: str) -> Any:
    """The node at `path`, None if null on the way, `_MISSING` if a key or index is absent."""
    node = doc
    for step in parse_field_path(path):
        if node is None:
            return None
        if isinstance(step, str):
            if not isinstance(node, dict):
                raise DecodeError(
                    f"{where}: field {path!r}: expected an object at {step!r}, found {_kind(node)}"
                )
            node = node.get(step, _MISSING)
        else:
            if not isinstance(node, list):
                raise DecodeError(
                    f"{where}: field {path!r}: expected an array at [{step}], found {_kind(node)}"
                )
            node = node[step] if -len(node) <= step < len(node) else _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def _as_number(node: Any, what: str) -> float:
    if isinstance(node, bool):
        return float(node)
    if isinstance(node, int | float):
        try:
            value = float(node)
        except OverflowError:
            raise DecodeError(f"{what} is beyond float range") from None
        if math.isfinite(value):
            return value
        raise DecodeError(f"{what} is {value}, not a finite number")
    raise DecodeError(f"{what} is {_kind(node)}, expected a number")


def _parse_timestamp(node: Any, fmt: str, what: str) -> float:
    if fmt in ("epoch_s", "epoch_ms"):
        if isinstance(node, bool) or not isinstance(node, int | float):
            raise DecodeError(f"{what} is {_kind(node)}, expected a number of {fmt}")
        ts = _as_number(node, what)
        return ts / 1000.0 if fmt == "epoch_ms" else ts
    if not isinstance(node, str):
        raise DecodeError(f"{what} is {_kind(node)}, expected a {fmt} string")
    try:
        moment = datetime.fromisoformat(node) if fmt == "iso8601" else datetime.strptime(node, fmt)
    except ValueError:
        raise DecodeError(f"{what} {node[:40]!r} does not match {fmt}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _parse_json(
    data: bytes,
    where: str,
    fields: Mapping[str, str],
    timestamp_field: str | None,
    timestamp_format: str,
    received_ts: float,
) -> list[Sample]:
    try:
        doc = json.loads(data.decode("utf-8-sig"))  # some publishers prepend a BOM
    except UnicodeDecodeError:
        raise DecodeError(f"{where}: JSON payload is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise DecodeError(
            f"{where}: invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise DecodeError(f"{where}: JSON nested too deeply") from None

    ts = received_ts
    if timestamp_field is not None:
        node = _lookup(doc, timestamp_field, where)
        if node is _MISSING or node is None:
            raise DecodeError(f"{where}: timestamp field {timestamp_field!r} is missing")
        ts = _parse_timestamp(node, timestamp_format, f"{where}: timestamp field {timestamp_field!r}")

    samples: list[Sample] = []
    found = False
    for path, signal in fields.items():
        node = _lookup(doc, path, where)
        if node is _MISSING:
            continue
        found = True
        if node is not None:  # null: the publisher has no value this time
            samples.append((signal, ts, _as_number(node, f"{where}: field {path!r}")))
    if not found:
        raise DecodeError(f"{where}: none of the configured fields ({', '.join(fields)}) is in the payload")
    return samples


def _parse_influx(
    data: bytes, where: str, fields: Mapping[str, str] | None, received_ts: float
) -> list[Sample]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(f"{where}: line protocol payload is not UTF-8") from None
    try:
        parsed = parse_lines(text)
    except DecodeError as exc:
        raise DecodeError(f"{where}: {exc}") from None
    samples: list[Sample] = []
    for item in parsed:
        key = f"{item.measurement}.{item.field}"
        signal = fields.get(key) if fields else key
        if signal is not None:
            ts = received_ts if item.ts_ns is None else item.ts_ns / 1e9
            samples.append((signal, ts, item.value))
    if fields and parsed and not samples:
        seen = ", ".join(sorted({f"{i.measurement}.{i.field}" for i in parsed})[:5])
        raise DecodeError(f"{where}: no line protocol field matches the configured mapping (saw {seen})")
    return samples
