"""S7 bytes -> values: the decoder of one read item (a run of bytes of one PLC area).

S7 stores every multi-byte value big endian (most significant byte at the lowest address) and
addresses bytes, not 16-bit registers: a value may start at any byte, and a BOOL is bit 0..7 of
one byte. So this is not the Modbus word decoder (`gateway.codec.blocks`), but the rules a raw
value then goes through are the same ones (`gateway.codec.points.PointRules`: sentinel, scale,
offset, NaN/inf, plausible range), so an S7 point is flagged, never zeroed, exactly as a Modbus
point is.

An item's numeric points are unpacked by one `struct` format with pad bytes between them (one C
call per item); points that overlap (DBW0 and DBB1 read from the same bytes) fall back to one
unpack each. A poll gathers the raw values of all its items (`S7ItemDecoder.raw_into`) and runs
the rules once over the whole PLC (`S7Rules.apply`): the rules cost a handful of numpy calls
whatever the number of items.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from gateway.codec.points import DECODE_ERROR, PointRules, RuleSpec

__all__ = ["S7_STRUCT_CODE", "S7_TYPE_BYTES", "S7ItemDecoder", "S7PointSpec", "S7Rules", "compile_item", "decode_s7"]

#: Bytes a value of each S7 type occupies.
S7_TYPE_BYTES: dict[str, int] = {"BOOL": 1, "BYTE": 1, "WORD": 2, "DWORD": 4, "INT": 2, "DINT": 4, "REAL": 4, "LREAL": 8}
#: struct codes (big endian is the format's prefix) of the numeric types.
S7_STRUCT_CODE: dict[str, str] = {"BYTE": "B", "WORD": "H", "DWORD": "I", "INT": "h", "DINT": "i", "REAL": "f", "LREAL": "d"}


class S7PointSpec(RuleSpec, Protocol):
    """What the decoder reads of a point (a `gateway.settings.s7.S7PointConfig` is one)."""

    @property
    def byte(self) -> int: ...  # byte offset in its area
    @property
    def type(self) -> str: ...  # a key of S7_TYPE_BYTES
    @property
    def bit(self) -> int | None: ...  # BOOL: bit 0..7 of the byte


@dataclass(frozen=True)
class S7ItemDecoder:
    """One item's points, compiled once per plan: positions, one struct format, the rules."""

    start: int  # byte offset of the item's first byte in its area
    size: int  # bytes the item reads
    idx: NDArray[np.intp]  # batch columns of the item's points, in byte order
    need: NDArray[np.intp]  # bytes each point needs from the item's start (a short reply fails the rest)
    numeric: NDArray[np.intp]  # positions (in idx order) of the numeric points
    unpack: struct.Struct | None  # all numeric points at once; None: they overlap, see `single`
    single: tuple[tuple[struct.Struct, int], ...]  # per numeric point: format and byte from the item's start
    bools: tuple[tuple[int, int, int], ...]  # per BOOL point: position, byte from the item's start, bit
    rules: PointRules

    def raw_values(self, data: bytes | bytearray) -> tuple[NDArray[np.float64], NDArray[np.intp] | None]:
        """The item's raw values (in `idx` order), and the positions (in `idx` order) of the points
        a short reply lacks (None: none), whose raw values are meaningless."""
        lacking: NDArray[np.intp] | None = None
        if len(data) < self.size:  # rare: a PLC that answers fewer bytes than asked
            lacking = np.flatnonzero(self.need > len(data))
            data = bytes(data) + bytes(self.size - len(data))
        raw = np.empty(self.idx.size)
        if self.numeric.size:
            if self.unpack is not None:
                raw[self.numeric] = self.unpack.unpack_from(data, 0)
            else:
                raw[self.numeric] = [fmt.unpack_from(data, at)[0] for fmt, at in self.single]
        for pos, at, bit in self.bools:
            raw[pos] = (data[at] >> bit) & 1
        return raw, lacking

    def raw_into(self, data: bytes | bytearray, raw: NDArray[np.float64]) -> NDArray[np.intp] | None:
        """Write the item's raw values into the PLC's raw column; returns the columns a short reply
        lacks (None: none)."""
        values, lacking = self.raw_values(data)
        raw[self.idx] = values
        return None if lacking is None else self.idx[lacking]

    def decode_into(self, data: bytes | bytearray, values: NDArray[np.float64], quality: NDArray[np.uint8]) -> None:
        """Decode the item's bytes, rules included, into the poll's columns; points a short reply
        lacks get DECODE_ERROR."""
        raw, lacking = self.raw_values(data)
        v = np.empty(self.idx.size)
        q = np.empty(self.idx.size, dtype=np.uint8)
        self.rules.apply(raw, v, q)
        if lacking is not None:
            v[lacking] = np.nan
            q[lacking] = DECODE_ERROR
        values[self.idx] = v
        quality[self.idx] = q


