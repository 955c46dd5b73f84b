"""The S7 read planner: the fewest multi-variable reads that cover a PLC's points.

An S7 read request carries up to 20 items (address specs: area, DB, first byte, byte count) and
its reply carries their bytes; both must fit the PDU size agreed at connect (240 bytes on an
S7-300, 480 or 960 on an S7-1500). The planner works in two steps:

1. Items. Points are grouped per area and data block and sorted by byte; an item grows while
   the next point fits within the largest item one reply can carry (`pdu - 18`: a 12-byte
   header, 2 bytes of parameters, a 4-byte item header) and the unused bytes it would bridge
   are at most `max_gap_bytes`. A data block larger than one PDU therefore becomes several items.
2. Requests. Items are packed in order into requests while both budgets hold:
   request `12 + 2 + 12 * items <= pdu` and reply `12 + 2 + sum(4 + even(bytes)) <= pdu`
   (an odd item is followed by a fill byte), and at most `max_items` items.

The plan depends on the PDU size, so the source makes it again on every connect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.codec.s7 import S7_TYPE_BYTES
from gateway.settings.s7 import S7PointConfig

HEADER_BYTES = 12  # S7 header of a request, and of a reply (with its 2 error bytes)
PARAM_BYTES = 2  # function code and item count
ADDRESS_SPEC_BYTES = 12  # one item in a request
ITEM_HEADER_BYTES = 4  # one item in a reply: return code, transport size, length


@dataclass(frozen=True)
class S7Item:
    """`size` bytes from byte `start` of one area (and data block), covering the points at `points`."""

    area: str
    db: int  # 0 outside area DB
    start: int
    size: int
    points: tuple[int, ...]  # indexes into the device's point list

    @property
    def where(self) -> str:
        area = f"DB{self.db}" if self.area == "DB" else self.area
        return f"{area} bytes {self.start}..{self.start + self.size - 1}"


@dataclass(frozen=True)
class S7Request:
    """One multi-variable read: its items go in one request and come back in one reply."""

    items: tuple[S7Item, ...]

    @property
    def request_bytes(self) -> int:
        return HEADER_BYTES + PARAM_BYTES + ADDRESS_SPEC_BYTES * len(self.items)

    @property
    def reply_bytes(self) -> int:
        return HEADER_BYTES + PARAM_BYTES + sum(_reply_cost(it.size) for it in self.items)


def _reply_cost(size: int) -> int:
    return ITEM_HEADER_BYTES + size + (size & 1)


def max_item_bytes(pdu_bytes: int) -> int:
    """The largest item a reply of `pdu_bytes` can carry."""
    return pdu_bytes - HEADER_BYTES - PARAM_BYTES - ITEM_HEADER_BYTES


def plan_items(points: Sequence[S7PointConfig], *, pdu_bytes: int, max_gap_bytes: int) -> list[S7Item]:
    """Group points into items of at most `max_item_bytes(pdu_bytes)` bytes."""
    limit = max_item_bytes(pdu_bytes)
    if limit < max(S7_TYPE_BYTES.values()):
        raise ValueError(f"a PDU of {pdu_bytes} bytes cannot carry one {max(S7_TYPE_BYTES.values())}-byte value")
    groups: dict[tuple[str, int], list[int]] = {}
    for i, p in enumerate(points):
        groups.setdefault((p.area, p.db or 0), []).append(i)
    items: list[S7Item] = []
    for (area, db), members in sorted(groups.items()):
        members.sort(key=lambda i: (points[i].byte, S7_TYPE_BYTES[points[i].type]))
        start = end = -1
        current: list[int] = []
        for i in members:
            a, w = points[i].byte, S7_TYPE_BYTES[points[i].type]
            if current and a - end <= max_gap_bytes and max(end, a + w) - start <= limit:
                end = max(end, a + w)
                current.append(i)
                continue
            if current:
                items.append(S7Item(area, db, start, end - start, tuple(current)))
            start, end, current = a, a + w, [i]
        if current:
            items.append(S7Item(area, db, start, end - start, tuple(current)))
    return items


def plan_requests(
    points: Sequence[S7PointConfig], *, pdu_bytes: int, max_gap_bytes: int, max_items: int = 20
) -> list[S7Request]:
    """The device's reads: items packed into requests within the PDU size and `max_items`."""
    requests: list[S7Request] = []
    current: list[S7Item] = []
    reply = HEADER_BYTES + PARAM_BYTES
    for item in plan_items(points, pdu_bytes=pdu_bytes, max_gap_bytes=max_gap_bytes):
        cost = _reply_cost(item.size)
        fits = (
            len(current) < max_items
            and reply + cost <= pdu_bytes
            and HEADER_BYTES + PARAM_BYTES + ADDRESS_SPEC_BYTES * (len(current) + 1) <= pdu_bytes
        )
        if current and not fits:
            requests.append(S7Request(tuple(current)))
            current, reply = [], HEADER_BYTES + PARAM_BYTES
        current.append(item)
        reply += cost
    if current:
        requests.append(S7Request(tuple(current)))
    return requests
