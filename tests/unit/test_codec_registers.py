"""Register words <-> values, checked against hand-checked vectors.

`decode_registers` and `encode_value` are the product's (decoding runs the block decoder on one
point); `decode_block`, `apply_point` and `apply_points` are the reference decoder's
(tests/oracles/modbus_reference.py): an oracle is only worth what its own vectors show, so the
same vectors and rules hold it here. tests/unit/test_codec_blocks.py holds the block decoder to it.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from gateway.codec import (
    ByteOrder,
    DataType,
    DecodeError,
    SampleQuality,
    decode_registers,
    encode_value,
    register_count,
)
from gateway.core import model
from gateway.core.errors import GatewayError
from tests.oracles.modbus_reference import apply_point, apply_points, decode_block

ABCD, CDAB, BADC, DCBA = ByteOrder.ABCD, ByteOrder.CDAB, ByteOrder.BADC, ByteOrder.DCBA
FAST = settings(database=None, deadline=None, max_examples=300)

# (dtype, byte order, value, words lowest address first). Checked by hand from the IEEE/two's
# complement bytes: 123.456f = 0x42F6E979, 1.0 = 0x3FF0000000000000, 1.5 half = 0x3E00.
VECTORS = [
    (DataType.FLOAT32, ABCD, np.float32(123.456).item(), [0x42F6, 0xE979]),
    (DataType.FLOAT32, CDAB, np.float32(123.456).item(), [0xE979, 0x42F6]),
    (DataType.FLOAT32, BADC, np.float32(123.456).item(), [0xF642, 0x79E9]),
    (DataType.FLOAT32, DCBA, np.float32(123.456).item(), [0x79E9, 0xF642]),
    (DataType.FLOAT32, ABCD, -1.0, [0xBF80, 0x0000]),
    (DataType.INT32, ABCD, -2, [0xFFFF, 0xFFFE]),
    (DataType.INT32, CDAB, -2, [0xFFFE, 0xFFFF]),
    (DataType.INT32, BADC, -2, [0xFFFF, 0xFEFF]),
    (DataType.INT32, DCBA, -2, [0xFEFF, 0xFFFF]),
    (DataType.UINT32, ABCD, 0x12345678, [0x1234, 0x5678]),
    (DataType.UINT32, CDAB, 0x12345678, [0x5678, 0x1234]),
    (DataType.UINT32, BADC, 0x12345678, [0x3412, 0x7856]),
    (DataType.UINT32, DCBA, 0x12345678, [0x7856, 0x3412]),
    (DataType.INT16, ABCD, -2, [0xFFFE]),
    (DataType.INT16, CDAB, -2, [0xFFFE]),
    (DataType.INT16, BADC, -2, [0xFEFF]),
    (DataType.INT16, DCBA, -2, [0xFEFF]),
    (DataType.UINT16, ABCD, 0x1234, [0x1234]),
    (DataType.UINT16, CDAB, 0x1234, [0x1234]),
    (DataType.UINT16, BADC, 0x1234, [0x3412]),
    (DataType.UINT16, DCBA, 0x1234, [0x3412]),
    (DataType.UINT64, ABCD, 0x0102030405060708, [0x0102, 0x0304, 0x0506, 0x0708]),
    (DataType.UINT64, CDAB, 0x0102030405060708, [0x0708, 0x0506, 0x0304, 0x0102]),
    (DataType.UINT64, BADC, 0x0102030405060708, [0x0201, 0x0403, 0x0605, 0x0807]),
    (DataType.UINT64, DCBA, 0x0102030405060708, [0x0807, 0x0605, 0x0403, 0x0201]),
    (DataType.UINT64, ABCD, 2**64 - 1, [0xFFFF] * 4),
    (DataType.INT64, ABCD, -2, [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE]),
    (DataType.INT64, CDAB, -2, [0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF]),
    (DataType.INT64, ABCD, -(2**63), [0x8000, 0, 0, 0]),
    (DataType.FLOAT64, ABCD, 1.0, [0x3FF0, 0, 0, 0]),
    (DataType.FLOAT64, CDAB, 1.0, [0, 0, 0, 0x3FF0]),
    (DataType.FLOAT64, BADC, 1.0, [0xF03F, 0, 0, 0]),
    (DataType.FLOAT64, DCBA, 1.0, [0, 0, 0, 0xF03F]),
    (DataType.FLOAT64, ABCD, -2.5, [0xC004, 0, 0, 0]),
    (DataType.FLOAT16, ABCD, 1.5, [0x3E00]),
    (DataType.FLOAT16, CDAB, 1.5, [0x3E00]),
    (DataType.FLOAT16, BADC, 1.5, [0x003E]),
    (DataType.FLOAT16, DCBA, -2.0, [0x00C0]),
]

# (value, byte order, length, words): 2 ASCII bytes per register, high byte first for AB.
STRINGS = [
    ("AB", ABCD, 1, [0x4142]),
    ("ABC", ABCD, 2, [0x4142, 0x4300]),
    ("ABC", CDAB, 2, [0x4142, 0x4300]),
    ("ABC", BADC, 2, [0x4241, 0x0043]),
    ("ABC", DCBA, 2, [0x4241, 0x0043]),
    ("EAF-2", ABCD, 4, [0x4541, 0x462D, 0x3200, 0x0000]),
]


@pytest.mark.parametrize(("dtype", "order", "value", "words"), VECTORS)
def test_decode_registers_matches_hand_checked_vector(dtype, order, value, words):
    decoded = decode_registers(words, dtype, order)
    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize(("dtype", "order", "value", "words"), VECTORS)
def test_encode_value_matches_hand_checked_vector(dtype, order, value, words):
    assert encode_value(value, dtype, order) == words


@pytest.mark.parametrize(("value", "order", "length", "words"), STRINGS)
def test_string_vectors_decode_and_encode(value, order, length, words):
    assert decode_registers(words, DataType.STRING, order, length=length) == value
    assert decode_registers(words, DataType.STRING, order) == value  # length defaults to all words
    assert encode_value(value, DataType.STRING, order, length=length) == words


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ([0x4142, 0x2020], "AB"),  # trailing spaces
        ([0x4142, 0x0000], "AB"),  # trailing NULs
        ([0x4120, 0x4200], "A B"),  # inner space kept
        ([0x0000], ""),
    ],
)
def test_string_strips_trailing_nul_and_space_only(words, expected):
    assert decode_registers(words, "STRING", "ABCD") == expected


@pytest.mark.parametrize(
    ("word", "bit", "order", "expected"),
    [
        (0x0001, 0, ABCD, 1),
        (0x0001, 1, ABCD, 0),
        (0x8000, 15, ABCD, 1),
        (0x8000, 14, ABCD, 0),
        (0x0100, 8, ABCD, 1),
        (0x0100, 0, BADC, 1),  # BA: the low byte arrives first
        (0x0100, 8, DCBA, 0),
        (0xFFFE, 0, CDAB, 0),
    ],
)
def test_bit_reads_one_bit_lsb_zero(word, bit, order, expected):
    assert decode_registers([word], DataType.BIT, order, bit=bit) == expected


@pytest.mark.parametrize(
    ("bit", "order", "words"), [(0, ABCD, [0x0001]), (15, ABCD, [0x8000]), (0, BADC, [0x0100])]
)
def test_encode_bit_sets_only_that_bit(bit, order, words):
    assert encode_value(True, DataType.BIT, order, bit=bit) == words
    assert encode_value(0, DataType.BIT, order, bit=bit) == [0]


@pytest.mark.parametrize(
    ("dtype", "length", "expected"),
    [
        ("INT16", None, 1),
        ("UINT16", None, 1),
        ("FLOAT16", None, 1),
        ("BIT", None, 1),
        ("INT32", None, 2),
        ("UINT32", None, 2),
        ("FLOAT32", None, 2),
        ("INT64", None, 4),
        ("UINT64", None, 4),
        ("FLOAT64", None, 4),
        ("STRING", 6, 6),
    ],
)
def test_register_count(dtype, length, expected):
    assert register_count(dtype, length) == expected


@pytest.mark.parametrize(
    ("dtype", "length"), [("STRING", None), ("STRING", 0), ("INT16", 2), ("STRING", True)]
)
def test_register_count_rejects_bad_length(dtype, length):
    with pytest.raises(ValueError, match="length"):
        register_count(dtype, length)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("float32", DataType.FLOAT32),
        ("Float32", DataType.FLOAT32),
        (" FLOAT32 ", DataType.FLOAT32),
        ("uint64", DataType.UINT64),
        ("bit", DataType.BIT),
        ("cdab", CDAB),
        ("Badc", BADC),
    ],
)
def test_enums_are_case_insensitive(text, expected):
    assert type(expected)(text) is expected


def test_enums_are_str_and_reject_unknown_names():
    assert DataType.FLOAT32 == "FLOAT32" and str(ByteOrder.DCBA) == "DCBA"
    with pytest.raises(ValueError):
        DataType("FLOAT128")
    with pytest.raises(ValueError):
        ByteOrder("ACBD")


@pytest.mark.parametrize(
    ("words", "dtype", "kwargs", "message"),
    [
        ([0x42F6], "FLOAT32", {}, "FLOAT32 needs 2 registers, got 1"),
        ([1, 2, 3], "INT32", {}, "INT32 needs 2 registers, got 3"),
        ([1, 2], "INT16", {}, "INT16 needs 1 register, got 2"),
        ([0, 0, 0], "FLOAT64", {}, "FLOAT64 needs 4 registers, got 3"),
        ([0x4142], "STRING", {"length": 2}, "STRING needs 2 registers, got 1"),
        ([], "STRING", {}, "STRING needs at least 1 register, got 0"),
        ([70000], "UINT16", {}, "register 0 value 70000 is outside 0..65535"),
        ([1, -1], "UINT32", {}, "register 1 value -1 is outside 0..65535"),
        ([1.5], "UINT16", {}, "register 0 is 1.5, not an integer"),
        ([0x41C3], "STRING", {}, "non-ASCII byte 0xC3"),
    ],
)
def test_decode_registers_rejects_bad_words_with_reason(words, dtype, kwargs, message):
    with pytest.raises(DecodeError, match=message) as info:
        decode_registers(words, dtype, "ABCD", **kwargs)
    assert isinstance(info.value, GatewayError)


@pytest.mark.parametrize(
    ("dtype", "kwargs", "message"),
    [
        ("BIT", {}, "bit index 0..15"),
        ("BIT", {"bit": 16}, "bit index 0..15"),
        ("BIT", {"bit": -1}, "bit index 0..15"),
        ("UINT16", {"bit": 3}, "bit applies to BIT only"),
        ("UINT16", {"length": 1}, "length applies to STRING only"),
    ],
)
def test_decode_registers_rejects_bad_parameters(dtype, kwargs, message):
    with pytest.raises(ValueError, match=message):
        decode_registers([1], dtype, "ABCD", **kwargs)


@pytest.mark.parametrize(
    ("value", "dtype", "kwargs", "error", "message"),
    [
        (70000, "INT16", {}, ValueError, r"INT16 cannot hold 70000 \(range -32768..32767\)"),
        (-1, "UINT32", {}, ValueError, "UINT32 cannot hold -1"),
        (2**64, "UINT64", {}, ValueError, "UINT64 cannot hold"),
        (1e39, "FLOAT32", {}, ValueError, "FLOAT32 cannot hold"),
        (70000.0, "FLOAT16", {}, ValueError, "FLOAT16 cannot hold"),
        (1.5, "INT32", {}, TypeError, "INT32 needs an int, got float 1.5"),
        ("ABCDE", "STRING", {"length": 2}, ValueError, "needs 5 bytes, 2 registers hold 4"),
        ("é", "STRING", {}, ValueError, "not ASCII"),
    ],
)
def test_encode_value_rejects_values_the_type_cannot_hold(value, dtype, kwargs, error, message):
    with pytest.raises(error, match=message):
        encode_value(value, dtype, "ABCD", **kwargs)


def test_float_specials_are_decoded_not_rejected():
    assert math.isnan(decode_registers([0x7FC0, 0], "FLOAT32", "ABCD"))
    assert decode_registers([0xFF80, 0], "FLOAT32", "ABCD") == -math.inf
    assert decode_registers([0x7C00], "FLOAT16", "ABCD") == math.inf


def test_numpy_integer_words_are_accepted():
    words = np.array([0x42F6, 0xE979], dtype=np.uint16)
    assert decode_registers(words, "FLOAT32", "ABCD") == np.float32(123.456).item()


# --- round trips --------------------------------------------------------------------------

INT_RANGES = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT64: (0, 2**64 - 1),
}
FLOAT_WIDTHS = {DataType.FLOAT16: 16, DataType.FLOAT32: 32, DataType.FLOAT64: 64}
ascii_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=20).filter(
    lambda s: s == s.rstrip("\x00 ")
)


@st.composite
def typed_values(draw):
    dtype = draw(st.sampled_from(list(DataType)))
    order = draw(st.sampled_from(list(ByteOrder)))
    kwargs = {}
    if dtype in INT_RANGES:
        value = draw(st.integers(*INT_RANGES[dtype]))
    elif dtype in FLOAT_WIDTHS:
        value = draw(st.floats(width=FLOAT_WIDTHS[dtype]))
    elif dtype is DataType.BIT:
        kwargs["bit"] = draw(st.integers(0, 15))
        value = draw(st.integers(0, 1))
    else:
        value = draw(ascii_text)
        kwargs["length"] = draw(st.integers(max(1, (len(value) + 1) // 2), 12))
    return dtype, order, value, kwargs


def same_value(a, b) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b and type(a) is type(b)


@FAST
@given(typed_values())
def test_encode_then_decode_round_trips_for_every_type_and_order(case):
    dtype, order, value, kwargs = case
    words = encode_value(value, dtype, order, **kwargs)
    assert len(words) == register_count(dtype, kwargs.get("length"))
    assert all(0 <= w <= 0xFFFF for w in words)
    assert same_value(decode_registers(words, dtype, order, **kwargs), value)


@FAST
@given(
    st.sampled_from([t for t in DataType if t not in (DataType.STRING, DataType.BIT)]),
    st.sampled_from(list(ByteOrder)),
    st.data(),
)
def test_decode_then_encode_round_trips_words(dtype, order, data):
    """Every word pattern decodes, and encoding gives the same words back (NaN payloads aside)."""
    words = data.draw(
        st.lists(st.integers(0, 0xFFFF), min_size=register_count(dtype), max_size=register_count(dtype))
    )
    value = decode_registers(words, dtype, order)
    if isinstance(value, float) and math.isnan(value):
        return  # NaN payload bits are not preserved through a Python float; nothing to compare
    assert encode_value(value, dtype, order) == words


def test_independent_struct_cross_check_for_word_swapped_float64():
    """CDAB for 64-bit reverses all four words; compare with struct, not with our own encoder."""
    raw = struct.pack(">d", 1234.5678)
    be_words = list(struct.unpack(">4H", raw))
    assert decode_registers(be_words[::-1], "FLOAT64", "CDAB") == 1234.5678
    le_words = list(struct.unpack(">4H", raw[::-1]))  # DCBA: the little-endian byte string on the wire
    assert decode_registers(le_words, "FLOAT64", "DCBA") == 1234.5678


# --- the oracle's decode_block -------------------------------------------------------------

NUMERIC = [t for t in DataType if t not in (DataType.STRING, DataType.BIT)]


@pytest.mark.parametrize(("dtype", "order", "value", "words"), VECTORS)
def test_decode_block_matches_vectors(dtype, order, value, words):
    block = np.array([0xDEAD, *words, 0xBEEF], dtype=np.uint16)
    out = decode_block(block, [1], dtype, order)
    assert out.shape == (1,)
    assert out.dtype == NUMPY_TYPES[dtype]
    assert out[0] == value


NUMPY_TYPES = {
    DataType.INT16: np.int16,
    DataType.UINT16: np.uint16,
    DataType.FLOAT16: np.float16,
    DataType.INT32: np.int32,
    DataType.UINT32: np.uint32,
    DataType.FLOAT32: np.float32,
    DataType.INT64: np.int64,
    DataType.UINT64: np.uint64,
    DataType.FLOAT64: np.float64,
}


@FAST
@given(st.sampled_from(NUMERIC), st.sampled_from(list(ByteOrder)), st.data())
def test_decode_block_agrees_with_decode_registers(dtype, order, data):
    block = np.array(data.draw(st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=40)), dtype=np.uint16)
    width = register_count(dtype)
    offsets = data.draw(st.lists(st.integers(0, block.size - width), max_size=20))
    out = decode_block(block, np.array(offsets, dtype=np.int64), dtype, order)
    expected = [decode_registers(block[o : o + width], dtype, order) for o in offsets]
    assert out.shape == (len(offsets),)
    assert_array_equal(out, np.array(expected, dtype=out.dtype))


def test_decode_block_bits():
    block = np.array([0b1010, 0x8001], dtype=np.uint16)
    out = decode_block(block, [0, 0, 0, 1, 1], "BIT", "ABCD", bits=[0, 1, 3, 15, 0])
    assert_array_equal(out, [0, 1, 1, 1, 1])
    assert out.dtype == np.uint8
    assert_array_equal(decode_block(block, [1, 1], "BIT", "BADC", bits=[7, 8]), [1, 1])


def test_decode_block_accepts_plain_integer_arrays_and_empty_offsets():
    block = np.array([0x42F6, 0xE979], dtype=np.int64)
    assert_allclose(decode_block(block, [0], "FLOAT32", "ABCD"), [123.456], rtol=1e-7)
    assert decode_block(block, np.array([], dtype=np.intp), "FLOAT32", "ABCD").shape == (0,)


@pytest.mark.parametrize(
    ("block", "offsets", "dtype", "kwargs", "error", "message"),
    [
        (
            [1, 2, 3],
            [2],
            "FLOAT32",
            {},
            DecodeError,
            "FLOAT32 at register offset 2 needs 2 registers, but the block has only 3",
        ),
        ([1, 2, 3], [0], "FLOAT64", {}, DecodeError, "needs 4 registers"),
        ([1, 70000], [0], "UINT16", {}, DecodeError, "register 1 value 70000 is outside 0..65535"),
        ([[1, 2]], [0], "UINT16", {}, DecodeError, "must be 1-D"),
        ([1.0, 2.0], [0], "UINT16", {}, DecodeError, "must be integers"),
        ([1, 2], [-1], "UINT16", {}, ValueError, "offsets must be >= 0"),
        ([1, 2], [0.5], "UINT16", {}, ValueError, "1-D integer array"),
        ([1, 2], [0], "STRING", {}, ValueError, "does not decode STRING"),
        ([1, 2], [0], "BIT", {}, ValueError, "BIT needs bits"),
        ([1, 2], [0], "BIT", {"bits": [16]}, ValueError, "0..15"),
        ([1, 2], [0], "UINT16", {"bits": [1]}, ValueError, "bits applies to BIT only"),
    ],
)
def test_decode_block_errors(block, offsets, dtype, kwargs, error, message):
    with pytest.raises(error, match=message):
        decode_block(np.array(block), offsets, dtype, "ABCD", **kwargs)


def test_decode_block_handles_ten_thousand_points():
    values = np.linspace(-1000, 1000, 10_000, dtype=np.float32)
    big_endian_words = values.astype(">f4").view(">u2").astype(np.uint16)
    block = big_endian_words.reshape(-1, 2)[:, ::-1].ravel()  # CDAB: low word first
    out = decode_block(block, np.arange(0, 20_000, 2), "FLOAT32", "CDAB")
    assert_array_equal(out, values)


# --- the oracle's apply_point / apply_points: the point rules --------------------------------

NAN = math.nan


def test_sample_quality_is_the_model_enum_with_fixed_codes():
    assert SampleQuality is model.SampleQuality  # one class: identity checks work across modules
    assert {q.name: int(q) for q in SampleQuality} == {
        "GOOD": 0,
        "STALE": 1,
        "OUT_OF_RANGE": 2,
        "DECODE_ERROR": 3,
        "COMM_ERROR": 4,
        "NO_READING": 5,
    }


@pytest.mark.parametrize(
    ("raw", "kwargs", "value", "quality"),
    [
        (100, {}, 100.0, SampleQuality.GOOD),
        (1234, {"scale": 0.1}, 123.4, SampleQuality.GOOD),
        (1234, {"scale": 0.1, "offset": -273.15}, 123.4 - 273.15, SampleQuality.GOOD),
        # sentinel is compared on the RAW value, before scaling
        (65535, {"scale": 0.1, "sentinel": 65535}, NAN, SampleQuality.NO_READING),
        (6553.5, {"scale": 10.0, "sentinel": 65535}, 65535.0, SampleQuality.GOOD),
        (-32768, {"sentinel": -32768, "plausible_min": 0}, NAN, SampleQuality.NO_READING),
        (-9999.0, {"sentinel": -9999}, NAN, SampleQuality.NO_READING),
        (NAN, {"sentinel": NAN}, NAN, SampleQuality.DECODE_ERROR),  # NaN sentinel never matches
        (NAN, {}, NAN, SampleQuality.DECODE_ERROR),
        (math.inf, {}, NAN, SampleQuality.DECODE_ERROR),
        (-math.inf, {"scale": 0.0}, NAN, SampleQuality.DECODE_ERROR),
        (1e308, {"scale": 10.0}, NAN, SampleQuality.DECODE_ERROR),  # overflow after scaling
        (10**400, {}, NAN, SampleQuality.DECODE_ERROR),
        # out of range: kept, never clamped; bounds are inclusive, in engineering units
        (500, {"scale": 0.1, "plausible_max": 40.0}, 50.0, SampleQuality.OUT_OF_RANGE),
        (-5, {"plausible_min": 0.0}, -5.0, SampleQuality.OUT_OF_RANGE),
        (400, {"scale": 0.1, "plausible_max": 40.0}, 40.0, SampleQuality.GOOD),
        (0, {"plausible_min": 0.0, "plausible_max": 0.0}, 0.0, SampleQuality.GOOD),
        (5, {"plausible_min": NAN}, 5.0, SampleQuality.GOOD),  # NaN bound = no bound
        (True, {}, 1.0, SampleQuality.GOOD),
    ],
)
def test_apply_point(raw, kwargs, value, quality):
    got_value, got_quality = apply_point(raw, **kwargs)
    assert got_quality is quality
    if math.isnan(value):
        assert math.isnan(got_value)
    else:
        assert got_value == pytest.approx(value, rel=1e-12)
    if isinstance(raw, int) and abs(raw) > 2**64:
        return  # no numpy array holds it; the pipeline never produces it either
    values, qualities = apply_points([raw], **kwargs)
    assert qualities.tolist() == [quality]
    assert_allclose(values, [value], rtol=1e-12, equal_nan=True)


def test_apply_point_rejects_strings():
    with pytest.raises(TypeError, match="needs a number"):
        apply_point("12", scale=2.0)
    with pytest.raises(TypeError, match="numeric array"):
        apply_points(np.array(["12"]))


def test_apply_points_takes_per_point_parameters():
    raw = np.array([100, 65535, 300, 7, -1], dtype=np.int32)
    values, quality = apply_points(
        raw,
        scale=np.array([0.1, 0.1, 1.0, 2.0, 1.0]),
        offset=np.array([0.0, 0.0, 0.0, 1.0, 0.0]),
        sentinel=np.array([65535, 65535, NAN, NAN, -1]),
        plausible_max=np.array([NAN, NAN, 200.0, NAN, NAN]),
    )
    assert_allclose(values, [10.0, NAN, 300.0, 15.0, NAN], equal_nan=True)
    assert quality.tolist() == [0, 5, 2, 0, 5]
    assert quality.dtype == np.uint8


@FAST
@given(
    st.lists(
        st.one_of(st.floats(), st.integers(-(2**31), 2**31), st.sampled_from([65535, -9999])),
        min_size=1,
        max_size=30,
    ),
    st.floats(-1e3, 1e3),
    st.floats(-1e3, 1e3),
    st.one_of(st.none(), st.sampled_from([65535, -9999, 0])),
    st.one_of(st.none(), st.floats(-1e6, 1e6)),
    st.one_of(st.none(), st.floats(-1e6, 1e6)),
)
def test_apply_points_agrees_with_apply_point(raws, scale, offset, sentinel, low, high):
    kwargs = {
        "scale": scale,
        "offset": offset,
        "sentinel": sentinel,
        "plausible_min": low,
        "plausible_max": high,
    }
    values, quality = apply_points(np.array(raws, dtype=np.float64), **kwargs)
    expected = [apply_point(float(r), **kwargs) for r in raws]
    assert quality.tolist() == [q for _, q in expected]
    assert_allclose(values, [v for v, _ in expected], equal_nan=True, rtol=0, atol=0)
    # value is kept outside the plausible range, never clamped
    for (v, q), r in zip(expected, raws, strict=True):
        if q is SampleQuality.OUT_OF_RANGE:
            assert v == float(r) * scale + offset
