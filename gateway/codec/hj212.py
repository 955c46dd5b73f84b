"""Sans-IO HJ 212-2017: frames out of a byte stream, their data segments parsed, replies built.

A frame is `##` + 4-digit data length + data segment + 4 hex digits of CRC + CRLF. The segment
is `QN=..;ST=..;CN=..;PW=..;MN=..;Flag=..;CP=&&...&&`; CP holds `DataTime=yyyyMMddHHmmss` and
`code-Rtd=`, `code-Avg=`, `code-Min=`, `code-Max=`, `code-Cou=`, `code-Flag=` items separated
by `;` and `,`.

`FrameReader` is a state machine in the manner of h11: bytes in (`feed`), events out
(`Frame` or `BadFrame`). Its buffer never holds more than one frame of the largest declared
length, so a megabyte of garbage costs a scan, never memory, and one bad frame never takes the
good ones after it: after any error the reader moves two bytes past the rejected `##` and looks
for the next one (a frame whose length field lies is found again at its true end).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

HEADER = b"##"
TRAILER = b"\r\n"
MAX_LENGTH_FIELD = 9999  # four decimal digits
DATA_CNS = frozenset({"2011", "2051", "2061"})  # real-time, minute, hourly data
VALUE_FIELDS = ("Rtd", "Avg", "Min", "Max", "Cou")
#: The standard's data flags (HJ 212-2017 table 6). N is the only one that makes a reading good.
DATA_FLAGS = {
    "N": "normal",
    "F": "stopped",
    "M": "maintenance",
    "S": "manual set value",
    "D": "instrument fault",
    "C": "calibration",
    "T": "over range",
    "B": "communication fault",
}
NO_HEADER = "bytes without a '##' header"
ACK_BIT = 0x01  # Flag bit A: the sender asks for a reply
PACKETS_BIT = 0x02  # Flag bit D: the frame is one packet of several (PNUM, PNO)
VERSION_2017 = 0x04  # Flag bits V5..V0 = 000001: HJ 212-2017


def hj212_crc(data: bytes) -> int:
    """The HJ 212 CRC of a data segment (not Modbus CRC-16: the byte enters the high half)."""
    reg = 0xFFFF
    for byte in data:
        reg = (reg >> 8) ^ byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    return reg


def encode_frame(segment: str) -> bytes:
    """`segment` (ASCII) framed: header, length, CRC and CRLF."""
    data = segment.encode("ascii")
    if len(data) > MAX_LENGTH_FIELD:
        raise ValueError(f"an HJ 212 data segment is at most {MAX_LENGTH_FIELD} bytes; this one is {len(data)}")
    return b"%s%04d%s%04X%s" % (HEADER, len(data), data, hj212_crc(data), TRAILER)


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame whose length and CRC were right; `segment` is its data segment."""

    segment: bytes


@dataclass(frozen=True, slots=True)
class BadFrame:
    """Bytes rejected: `reason` says what was wrong, `skipped` how many bytes were dropped."""

    reason: str
    skipped: int


class FrameReader:
    """Splits a byte stream into frames. `max_data_bytes` bounds a declared length (and so the buffer)."""

    def __init__(self, max_data_bytes: int = MAX_LENGTH_FIELD) -> None:
        if not 0 < max_data_bytes <= MAX_LENGTH_FIELD:
            raise ValueError(f"max_data_bytes must be 1..{MAX_LENGTH_FIELD}, not {max_data_bytes}")
        self.max_data_bytes = max_data_bytes
        self._buf = bytearray()
        self._skipping = False  # dropping the rest of a rejected run: more junk is not another event

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame held; 0 between frames."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame | BadFrame]:
        """Take the next bytes of the stream; return the frames (and rejections) they completed."""
        self._buf += data
        events: list[Frame | BadFrame] = []
        while self._buf:
            event = self._next()
            if event is None:
                break
            if isinstance(event, BadFrame) and self._skipping and event.reason == NO_HEADER:
                continue  # the same run of junk as the last rejection
            # a rejection whose drop found no next header: the bytes that follow continue its run
            self._skipping = isinstance(event, BadFrame) and not self._buf.startswith(HEADER)
            events.append(event)
        return events

    def _drop(self, n: int, reason: str) -> BadFrame:
        """Drop `n` bytes and the junk after them up to the next '##': one rejection, one event."""
        buf = self._buf
        del buf[:n]
        k = buf.find(HEADER)
        if k < 0:
            k = len(buf) - (1 if buf.endswith(b"#") else 0)  # keep the first half of a header still arriving
        del buf[:k]
        return BadFrame(reason, n + k)

    def _next(self) -> Frame | BadFrame | None:
        buf = self._buf
        start = buf.find(HEADER)
        if start != 0:
            if start < 0 and buf == b"#":
                return None  # the first half of a header that is still arriving
            return self._drop(0, NO_HEADER)
        if len(buf) < 6:
            return None
        digits = bytes(buf[2:6])
        if not digits.isdigit():
            return self._drop(2, f"length field {digits!r} is not 4 decimal digits")
        length = int(digits)
        if length > self.max_data_bytes:
            return self._drop(2, f"length field {length} exceeds the limit of {self.max_data_bytes} bytes")
        end = 6 + length + 6
        if len(buf) < end:
            return None
        if buf[end - 2 : end] != TRAILER:
            return self._drop(2, f"no CRLF after the {length} bytes the length field declares (wrong length field)")
        segment = bytes(buf[6 : 6 + length])
        crc_text = bytes(buf[6 + length : end - 2])
        try:
            crc = int(crc_text, 16)
        except ValueError:
            return self._drop(2, f"CRC {crc_text!r} is not 4 hex digits (wrong length field?)")
        if crc != hj212_crc(segment):
            return self._drop(
                2, f"CRC {crc_text.decode('ascii', 'replace')} does not match the data (computed {hj212_crc(segment):04X})"
            )
        del buf[:end]
        return Frame(segment)


