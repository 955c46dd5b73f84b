"""Compiled block decoders: one read block's words -> its points' values and qualities.

Everything the plan fixes is derived once, when a block is compiled, so a poll only moves
numbers: which points share a decoding rule, where each point's bytes sit in the block, which
batch positions they fill, and which of the rules of `gateway.codec.points` (scale, offset,
sentinel, plausible range) a group needs at all.

A poll packs the block's words into bytes once; the points of a numeric group come out of them
with one `struct` format (pad bytes skip what lies between them) and go into the batch columns
in one assignment. Only what the common case cannot do takes the longer numpy way: overlapping
points, bits, non-finite floats, and the scale/sentinel/range rules. Each numpy call costs a few
microseconds on a loop that also runs the client and the sockets (cold caches), so the plain
path is kept to two.

The results are those of `decode_block` followed by `apply_points`, point for point and quality
for quality (tests/unit/test_modbus_decode.py holds the compiled path against that reference).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gateway.codec import ByteOrder, DataType, register_count
from gateway.codec.registers import NUMPY_CODE, STRUCT_CODE
from gateway.core.model import SampleQuality
from gateway.settings.site import ModbusPointConfig
from gateway.sources.modbus_plan import ReadBlock

GOOD = np.uint8(SampleQuality.GOOD)
OUT_OF_RANGE = np.uint8(SampleQuality.OUT_OF_RANGE)
DECODE_ERROR = np.uint8(SampleQuality.DECODE_ERROR)
NO_READING = np.uint8(SampleQuality.NO_READING)
_WORDS = np.dtype(">u2")  # a dtype object: parsing ">u2" on every poll shows in the profile

_FLOATS = frozenset({DataType.FLOAT16, DataType.FLOAT32, DataType.FLOAT64})


def _run(values: NDArray[np.intp], step: int) -> slice | None:
    """values as a slice if they are start, start + step, ...; else None."""
    if values.size == 0 or values[0] < 0:
        return None
    if np.array_equal(values, values[0] + step * np.arange(values.size)):
        return slice(int(values[0]), int(values[0]) + step * values.size)
    return None


def _opt(values: list[float | None]) -> NDArray[np.float64]:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


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
    bits: NDArray[np.uint16] | None
    floats: bool  # a float type: NaN and inf are possible raw values
    plain: bool  # no scale, offset, sentinel or plausible range: the raw value is the value
    scale: NDArray[np.float64] | None
    offset: NDArray[np.float64] | None
    sentinel: NDArray[np.float64] | None
    pmin: NDArray[np.float64] | None
    pmax: NDArray[np.float64] | None

    def raw(self, be: NDArray[np.generic], le: NDArray[np.generic] | None) -> NDArray[np.generic]:
        """The numpy way: raw values from the block as big-endian (`be`) and byte-swapped (`le`) words."""
        if self.kind == "bits":
            return be[self.gather]
        if self.kind == "bit":
            selected = (le if self.swap else be)[self.gather]  # type: ignore[index]
            return ((selected >> self.bits) & 1).astype(np.uint8)
        words = le if self.swap else be
        rows = words[self.source] if self.source is not None else words[self.gather]  # type: ignore[index]
        return rows.view(self.view)

    def apply(self, raw: object, values: NDArray[np.float64], quality: NDArray[np.uint8]) -> None:
        """`apply_points` on `raw` (an array or a tuple), written into the batch columns."""
        if self.floats or self.scale is not None or self.offset is not None:
            # NaN (even signalling) raw floats, overflow to inf and inf * 0 are expected inputs,
            # flagged below, not warnings; unscaled integers can produce none of them
            with np.errstate(all="ignore"):
                self._apply(raw, values, quality)
        else:
            self._apply(raw, values, quality)

    def _apply(self, raw: object, values: NDArray[np.float64], quality: NDArray[np.uint8]) -> None:
        if self.target is not None:
            v = values[self.target]
            q = quality[self.target]
        else:
            v = np.empty(self.idx.size)
            q = np.empty(self.idx.size, dtype=np.uint8)
        v[...] = raw
        q.fill(GOOD)
        # the sentinel is compared on the raw value (as float64, as numpy compares it anyway)
        none = v == self.sentinel if self.sentinel is not None else None
        if self.scale is not None:
            v *= self.scale
        if self.offset is not None:
            v += self.offset
        # the same precedence as apply_points: out of range < decode error < no reading
        if self.pmin is not None or self.pmax is not None:
            out = v < self.pmin if self.pmin is not None else None
            if self.pmax is not None:
                out = v > self.pmax if out is None else out | (v > self.pmax)
            q[out] = OUT_OF_RANGE
        blank = None
        if self.floats or self.scale is not None or self.offset is not None:
            finite = np.isfinite(v)
            if np.count_nonzero(finite) != finite.size:  # count_nonzero: a C call, .all() is not
                blank = ~finite
                q[blank] = DECODE_ERROR
        if none is not None and np.count_nonzero(none):
            q[none] = NO_READING
            blank = none if blank is None else blank | none
        if blank is not None:
            v[blank] = np.nan
        if self.target is None:
            values[self.idx] = v
            quality[self.idx] = q


@dataclass
class BlockDecoder:
    """A read block with its groups, compiled once per plan (and again after a split)."""

    block: ReadBlock
    groups: list[GroupDecoder]
    strings: list[int]  # STRING points: labels, not measurements
    members: NDArray[np.intp]  # every point of the block
    big: bool  # some struct group reads the block packed big endian
    little: bool  # ... little endian
    arrays: bool  # some group takes the numpy way
    swapped: bool  # ... and needs the byte-swapped words
    pack_big: struct.Struct  # block.count words -> bytes
    pack_little: struct.Struct

    def decode_into(self, words: list[int], values: NDArray[np.float64], quality: NDArray[np.uint8]) -> None:
        """Decode one block's words into the poll's value and quality columns.

        Points the words cannot give (a short reply, a word outside 0..65535) get DECODE_ERROR.
        """
        n = len(words)
        try:
            if n == self.block.count:
                big = self.pack_big.pack(*words) if self.big or self.arrays else b""
                little = self.pack_little.pack(*words) if self.little else b""
            else:
                big = struct.pack(f">{n}H", *words) if self.big or self.arrays else b""
                little = struct.pack(f"<{n}H", *words) if self.little else b""
        except struct.error:  # a word outside 0..65535 or not an integer
            for g in self.groups:
                quality[g.idx] = DECODE_ERROR
            n = -1
        if n >= 0:
            be = np.frombuffer(big, dtype=_WORDS) if self.arrays else None
            le = be.byteswap() if self.swapped and be is not None else None
            for g in self.groups:
                if g.need > n:  # the block came back short
                    quality[g.idx] = DECODE_ERROR
                    continue
                if g.unpack is None:
                    g.apply(g.raw(be, le), values, quality)  # type: ignore[arg-type]
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


def compile_block(block: ReadBlock, points: list[ModbusPointConfig]) -> BlockDecoder:
    """Derive everything a poll of `block` needs from the points it covers."""
    by_rule: dict[tuple[str, str], list[int]] = {}
    strings: list[int] = []
    for i in block.points:
        p = points[i]
        if p.kind in ("coil", "discrete"):
            by_rule.setdefault(("BITS", "ABCD"), []).append(i)
        elif p.type == "STRING":
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
    unpack_little = order in (ByteOrder.CDAB, ByteOrder.DCBA)
    return struct.Struct(("<" if unpack_little else ">") + "".join(parts)), pack_little


def _compile_group(block: ReadBlock, points: list[ModbusPointConfig], rule: str, order: str, idx: list[int]) -> GroupDecoder:
    idx = sorted(idx, key=lambda i: points[i].address)
    ps = [points[i] for i in idx]
    offsets = np.array([block.offset(p.address) for p in ps], dtype=np.intp)
    positions = np.array(idx, dtype=np.intp)
    byte_order = ByteOrder(order)
    swap = byte_order in (ByteOrder.BADC, ByteOrder.DCBA)
    source: slice | None = None
    bits: NDArray[np.uint16] | None = None
    layout = None
    view = _WORDS
    if rule == "BITS":
        kind, width, gather, floats = "bits", 1, offsets, False
    elif rule == "BIT":
        kind, width, gather, floats = "bit", 1, offsets, False
        bits = np.array([p.bit for p in ps], dtype=np.uint16)
    else:
        dtype = DataType(rule)
        kind, width, floats = "value", register_count(dtype), dtype in _FLOATS
        view = np.dtype(">" + NUMPY_CODE[dtype])
        layout = _struct_layout(byte_order, STRUCT_CODE[dtype], offsets.tolist(), width)
        # each point's registers as a row, most significant word first: reversing the column
        # index undoes a word swap, and reading the row's bytes big endian gives the value
        columns = np.arange(width, dtype=np.intp)
        if byte_order in (ByteOrder.CDAB, ByteOrder.DCBA):
            columns = columns[::-1]
        gather = (offsets[:, None] + columns).ravel()
        source = _run(gather, 1)
    scale = None if all(p.scale == 1.0 for p in ps) else np.array([p.scale for p in ps])
    offset = None if all(p.offset == 0.0 for p in ps) else np.array([p.offset for p in ps])
    sentinel = None if all(p.sentinel is None for p in ps) else _opt([p.sentinel for p in ps])
    pmin = None if all(p.min is None for p in ps) else _opt([p.min for p in ps])
    pmax = None if all(p.max is None for p in ps) else _opt([p.max for p in ps])
    return GroupDecoder(
        idx=positions,
        target=_run(positions, 1),
        need=int(offsets.max()) + width,
        kind=kind,
        unpack=layout[0] if layout else None,
        little=layout[1] if layout else False,
        swap=swap,
        view=view,
        source=source,
        gather=gather,
        bits=bits,
        floats=floats,
        plain=scale is None and offset is None and sentinel is None and pmin is None and pmax is None,
        scale=scale,
        offset=offset,
        sentinel=sentinel,
        pmin=pmin,
        pmax=pmax,
    )
