"""Modbus register words <-> values, one point at a time or a whole block at once.

Words are 16-bit register values in the order the device returns them (lowest address
first), each as the integer the device sent high byte first. A `ByteOrder` names where
the bytes A (most significant) .. D/H (least significant) of the value sit on the wire:

- ABCD: most significant word first, high byte first (big endian).
- CDAB: least significant word first, bytes kept within each register ("word swap").
- BADC: word order kept, bytes swapped within each register ("byte swap").
- DCBA: every byte reversed (little endian): both swaps.

The same two swaps generalise to 64-bit values (CDAB reverses the order of all four
words). For one-register types only the byte swap matters: ABCD and CDAB mean AB,
BADC and DCBA mean BA. STRING and BIT are read register by register with the same rule.

Errors follow one rule: bad *input* (words the device sent) raises `DecodeError`; bad
*parameters* (a missing length, a bit index of 16, an unknown type) raise `ValueError`,
which settings validators turn into configuration errors at startup.
"""

from __future__ import annotations

import enum
import math
import operator
import struct
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from gateway.core.errors import DecodeError

__all__ = [
    "ByteOrder",
    "DataType",
    "decode_block",
    "decode_registers",
    "encode_value",
    "register_count",
]


class _CaseInsensitiveStrEnum(enum.StrEnum):
    @classmethod
    def _missing_(cls, value: object) -> _CaseInsensitiveStrEnum | None:
        if isinstance(value, str):
            return cls.__members__.get(value.strip().upper())
        return None


class DataType(_CaseInsensitiveStrEnum):
    """What a point's registers hold. `DataType("float32")` works too."""

    INT16 = "INT16"
    UINT16 = "UINT16"
    INT32 = "INT32"
    UINT32 = "UINT32"
    INT64 = "INT64"
    UINT64 = "UINT64"
    FLOAT16 = "FLOAT16"
    FLOAT32 = "FLOAT32"
    FLOAT64 = "FLOAT64"
    BIT = "BIT"  # one bit of one register; bit 0 is the least significant
    STRING = "STRING"  # n registers, 2 ASCII bytes each; trailing NUL and space stripped


class ByteOrder(_CaseInsensitiveStrEnum):
    """Where the value's bytes sit in the registers; see the module docstring."""

    ABCD = "ABCD"
    DCBA = "DCBA"
    BADC = "BADC"
    CDAB = "CDAB"


_WIDTH: dict[DataType, int] = {
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.FLOAT16: 1,
    DataType.BIT: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.FLOAT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.FLOAT64: 4,
}
# struct / numpy type codes without the byte-order prefix.
STRUCT_CODE: dict[DataType, str] = {
    DataType.INT16: "h",
    DataType.UINT16: "H",
    DataType.FLOAT16: "e",
    DataType.INT32: "i",
    DataType.UINT32: "I",
    DataType.FLOAT32: "f",
    DataType.INT64: "q",
    DataType.UINT64: "Q",
    DataType.FLOAT64: "d",
}
NUMPY_CODE: dict[DataType, str] = {
    DataType.INT16: "i2",
    DataType.UINT16: "u2",
    DataType.FLOAT16: "f2",
    DataType.INT32: "i4",
    DataType.UINT32: "u4",
    DataType.FLOAT32: "f4",
    DataType.INT64: "i8",
    DataType.UINT64: "u8",
    DataType.FLOAT64: "f8",
}
_FLOATS = frozenset({DataType.FLOAT16, DataType.FLOAT32, DataType.FLOAT64})


def _reverses_words(order: ByteOrder) -> bool:
    return order in (ByteOrder.CDAB, ByteOrder.DCBA)


def _swaps_bytes(order: ByteOrder) -> bool:
    return order in (ByteOrder.BADC, ByteOrder.DCBA)


def register_count(dtype: DataType | str, length: int | None = None) -> int:
    """Number of registers a point of `dtype` occupies.

    Args:
        dtype: The point's data type.
        length: Number of registers of a STRING point; must be None for other types.

    Raises:
        ValueError: STRING without a positive `length`, or `length` given for another type.
    """
    dtype = DataType(dtype)
    if dtype is DataType.STRING:
        if length is None or isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"STRING needs length >= 1 (registers, 2 characters each), got {length!r}")
        return length
    if length is not None:
        raise ValueError(f"length applies to STRING only, not to {dtype}")
    return _WIDTH[dtype]


