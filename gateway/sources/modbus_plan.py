"""The read planner: the fewest block reads that cover a device's points.

Points are grouped per register kind and sorted by address; a block grows while the next point
fits within `max_registers` and the unused registers it would bridge are at most `max_gap`.
Bridging small gaps is what cut one Telegraf user's poll from about 4 s to 150 ms; the bound
keeps a block from dragging in registers a device may refuse. `max_registers = 1` gives one
register per request for devices that reject block reads. A point's width is the decoder's
(`gateway.codec.blocks.point_width`), so a block is exactly as long as its points need.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.codec.blocks import point_width
from gateway.settings.site import ModbusPointConfig, RegisterKind


@dataclass(frozen=True)
class ReadBlock:
    """One read request: `count` registers (or bits) of table `kind` from `start`.

    A `gateway.codec.blocks.BlockSpec`, so `compile_block` compiles its decoder.
    """

    kind: RegisterKind
    start: int
    count: int
    points: tuple[int, ...]  # indexes into the device's point list

    def offset(self, address: int) -> int:
        return address - self.start


def plan_reads(points: list[ModbusPointConfig], *, max_registers: int, max_gap: int) -> list[ReadBlock]:
    """Group points into block reads; a point wider than max_registers gets a block of its own."""
    blocks: list[ReadBlock] = []
    by_kind: dict[RegisterKind, list[int]] = {}
    for i, p in enumerate(points):
        by_kind.setdefault(p.kind, []).append(i)
    for kind in sorted(by_kind):
        idx = sorted(by_kind[kind], key=lambda i: (points[i].address, point_width(points[i])))
        start = end = -1
        members: list[int] = []
        for i in idx:
            a, w = points[i].address, point_width(points[i])
            if members and a - end <= max_gap and max(end, a + w) - start <= max_registers:
                end = max(end, a + w)
                members.append(i)
                continue
            if members:
                blocks.append(ReadBlock(kind, start, end - start, tuple(members)))
            start, end, members = a, a + w, [i]
        if members:
            blocks.append(ReadBlock(kind, start, end - start, tuple(members)))
    return blocks


def split_block(block: ReadBlock, points: list[ModbusPointConfig]) -> list[ReadBlock]:
    """The two halves of a block the device refused (exception 2, illegal data address).

    Each half covers only its own points, so the registers between them that the device may
    not have are no longer asked for. Splitting again and again isolates a refused point in a
    block of its own while its neighbours keep being read. A one-point block cannot be split
    and gives [].
    """
    if len(block.points) < 2:
        return []
    members = sorted(block.points, key=lambda i: (points[i].address, point_width(points[i])))
    half = len(members) // 2
    out: list[ReadBlock] = []
    for part in (members[:half], members[half:]):
        start = min(points[i].address for i in part)
        end = max(points[i].address + point_width(points[i]) for i in part)
        out.append(ReadBlock(block.kind, start, end - start, tuple(part)))
    return out
