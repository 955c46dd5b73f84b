"""MQTT payload parsing: JSON, bare numbers, InfluxDB line protocol, and the only-DecodeError promise."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.codec import (
    DecodeError,
    PayloadFormat,
    parse_field_path,
    parse_payload,
    validate_payload_options,
)

RECEIVED = 1_700_000_123.5
FUZZ = settings(database=None, deadline=None, max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
# Random JSON trees are slow to generate; 1000 of them still reach every node kind on every path.
FUZZ_JSON = settings(FUZZ, max_examples=1000)


def parse_json(payload: bytes, fields: dict[str, str], **kwargs):
    return parse_payload(
        payload, PayloadFormat.JSON, topic="plant/eaf1", fields=fields, received_ts=RECEIVED, **kwargs
    )


def parse_number(payload: bytes):
    return parse_payload(
        payload, "number", topic="plant/eaf1/power", value_signal="power_kw", received_ts=RECEIVED
    )


def parse_influx(payload: bytes, fields: dict[str, str] | None = None):
    return parse_payload(payload, "INFLUX", topic="plant/lp", fields=fields, received_ts=RECEIVED)


# --- field paths -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("flow", ("flow",)),
        ("data.flow", ("data", "flow")),
        ("values[0]", ("values", 0)),
        ("a.b[2][1].c", ("a", "b", 2, 1, "c")),
        ("[1].v", (1, "v")),
        ("rows[-1]", ("rows", -1)),
        ("flow rate", ("flow rate",)),
    ],
)
def test_parse_field_path(path, steps):
    assert parse_field_path(path) == steps


@pytest.mark.parametrize("path", ["", "a..b", "a.", ".a", "a[x]", "a[1", "a]", "a.[0]", "a[0]b"])
def test_parse_field_path_rejects_malformed(path):
    with pytest.raises(ValueError, match="field path"):
        parse_field_path(path)


# --- JSON --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "fields", "expected"),
    [
        (b'{"flow": 12.5}', {"flow": "flow_nm3h"}, [("flow_nm3h", RECEIVED, 12.5)]),
        (b'{"data": {"flow": 3}}', {"data.flow": "flow"}, [("flow", RECEIVED, 3.0)]),
        (
            b'{"values": [1.5, 2.5]}',
            {"values[1]": "b", "values[0]": "a"},
            [("b", RECEIVED, 2.5), ("a", RECEIVED, 1.5)],
        ),
        (b'[{"v": 7}]', {"[0].v": "v"}, [("v", RECEIVED, 7.0)]),
        (b'{"rows": [1, 2, 9]}', {"rows[-1]": "last"}, [("last", RECEIVED, 9.0)]),
        (
            b'{"on": true, "off": false}',
            {"on": "a", "off": "b"},
            [("a", RECEIVED, 1.0), ("b", RECEIVED, 0.0)],
        ),
        (b'{"a": 1, "b": 2}', {"a": "a", "missing": "m"}, [("a", RECEIVED, 1.0)]),  # absent: skipped
        (b'{"a": null, "b": 2}', {"a": "a", "b": "b"}, [("b", RECEIVED, 2.0)]),  # null: skipped
        (b'{"a": null}', {"a": "a"}, []),  # present but null: no sample, no error
        (b'{"d": null}', {"d.x": "x"}, []),  # null on the way: same
        (b'{"big": 123456789012345678901234567890}', {"big": "b"}, [("b", RECEIVED, 1.2345678901234568e29)]),
        (b'\xef\xbb\xbf{"a": 1}', {"a": "a"}, [("a", RECEIVED, 1.0)]),  # UTF-8 BOM tolerated
        (b'  {"a": -1e-3}\n', {"a": "a"}, [("a", RECEIVED, -0.001)]),
    ],
)
def test_json_fields(payload, fields, expected):
    assert parse_json(payload, fields) == expected


@pytest.mark.parametrize(
    ("payload", "fields", "reason"),
    [
        (b"{", {"a": "a"}, "invalid JSON"),
        (b'{"a": 1', {"a": "a"}, "invalid JSON"),
        (b"\xff\xfe{}", {"a": "a"}, "not UTF-8"),
        (b'{"b": 1}', {"a": "a", "c.d": "d"}, r"none of the configured fields \(a, c.d\) is in the payload"),
        (b'{"a": "12.5"}', {"a": "a"}, "field 'a' is a string, expected a number"),
        (b'{"a": {"x": 1}}', {"a": "a"}, "field 'a' is an object, expected a number"),
        (b'{"a": [1]}', {"a": "a"}, "field 'a' is an array, expected a number"),
        (b'{"a": NaN}', {"a": "a"}, "field 'a' is nan, not a finite number"),
        (b'{"a": Infinity}', {"a": "a"}, "not a finite number"),
        (b'{"a": 1e400}', {"a": "a"}, "not a finite number"),
        (b'{"a": 1' + b"0" * 400 + b"}", {"a": "a"}, "beyond float range"),
        (
            b'{"data": [1, 2]}',
            {"data.flow": "f"},
            r"field 'data.flow': expected an object at 'flow', found an array",
        ),
        (b'{"values": {"0": 1}}', {"values[0]": "v"}, r"expected an array at \[0\], found an object"),
        (b"[" * 100_000, {"a": "a"}, "nested too deeply|invalid JSON"),
        (b"   ", {"a": "a"}, "empty payload"),
        (b"", {"a": "a"}, "empty payload"),
    ],
)
def test_json_errors_are_decode_errors_with_a_reason(payload, fields, reason):
    with pytest.raises(DecodeError, match=reason) as info:
        parse_json(payload, fields)
    assert str(info.value).startswith("topic 'plant/eaf1': ")


@pytest.mark.parametrize(
    ("ts_json", "fmt", "expected"),
    [
        ("1700000000", "epoch_s", 1_700_000_000.0),
        ("1700000000.25", "epoch_s", 1_700_000_000.25),
        ("1700000000250", "epoch_ms", 1_700_000_000.25),
        ('"2023-11-14T22:13:20Z"', "iso8601", 1_700_000_000.0),
        ('"2023-11-14T23:13:20+01:00"', "iso8601", 1_700_000_000.0),
        ('"2023-11-14T22:13:20.5"', "iso8601", 1_700_000_000.5),  # naive -> UTC
        ('"14/11/2023 22:13:20"', "%d/%m/%Y %H:%M:%S", 1_700_000_000.0),
        ('"2023-11-14 23:13:20 +0100"', "%Y-%m-%d %H:%M:%S %z", 1_700_000_000.0),
    ],
)
def test_json_timestamp_formats(ts_json, fmt, expected):
    payload = f'{{"meta": {{"ts": {ts_json}}}, "v": 4}}'.encode()
    samples = parse_json(payload, {"v": "v"}, timestamp_field="meta.ts", timestamp_format=fmt)
    assert samples == [("v", expected, 4.0)]


def test_naive_iso_timestamp_is_utc():
    expected = datetime(2024, 3, 1, 12, 0, tzinfo=UTC).timestamp()
    samples = parse_json(
        b'{"t": "2024-03-01T12:00:00", "v": 1}', {"v": "v"}, timestamp_field="t", timestamp_format="iso8601"
    )
    assert samples[0][1] == expected


@pytest.mark.parametrize(
    ("payload", "fmt", "reason"),
    [
        (b'{"v": 1}', "epoch_s", "timestamp field 'ts' is missing"),
        (b'{"v": 1, "ts": null}', "epoch_s", "timestamp field 'ts' is missing"),
        (b'{"v": 1, "ts": "1700000000"}', "epoch_s", "is a string, expected a number of epoch_s"),
        (b'{"v": 1, "ts": true}', "epoch_ms", "is a boolean, expected a number of epoch_ms"),
        (b'{"v": 1, "ts": 1e999}', "epoch_s", "not a finite number"),
        (b'{"v": 1, "ts": 1700000000}', "iso8601", "is a number, expected a iso8601 string"),
        (b'{"v": 1, "ts": "yesterday"}', "iso8601", "'yesterday' does not match iso8601"),
        (b'{"v": 1, "ts": "2023-13-40 99:00:00"}', "%Y-%m-%d %H:%M:%S", "does not match"),
    ],
)
def test_json_timestamp_errors(payload, fmt, reason):
    with pytest.raises(DecodeError, match=reason):
        parse_json(payload, {"v": "v"}, timestamp_field="ts", timestamp_format=fmt)


# --- bare numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "value"),
    [
        (b"12.5", 12.5),
        (b"  -3 \r\n", -3.0),
        (b"+7", 7.0),
        (b".5", 0.5),
        (b"5.", 5.0),
        (b"1e3", 1000.0),
        (b"-2.5E-2", -0.025),
        (b"\t0\t", 0.0),
    ],
)
def test_bare_number(payload, value):
    assert parse_number(payload) == [("power_kw", RECEIVED, value)]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty payload"),
        (b" \n", "empty payload"),
        (b"abc", "'abc' is not a decimal number"),
        (b"nan", "not a decimal number"),
        (b"inf", "not a decimal number"),
        (b"1_000", "not a decimal number"),
        (b"0x10", "not a decimal number"),
        (b"1 2", "not a decimal number"),
        (b"1,5", "not a decimal number"),
        (b"1e999", "beyond float range"),
        (b"\xc2\xa012", "not ASCII"),
        (b"\x1c12", "not a decimal number"),  # str.strip() would eat \x1c; ASCII whitespace only
    ],
)
def test_bare_number_errors(payload, reason):
    with pytest.raises(DecodeError, match=reason):
        parse_number(payload)


# --- InfluxDB line protocol ---------------------------------------------------------------------

TS = 1_700_000_000_000_000_000


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"eaf power=12.5", [("eaf.power", RECEIVED, 12.5)]),
        (f"eaf power=12.5 {TS}".encode(), [("eaf.power", 1_700_000_000.0, 12.5)]),
        (b"eaf,unit=1,site=a power=1,gas=2i", [("eaf.power", RECEIVED, 1.0), ("eaf.gas", RECEIVED, 2.0)]),
        (
            b"eaf n=-42i,u=42u,b=t,c=FALSE,d=True",
            [
                ("eaf.n", RECEIVED, -42.0),
                ("eaf.u", RECEIVED, 42.0),
                ("eaf.b", RECEIVED, 1.0),
                ("eaf.c", RECEIVED, 0.0),
                ("eaf.d", RECEIVED, 1.0),
            ],
        ),
        (b'eaf state="on, really",power=3', [("eaf.power", RECEIVED, 3.0)]),  # strings skipped
        (b'eaf s="a \\" b \\\\",p=1e3 5', [("eaf.p", 5e-9, 1000.0)]),
        (b"my\\ furnace,tag\\,k=v\\ 1 fl\\=ow\\ rate=2", [("my furnace.fl=ow rate", RECEIVED, 2.0)]),
        (b"a\\,b c=1", [("a,b.c", RECEIVED, 1.0)]),
        (b"a\\=b c=1", [("a\\=b.c", RECEIVED, 1.0)]),  # '=' is not escaped in a measurement
        (b"a x=1\n\n# comment\r\nb y=2 -1000000000\r\n", [("a.x", RECEIVED, 1.0), ("b.y", -1.0, 2.0)]),
        (b'only text="x"', []),
    ],
)
def test_line_protocol_default_mapping(payload, expected):
    assert parse_influx(payload) == expected


def test_line_protocol_configured_mapping_picks_fields():
    payload = f"eaf,unit=1 power=12.5,gas=3i {TS}\nladle temp=1600\n".encode()
    samples = parse_influx(payload, {"eaf.power": "eaf_power_kw", "ladle.temp": "ladle_temp_c"})
    assert samples == [("eaf_power_kw", 1_700_000_000.0, 12.5), ("ladle_temp_c", RECEIVED, 1600.0)]


def test_line_protocol_mapping_that_matches_nothing_is_a_decode_error():
    with pytest.raises(
        DecodeError, match=r"no line protocol field matches the configured mapping \(saw eaf.gas, eaf.power\)"
    ):
        parse_influx(b"eaf power=1,gas=2", {"bof.power": "p"})


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"eaf", "line 1: expected a space before the fields"),
        (b"eaf ", "line 1: missing field key"),
        (b"eaf power", "expected '=' after field key 'power'"),
        (b"eaf power=", "field 'power' has no value"),
        (b"eaf power=abc", "'abc' is not a float, integer"),
        (b"eaf power=1.5i", "is not a float, integer"),
        (b"eaf power=-1u", "is not a float, integer"),
        (b"eaf power=9223372036854775808i", "outside the int64 range"),
        (b"eaf power=18446744073709551616u", "outside the uint64 range"),
        (b"eaf power=1e999", "out of range"),
        (b"eaf power=NaN", "is not a float"),
        (b'eaf s="open', "unterminated string"),
        (b"eaf power=1 12.5", "timestamp '12.5' is not an integer"),
        (b"eaf power=1 9223372036854775808", "outside the int64 nanosecond range"),
        (b"eaf power=1 1 2", "timestamp '1 2'"),
        (b",t=1 power=1", "missing measurement"),
        (b"eaf,t power=1", "expected '=' after a tag key"),
        (b"eaf,=v power=1", "empty tag key or value"),
        (b"ok x=1\neaf power=oops", "line 2: field 'power'"),
        (b"eaf power=1,", "missing field key"),
        (b"\xff x=1", "not UTF-8"),
    ],
)
def test_line_protocol_errors(payload, reason):
    with pytest.raises(DecodeError, match=reason) as info:
        parse_influx(payload)
    assert str(info.value).startswith("topic 'plant/lp': ")


# --- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "kwargs", "message"),
    [
        ("xml", {}, "is not a valid PayloadFormat"),
        ("json", {}, "JSON payloads need fields"),
        ("json", {"fields": {"a..b": "x"}}, "field path 'a..b'"),
        (
            "json",
            {"fields": {"a": "x"}, "timestamp_field": "t", "timestamp_format": "epoch_us"},
            "timestamp_format 'epoch_us'",
        ),
        ("number", {}, "need value_signal"),
        (
            "number",
            {"value_signal": "p", "timestamp_field": "t"},
            "timestamp_field applies to JSON payloads only",
        ),
    ],
)
def test_bad_options_are_value_errors_at_startup(fmt, kwargs, message):
    with pytest.raises(ValueError, match=message):
        validate_payload_options(fmt, **kwargs)
    with pytest.raises(ValueError, match=message):
        parse_payload(b"1", fmt, topic="t", received_ts=0.0, **kwargs)


def test_payload_format_is_case_insensitive():
    assert PayloadFormat("Json") is PayloadFormat.JSON
    assert PayloadFormat("INFLUX") is PayloadFormat.INFLUX


def test_payload_must_be_bytes():
    with pytest.raises(TypeError, match="payload must be bytes"):
        parse_payload("12", "number", topic="t", value_signal="p", received_ts=0.0)  # type: ignore[arg-type]
    assert parse_payload(bytearray(b"12"), "number", topic="t", value_signal="p", received_ts=0.0) == [
        ("p", 0.0, 12.0)
    ]


# --- fuzzing: DecodeError or a valid list, nothing else -------------------------------------------


def assert_valid(samples, signals=None):
    assert isinstance(samples, list)
    for sample in samples:
        signal, ts, value = sample
        assert isinstance(signal, str) and (signals is None or signal in signals)
        assert isinstance(ts, float) and math.isfinite(ts)
        assert isinstance(value, float) and math.isfinite(value)


def parse_all_formats(payload: bytes) -> int:
    """Parse with every format; return how many accepted it."""
    accepted = 0
    # One path that does not fit the document's shape rejects the whole payload, so
    # object-shaped and array-shaped configurations are tried separately.
    fields = {"a": "a", "data.flow": "flow", "values[0]": "v0", "x": "x"}
    array_fields = {"[0]": "first", "[1].x": "x"}
    attempts = [
        lambda: parse_json(payload, fields),
        lambda: parse_json(payload, array_fields),
        lambda: parse_json(payload, fields, timestamp_field="ts", timestamp_format="iso8601"),
        lambda: parse_json(payload, fields, timestamp_field="t[0]", timestamp_format="%Y-%m-%d"),
        lambda: parse_json(payload, fields, timestamp_field="ts", timestamp_format="epoch_ms"),
        lambda: parse_number(payload),
        lambda: parse_influx(payload),
        lambda: parse_influx(payload, {"m.f": "mf"}),
    ]
    for attempt in attempts:
        try:
            samples = attempt()
        except DecodeError:
            continue
        assert_valid(samples)
        accepted += 1
    return accepted


@pytest.mark.parametrize(
    ("payload", "accepted"),
    [
        (b'{"a": 1, "ts": "2024-01-01T00:00:00Z", "t": ["2024-01-01"]}', 3),
        (b'{"a": 1, "ts": 1700000000000}', 2),
        (b'[1, {"x": 2}]', 1),
        (b"12", 1),  # valid JSON too, but no configured path fits a number
        (b"m f=1", 2),
        (b"\x00", 0),
    ],
)
def test_fuzz_harness_accepts_good_payloads(payload, accepted):
    """The fuzz tests below prove nothing if every payload is rejected; check the harness."""
    assert parse_all_formats(payload) == accepted


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_only_decode_error(payload):
    parse_all_formats(payload)


@FUZZ
@given(st.text(alphabet='mf=, \\"\n#-+.0123456789eEiutrFTalsu\r\t', max_size=60))
def test_fuzz_line_protocol_like_text_only_decode_error(text):
    parse_all_formats(text.encode())


lp_names = st.text(alphabet="abcXYZ_09.,= é", min_size=1, max_size=8).filter(lambda n: not n.startswith("#"))
lp_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(lambda v: (repr(v), v)),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: (f"{v}i", float(v))),
    st.integers(0, 2**64 - 1).map(lambda v: (f"{v}u", float(v))),
    st.sampled_from([("t", 1.0), ("FALSE", 0.0), ("True", 1.0)]),
    st.text(alphabet='ab ,="\\', max_size=6).map(
        lambda v: ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"', None)
    ),
)


def lp_escape(name: str, chars: str) -> str:
    return "".join("\\" + ch if ch in chars else ch for ch in name)


@settings(database=None, deadline=None, max_examples=500)
@given(
    lp_names,
    st.dictionaries(lp_names, lp_names, max_size=3),
    st.lists(st.tuples(lp_names, lp_values), min_size=1, max_size=4),
    st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
)
def test_line_protocol_parses_what_influx_escaping_produces(measurement, tags, fields, ts_ns):
    """Build lines the way an InfluxDB client escapes them; every numeric field comes back exactly."""
    line = lp_escape(measurement, ", ")
    line += "".join(f",{lp_escape(k, ',= ')}={lp_escape(v, ',= ')}" for k, v in tags.items())
    line += " " + ",".join(f"{lp_escape(key, ',= ')}={text}" for key, (text, _) in fields)
    if ts_ns is not None:
        line += f" {ts_ns}"
    ts = RECEIVED if ts_ns is None else ts_ns / 1e9
    expected = [(f"{measurement}.{key}", ts, value) for key, (_, value) in fields if value is not None]
    assert parse_influx(line.encode()) == expected


json_keys = st.sampled_from(["a", "data", "flow", "values", "ts", "t", "x", "zz"])
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, 5e-324]),
    st.text(max_size=30),
    st.sampled_from(["2024-01-01T00:00:00Z", "2024-01-01", "", "-1"]),
)
json_documents = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(json_keys, children, max_size=5),
    ),
    max_leaves=25,
)
# Mostly objects at the top holding leaves as often as subtrees, so the configured paths
# ("a", "data.flow", "values[0]", ...) meet every kind of node, NaN and Infinity included.
json_nodes = st.one_of(json_leaves, json_documents)
json_payloads = st.one_of(
    json_documents,
    st.dictionaries(json_keys, json_nodes, max_size=6),
    st.dictionaries(
        json_keys, st.dictionaries(json_keys, json_nodes, max_size=3) | st.lists(json_nodes, max_size=3)
    ),
)


@FUZZ_JSON
@given(json_payloads)
def test_fuzz_random_json_structures_only_decode_error(doc):
    payload = json.dumps(doc, allow_nan=True).encode()
    parse_all_formats(payload)


@settings(database=None, deadline=None, max_examples=300)
@given(st.dictionaries(st.sampled_from(["a", "b"]), st.floats(allow_nan=False, allow_infinity=False)))
def test_json_numbers_come_back_exactly(doc):
    fields = {"a": "sig_a", "b": "sig_b"}
    try:
        samples = parse_json(json.dumps(doc).encode(), fields)
    except DecodeError:
        assert not doc  # only a payload with none of the fields is rejected
        return
    assert samples == [(signal, RECEIVED, doc[path]) for path, signal in fields.items() if path in doc]
