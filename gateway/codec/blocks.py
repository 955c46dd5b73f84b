"""The Modbus block decoder: a read block's register words -> its points' values and qualities.

This is the one decoder of register words: `ModbusSource` decodes every poll with it, and
`decode_registers` (the `decode`, `probe` and `poll` commands) runs one point through it. A new
data type is added to `registers.DataType` and decoded here, once.

Everything a block's points fix is derived once, when the block is compiled, so a poll only moves
numbers: which points share a decoding rule (type and byte order), where each point's bytes sit
in the block, which batch positions they fill, and which point rules (`gateway.codec.points`:
scale, offset, sentinel, plausible range) a group needs at all.

A poll packs the block's words into bytes once; the points of a numeric group come out of them
with one `struct` format (pad bytes skip what lies between them) and go into the batch columns
in one assignment. Only what the common case cannot do takes the longer numpy way: overlapping
points, bits, non-finite floats, and the point rules. Each numpy call costs a few microseconds
on a loop that also runs the client and the sockets (cold caches), so the plain path is kept
to two.

tests/oracles/modbus_reference.py is a slower decoder written independently (one `struct` call
per point, one numpy pass per rule); the property tests hold this one to it, point for point and
quality for quality, for every type, byte order and rule.
"""

from __future__ import annotations

import functools
import math
import operator
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from gateway.codec.points import DECODE_ERROR, GOOD, PointRules, Raw, RuleSpec
from gateway.codec.registers import (
    FLOATS,
    NUMPY_CODE,
    STRUCT_CODE,
    ByteOrder,
    DataType,
    check_bit,
    register_count,
    reverses_words,
    swaps_bytes,
)
from gateway.core.errors import DecodeError

__all__ = ["BIT_TABLES", "BlockDecoder", "BlockSpec", "PointSpec", "compile_block", "decode_registers", "point_width"]

BIT_TABLES = frozenset({"coil", "discrete"})  # register tables of one bit per address
_WORDS = np.dtype(">u2")  # a dtype object: parsing ">u2" on every poll shows in the profile
_NO_WORDS = np.empty(0, dtype=_WORDS)


class PointSpec(RuleSpec, Protocol):
    """What the decoder reads of a point (a `ModbusPointConfig` is one)."""

    @property
    def address(self) -> int: ...
    @property
    def kind(self) -> str: ...  # register table: holding, input, coil or discrete
    @property
    def type(self) -> str: ...  # a `DataType` name
    @property
    def byte_order(self) -> str: ...  # a `ByteOrder` name
    @property
    def bit(self) -> int | None: ...
    @property
    def length(self) -> int | None: ...