def _check_bit(dtype: DataType, bit: int | None) -> int:
    if dtype is not DataType.BIT:
        if bit is not None:
            raise ValueError(f"bit applies to BIT only, not to {dtype}")
        return 0
    if bit is None or isinstance(bit, bool) or not isinstance(bit, int) or not 0 <= bit <= 15:
        raise ValueError(f"BIT needs a bit index 0..15 (0 = least significant), got {bit!r}")
    return bit


def _check_words(words: Sequence[int]) -> list[int]:
    checked = []
    for i, word in enumerate(words):
        try:
            value = operator.index(word)
        except TypeError:
            raise DecodeError(f"register {i} is {word!r}, not an integer") from None
        if not 0 <= value <= 0xFFFF:
            raise DecodeError(f"register {i} value {value} is outside 0..65535")
        checked.append(value)
    return checked


def _pack_words(words: Sequence[int], swap: bool) -> bytes:
    return struct.pack(f"{'<' if swap else '>'}{len(words)}H", *words)


def decode_registers(
    words: Sequence[int],
    dtype: DataType | str,
    byte_order: ByteOrder | str,
    *,
    bit: int | None = None,
    length: int | None = None,
) -> int | float | str:
    """Decode one point from its registers.

    Args:
        words: The point's registers, lowest address first, each 0..65535.
        dtype: The point's data type.
        byte_order: Where the value's bytes sit in the registers.
        bit: Bit index 0..15 for BIT (0 = least significant); None otherwise.
        length: Registers of a STRING point; None means all of `words`.

    Returns:
        An int for integer types and BIT (0 or 1), a float for FLOAT16/32/64 (NaN and inf
        are returned as they are; `apply_point` flags them), a str for STRING.

    Raises:
        DecodeError: Wrong number of words, a word outside 0..65535, a non-ASCII STRING byte.
        ValueError: Bad parameters (see the module docstring).
    """
    dtype = DataType(dtype)
    order = ByteOrder(byte_order)
    bit_index = _check_bit(dtype, bit)
    if dtype is DataType.STRING and length is None:
        if len(words) == 0:
            raise DecodeError("STRING needs at least 1 register, got 0")
        expected = len(words)
    else:
        expected = register_count(dtype, length)
    if len(words) != expected:
        raise DecodeError(f"{dtype} needs {expected} register{'s' * (expected != 1)}, got {len(words)}")
    values = _check_words(words)
    swap = _swaps_bytes(order)

    if dtype is DataType.STRING:
        raw = _pack_words(values, swap)
        for i, byte in enumerate(raw):
            if byte > 0x7F:
                raise DecodeError(f"STRING register {i // 2} holds non-ASCII byte 0x{byte:02X}")
        return raw.rstrip(b"\x00 ").decode("ascii")
    if dtype is DataType.BIT:
        word = struct.unpack(">H", _pack_words(values, swap))[0]
        return (word >> bit_index) & 1
    if _reverses_words(order):
        values.reverse()
    (value,) = struct.unpack(">" + STRUCT_CODE[dtype], _pack_words(values, swap))
    return value


