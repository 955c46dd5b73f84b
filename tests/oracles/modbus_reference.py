"""The reference Modbus decoder: the oracle `gateway.codec.blocks` is held to in the tests.

It is the decoder emgate had before the block decoder was compiled, kept out of the product and
written for clarity, not speed: one `struct` call per point (`decode_point`), one numpy gather per
type and byte order (`decode_block`), and the point rules one value at a time (`apply_point`) or
one numpy pass per rule (`apply_points`). `decode_read` puts them together for a whole read
block the way `BlockDecoder.decode_into` must come out. Its type table is its own, so a wrong
entry in `gateway.codec.registers` cannot hide here; the hand-checked vectors in
tests/unit/test_codec_registers.py hold this oracle itself.

The point rules, checked in this order:

1. raw == sentinel -> NaN, NO_READING. Compared on the RAW value, before scaling. A NaN
   sentinel never matches; in a sentinel array, NaN means "none".
2. raw or raw * scale + offset is NaN or infinite -> NaN, DECODE_ERROR.
3. value outside [plausible_min, plausible_max] (inclusive, engineering units) -> value KEPT,
   OUT_OF_RANGE. A None or NaN bound means no bound.
4. otherwise -> value, GOOD.
"""

from __future__ import annotations

import math
import operator
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gateway.codec.registers import ByteOrder, DataType
from gateway.core.errors import DecodeError
from gateway.core.model import SampleQuality

# type -> (registers, struct code, numpy code), written out again on purpose (see the docstring)
TYPES: dict[str, tuple[int, str, str]] = {
    "INT16": (1, "h", "i2"),
    "UINT16": (1, "H", "u2"),
    "FLOAT16": (1, "e", "f2"),
    "INT32": (2, "i", "i4"),
    "UINT32": (2, "I", "u4"),
    "FLOAT32": (2, "f", "f4"),
    "INT64": (4, "q", "i8"),
    "UINT64": (4, "Q", "u8"),
    "FLOAT64": (4, "d", "f8"),
}


def _word_swap(order: ByteOrder) -> bool:
    return order in (ByteOrder.CDAB, ByteOrder.DCBA)


def _byte_swap(order: ByteOrder) -> bool:
    return order in (ByteOrder.BADC, ByteOrder.DCBA)


def _pack_words(words: Sequence[int], swap: bool) -> bytes:
    return struct.pack(f"{'<' if swap else '>'}{len(words)}H", *words)


def decode_point(
    words: Sequence[int],
    dtype: DataType | str,
    byte_order: ByteOrder | str,
    *,
    bit: int | None = None,
    length: int | None = None,
) -> int | float | str:
    """One point from exactly its registers (checked 0..65535): int, float, or str for STRING."""
    dtype = DataType(dtype)
    order = ByteOrder(byte_order)
    values = [operator.index(w) for w in words]
    if any(not 0 <= w <= 0xFFFF for w in values):
        raise DecodeError("a word outside 0..65535")
    if dtype is DataType.STRING:
        if length is not None and len(values) != length:
            raise DecodeError(f"STRING needs {length} registers, got {len(values)}")
        raw = _pack_words(values, _byte_swap(order))
        if any(byte > 0x7F for byte in raw):
            raise DecodeError("a non-ASCII STRING byte")
        return raw.rstrip(b"\x00 ").decode("ascii")
    if dtype is DataType.BIT:
        if len(values) != 1 or bit is None or not 0 <= bit <= 15:
            raise DecodeError("BIT needs one register and a bit index 0..15")
        (word,) = struct.unpack(">H", _pack_words(values, _byte_swap(order)))
        return (word >> bit) & 1
    width, code, _ = TYPES[dtype]
    if len(values) != width:
        raise DecodeError(f"{dtype} needs {width} registers, got {len(values)}")
    if _word_swap(order):
        values.reverse()
    value: int | float = struct.unpack(">" + code, _pack_words(values, _byte_swap(order)))[0]
    return value


def _as_word_array(words: ArrayLike) -> NDArray[np.uint16]:
    block = np.asarray(words)
    if block.ndim != 1:
        raise DecodeError(f"a register block must be 1-D, got shape {block.shape}")
    if block.dtype == np.uint16:
        return block
    if block.dtype.kind not in "iu":
        raise DecodeError(f"register words must be integers, got a {block.dtype} array")
    if block.size and (block.min() < 0 or block.max() > 0xFFFF):
        bad = int(np.flatnonzero((block < 0) | (block > 0xFFFF))[0])
        raise DecodeError(f"register {bad} value {int(block[bad])} is outside 0..65535")
    return block.astype(np.uint16)