@dataclass(frozen=True, slots=True)
class Reading:
    """One `code-Field=value` of CP. value is NaN where the text is not a number (`valid` False)."""

    code: str
    field: str
    value: float
    flag: str | None  # the code's `code-Flag`, None when the frame gives none
    valid: bool = True


@dataclass(frozen=True, slots=True)
class Message:
    """A parsed data segment. Header fields are kept as text; `flag` is the Flag field's bits."""

    qn: str
    st: str
    cn: str
    pw: str
    mn: str
    flag: int
    data_time: datetime | None  # CP's DataTime, naive: the data logger's wall clock
    readings: tuple[Reading, ...] = field(default=())

    @property
    def wants_ack(self) -> bool:
        return bool(self.flag & ACK_BIT)


class SegmentError(ValueError):
    """A data segment that is not HJ 212 (the message says which part)."""


def parse_segment(segment: bytes) -> Message:
    """Parse a data segment. Raises SegmentError naming the part that is wrong."""
    try:
        text = segment.decode("ascii")
    except UnicodeDecodeError as exc:
        raise SegmentError(f"byte {exc.start} is not ASCII") from None
    head, sep, cp = text.partition("CP=&&")
    if not sep:
        raise SegmentError("no 'CP=&&' in the data segment")
    if not cp.endswith("&&"):
        raise SegmentError("CP does not end with '&&'")
    cp = cp[:-2]
    fields: dict[str, str] = {}
    for item in head.split(";"):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq:
            raise SegmentError(f"header item {item[:40]!r} is not KEY=VALUE")
        fields[key] = value
    missing = [k for k in ("QN", "CN", "MN") if not fields.get(k)]
    if missing:
        raise SegmentError(f"header lacks {', '.join(missing)}")
    flag_text = fields.get("Flag", "0")
    if not flag_text.isdigit() or len(flag_text) > 3:
        raise SegmentError(f"Flag {flag_text[:10]!r} is not a number")
    items: dict[str, str] = {}
    for group in cp.split(";"):
        for item in group.split(","):
            if not item:
                continue
            key, eq, value = item.partition("=")
            if not eq:
                raise SegmentError(f"CP item {item[:40]!r} is not KEY=VALUE")
            items[key] = value
    data_time = None
    if "DataTime" in items:
        try:
            data_time = datetime.strptime(items["DataTime"], "%Y%m%d%H%M%S")
        except ValueError:
            raise SegmentError(f"DataTime {items['DataTime'][:20]!r} is not yyyyMMddHHmmss") from None
    readings = []
    for key, value in items.items():
        code, dash, name = key.rpartition("-")
        if not dash or name not in VALUE_FIELDS:
            continue
        try:
            number = float(value)
            valid = math.isfinite(number)
        except ValueError:
            number, valid = math.nan, False
        readings.append(Reading(code, name, number if valid else math.nan, items.get(f"{code}-Flag"), valid))
    return Message(
        fields["QN"],
        fields.get("ST", ""),
        fields["CN"],
        fields.get("PW", ""),
        fields["MN"],
        int(flag_text),
        data_time,
        tuple(readings),
    )


def data_ack(message: Message) -> bytes:
    """The data reply (CN 9014, ST 91) to an upload whose Flag asks for one."""
    return encode_frame(f"QN={message.qn};ST=91;CN=9014;PW={message.pw};MN={message.mn};Flag={VERSION_2017};CP=&&&&")