def encode_value(
    value: int | float | str,
    dtype: DataType | str,
    byte_order: ByteOrder | str,
    *,
    bit: int | None = None,
    length: int | None = None,
) -> list[int]:
    """Encode one value into registers; the inverse of `decode_registers`.

    Args:
        value: An int for integer types, a number for floats (rounded to the type's
            precision), a truthy/falsy value for BIT, an ASCII str for STRING.
        dtype: The point's data type.
        byte_order: Where the value's bytes sit in the registers.
        bit: Bit index 0..15 for BIT. The other 15 bits of the register are 0.
        length: Registers of a STRING point (padded with NUL); None means just enough.

    Returns:
        The registers lowest address first.

    Raises:
        ValueError: The value does not fit the type (range, length, non-ASCII) or bad parameters.
        TypeError: An integer type got a non-integer value.
    """
    dtype = DataType(dtype)
    order = ByteOrder(byte_order)
    bit_index = _check_bit(dtype, bit)
    swap = _swaps_bytes(order)

    def unpack(raw: bytes) -> list[int]:
        return list(struct.unpack(f"{'<' if swap else '>'}{len(raw) // 2}H", raw))

    if dtype is DataType.STRING:
        if not isinstance(value, str):
            raise TypeError(f"STRING needs a str, got {type(value).__name__}")
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(f"STRING value {value!r} is not ASCII") from None
        registers = max(1, math.ceil(len(raw) / 2)) if length is None else register_count(dtype, length)
        if len(raw) > 2 * registers:
            raise ValueError(
                f"STRING value {value!r} needs {len(raw)} bytes, {registers} registers hold {2 * registers}"
            )
        return unpack(raw.ljust(2 * registers, b"\x00"))
    if length is not None:
        register_count(dtype, length)  # raises the explanatory ValueError
    if dtype is DataType.BIT:
        word = (1 << bit_index) if value else 0
        return unpack(struct.pack(">H", word))

    code = STRUCT_CODE[dtype]
    if dtype in _FLOATS:
        if isinstance(value, str):
            raise TypeError(f"{dtype} needs a number, got str")
        try:
            raw = struct.pack(">" + code, float(value))
        except OverflowError:
            raise ValueError(f"{dtype} cannot hold {value!r} (too large; encode inf explicitly)") from None
    else:
        try:
            integer = operator.index(value)  # floats are refused: no silent truncation
        except TypeError:
            raise TypeError(f"{dtype} needs an int, got {type(value).__name__} {value!r}") from None
        try:
            raw = struct.pack(">" + code, integer)
        except struct.error:
            info = np.iinfo(NUMPY_CODE[dtype])
            raise ValueError(f"{dtype} cannot hold {integer} (range {info.min}..{info.max})") from None
    words = unpack(raw)
    if _reverses_words(order):
        words.reverse()
    return words


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
    """Decode many points of one type and byte order from one register block, without a Python loop.

    Point i starts at register `offsets[i]` of `words`; points may overlap and come in any order.

    Args:
        words: 1-D block of registers as read, lowest address first (uint16, or any integer
            array with values 0..65535).
        offsets: 1-D integer register offsets, one per point.
        dtype: The points' data type; STRING is not supported (use `decode_registers`).
        byte_order: Where the values' bytes sit in the registers.
        bits: For BIT only: bit index 0..15 per point (or one for all).

    Returns:
        One value per point in the type's native numpy dtype (int16 ... float64; uint8 0/1
        for BIT). Pass the result to `apply_points` to get scaled float64 values and qualities.

    Raises:
        DecodeError: A point runs past the end of the block (a short read), or words out of range.
        ValueError: STRING, negative offsets, missing or bad `bits`.
    """
    dtype = DataType(dtype)
    order = ByteOrder(byte_order)
    if dtype is DataType.STRING:
        raise ValueError("decode_block does not decode STRING; use decode_registers per point")
    block = _as_word_array(words)
    offs = np.asarray(offsets)
    if offs.ndim != 1 or (offs.size and offs.dtype.kind not in "iu"):
        raise ValueError(f"offsets must be a 1-D integer array, got {offs.dtype} shape {offs.shape}")
    offs = offs.astype(np.intp, copy=False)
    width = _WIDTH[dtype]
    if offs.size:
        if offs.min() < 0:
            raise ValueError(f"offsets must be >= 0, got {int(offs.min())}")
        last = int(offs.max())
        if last + width > block.size:
            raise DecodeError(
                f"{dtype} at register offset {last} needs {width} register{'s' * (width != 1)}, "
                f"but the block has only {block.size}"
            )
    swap = _swaps_bytes(order)

    if dtype is DataType.BIT:
        if bits is None:
            raise ValueError("BIT needs bits: a bit index 0..15 per point")
        bit_index = np.asarray(bits)
        if bit_index.dtype.kind not in "iu" or (
            bit_index.size and (bit_index.min() < 0 or bit_index.max() > 15)
        ):
            raise ValueError("BIT needs bit indexes 0..15 (0 = least significant)")
        selected = block[offs]
        if swap:
            selected = selected.byteswap()
        return ((selected >> bit_index.astype(np.uint16)) & 1).astype(np.uint8)
    if bits is not None:
        raise ValueError(f"bits applies to BIT only, not to {dtype}")

    # Gather each point's registers into a row, already in most-significant-word-first
    # order (reversing the column index costs nothing). Writing the rows out big endian,
    # or little endian for byte-swapped orders, lays the value's bytes out A B C D..., so
    # one view reinterprets every row as a big-endian value.
    columns = np.arange(width, dtype=np.intp)
    if _reverses_words(order):
        columns = columns[::-1]
    rows = block[offs[:, None] + columns]
    wire = rows.astype("<u2" if swap else ">u2")
    code = NUMPY_CODE[dtype]
    return wire.view(">" + code).reshape(offs.size).astype(code)
