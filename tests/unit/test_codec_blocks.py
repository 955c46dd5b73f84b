"""The block decoder (gateway/codec/blocks.py) against the reference decoder
(tests/oracles/modbus_reference.py), point for point and quality for quality."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from gateway.codec import compile_block, decode_registers, encode_value, point_width
from gateway.core.errors import DecodeError
from gateway.core.model import SampleQuality
from gateway.settings.site import ModbusPointConfig
from gateway.sources.modbus_plan import ReadBlock, plan_reads
from tests.oracles.modbus_reference import decode_point, decode_read

TYPES = ["INT16", "UINT16", "INT32", "UINT32", "INT64", "UINT64", "FLOAT16", "FLOAT32", "FLOAT64", "BIT", "STRING"]
ORDERS = ["ABCD", "DCBA", "BADC", "CDAB"]


def compiled(block: ReadBlock, points: list[ModbusPointConfig], words: list[int]) -> tuple[np.ndarray, np.ndarray]:
    values = np.full(len(points), np.nan)
    quality = np.full(len(points), SampleQuality.COMM_ERROR, dtype=np.uint8)
    compile_block(block, points).decode_into(words, values, quality)
    return values, quality


def assert_same(block: ReadBlock, points: list[ModbusPointConfig], words: list[int]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither path may warn on inf, NaN or overflow
        want_v, want_q = decode_read(block, points, words)
        got_v, got_q = compiled(block, points, words)
    assert_array_equal(got_q, want_q)
    assert_array_equal(got_v, want_v)  # NaN where NaN, every other value exactly


def pt(address: int, type_: str = "FLOAT32", **kw: object) -> ModbusPointConfig:
    return ModbusPointConfig(signal="s", address=address, type=type_, **kw)  # type: ignore[arg-type]


def floats(values: list[float], order: str = "ABCD") -> list[int]:
    out: list[int] = []
    for v in values:
        out += encode_value(v, "FLOAT32", order)
    return out


@st.composite
def point_configs(draw: st.DrawFn, type_: str | None = None, order: str | None = None) -> ModbusPointConfig:
    """A point of any register table, type and rules; of a register of `type_` and `order` if given."""
    kind = "holding" if type_ else draw(st.sampled_from(["holding", "holding", "holding", "input", "coil"]))
    type_ = type_ or draw(st.sampled_from(["BIT", "UINT16"] if kind == "coil" else TYPES))
    bounds = st.none() | st.floats(-1e6, 1e6, allow_nan=False)
    low, high = draw(bounds), draw(bounds)
    if low is not None and high is not None and low > high:
        low, high = high, low
    return ModbusPointConfig(
        signal="s",
        address=draw(st.integers(0, 24)),
        register=kind,
        type=type_,
        byte_order=order or draw(st.sampled_from(ORDERS)),
        bit=draw(st.integers(0, 15)) if type_ == "BIT" and kind != "coil" else None,
        length=draw(st.integers(1, 3)) if type_ == "STRING" else None,
        # a third of the points have no rule at all: groups of them take the decoder's plain path
        **(
            {}
            if draw(st.integers(0, 2)) == 0
            else {
                "scale": draw(st.sampled_from([1.0, 1.0, 0.1, -2.0, 1e300])),
                "offset": draw(st.sampled_from([0.0, 0.0, 5.0, -273.15])),
                "sentinel": draw(st.none() | st.sampled_from([0.0, 1.0, 65535.0, 32767.0, -1.0, math.nan])),
                "min": low,
                "max": high,
            }
        ),
    )


# words a device may send: anything 0..65535, biased towards the edges and the words that make
# float specials (inf, NaN of FLOAT32/64/16), as sent and byte-swapped
SPECIALS = [0x7F80, 0x7FC0, 0xFF80, 0x7FF0, 0x7FF8, 0x7C00, 0x7E00, 0xFC00]
WORD = st.integers(0, 0xFFFF) | st.sampled_from(
    [0, 1, 0xFFFF, 0x7FFF, 0x8000, *SPECIALS, *(((w & 0xFF) << 8) | (w >> 8) for w in SPECIALS)]
)


def replies(count: int) -> st.SearchStrategy[list[int]]:
    """What comes back for a read of `count` registers: mostly all of them; sometimes a short
    reply or a word outside 0..65535, whose points are DECODE_ERROR."""
    full = st.lists(WORD, min_size=count, max_size=count)
    short = st.lists(WORD, max_size=count - 1)
    broken = full.flatmap(lambda ws: st.integers(0, count - 1).map(lambda i: [*ws[:i], 0x10000, *ws[i + 1 :]]))
    return st.one_of(full, full, full, short, broken)


@settings(max_examples=150, deadline=None)
@given(points=st.lists(point_configs(), min_size=1, max_size=12), data=st.data())
def test_block_decoder_matches_the_reference(points: list[ModbusPointConfig], data: st.DataObject) -> None:
    for block in plan_reads(points, max_registers=40, max_gap=data.draw(st.integers(0, 8))):
        assert_same(block, points, data.draw(replies(block.count)))


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("type_", TYPES)
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_every_type_and_byte_order_matches_the_reference(type_: str, order: str, data: st.DataObject) -> None:
    # every combination for sure, not by chance: points of one type and order (packed, with gaps,
    # overlapping), random scale, offset, sentinel and bounds
    points = data.draw(st.lists(point_configs(type_, order), min_size=1, max_size=6))
    for block in plan_reads(points, max_registers=40, max_gap=data.draw(st.integers(0, 4))):
        assert_same(block, points, data.draw(replies(block.count)))


NUMERIC = [t for t in TYPES if t not in ("BIT", "STRING")]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("type_", NUMERIC)
def test_each_point_rule_flags_as_the_reference(type_: str, order: str) -> None:
    width = point_width(pt(0, type_))
    rules: list[tuple[dict[str, object], float, SampleQuality]] = [
        ({}, 7.0, SampleQuality.GOOD),
        ({"scale": 0.5, "offset": 1.0}, 4.5, SampleQuality.GOOD),
        ({"sentinel": 7.0, "scale": 10.0}, math.nan, SampleQuality.NO_READING),  # on the raw value
        ({"max": 6.0}, 7.0, SampleQuality.OUT_OF_RANGE),  # kept, never clamped
        ({"min": 15.0, "scale": 2.0}, 14.0, SampleQuality.OUT_OF_RANGE),  # bounds in engineering units
        ({"min": 7.0, "max": 7.0}, 7.0, SampleQuality.GOOD),  # bounds are inclusive
    ]
    points = [pt(i * width, type_, byte_order=order, **kw) for i, (kw, _, _) in enumerate(rules)]
    words = encode_value(7 if type_ in NUMERIC[:6] else 7.0, type_, order) * len(rules)
    (block,) = plan_reads(points, max_registers=125, max_gap=0)
    values, quality = compiled(block, points, words)
    assert quality.tolist() == [q for _, _, q in rules]
    assert_array_equal(values, [v for _, v, _ in rules])
    assert_same(block, points, words)
    if type_.startswith("FLOAT"):  # a NaN or infinite reading is a decode error, scaled or not
        specials = encode_value(math.nan, type_, order) + encode_value(-math.inf, type_, order)
        for kw in ({}, {"scale": 2.0}):  # the plain path and the rules path
            points = [pt(0, type_, byte_order=order, **kw), pt(width, type_, byte_order=order, **kw)]
            (block,) = plan_reads(points, max_registers=125, max_gap=0)
            assert compiled(block, points, specials)[1].tolist() == [SampleQuality.DECODE_ERROR] * 2
            assert_same(block, points, specials)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("word", [0x0000, 0xFFFF, 0xA5C3, 0x0180])
def test_every_bit_of_a_register_matches_the_reference(word: int, order: str) -> None:
    points = [pt(0, "BIT", bit=b, byte_order=order) for b in range(16)]
    (block,) = plan_reads(points, max_registers=125, max_gap=0)
    values, quality = compiled(block, points, [word])
    as_sent = word if order in ("ABCD", "CDAB") else ((word & 0xFF) << 8) | (word >> 8)  # BA: bytes swapped
    assert values.tolist() == [(as_sent >> b) & 1 for b in range(16)]
    assert (quality == SampleQuality.GOOD).all()
    assert_same(block, points, [word])


def same_value(a: object, b: object) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b and type(a) is type(b)


@settings(max_examples=400, deadline=None)
@given(type_=st.sampled_from(TYPES), order=st.sampled_from(ORDERS), data=st.data())
def test_one_point_decodes_as_the_reference(type_: str, order: str, data: st.DataObject) -> None:
    # decode_registers (the decode, probe and poll commands) is the block decoder on one point
    bit = data.draw(st.integers(0, 15)) if type_ == "BIT" else None
    length = data.draw(st.integers(1, 4)) if type_ == "STRING" else None
    ascii_word = st.integers(0, 0x7F).flatmap(lambda hi: st.integers(0, 0x7F).map(lambda lo: hi << 8 | lo))
    word = (WORD | ascii_word) if type_ == "STRING" else WORD
    n = point_width(pt(0, type_, bit=bit, length=length))
    words = data.draw(st.lists(word, min_size=n, max_size=n))
    try:
        want = decode_point(words, type_, order, bit=bit, length=length)
    except DecodeError:  # a non-ASCII byte in a STRING
        with pytest.raises(DecodeError):
            decode_registers(words, type_, order, bit=bit, length=length)
        return
    assert same_value(decode_registers(words, type_, order, bit=bit, length=length), want)


def test_packed_floats_decode_and_flag_nan_inf_and_range() -> None:
    points = [pt(0, max=100.0), pt(2), pt(4), pt(6, sentinel=0.0)]
    (block,) = plan_reads(points, max_registers=125, max_gap=0)
    values, quality = compiled(block, points, floats([150.0, math.nan, math.inf, 0.0]))
    assert list(quality) == [
        SampleQuality.OUT_OF_RANGE,  # kept, never clamped
        SampleQuality.DECODE_ERROR,
        SampleQuality.DECODE_ERROR,
        SampleQuality.NO_READING,
    ]
    assert values[0] == 150.0
    assert np.isnan(values[1:]).all()  # NaN, never 0, for every value that is not a reading


@pytest.mark.parametrize("order", ORDERS)
def test_points_out_of_list_order_land_in_their_own_columns(order: str) -> None:
    # the batch columns follow the point list, not the addresses: the decoder gathers
    points = [pt(4, byte_order=order), pt(0, byte_order=order, scale=2.0), pt(2, byte_order=order, offset=1.0)]
    (block,) = plan_reads(points, max_registers=125, max_gap=0)
    values, quality = compiled(block, points, floats([1.5, 2.5, 3.5], order))
    assert list(values) == [3.5, 3.0, 3.5]
    assert (quality == SampleQuality.GOOD).all()
    assert_same(block, points, floats([1.5, 2.5, 3.5], order))


def test_a_short_reply_makes_the_missing_points_decode_errors() -> None:
    points = [pt(0, "UINT16"), pt(1, "UINT32"), pt(3, "FLOAT32")]
    (block,) = plan_reads(points, max_registers=125, max_gap=0)
    values, quality = compiled(block, points, [7, 0, 9])
    assert values[0] == 7 and quality[0] == SampleQuality.GOOD
    assert values[1] == 9 and quality[1] == SampleQuality.GOOD
    assert quality[2] == SampleQuality.DECODE_ERROR and np.isnan(values[2])
    assert_same(block, points, [7, 0, 9])


def test_a_word_outside_0_to_65535_is_a_decode_error_not_a_crash() -> None:
    points = [pt(0, "UINT16"), pt(1, "UINT16"), pt(2, "STRING", length=1)]
    (block,) = plan_reads(points, max_registers=125, max_gap=0)
    values, quality = compiled(block, points, [1, 70000, 65])
    assert (quality == SampleQuality.DECODE_ERROR).all()
    assert np.isnan(values).all()


def test_bits_of_registers_and_coils() -> None:
    points = [
        pt(0, "BIT", bit=0),
        pt(0, "BIT", bit=15, byte_order="BADC"),
        ModbusPointConfig(signal="c", address=0, register="coil", type="BIT"),
        ModbusPointConfig(signal="c", address=1, register="coil", type="BIT", sentinel=1.0),
    ]
    by_kind = {b.kind: b for b in plan_reads(points, max_registers=125, max_gap=0)}
    got = {}
    values, quality = compiled(by_kind["holding"], points, [0x0081])
    got["reg"] = (values[:2].tolist(), quality[:2].tolist())
    values, quality = compiled(by_kind["coil"], points, [1, 1])
    got["coil"] = (values[2:].tolist(), quality[2:].tolist())
    # 0x0081 byte-swapped is 0x8100: bit 15 set
    assert got["reg"] == ([1.0, 1.0], [SampleQuality.GOOD, SampleQuality.GOOD])
    assert got["coil"][1] == [SampleQuality.GOOD, SampleQuality.NO_READING]
    assert got["coil"][0][0] == 1.0 and math.isnan(got["coil"][0][1])
    assert_same(by_kind["holding"], points, [0x0081])
    assert_same(by_kind["coil"], points, [1, 1])


def test_block_widths_follow_the_plan() -> None:
    # the decoder's `need` is the plan's width: a block is exactly as long as its widest point reaches
    points = [pt(0, "FLOAT64"), pt(4, "STRING", length=3), pt(7, "INT16")]
    (block,) = plan_reads(points, max_registers=125, max_gap=0)
    assert block.count == sum(point_width(p) for p in points)
    words = [*encode_value(2.5, "FLOAT64", "ABCD"), 0x4142, 0x4300, 0, 0xFFFF]
    values, quality = compiled(block, points, words)
    assert values[0] == 2.5 and values[2] == -1.0
    assert quality[1] == SampleQuality.DECODE_ERROR  # a label, not a sample value
