"""HJ 212-2017 codec: the CRC on the standard's vector, the frame reader's resynchronisation
after every kind of bad frame, data segment parsing and the data reply."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from gateway.codec.hj212 import (
    BadFrame,
    Frame,
    FrameReader,
    SegmentError,
    data_ack,
    encode_frame,
    hj212_crc,
    parse_segment,
)

# The standard's appendix: a 101-character segment with CRC 1C80.
VECTOR_SEGMENT = "QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&"
VECTOR_FRAME = b"##0101" + VECTOR_SEGMENT.encode() + b"1C80\r\n"
MINUTE = (
    "QN=20240301101500001;ST=31;CN=2051;PW=123456;MN=STACK1;Flag=5;"
    "CP=&&DataTime=20240301101400;a21026-Avg=35.2,a21026-Min=30.1,a21026-Max=40.5,a21026-Cou=1.25,a21026-Flag=N;"
    "a01011-Avg=12.5,a01011-Flag=C&&"
)


def modbus_crc(data: bytes) -> int:
    reg = 0xFFFF
    for byte in data:
        reg ^= byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    return reg


def test_crc_of_the_standards_vector() -> None:
    data = VECTOR_SEGMENT.encode()
    assert len(data) == 101
    assert hj212_crc(data) == 0x1C80
    assert modbus_crc(data) != 0x1C80  # a Modbus CRC-16 would pass no real data logger's frame


def test_encode_frame_gives_the_appendix_frame() -> None:
    assert encode_frame(VECTOR_SEGMENT) == VECTOR_FRAME


def test_reader_takes_a_frame_whole_or_byte_by_byte() -> None:
    assert FrameReader().feed(VECTOR_FRAME) == [Frame(VECTOR_SEGMENT.encode())]
    reader = FrameReader()
    events = [e for b in VECTOR_FRAME for e in reader.feed(bytes([b]))]
    assert events == [Frame(VECTOR_SEGMENT.encode())]
    assert reader.pending == 0


def test_reader_splits_frames_sent_together() -> None:
    other = encode_frame(MINUTE)
    events = FrameReader().feed(VECTOR_FRAME + other + VECTOR_FRAME)
    assert events == [Frame(VECTOR_SEGMENT.encode()), Frame(MINUTE.encode()), Frame(VECTOR_SEGMENT.encode())]


def _bad_then_good(bad: bytes) -> list[Frame | BadFrame]:
    reader = FrameReader(1024)
    events = reader.feed(bad + VECTOR_FRAME)
    assert events[-1] == Frame(VECTOR_SEGMENT.encode()), events
    assert reader.pending == 0
    return events[:-1]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b"garbage\r\n", "without a '##' header"),
        (VECTOR_FRAME.replace(b"1C80", b"1C81"), "CRC 1C81 does not match"),
        (VECTOR_FRAME.replace(b"##0101", b"##0099"), "wrong length field"),  # says fewer bytes than it has
        (VECTOR_FRAME.replace(b"##0101", b"##0103"), "wrong length field"),  # says more: the good frame's bytes are borrowed
        (VECTOR_FRAME.replace(b"##0101", b"##01x1"), "not 4 decimal digits"),
        (b"##9000" + b"x" * 10, "exceeds the limit of 1024"),
        (VECTOR_FRAME.replace(b"1C80", b"1CZZ"), "not 4 hex digits"),
        (VECTOR_FRAME[:50], "wrong length field"),  # truncated: the next frame's header lands in its body
    ],
)
def test_reader_rejects_a_bad_frame_once_and_keeps_the_next(bad: bytes, reason: str) -> None:
    rejected = _bad_then_good(bad)
    assert len(rejected) == 1, rejected
    assert isinstance(rejected[0], BadFrame) and reason in rejected[0].reason


def test_a_megabyte_without_a_frame_is_dropped_as_it_comes() -> None:
    reader = FrameReader()
    events = []
    for _ in range(256):
        events += reader.feed(b"A" * 4095 + b"#")
        assert reader.pending <= 1  # nothing kept but the half header that may be arriving
    events += reader.feed(b"#" + VECTOR_FRAME[2:])  # that '#' was half of a real header
    assert events[-1] == Frame(VECTOR_SEGMENT.encode())
    assert all(isinstance(e, BadFrame) for e in events[:-1])


def test_a_frame_declaring_more_than_it_sends_stays_pending() -> None:
    reader = FrameReader()
    assert reader.feed(b"##9999" + b"x" * 5000) == []
    assert reader.pending == 5006  # bounded by the 4-digit length field; the source times it out


def test_parse_minute_data() -> None:
    m = parse_segment(MINUTE.encode())
    assert (m.qn, m.st, m.cn, m.pw, m.mn, m.flag) == ("20240301101500001", "31", "2051", "123456", "STACK1", 5)
    assert m.wants_ack
    assert m.data_time == datetime(2024, 3, 1, 10, 14, 0)
    got = {(r.code, r.field): (r.value, r.flag) for r in m.readings}
    assert got == {
        ("a21026", "Avg"): (35.2, "N"),
        ("a21026", "Min"): (30.1, "N"),
        ("a21026", "Max"): (40.5, "N"),
        ("a21026", "Cou"): (1.25, "N"),
        ("a01011", "Avg"): (12.5, "C"),
    }


def test_parse_keeps_a_value_that_is_not_a_number_as_nan() -> None:
    m = parse_segment(b"QN=1;ST=31;CN=2011;PW=1;MN=X;Flag=4;CP=&&DataTime=20240301101400;a21026-Rtd=abc,a21026-Flag=N&&")
    (r,) = m.readings
    assert not r.valid and math.isnan(r.value)
    assert not m.wants_ack


@pytest.mark.parametrize(
    ("segment", "reason"),
    [
        (b"QN=1;ST=31;CN=2011;MN=X;Flag=4", "no 'CP=&&'"),
        (b"QN=1;ST=31;CN=2011;MN=X;Flag=4;CP=&&a-Rtd=1", "does not end with '&&'"),
        (b"QN=1;ST=31;MN=X;Flag=4;CP=&&&&", "lacks CN"),
        (b"QN=1;CN=2011;MN=X;Flag=x;CP=&&&&", "Flag"),
        (b"QN=1;CN=2011;MN=X;CP=&&DataTime=2024;a-Rtd=1&&", "DataTime"),
        ("QN=1;CN=2011;MN=X;CP=&&a-Rtd=1°&&".encode(), "not ASCII"),
    ],
)
def test_parse_names_what_is_wrong(segment: bytes, reason: str) -> None:
    with pytest.raises(SegmentError, match=reason):
        parse_segment(segment)


def test_data_ack_echoes_qn_and_mn() -> None:
    ack = data_ack(parse_segment(MINUTE.encode()))
    (frame,) = FrameReader().feed(ack)
    assert isinstance(frame, Frame)
    assert frame.segment == b"QN=20240301101500001;ST=91;CN=9014;PW=123456;MN=STACK1;Flag=4;CP=&&&&"


def test_junk_after_a_good_frame_is_one_new_rejection() -> None:
    reader = FrameReader()
    events = reader.feed(VECTOR_FRAME + b"junk")
    events += reader.feed(b"more junk")  # the same run: no second event
    events += reader.feed(VECTOR_FRAME + b"junk")  # a new run after a good frame: one event
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Frame", "BadFrame", "Frame", "BadFrame"]
