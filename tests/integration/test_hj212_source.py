"""Hj212Source against HJ 212 senders on 127.0.0.1: the standard's appendix frame, real-time,
minute and hourly data mapped to signals with their flags, the data reply, and hostile senders
(wrong length, wrong CRC, truncated, a megabyte, slow-loris, too many connections, idle) that
never crash or stall the listener: a good sender on another connection is served throughout."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.codec.hj212 import Frame, FrameReader, encode_frame
from gateway.core.clock import SystemClock
from gateway.core.health import ComponentHealth
from gateway.core.model import SampleBatch, SampleQuality
from gateway.core.signals import SignalTable
from gateway.sources.hj212 import Hj212Source
from tests.factories import site_settings

pytestmark = pytest.mark.integration

MN = "010000A8900016F000169DC0"
APPENDIX = b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n"
SIGNALS = {
    "so2_mg_m3": {"kind": "instant", "unit": "mg/m3"},
    "so2_min_mg_m3": {"kind": "instant", "unit": "mg/m3"},
    "so2_max_mg_m3": {"kind": "instant", "unit": "mg/m3"},
    "so2_kg": {"kind": "instant", "unit": "kg"},
    "so2_hour_mg_m3": {"kind": "instant", "unit": "mg/m3"},
    "flow_nm3_h": {"unit": "Nm3/h"},
    "co2_pct": {"kind": "instant", "unit": "%"},
}
POINTS = [
    {"mn": MN, "code": "a21026", "field": "Rtd", "signal": "so2_mg_m3"},
    {"mn": MN, "code": "a00000", "field": "Rtd", "signal": "flow_nm3_h"},
    {"mn": MN, "code": "a05001", "field": "Rtd", "signal": "co2_pct"},
    {"mn": MN, "code": "a21026", "field": "Avg", "signal": "so2_mg_m3"},
    {"mn": MN, "code": "a21026", "field": "Min", "signal": "so2_min_mg_m3"},
    {"mn": MN, "code": "a21026", "field": "Max", "signal": "so2_max_mg_m3"},
    {"mn": MN, "code": "a21026", "field": "Cou", "signal": "so2_kg"},
    {"mn": MN, "code": "a21026", "field": "Avg", "cn": 2061, "signal": "so2_hour_mg_m3"},
]


def segment(cn: int, cp: str, *, flag: int = 5, qn: str = "20240301101500001", mn: str = MN) -> str:
    return f"QN={qn};ST=31;CN={cn};PW=123456;MN={mn};Flag={flag};CP=&&{cp}&&"


@asynccontextmanager
async def listening(**server: Any) -> AsyncIterator[tuple[Hj212Source, asyncio.Queue[SampleBatch], SignalTable]]:
    cfg = {"name": "cems", "port": 1, "points": POINTS, **server}
    settings = site_settings("t", signals=SIGNALS, hj212={"servers": [cfg]})
    signals = SignalTable.from_settings(settings)
    queue: asyncio.Queue[SampleBatch] = asyncio.Queue(maxsize=1000)
    # port 0: the system picks a free one (the setting's bounds are for site files)
    server_cfg = settings.hj212.servers[0].model_copy(update={"port": 0})
    src = Hj212Source(server_cfg, signals, queue, SystemClock(), ComponentHealth("hj212[cems]"), site_timezone="Asia/Shanghai")
    async with src:
        task = asyncio.create_task(src.run(), name="hj212[cems]")
        try:
            yield src, queue, signals
            assert not task.done(), "the listener stopped"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def samples(queue: asyncio.Queue[SampleBatch], signals: SignalTable, n: int) -> list[tuple[str, float, float, int]]:
    out: list[tuple[str, float, float, int]] = []
    async with asyncio.timeout(5.0):
        while len(out) < n:
            b = await queue.get()
            out += [
                (signals.names[i], t, v, q)
                for i, t, v, q in zip(b.signal_ids.tolist(), b.ts.tolist(), b.values.tolist(), b.quality.tolist(), strict=True)
            ]
    return out


async def send(port: int, data: bytes, *, reply: bool) -> bytes:
    """Send `data` on a new connection; return the first reply frame (or b"" when none comes within 0.3 s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        frames = FrameReader()
        try:
            async with asyncio.timeout(3.0 if reply else 0.3):
                while True:
                    chunk = await reader.read(1024)
                    if not chunk:
                        return b""
                    got = [e for e in frames.feed(chunk) if isinstance(e, Frame)]
                    if got:
                        return got[0].segment
        except TimeoutError:
            return b""
    finally:
        writer.close()


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def shanghai(text: str) -> float:
    # DataTime is the data logger's wall clock: Asia/Shanghai is UTC+8 all year
    return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=UTC).timestamp() - 8 * 3600