class BlockSpec(Protocol):
    """One read: `count` registers (or bits) from `start`, covering the points at `points`."""

    @property
    def start(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def points(self) -> tuple[int, ...]: ...  # indexes into the device's point list


def point_width(point: PointSpec) -> int:
    """Registers (or bits) a point occupies: the planner's block sizes and the decoder agree on it."""
    if point.kind in BIT_TABLES:
        return 1
    return register_count(point.type, point.length)


def _run(values: NDArray[np.intp], step: int) -> slice | None:
    """values as a slice if they are start, start + step, ...; else None."""
    if values.size == 0 or values[0] < 0:
        return None
    if np.array_equal(values, values[0] + step * np.arange(values.size)):
        return slice(int(values[0]), int(values[0]) + step * values.size)
    return None


@dataclass
class GroupDecoder:
    """Points of one block with one decoding rule, in address order."""

    idx: NDArray[np.intp]  # positions in the device's point list (= batch columns)
    target: slice | None  # idx as a slice when the points are consecutive in the point list
    need: int  # registers the block must have for every point of the group
    kind: str  # "bits": coils/discrete inputs; "bit": BIT of a register; "value": numeric types
    # numeric points that do not overlap are unpacked by one struct format (pad bytes between
    # them) from the block packed big or little endian; see _struct_layout
    unpack: struct.Struct | None
    little: bool
    # the numpy way, for overlapping points and bits: gather registers, view them as the type
    swap: bool  # bytes swapped within each register (BADC, DCBA)
    view: np.dtype[np.generic]  # what the gathered bytes are read as (big endian)
    source: slice | None  # the group's registers as one slice of the block (packed, in order)
    gather: NDArray[np.intp]  # else: register indexes, row by row, most significant word first
    bits: NDArray[np.uint16]  # "bit": the bit index of each point
    floats: bool  # a float type: NaN and inf are possible raw values
    plain: bool  # no point rule: a finite raw value is the value
    rules: PointRules

    def gathered(self, be: NDArray[np.uint16], le: NDArray[np.uint16]) -> NDArray[np.generic]:
        """The numpy way: raw values from the block as big-endian (`be`) and byte-swapped (`le`) words."""
        if self.kind == "bits":
            return be[self.gather]
        if self.kind == "bit":
            selected = (le if self.swap else be)[self.gather]
            return ((selected >> self.bits) & 1).astype(np.uint8)
        words = le if self.swap else be
        rows = words[self.source] if self.source is not None else words[self.gather]
        return rows.view(self.view)

    def apply(self, raw: Raw, values: NDArray[np.float64], quality: NDArray[np.uint8]) -> None:
        """The point rules on `raw`, written into the batch columns."""
        if self.target is not None:
            self.rules.apply(raw, values[self.target], quality[self.target])
            return
        v = np.empty(self.idx.size)
        q = np.empty(self.idx.size, dtype=np.uint8)
        self.rules.apply(raw, v, q)
        values[self.idx] = v
        quality[self.idx] = q


B = TypeVar("B", bound=BlockSpec)


@dataclass
class BlockDecoder(Generic[B]):
    """A read block with its groups, compiled once per plan (and again after a split)."""

    block: B
    groups: list[GroupDecoder]
    strings: list[int]  # STRING points: labels, not measurements
    members: NDArray[np.intp]  # every point of the block
    big: bool  # some struct group reads the block packed big endian
    little: bool  # ... little endian
    arrays: bool  # some group takes the numpy way
    swapped: bool  # ... and needs the byte-swapped words
    pack_big: struct.Struct  # block.count words -> bytes
    pack_little: struct.Struct

    def _pack(self, words: Sequence[int]) -> tuple[bytes, bytes, NDArray[np.uint16], NDArray[np.uint16]] | None:
        """The words as the groups read them: packed big and little endian, as word arrays big
        endian and byte-swapped; each only if some group reads it. None: a word outside 0..65535."""
        n = len(words)
        try:
            if n == self.block.count:
                big = self.pack_big.pack(*words) if self.big or self.arrays else b""
                little = self.pack_little.pack(*words) if self.little else b""
            else:
                big = struct.pack(f">{n}H", *words) if self.big or self.arrays else b""
                little = struct.pack(f"<{n}H", *words) if self.little else b""
        except struct.error:  # a word outside 0..65535 or not an integer
            return None
        be: NDArray[np.uint16] = np.frombuffer(big, dtype=_WORDS) if self.arrays else _NO_WORDS
        le = be.byteswap() if self.swapped else be  # only groups with swap read le
        return big, little, be, le

    def decode_into(self, words: Sequence[int], values: NDArray[np.float64], quality: NDArray[np.uint8]) -> None:
        """Decode one block's words into the poll's value and quality columns.

        Points the words cannot give (a short reply, a word outside 0..65535) get DECODE_ERROR.
        """
        packed = self._pack(words)
        if packed is None:
            for g in self.groups:
                quality[g.idx] = DECODE_ERROR
        else:
            big, little, be, le = packed
            n = len(words)
            for g in self.groups:
                if g.need > n:  # the block came back short
                    quality[g.idx] = DECODE_ERROR
                    continue
                if g.unpack is None:
                    g.apply(g.gathered(be, le), values, quality)
                    continue
                raw = g.unpack.unpack_from(little if g.little else big)
                # the common case in two numpy calls: a plain point whose value is finite (a sum
                # of floats is finite only if every one of them is; an overflowing sum just takes
                # the full path)
                if g.plain and (not g.floats or math.isfinite(sum(raw))):
                    if g.target is not None:
                        values[g.target] = raw
                        quality[g.target] = GOOD
                    else:
                        values[g.idx] = raw
                        quality[g.idx] = GOOD
                else:
                    g.apply(raw, values, quality)
        for i in self.strings:
            quality[i] = DECODE_ERROR  # a text label cannot be a sample value

    def raw(self, words: Sequence[int]) -> list[tuple[NDArray[np.intp], Raw]]:
        """Each group's point positions and raw values, before the point rules, from a full reply.

        Raises:
            DecodeError: The reply is short or holds a word outside 0..65535.
        """
        packed = self._pack(words) if len(words) == self.block.count else None
        if packed is None:
            raise DecodeError(f"a block of {self.block.count} registers needs {self.block.count} words 0..65535")
        big, little, be, le = packed
        return [
            (g.idx, g.gathered(be, le) if g.unpack is None else g.unpack.unpack_from(little if g.little else big))
            for g in self.groups
        ]


def compile_block(block: B, points: Sequence[PointSpec]) -> BlockDecoder[B]:
    """Derive everything a poll of `block` needs from the points it covers."""
    by_rule: dict[tuple[str, str], list[int]] = {}
    strings: list[int] = []
    for i in block.points:
        p = points[i]
        if p.kind in BIT_TABLES:
            by_rule.setdefault(("BITS", "ABCD"), []).append(i)
        elif p.type == DataType.STRING:
            strings.append(i)
        else:
            by_rule.setdefault((p.type, p.byte_order), []).append(i)
    groups = [_compile_group(block, points, rule, order, idx) for (rule, order), idx in by_rule.items()]
    structs = [g for g in groups if g.unpack is not None]
    arrays = [g for g in groups if g.unpack is None]
    return BlockDecoder(
        block=block,
        groups=groups,
        strings=strings,
        members=np.array(block.points, dtype=np.intp),
        big=any(not g.little for g in structs),
        little=any(g.little for g in structs),
        arrays=bool(arrays),
        swapped=any(g.swap for g in arrays),
        pack_big=struct.Struct(f">{block.count}H"),
        pack_little=struct.Struct(f"<{block.count}H"),
    )


def _struct_layout(order: ByteOrder, code: str, offsets: list[int], width: int) -> tuple[struct.Struct, bool] | None:
    """One struct format for points at register `offsets` (ascending), or None if they overlap.

    Which endianness to pack the words in, and which to unpack the value with, undoes the two
    swaps: BADC swaps the bytes of each word (pack little endian), CDAB reverses the words
    (unpack little endian: packing little endian first puts every byte back in place), DCBA
    does both (pack big, unpack little).
    """
    parts, at = [], 0
    for off in offsets:
        if off < at:
            return None
        parts.append("x" * (2 * (off - at)) + code)
        at = off + width
    pack_little = order in (ByteOrder.BADC, ByteOrder.CDAB)
    unpack_little = reverses_words(order)
    return struct.Struct(("<" if unpack_little else ">") + "".join(parts)), pack_little


def _compile_group(block: BlockSpec, points: Sequence[PointSpec], rule: str, order: str, idx: list[int]) -> GroupDecoder:
    idx = sorted(idx, key=lambda i: points[i].address)
    ps = [points[i] for i in idx]
    offsets = np.array([p.address - block.start for p in ps], dtype=np.intp)
    positions = np.array(idx, dtype=np.intp)
    byte_order = ByteOrder(order)
    source: slice | None = None
    bits = np.zeros(0, dtype=np.uint16)
    layout = None
    view = _WORDS
    if rule == "BITS":
        kind, width, gather, floats = "bits", 1, offsets, False
    elif rule == DataType.BIT:
        kind, width, gather, floats = "bit", 1, offsets, False
        bits = np.array([check_bit(DataType.BIT, p.bit) for p in ps], dtype=np.uint16)
    else:
        dtype = DataType(rule)
        kind, width, floats = "value", register_count(dtype), dtype in FLOATS
        view = np.dtype(">" + NUMPY_CODE[dtype])
        layout = _struct_layout(byte_order, STRUCT_CODE[dtype], offsets.tolist(), width)
        # each point's registers as a row, most significant word first: reversing the column
        # index undoes a word swap, and reading the row's bytes big endian gives the value
        columns = np.arange(width, dtype=np.intp)
        if reverses_words(byte_order):
            columns = columns[::-1]
        gather = (offsets[:, None] + columns).ravel()
        source = _run(gather, 1)
    rules = PointRules.of(ps, floats=floats)
    return GroupDecoder(
        idx=positions,
        target=_run(positions, 1),
        need=int(offsets.max()) + width,
        kind=kind,
        unpack=layout[0] if layout else None,
        little=layout[1] if layout else False,
        swap=swaps_bytes(byte_order),
        view=view,
        source=source,
        gather=gather,
        bits=bits,
        floats=floats,
        plain=rules.plain,
        rules=rules,
    )


# --- one point -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Point:
    """A point at register 0 with no rules: what `decode_registers` compiles."""

    type: str
    byte_order: str
    bit: int | None
    address: int = 0
    kind: str = "holding"
    length: int | None = None
    scale: float = 1.0
    offset: float = 0.0
    sentinel: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class _Block:
    start: int
    count: int
    points: tuple[int, ...] = (0,)


@functools.cache
def _one_point(dtype: DataType, order: ByteOrder, bit: int | None) -> BlockDecoder[_Block]:
    # a few dozen (type, order, bit) combinations exist: each is compiled once
    return compile_block(_Block(0, register_count(dtype)), [_Point(dtype, order, bit)])


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


def _decode_text(words: list[int], order: ByteOrder) -> str:
    raw = struct.pack(f"{'<' if swaps_bytes(order) else '>'}{len(words)}H", *words)
    for i, byte in enumerate(raw):
        if byte > 0x7F:
            raise DecodeError(f"STRING register {i // 2} holds non-ASCII byte 0x{byte:02X}")
    return raw.rstrip(b"\x00 ").decode("ascii")


def decode_registers(
    words: Sequence[int],
    dtype: DataType | str,
    byte_order: ByteOrder | str,
    *,
    bit: int | None = None,
    length: int | None = None,
) -> int | float | str:
    """Decode one point from its registers, with the block decoder (no point rules).

    Args:
        words: The point's registers, lowest address first, each 0..65535.
        dtype: The point's data type.
        byte_order: Where the value's bytes sit in the registers.
        bit: Bit index 0..15 for BIT (0 = least significant); None otherwise.
        length: Registers of a STRING point; None means all of `words`.

    Returns:
        An int for integer types and BIT (0 or 1), a float for FLOAT16/32/64 (NaN and inf are
        returned as they are; the point rules flag them), a str for STRING: ASCII, two
        characters per register, trailing NUL and space stripped (a label, never a sample).

    Raises:
        DecodeError: Wrong number of words, a word outside 0..65535, a non-ASCII STRING byte.
        ValueError: Bad parameters (see `gateway.codec.registers`).
    """
    dtype = DataType(dtype)
    order = ByteOrder(byte_order)
    check_bit(dtype, bit)
    if dtype is DataType.STRING and length is None:
        if len(words) == 0:
            raise DecodeError("STRING needs at least 1 register, got 0")
        expected = len(words)
    else:
        expected = register_count(dtype, length)
    if len(words) != expected:
        raise DecodeError(f"{dtype} needs {expected} register{'s' * (expected != 1)}, got {len(words)}")
    checked = _check_words(words)
    if dtype is DataType.STRING:
        return _decode_text(checked, order)
    ((_, raw),) = _one_point(dtype, order, bit).raw(checked)
    value: int | float = raw[0].item() if isinstance(raw[0], np.generic) else raw[0]
    return value