def decode_block(
    words: ArrayLike,
    offsets: ArrayLike,
    dtype: DataType | str,
    byte_order: ByteOrder | str,
    *,
    bits: ArrayLike | None = None,
) -> NDArray[np.generic]:
    """Many points of one type and byte order, point i at register `offsets[i]` of `words`.

    Returns one raw value per point in the type's numpy dtype (uint8 0/1 for BIT).

    Raises:
        DecodeError: A point runs past the end of the block, or words out of range.
        ValueError: STRING, negative offsets, missing or bad `bits`.
    """
    dtype = DataType(dtype)
    order = ByteOrder(byte_order)
    if dtype is DataType.STRING:
        raise ValueError("decode_block does not decode STRING; use decode_point per point")
    block = _as_word_array(words)
    offs = np.asarray(offsets)
    if offs.ndim != 1 or (offs.size and offs.dtype.kind not in "iu"):
        raise ValueError(f"offsets must be a 1-D integer array, got {offs.dtype} shape {offs.shape}")
    offs = offs.astype(np.intp, copy=False)
    width = 1 if dtype is DataType.BIT else TYPES[dtype][0]
    if offs.size:
        if offs.min() < 0:
            raise ValueError(f"offsets must be >= 0, got {int(offs.min())}")
        last = int(offs.max())
        if last + width > block.size:
            raise DecodeError(
                f"{dtype} at register offset {last} needs {width} register{'s' * (width != 1)}, "
                f"but the block has only {block.size}"
            )
    swap = _byte_swap(order)

    if dtype is DataType.BIT:
        if bits is None:
            raise ValueError("BIT needs bits: a bit index 0..15 per point")
        bit_index = np.asarray(bits)
        if bit_index.dtype.kind not in "iu" or (bit_index.size and (bit_index.min() < 0 or bit_index.max() > 15)):
            raise ValueError("BIT needs bit indexes 0..15 (0 = least significant)")
        selected = block[offs]
        if swap:
            selected = selected.byteswap()
        return ((selected >> bit_index.astype(np.uint16)) & 1).astype(np.uint8)
    if bits is not None:
        raise ValueError(f"bits applies to BIT only, not to {dtype}")

    # each point's registers as a row, most significant word first; written out big endian (or
    # little endian for byte-swapped orders) a row's bytes are the value's, A B C D ...
    columns = np.arange(width, dtype=np.intp)
    if _word_swap(order):
        columns = columns[::-1]
    rows = block[offs[:, None] + columns]
    wire = rows.astype("<u2" if swap else ">u2")
    code = TYPES[dtype][2]
    return wire.view(">" + code).reshape(offs.size).astype(code)


def apply_point(
    raw: int | float,
    *,
    scale: float = 1.0,
    offset: float = 0.0,
    sentinel: int | float | None = None,
    plausible_min: float | None = None,
    plausible_max: float | None = None,
) -> tuple[float, SampleQuality]:
    """One raw value -> (value, quality) by the rules in the module docstring."""
    if isinstance(raw, str | bytes):
        raise TypeError(f"apply_point needs a number, got {type(raw).__name__} {raw!r}")
    if sentinel is not None and raw == sentinel:
        return math.nan, SampleQuality.NO_READING
    try:
        value = float(raw) * scale + offset
    except OverflowError:  # an int beyond float range
        return math.nan, SampleQuality.DECODE_ERROR
    if not math.isfinite(value):
        return math.nan, SampleQuality.DECODE_ERROR
    if (plausible_min is not None and value < plausible_min) or (plausible_max is not None and value > plausible_max):
        return value, SampleQuality.OUT_OF_RANGE
    return value, SampleQuality.GOOD


def apply_points(
    raw: ArrayLike,
    *,
    scale: ArrayLike = 1.0,
    offset: ArrayLike = 0.0,
    sentinel: ArrayLike | None = None,
    plausible_min: ArrayLike | None = None,
    plausible_max: ArrayLike | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.uint8]]:
    """`apply_point` over arrays; every parameter a scalar or an array broadcastable to `raw`."""
    raw_array = np.asarray(raw)
    if raw_array.dtype.kind not in "biuf":
        raise TypeError(f"apply_points needs a numeric array, got {raw_array.dtype}")
    with np.errstate(all="ignore"):  # overflow to inf and inf * 0 are inputs, flagged below
        values = raw_array.astype(np.float64) * scale + offset
        bad = ~np.isfinite(values)
        if sentinel is None:
            no_reading = np.zeros(values.shape, dtype=bool)
        else:
            no_reading = np.broadcast_to(raw_array == sentinel, values.shape)
        out = np.zeros(values.shape, dtype=bool)
        if plausible_min is not None:
            out |= values < plausible_min
        if plausible_max is not None:
            out |= values > plausible_max
    quality = np.full(values.shape, SampleQuality.GOOD, dtype=np.uint8)
    quality[out] = SampleQuality.OUT_OF_RANGE
    quality[bad] = SampleQuality.DECODE_ERROR
    quality[no_reading] = SampleQuality.NO_READING
    values[bad | no_reading] = np.nan
    return values, quality


def decode_read(block: Any, points: Sequence[Any], words: list[int]) -> tuple[NDArray[np.float64], NDArray[np.uint8]]:
    """A read block's words -> the value and quality columns of the device's point list.

    `block` has start and points (indexes into `points`); a point has the fields of a
    `ModbusPointConfig`. Points outside the block stay NaN, COMM_ERROR; STRING points (labels)
    and points the words cannot give (short, out of range) are DECODE_ERROR.
    """
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
    try:
        block_words = _as_word_array(np.array(words, dtype=np.int64))
    except (DecodeError, OverflowError):
        quality[list(block.points)] = SampleQuality.DECODE_ERROR
        return values, quality
    for (rule, order), idx in by_rule.items():
        ps = [points[i] for i in idx]
        offsets = np.array([p.address - block.start for p in ps], dtype=np.intp)
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

        def optional(xs: list[float | None]) -> NDArray[np.float64] | None:
            return None if all(x is None for x in xs) else np.array([np.nan if x is None else x for x in xs])

        v, q = apply_points(
            raw,
            scale=np.array([p.scale for p in ps]),
            offset=np.array([p.offset for p in ps]),
            sentinel=optional([p.sentinel for p in ps]),
            plausible_min=optional([p.min for p in ps]),
            plausible_max=optional([p.max for p in ps]),
        )
        values[idx], quality[idx] = v, q
    return values, quality