async def test_realtime_minute_and_hourly_data_become_samples_with_a_reply() -> None:
    async with listening() as (src, queue, signals):
        realtime = segment(
            2011,
            "DataTime=20240301101530;a21026-Rtd=35.2,a21026-Flag=N;a00000-Rtd=125000.5,a00000-Flag=N;a05001-Rtd=9.8,a05001-Flag=N",
        )
        ack = await send(src.port, encode_frame(realtime), reply=True)
        assert ack == f"QN=20240301101500001;ST=91;CN=9014;PW=123456;MN={MN};Flag=4;CP=&&&&".encode()
        got = await samples(queue, signals, 3)
        t = shanghai("20240301101530")
        assert got == [
            ("so2_mg_m3", t, 35.2, SampleQuality.GOOD),
            ("flow_nm3_h", t, 125000.5, SampleQuality.GOOD),
            ("co2_pct", t, 9.8, SampleQuality.GOOD),
        ]
        minute = segment(
            2051, "DataTime=20240301101400;a21026-Avg=33.0,a21026-Min=30.1,a21026-Max=40.5,a21026-Cou=1.25,a21026-Flag=N", flag=4
        )
        hourly = segment(2061, "DataTime=20240301100000;a21026-Avg=31.5,a21026-Cou=75.0,a21026-Flag=N", flag=4)
        assert await send(src.port, encode_frame(minute) + encode_frame(hourly), reply=False) == b""  # Flag 4: no reply asked
        got = await samples(queue, signals, 5)
        tm, th = shanghai("20240301101400"), shanghai("20240301100000")
        assert got == [
            ("so2_mg_m3", tm, 33.0, 0),
            ("so2_min_mg_m3", tm, 30.1, 0),
            ("so2_max_mg_m3", tm, 40.5, 0),
            ("so2_kg", tm, 1.25, 0),
            ("so2_hour_mg_m3", th, 31.5, 0),  # the hourly Cou is not mapped: counted, not sampled
        ]
        assert src.counters.unmapped == 1
        assert src.counters.acks == 1 and src.counters.frames == 3 and src.counters.bad_total == 0


async def test_the_appendix_frame_is_accepted_and_answered() -> None:
    async with listening() as (src, queue, _):
        ack = await send(src.port, APPENDIX, reply=True)
        assert ack.startswith(b"QN=20160801085857223;ST=91;CN=9014;")
        assert src.counters.frames == 1 and src.counters.other_commands == 1 and src.counters.bad_total == 0
        assert queue.empty()  # CN 1062 (set the real-time interval) carries no data


@pytest.mark.parametrize(
    ("flag", "quality"),
    [
        ("N", SampleQuality.GOOD),
        ("T", SampleQuality.OUT_OF_RANGE),
        ("B", SampleQuality.COMM_ERROR),
        ("D", SampleQuality.COMM_ERROR),
        ("F", SampleQuality.NO_READING),
        ("M", SampleQuality.NO_READING),
        ("S", SampleQuality.NO_READING),
        ("C", SampleQuality.NO_READING),
        ("X", SampleQuality.NO_READING),  # not in the standard: not trusted either
    ],
)
async def test_data_flags_become_qualities_and_values_are_kept(flag: str, quality: SampleQuality) -> None:
    async with listening() as (src, queue, signals):
        frame = encode_frame(segment(2011, f"DataTime=20240301101530;a21026-Rtd=812.0,a21026-Flag={flag}", flag=4))
        await send(src.port, frame, reply=False)
        ((_, _, value, q),) = await samples(queue, signals, 1)
        assert (value, q) == (812.0, quality)  # never a zero: a non-N reading is a flagged gap, not a measurement
        assert src.counters.flags == {flag: 1}


async def test_a_value_that_is_not_a_number_is_nan_and_decode_error() -> None:
    async with listening() as (src, queue, signals):
        await send(src.port, encode_frame(segment(2011, "a21026-Rtd=--,a21026-Flag=N", flag=4)), reply=False)
        ((_, ts, value, q),) = await samples(queue, signals, 1)
        assert math.isnan(value) and q == SampleQuality.DECODE_ERROR
        assert abs(ts - time.time()) < 5  # no DataTime: stamped on receipt


