"""The Modbus register model: data types, byte orders, widths, and values -> register words.

Decoding words is `gateway.codec.blocks` (one decoder for a block and for one point); this module
holds what the decoder, the read planner and the settings agree on, and `encode_value`, the
inverse of decoding, which the simulated plant and the tests use to build what a device sends.

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
from typing import SupportsIndex

import numpy as np

__all__ = [
    "FLOATS",
    "NUMPY_CODE",
    "STRUCT_CODE",
    "ByteOrder",
    "DataType",
    "check_bit",
    "encode_value",
    "register_count",
    "reverses_words",
    "swaps_bytes",
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
FLOATS = frozenset({DataType.FLOAT16, DataType.FLOAT32, DataType.FLOAT64})


def reverses_words(order: ByteOrder) -> bool:
    """The value's registers come least significant first (CDAB, DCBA)."""
    return order in (ByteOrder.CDAB, ByteOrder.DCBA)


def swaps_bytes(order: ByteOrder) -> bool:
    """Each register holds its two bytes low byte first (BADC, DCBA)."""
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


def check_bit(dtype: DataType, bit: int | None) -> int:
    """The bit index of a BIT point (0 for other types).

    Raises:
        ValueError: BIT without a bit index 0..15, or a bit index given for another type.
    """
    if dtype is not DataType.BIT:
        if bit is not None:
            raise ValueError(f"bit applies to BIT only, not to {dtype}")
        return 0
    if bit is None or isinstance(bit, bool) or not isinstance(bit, int) or not 0 <= bit <= 15:
        raise ValueError(f"BIT needs a bit index 0..15 (0 = least significant), got {bit!r}")
    return bit


def encode_value(
    value: int | float | str,
    dtype: DataType | str,
    byte_order: ByteOrder | str,
    *,
    bit: int | None = None,
    length: int | None = None,
) -> list[int]:
    """Encode one value into registers; the inverse of `blocks.decode_registers`.

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
    bit_index = check_bit(dtype, bit)
    swap = swaps_bytes(order)

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
    if dtype in FLOATS:
        if isinstance(value, str):
            raise TypeError(f"{dtype} needs a number, got str")
        try:
            raw = struct.pack(">" + code, float(value))
        except OverflowError:
            raise ValueError(f"{dtype} cannot hold {value!r} (too large; encode inf explicitly)") from None
    else:
        if not isinstance(value, SupportsIndex):  # floats are refused: no silent truncation
            raise TypeError(f"{dtype} needs an int, got {type(value).__name__} {value!r}")
        integer = operator.index(value)
        try:
            raw = struct.pack(">" + code, integer)
        except struct.error:
            info = np.iinfo(NUMPY_CODE[dtype])
            raise ValueError(f"{dtype} cannot hold {integer} (range {info.min}..{info.max})") from None
    words = unpack(raw)
    if reverses_words(order):
        words.reverse()
    return words