@dataclass(frozen=True)
class S7Rules:
    """The point rules of all of a PLC's points, run once per poll on the gathered raw column."""

    rules: PointRules

    @classmethod
    def of(cls, points: Sequence[S7PointSpec]) -> S7Rules:
        return cls(PointRules.of(points, floats=True))

    def apply(
        self,
        raw: NDArray[np.float64],
        values: NDArray[np.float64],
        quality: NDArray[np.uint8],
        *,
        lacking: Sequence[NDArray[np.intp]] = (),
    ) -> None:
        """values, quality <- the rules on raw; the columns in `lacking` (a short reply) DECODE_ERROR."""
        self.rules.apply(raw, values, quality)
        for cols in lacking:
            values[cols] = np.nan
            quality[cols] = DECODE_ERROR


def compile_item(start: int, size: int, members: Sequence[int], points: Sequence[S7PointSpec]) -> S7ItemDecoder:
    """The decoder of `size` bytes from byte `start` holding the points at `members` (indexes into `points`).

    Raises:
        ValueError: A point lies outside the item, or has an unknown type.
    """
    order = sorted(members, key=lambda i: (points[i].byte, S7_TYPE_BYTES[points[i].type]))
    need: list[int] = []
    numeric: list[int] = []
    single: list[tuple[struct.Struct, int]] = []
    bools: list[tuple[int, int, int]] = []
    fmt = ">"
    pos_in_fmt = 0
    overlap = False
    for k, i in enumerate(order):
        p = points[i]
        at = p.byte - start
        width = S7_TYPE_BYTES[p.type]
        if at < 0 or at + width > size:
            raise ValueError(f"point at byte {p.byte} ({p.type}) lies outside the item of {size} bytes from {start}")
        need.append(at + width)
        if p.type == "BOOL":
            bools.append((k, at, p.bit or 0))
            continue
        code = S7_STRUCT_CODE[p.type]
        numeric.append(k)
        single.append((struct.Struct(">" + code), at))
        if at < pos_in_fmt:
            overlap = True
        else:
            fmt += f"{at - pos_in_fmt}x{code}" if at > pos_in_fmt else code
            pos_in_fmt = at + width
    return S7ItemDecoder(
        start=start,
        size=size,
        idx=np.array(order, dtype=np.intp),
        need=np.array(need, dtype=np.intp),
        numeric=np.array(numeric, dtype=np.intp),
        unpack=None if overlap or not numeric else struct.Struct(fmt),
        single=tuple(single),
        bools=tuple(bools),
        rules=PointRules.of([points[i] for i in order], floats=True),
    )


def decode_s7(data: bytes | bytearray, point: S7PointSpec) -> tuple[float, int]:
    """One point's (value, quality) from bytes that start at the point's byte (`emgate probe`, tests)."""
    width = S7_TYPE_BYTES[point.type]
    dec = compile_item(point.byte, width, [0], [point])
    values = np.full(1, np.nan)
    quality = np.zeros(1, dtype=np.uint8)
    dec.decode_into(data[:width], values, quality)
    return float(values[0]), int(quality[0])