async def good_sender_is_served(src: Hj212Source, queue: asyncio.Queue[SampleBatch], signals: SignalTable, value: float) -> None:
    """A well-behaved data logger on its own connection gets its reply and its sample promptly."""
    started = time.monotonic()
    frame = encode_frame(segment(2011, f"DataTime=20240301101530;a21026-Rtd={value},a21026-Flag=N"))
    assert await send(src.port, frame, reply=True)
    got = await samples(queue, signals, 1)
    assert got[0][2] == value
    assert time.monotonic() - started < 2.0


GOOD = encode_frame(segment(2011, "DataTime=20240301101530;a21026-Rtd=1.5,a21026-Flag=N", flag=4))


@pytest.mark.parametrize(
    ("name", "hostile", "bad"),
    [
        ("wrong length", GOOD.replace(GOOD[2:6], b"%04d" % (int(GOOD[2:6]) - 3)) + GOOD, 1),
        ("wrong CRC", GOOD[:-6] + (b"0000" if GOOD[-6:-2] != b"0000" else b"0001") + b"\r\n" + GOOD, 1),
        ("truncated", GOOD[: len(GOOD) // 2] + GOOD, 1),
        ("megabyte-long", b"##9999" + b"Z" * 1_048_576 + GOOD, 1),
        ("garbage megabyte", b"\x00\xff" * 524_288 + GOOD, 1),
    ],
)
async def test_hostile_frames_are_counted_per_peer_and_the_good_ones_kept(name: str, hostile: bytes, bad: int) -> None:
    async with listening() as (src, queue, signals):
        await send(src.port, hostile, reply=False)
        got = await samples(queue, signals, 1)  # the good frame after the bad one
        assert got[0][2] == 1.5, name
        assert src.counters.bad_frames == {"127.0.0.1": bad}, name
        await good_sender_is_served(src, queue, signals, 2.5)


async def test_a_peer_closing_mid_frame_loses_only_that_frame() -> None:
    async with listening() as (src, queue, signals):
        await send(src.port, GOOD + GOOD[:40], reply=False)
        assert (await samples(queue, signals, 1))[0][2] == 1.5
        await good_sender_is_served(src, queue, signals, 3.5)
        assert src.counters.frames == 2


async def test_slow_loris_is_closed_after_frame_timeout_while_others_are_served() -> None:
    async with listening(frame_timeout_s=0.5) as (src, queue, signals):
        reader, writer = await asyncio.open_connection("127.0.0.1", src.port)
        started = time.monotonic()
        try:
            for i in range(len(GOOD) - 1):  # one byte every 50 ms: never finishes within 0.5 s
                writer.write(GOOD[i : i + 1])
                await writer.drain()
                if reader.at_eof() or time.monotonic() - started > 3.0:
                    break
                if i == 3:  # while the slow frame is pending, another data logger is served
                    await good_sender_is_served(src, queue, signals, 4.5)
                await asyncio.sleep(0.05)
            async with asyncio.timeout(3.0):
                assert await reader.read() == b""  # closed by the listener
        except ConnectionResetError:
            pass
        finally:
            writer.close()
        assert time.monotonic() - started < 2.5
        assert src.counters.slow_closed == 1
        assert src.counters.bad_frames == {"127.0.0.1": 1}
        assert queue.empty()


async def test_connections_beyond_the_limit_are_closed_and_idle_ones_time_out() -> None:
    async with listening(max_connections=2, idle_timeout_s=0.5) as (src, queue, signals):
        held = [await asyncio.open_connection("127.0.0.1", src.port) for _ in range(2)]
        await until(lambda: src.connected == 2)
        reader, writer = await asyncio.open_connection("127.0.0.1", src.port)
        async with asyncio.timeout(2.0):
            assert await reader.read() == b""  # refused: closed at once
        writer.close()
        assert src.counters.rejected_connections == 1
        # the held connections send nothing: closed after idle_timeout_s, and the health says so
        for r, _ in held:
            async with asyncio.timeout(3.0):
                assert await r.read() == b""
        for _, w in held:
            w.close()
        assert src.counters.idle_closed == 2
        assert not src.health.ok and "no data logger" in src.health.last_error
        await good_sender_is_served(src, queue, signals, 5.5)  # a slot is free again
        assert src.health.ok


async def test_junk_trickled_under_the_idle_timeout_does_not_hold_a_slot() -> None:
    async with listening(idle_timeout_s=0.5) as (src, _, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", src.port)
        started = time.monotonic()
        try:
            while not reader.at_eof() and time.monotonic() - started < 3.0:
                writer.write(b"x")  # bytes, but never a frame
                await writer.drain()
                await asyncio.sleep(0.1)
        except ConnectionResetError:
            pass
        finally:
            writer.close()
        assert time.monotonic() - started < 2.0
        assert src.counters.idle_closed == 1


async def test_a_busy_port_is_a_source_unavailable_naming_it() -> None:
    from gateway.core.errors import SourceUnavailable

    async with listening() as (src, _, signals):
        settings = site_settings("t", signals=SIGNALS, hj212={"servers": [{"name": "x", "port": src.port}]})
        other = Hj212Source(settings.hj212.servers[0], signals, asyncio.Queue(), SystemClock(), ComponentHealth("hj212[x]"))
        with pytest.raises(SourceUnavailable, match=rf"127.0.0.1:{src.port}.*port is free"):
            async with other:
                pass


async def test_gateway_runs_a_supervised_listener_with_metrics(tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    from gateway.http.metrics import gateway_registry
    from gateway.pipeline import Gateway
    from tests.services.ports import free_port

    port = free_port()
    settings = site_settings(
        "t",
        signals=SIGNALS,
        ledger={"path": str(tmp_path / "l.sqlite")},
        hj212={"servers": [{"name": "cems", "port": port, "points": POINTS}]},
    )
    gw = Gateway.build(settings)
    task = asyncio.create_task(gw.run())
    try:
        await until(
            lambda: bool(gw.hj212_sources) and gw.hj212_sources[0].connected == 0 and gw.health.get("hj212[cems]").polls > 0
        )
        assert await send(port, APPENDIX, reply=True)
        await send(port, GOOD.replace(GOOD[-6:-2], b"0000" if GOOD[-6:-2] != b"0000" else b"0001"), reply=False)
        await until(lambda: gw.hj212_sources[0].counters.bad_total == 1)
        assert "hj212[cems]" in {t.get_name() for t in asyncio.all_tasks()}
        assert "hj212[cems]" in gw.health.components
        text = generate_latest(gateway_registry(gw)).decode()
        assert 'emgate_hj212_bad_frames_total{peer="127.0.0.1",source="hj212[cems]"} 1.0' in text
        assert 'emgate_hj212_frames_total{source="hj212[cems]"} 1.0' in text
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        gw.close()


# -- the cems method: CO2 concentration x dry flow, per frame, integrated per minute ---------------

CEMS_SIGNALS = {"stack1_co2_kg_h": {"unit": "kg/h", "max_gap_s": 30.0}}
CEMS = [
    {
        "mn": MN,
        "co2_code": "a05001",
        "co2_unit": "%",
        "flow_code": "a00000",
        "flow_unit": "Nm3/s",
        "signal": "stack1_co2_kg_h",
    }
]


def cems_settings(**extra: Any) -> Any:
    return site_settings(
        "t",
        signals=CEMS_SIGNALS,
        hj212={"servers": [{"name": "cems", "port": 1, "cems": CEMS}]},
        streams=[
            {"process": "sinter", "stream": "stack1", "signal": "stack1_co2_kg_h", "method": "cems", "factor": "measured.co2"}
        ],
        **extra,
    )


async def test_cems_frames_give_a_stacks_co2_per_minute() -> None:
    from gateway.settings.factors import factor_table_of
    from gateway.stages.emissions import EmissionCalculator
    from gateway.stages.minute import MinuteWindow

    settings = cems_settings()
    signals = SignalTable.from_settings(settings)
    queue: asyncio.Queue[SampleBatch] = asyncio.Queue(maxsize=1000)
    cfg = settings.hj212.servers[0].model_copy(update={"port": 0})
    src = Hj212Source(cfg, signals, queue, SystemClock(), ComponentHealth("hj212[cems]"), site_timezone="UTC")
    t0 = 1_709_287_200.0  # 2024-03-01 10:00:00 UTC
    frames = b""
    for k in range(-1, 8):  # a report every 10 s from 10 s before the minute to 10 s after it
        stamp = datetime.fromtimestamp(t0 + 10 * k, UTC).strftime("%Y%m%d%H%M%S")
        cp = f"DataTime={stamp};a05001-Rtd=10.0,a05001-Flag=N;a00000-Rtd={1e5 / 3600:.6f},a00000-Flag=N"
        frames += encode_frame(segment(2011, cp, flag=4))
    async with src:
        task = asyncio.create_task(src.run())
        try:
            await send(src.port, frames, reply=False)
            got = await samples(queue, signals, 9)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert all(q == SampleQuality.GOOD for *_, q in got)
    assert got[0][2] == pytest.approx(19_634.83, rel=1e-6)  # 10 % of 1e5 Nm3/h dry gas, kg/h
    window = MinuteWindow(signals, settings.window, next_minute=t0)
    sid = signals.id("stack1_co2_kg_h")
    ts, values, quality = (np.array(col) for col in zip(*[(t, v, q) for _, t, v, q in got], strict=True))
    window.ingest(SampleBatch("hj212[cems]", np.full(len(got), sid, np.int32), ts, values, quality.astype(np.uint8)))
    (row,) = EmissionCalculator(settings, factor_table_of(settings.factors)).compute(window.close(1)).rows()
    assert (row.method, row.factor_id, row.activity_unit, row.quality) == ("cems", "measured.co2", "t", "measured")
    # 19,634.83 kg/h for one minute: 327.25 kg of CO2
    assert row.co2_kg == pytest.approx(19_634.83 / 60.0, rel=1e-6)
    assert row.activity == pytest.approx(19_634.83 / 60.0 / 1000.0, rel=1e-6)


async def test_cems_value_takes_the_worse_flag_and_needs_both_readings() -> None:
    settings = cems_settings()
    signals = SignalTable.from_settings(settings)
    queue: asyncio.Queue[SampleBatch] = asyncio.Queue(maxsize=1000)
    cfg = settings.hj212.servers[0].model_copy(update={"port": 0})
    src = Hj212Source(cfg, signals, queue, SystemClock(), ComponentHealth("hj212[cems]"))
    calibrating = segment(2011, "DataTime=20240301100000;a05001-Rtd=15.0,a05001-Flag=C;a00000-Rtd=20.0,a00000-Flag=N", flag=4)
    no_flow = segment(2011, "DataTime=20240301100010;a05001-Rtd=10.0,a05001-Flag=N", flag=4)
    async with src:
        task = asyncio.create_task(src.run())
        try:
            await send(src.port, encode_frame(calibrating) + encode_frame(no_flow), reply=False)
            ((_, _, value, q),) = await samples(queue, signals, 1)
            await until(lambda: src.counters.frames == 2)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert q == SampleQuality.NO_READING and value == pytest.approx(15.0 * 20.0 * 3600 * 0.0196348, rel=1e-5)
    assert src.counters.cems_incomplete == 1 and queue.empty() and src.counters.unmapped == 0


def test_cems_config_errors_name_the_key() -> None:
    from pydantic import ValidationError

    from gateway.core.errors import ConfigError
    from gateway.settings.factors import factor_table_of
    from gateway.stages.emissions import EmissionCalculator

    with pytest.raises(
        ValidationError, match=r"hj212.servers\[0\].cems\[0\]: signal 'stack1_co2_kg_h' must be .* a rate in kg/h or t/h"
    ):
        site_settings(
            "t",
            signals={"stack1_co2_kg_h": {"kind": "instant", "unit": "%"}},
            hj212={"servers": [{"name": "cems", "port": 1, "cems": CEMS}]},
        )
    with pytest.raises(ValidationError, match="co2_unit"):
        site_settings(
            "t", signals=CEMS_SIGNALS, hj212={"servers": [{"name": "c", "port": 1, "cems": [{**CEMS[0], "co2_unit": "vol%"}]}]}
        )
    s = site_settings(
        "t",
        signals=CEMS_SIGNALS,
        streams=[
            {"process": "sinter", "stream": "stack1", "signal": "stack1_co2_kg_h", "method": "cems", "factor": "cn.pig_iron"}
        ],
    )
    with pytest.raises(ConfigError) as err:
        EmissionCalculator(s, factor_table_of(s.factors))
    assert "method cems measures CO2 itself; its factor must be 1 tCO2 per t (factor measured.co2)" in err.value.problems[0]
