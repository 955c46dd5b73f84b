"""The S7 source's pure parts: settings, the read planner, the byte decoder."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from gateway.codec.s7 import compile_item, decode_s7
from gateway.core.model import SampleQuality
from gateway.settings.s7 import S7DeviceConfig, S7PointConfig
from gateway.sources.s7_plan import max_item_bytes, plan_items, plan_requests
from gateway.sources.snap7_client import S7Client
from tests.factories import site_settings


def point(**kw: Any) -> S7PointConfig:
    kw.setdefault("signal", "s")
    return S7PointConfig(**kw)


# --- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"area": "DB", "byte": 0, "type": "REAL"}, "area DB needs 'db'"),
        ({"area": "M", "db": 3, "byte": 0, "type": "REAL"}, "'db' applies to area DB only"),
        ({"area": "M", "byte": 0, "type": "BOOL"}, "type BOOL needs 'bit'"),
        ({"area": "M", "byte": 0, "type": "INT", "bit": 1}, "'bit' applies to type BOOL only"),
        ({"area": "M", "byte": 0, "type": "INT", "bit": 8}, "less than or equal to 7"),
        ({"area": "M", "byte": 65533, "type": "REAL"}, "past the last S7 byte"),
        ({"area": "M", "byte": 0, "type": "STRING"}, "BOOL"),
        ({"area": "M", "byte": 0, "type": "INT", "scale": 0}, "scale 0"),
    ],
)
def test_point_errors_name_the_fix(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        point(**fields)


def test_point_accepts_lower_case_and_writes_its_address_as_a_tag_table_does() -> None:
    assert point(area="db", db=10, byte=4, type="real").where == "DB10.DBD4"
    assert point(area="DB", db=10, byte=4, type="BOOL", bit=3).where == "DB10.DBX4.3"
    assert point(area="M", byte=2, type="WORD").where == "MW2"
    assert point(area="I", byte=0, type="BOOL", bit=3).where == "I0.3"
    assert point(area="Q", byte=1, type="BYTE").where == "QB1"


def test_device_needs_both_tsaps_or_neither() -> None:
    with pytest.raises(ValidationError, match="set both local_tsap and remote_tsap"):
        S7DeviceConfig(name="plc", host="10.0.0.5", local_tsap=0x0100)
    dev = S7DeviceConfig(name="plc", host="10.0.0.5", local_tsap=0x0100, remote_tsap=0x0200)
    assert "TSAP 0x0100->0x0200" in dev.endpoint


def test_remote_tsap_from_rack_and_slot_is_the_pg_connection_to_the_cpu() -> None:
    assert S7Client("h", rack=0, slot=2).remote_tsap == 0x0102
    assert S7Client("h", rack=1, slot=3).remote_tsap == 0x0123
    assert S7Client("h", local_tsap=0x1000, remote_tsap=0x2000).remote_tsap == 0x2000


def test_site_check_names_an_undeclared_signal_by_its_s7_address() -> None:
    plc = {"name": "bf", "host": "10.0.0.5", "points": [{"signal": "nope", "area": "DB", "db": 7, "byte": 8, "type": "REAL"}]}
    with pytest.raises(ValidationError, match=r"s7 device 'bf' point DB7.DBD8: signal 'nope' is not declared"):
        site_settings(signals={}, s7={"devices": [plc]})
    settings = site_settings(signals={"flow": {"unit": "t/h"}}, s7={"devices": [{**plc, "poll_s": 5, "points": [{**plc["points"][0], "signal": "flow"}]}]})  # type: ignore[dict-item]
    assert settings.signal_poll_s()["flow"] == 5


# --- planner --------------------------------------------------------------------------------


def test_points_close_together_share_an_item_and_areas_never_do() -> None:
    pts = [
        point(area="DB", db=1, byte=0, type="REAL"),
        point(area="DB", db=1, byte=8, type="INT"),  # 4 bytes of gap: bridged
        point(area="DB", db=1, byte=100, type="DINT"),  # far: an item of its own
        point(area="DB", db=2, byte=0, type="REAL"),  # another DB
        point(area="M", byte=0, type="BOOL", bit=0),
        point(area="M", byte=0, type="BOOL", bit=7),
    ]
    items = plan_items(pts, pdu_bytes=480, max_gap_bytes=16)
    got = [(it.area, it.db, it.start, it.size, it.points) for it in items]
    assert got == [
        ("DB", 1, 0, 10, (0, 1)),
        ("DB", 1, 100, 4, (2,)),
        ("DB", 2, 0, 4, (3,)),
        ("M", 0, 0, 1, (4, 5)),
    ]
    assert [len(r.items) for r in plan_requests(pts, pdu_bytes=480, max_gap_bytes=16)] == [4]


@pytest.mark.parametrize("pdu", [240, 480, 960])
def test_a_db_larger_than_one_pdu_is_split_and_every_request_fits_the_pdu(pdu: int) -> None:
    # a REAL every 4 bytes over 2000 bytes: one contiguous run, far longer than any reply
    pts = [point(signal=f"s{i}", area="DB", db=5, byte=4 * i, type="REAL") for i in range(500)]
    requests = plan_requests(pts, pdu_bytes=pdu, max_gap_bytes=16)
    assert len(requests) > 1
    covered = sorted(i for r in requests for it in r.items for i in it.points)
    assert covered == list(range(500))
    for r in requests:
        assert r.request_bytes <= pdu and r.reply_bytes <= pdu
        for it in r.items:
            assert it.size <= max_item_bytes(pdu)
            assert all(it.start <= pts[i].byte and pts[i].byte + 4 <= it.start + it.size for i in it.points)


def test_many_scattered_items_respect_the_item_limit_and_the_request_budget() -> None:
    pts = [point(signal=f"s{i}", area="DB", db=1, byte=100 * i, type="BYTE") for i in range(50)]
    requests = plan_requests(pts, pdu_bytes=240, max_gap_bytes=0, max_items=20)
    # 240-byte requests carry at most (240 - 14) // 12 = 18 address specs
    assert [len(r.items) for r in requests] == [18, 18, 14]
    assert all(r.request_bytes <= 240 for r in requests)
    assert [len(r.items) for r in plan_requests(pts, pdu_bytes=960, max_gap_bytes=0, max_items=20)] == [20, 20, 10]


# --- decoder --------------------------------------------------------------------------------

TYPES = [  # (type, struct code, value)
    ("BYTE", "B", 200),
    ("WORD", "H", 54321),
    ("DWORD", "I", 4_000_000_000),
    ("INT", "h", -1234),
    ("DINT", "i", -7_654_321),
    ("REAL", "f", 123.456),
    ("LREAL", "d", 98765.4321),
]


def test_every_type_decodes_big_endian_from_one_item() -> None:
    data = bytearray()
    pts = []
    for i, (dtype, code, value) in enumerate(TYPES):
        pts.append(point(signal=f"s{i}", area="DB", db=1, byte=len(data) + 1, type=dtype))
        data += b"\x00" + struct.pack(">" + code, value)  # odd offsets too: S7 addresses bytes
    bits_at = len(data)
    data += bytes([0b1000_0100])
    pts += [
        point(signal="b2", area="DB", db=1, byte=bits_at, type="BOOL", bit=2),
        point(signal="b7", area="DB", db=1, byte=bits_at, type="BOOL", bit=7),
        point(signal="b0", area="DB", db=1, byte=bits_at, type="BOOL", bit=0),
        point(signal="scaled", area="DB", db=1, byte=pts[3].byte, type="INT", scale=0.1, offset=5.0),  # overlaps
    ]
    dec = compile_item(0, len(data), range(len(pts)), pts)
    assert dec.unpack is None  # the overlap takes the point-by-point way
    values = np.full(len(pts), np.nan)
    quality = np.full(len(pts), SampleQuality.COMM_ERROR, dtype=np.uint8)
    dec.decode_into(bytes(data), values, quality)
    assert quality.tolist() == [SampleQuality.GOOD] * len(pts)
    expected = [float(struct.unpack(">" + c, struct.pack(">" + c, v))[0]) for _, c, v in TYPES]
    assert values[: len(TYPES)].tolist() == pytest.approx(expected, rel=1e-12)
    assert values[len(TYPES) :].tolist() == pytest.approx([1.0, 1.0, 0.0, -1234 * 0.1 + 5.0])


def test_one_struct_format_when_points_do_not_overlap() -> None:
    pts = [point(signal="a", area="M", byte=0, type="REAL"), point(signal="b", area="M", byte=10, type="INT")]
    dec = compile_item(0, 12, [0, 1], pts)
    assert dec.unpack is not None and dec.unpack.format == ">f6xh"
    values = np.zeros(2)
    quality = np.zeros(2, dtype=np.uint8)
    dec.decode_into(struct.pack(">f6xh", 2.5, -7), values, quality)
    assert values.tolist() == [2.5, -7.0]


@pytest.mark.parametrize("raw", [math.nan, math.inf, -math.inf])
def test_a_non_finite_real_is_a_decode_error_never_a_zero(raw: float) -> None:
    value, quality = decode_s7(struct.pack(">f", raw), point(area="M", byte=0, type="REAL"))
    assert math.isnan(value) and quality == SampleQuality.DECODE_ERROR


def test_sentinel_and_range_as_for_modbus() -> None:
    p = point(area="M", byte=0, type="INT", sentinel=-32768, min=0, max=100)
    assert decode_s7(struct.pack(">h", -32768), p)[1] == SampleQuality.NO_READING
    assert decode_s7(struct.pack(">h", 150), p) == (150.0, SampleQuality.OUT_OF_RANGE)  # kept, flagged
    assert decode_s7(struct.pack(">h", 50), p) == (50.0, SampleQuality.GOOD)


def test_a_short_reply_fails_only_the_points_it_lacks() -> None:
    pts = [point(signal="a", area="M", byte=0, type="INT"), point(signal="b", area="M", byte=2, type="REAL")]
    dec = compile_item(0, 6, [0, 1], pts)
    values = np.zeros(2)
    quality = np.zeros(2, dtype=np.uint8)
    dec.decode_into(struct.pack(">hh", 42, 0), values, quality)  # 4 of 6 bytes
    assert values[0] == 42.0 and quality[0] == SampleQuality.GOOD
    assert math.isnan(values[1]) and quality[1] == SampleQuality.DECODE_ERROR


def test_the_operator_guide_s7_example_passes_check_config(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    from gateway.cli import main

    guide = (Path(__file__).parents[2] / "docs" / "operator-guide.md").read_text(encoding="utf-8")
    section = guide[guide.index("## Siemens S7 PLCs") :]
    example = section[section.index("```toml") + len("```toml") : section.index("```\n", section.index("```toml") + 7)]
    site = tmp_path / "site.toml"
    site.write_text('[site]\nname = "w"\n' + example, encoding="utf-8")
    assert main(["check-config", str(site)]) == 0
    assert "1 S7 PLC(s), 3 signal(s)" in capsys.readouterr().out


def test_a_poll_gathers_raw_values_and_runs_the_rules_once_with_short_items_flagged() -> None:
    from gateway.codec.s7 import S7Rules

    pts = [
        point(signal="a", area="M", byte=0, type="INT", scale=2.0),
        point(signal="b", area="M", byte=2, type="REAL"),
        point(signal="c", area="DB", db=1, byte=0, type="BOOL", bit=1),
    ]
    m = compile_item(0, 6, [0, 1], pts)
    db = compile_item(0, 1, [2], pts)
    raw = np.zeros(3)
    lacking = [cols for cols in (m.raw_into(struct.pack(">h", 21), raw), db.raw_into(b"\x02", raw)) if cols is not None]
    values = np.empty(3)
    quality = np.empty(3, dtype=np.uint8)
    S7Rules.of(pts).apply(raw, values, quality, lacking=lacking)
    assert values[0] == 42.0 and values[2] == 1.0
    assert math.isnan(values[1])
    assert quality.tolist() == [SampleQuality.GOOD, SampleQuality.DECODE_ERROR, SampleQuality.GOOD]
