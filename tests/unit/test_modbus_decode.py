"""The compiled block decoder gives what decode_block + apply_points give, point for point."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from gateway.codec import DataType, apply_points, decode_block, encode_value
from gateway.core.errors import DecodeError
from gateway.core.model import SampleQuality
from gateway.settings.site import ModbusPointConfig
from gateway.sources.modbus_decode import compile_block
from gateway.sources.modbus_plan import ReadBlock, plan_reads, point_width

TYPES = ["INT16", "UINT16", "INT32", "UINT32", "INT64", "UINT64", "FLOAT16", "FLOAT32", "FLOAT64", "BIT", "STRING"]
ORDERS = ["ABCD", "DCBA", "BADC", "CDAB"]


def reference(block: ReadBlock, points: list[ModbusPointConfig], words: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The decoder before it was compiled: one decode_block and one apply_points per rule."""
    values = np.full(len(points), np.nan)
    quality = np.full(len(points), SampleQuality.COMM_ERROR, dtype=np.uint8)
    by_rule: dict[tuple[str, str], list[int]] = {}
    for i in block.points:
        p = points[i]
        if p.kind in ("coil", "discrete"):
            by_rule.setdefault(("BITS", "ABCD"), []).append(i)
        elif p.type == "STRING":
            quality[i] = SampleQuality.DECODE_ERROR
        else:
            by_rule.setdefault((p.type, p.byte_order), []).append(i)
    block_words = np.asarray(words, dtype=np.uint16)
    for (rule, order), idx in by_rule.items():
        ps = [points[i] for i in idx]
        offsets = np.array([block.offset(p.address) for p in ps], dtype=np.intp)
        try:
            if rule == "BITS":
                if offsets.max() >= block_words.size:
                    raise DecodeError("short")
                raw = block_words[offsets]
            else:
                bits = np.array([p.bit for p in ps], dtype=np.intp) if rule == "BIT" else None
                raw = decode_block(block_words, offsets, DataType(rule), order, bits=bits)
        except DecodeError:
            quality[idx] = SampleQuality.DECODE_ERROR
            continue
        opt = lambda xs: None if all(x is None for x in xs) else np.array([np.nan if x is None else x for x in xs])  # noqa: E731
        v, q = apply_points(
            raw,
            scale=np.array([p.scale for p in ps]),
            offset=np.array([p.offset for p in ps]),
            sentinel=opt([p.sentinel for p in ps]),
            plausible_min=opt([p.min for p in ps]),
            plausible_max=opt([p.max for p in ps]),
        )
        values[idx], quality[idx] = v, q
    return values, quality


def compiled(block: ReadBlock, points: list[ModbusPointConfig], words: list[int]) -> tuple[np.ndarray, np.ndarray]:
    values = np.full(len(points), np.nan)
    quality = np.full(len(points), SampleQuality.COMM_ERROR, dtype=np.uint8)
    compile_block(block, points).decode_into(words, values, quality)
    return values, quality


def assert_same(block: ReadBlock, points: list[ModbusPointConfig], words: list[int]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither path may warn on inf, NaN or overflow
        want_v, want_q = reference(block, points, words)
        got_v, got_q = compiled(block, points, words)
    assert_array_equal(got_q, want_q)
    assert_array_equal(got_v, want_v)  # NaN where NaN, every other value exactly


@st.composite
def point_configs(draw: st.DrawFn) -> ModbusPointConfig:
    kind = draw(st.sampled_from(["holding", "holding", "holding", "input", "coil"]))
    type_ = draw(st.sampled_from(["BIT", "UINT16"] if kind == "coil" else TYPES))
    bounds = st.none() | st.floats(-1e6, 1e6, allow_nan=False)
    low, high = draw(bounds), draw(bounds)
    if low is not None and high is not None and low > high:
        low, high = high, low
    return ModbusPointConfig(
        signal="s",
        address=draw(st.integers(0, 24)),
        register=kind,
        type=type_,
        byte_order=draw(st.sampled_from(ORDERS)),
        bit=draw(st.integers(0, 15)) if type_ == "BIT" and kind != "coil" else None,
        length=draw(st.integers(1, 3)) if type_ == "STRING" else None,
        scale=draw(st.sampled_from([1.0, 1.0, 0.1, -2.0, 0.0, 1e300])),
        offset=draw(st.sampled_from([0.0, 0.0, 5.0, -273.15])),
        sentinel=draw(st.none() | st.sampled_from([0.0, 1.0, 65535.0, 32767.0, -1.0, math.nan])),
        min=low,
        max=high,
    )


# words a device may send: anything 0..65535, biased towards the edges and float specials
WORD = st.integers(0, 0xFFFF) | st.sampled_from([0, 1, 0xFFFF, 0x7FFF, 0x8000, 0x7F80, 0x7FC0, 0xFF80, 0x7C00])


@settings(max_examples=150, deadline=None)
@given(points=st.lists(point_configs(), min_size=1, max_size=12), data=st.data())
def test_compiled_decoder_matches_decode_block_and_apply_points(points: list[ModbusPointConfig], data: st.DataObject) -> None:
    for block in plan_reads(points, max_registers=40, max_gap=data.draw(st.integers(0, 8))):
        words = data.draw(st.lists(WORD, min_size=block.count, max_size=block.count))
        assert_same(block, points, words)


def pt(address: int, type_: str = "FLOAT32", **kw: object) -> ModbusPointConfig:
    return ModbusPointConfig(signal="s", address=address, type=type_, **kw)  # type: ignore[arg-type]


def floats(values: list[float], order: str = "ABCD") -> list[int]:
    out: list[int] = []
    for v in values:
        out += encode_value(v, "FLOAT32", order)
    return out


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
