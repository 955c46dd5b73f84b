"""S7Source against python-snap7's own server (S7Server) on loopback.

Every type from areas DB, M, I and Q; a DB larger than one PDU; a refused item as a gap; a PLC
that stops and comes back while the source runs; and only setup and read requests on the wire.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import time
from typing import Any

import pytest

from gateway.core.clock import SystemClock
from gateway.core.health import ComponentHealth
from gateway.core.model import SampleBatch, SampleQuality
from gateway.core.signals import SignalTable
from gateway.settings.s7 import S7DeviceConfig
from gateway.settings.site import RetryConfig
from gateway.sources.s7 import S7Source
from gateway.sources.snap7_client import S7Server
from tests.factories import site_settings
from tests.services.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

FAST_RETRY = RetryConfig(base_s=0.05, cap_s=0.4)
SETUP, READ = 0xF0, 0x04


def build(dev: dict[str, Any]) -> tuple[S7DeviceConfig, SignalTable]:
    signals = {p["signal"]: {"unit": "t/h"} for p in dev["points"]}
    settings = site_settings(signals=signals, s7={"devices": [dev]})
    return settings.s7.devices[0], SignalTable.from_settings(settings)


def source(dev: S7DeviceConfig, signals: SignalTable, queue: asyncio.Queue[SampleBatch] | None = None) -> S7Source:
    return S7Source(dev, signals, queue or asyncio.Queue(), SystemClock(), ComponentHealth(f"s7[{dev.name}]"), retry=FAST_RETRY)


def by_signal(batch: SampleBatch, signals: SignalTable) -> dict[str, tuple[float, int]]:
    return {
        signals.names[int(i)]: (float(v), int(q))
        for i, v, q in zip(batch.signal_ids, batch.values, batch.quality, strict=True)
    }


TYPES = [  # (type, struct code, value)
    ("BYTE", "B", 201),
    ("WORD", "H", 54321),
    ("DWORD", "I", 4_000_000_000),
    ("INT", "h", -1234),
    ("DINT", "i", -7_654_321),
    ("REAL", "f", 123.5),
    ("LREAL", "d", 98765.4321),
]


async def test_every_type_from_db_m_i_q_in_one_request_and_only_reads_on_the_wire() -> None:
    areas = {("DB", 3): bytearray(64), ("M", 0): bytearray(64), ("I", 0): bytearray(64), ("Q", 0): bytearray(64)}
    points: list[dict[str, Any]] = []
    expected: dict[str, float] = {}
    for (area, number), data in areas.items():
        where = {"area": area} | ({"db": number} if area == "DB" else {})
        for k, (dtype, code, value) in enumerate(TYPES):
            at = 1 + 8 * k  # odd on purpose: S7 addresses bytes
            struct.pack_into(">" + code, data, at, value)
            name = f"{area}_{dtype}".lower()
            points.append({"signal": name, "byte": at, "type": dtype} | where)
            expected[name] = float(struct.unpack(">" + code, struct.pack(">" + code, value))[0])
        data[60] = 0b1000_1001
        for bit, value in ((0, 1.0), (1, 0.0), (3, 1.0), (7, 1.0)):
            name = f"{area}_bit{bit}".lower()
            points.append({"signal": name, "byte": 60, "type": "BOOL", "bit": bit} | where)
            expected[name] = value
    port = free_port()
    dev, signals = build({"name": "bf1", "host": "127.0.0.1", "port": port, "poll_s": 1.0, "timeout_s": 1.0, "points": points})
    with S7Server(port=port, areas=areas) as plc:
        async with source(dev, signals) as src:
            batch = await src.poll_once(time.time())
            assert len(src.plan) == 1 and len(src.plan[0].items) == 4  # one request: DB3, M, I, Q
        got = by_signal(batch, signals)
        assert {k: q for k, (_, q) in got.items()} == {k: SampleQuality.GOOD for k in expected}
        for name, value in expected.items():
            assert got[name][0] == pytest.approx(value, rel=1e-12), name
        # read-only: the PLC saw a setup and reads, never a write, control or block service
        assert plc.function_codes == [SETUP, READ]


async def test_a_db_larger_than_one_pdu_is_read_in_several_requests_within_the_pdu() -> None:
    n = 600  # REALs, 2400 bytes: five times a 480-byte PDU
    db = bytearray(4 * n)
    for i in range(n):
        struct.pack_into(">f", db, 4 * i, i * 1.5 - 100.0)
    points = [{"signal": f"r{i}", "area": "DB", "db": 1, "byte": 4 * i, "type": "REAL"} for i in range(n)]
    port = free_port()
    dev, signals = build({"name": "big", "host": "127.0.0.1", "port": port, "pdu_bytes": 480, "points": points})
    with S7Server(port=port, areas={("DB", 1): db}) as plc:
        async with source(dev, signals) as src:
            assert src.pdu_bytes == 480  # what snap7's server agrees
            batch = await src.poll_once(time.time())
            plan = src.plan
        assert len(plan) >= 5
        assert all(r.reply_bytes <= 480 and r.request_bytes <= 480 for r in plan)
        assert plc.function_codes.count(READ) == len(plan)
    got = by_signal(batch, signals)
    assert all(q == SampleQuality.GOOD for _, q in got.values())
    assert [got[f"r{i}"][0] for i in range(n)] == [i * 1.5 - 100.0 for i in range(n)]


async def test_a_refused_item_is_a_gap_and_the_rest_of_the_request_is_read(caplog: pytest.LogCaptureFixture) -> None:
    db = bytearray(8)
    struct.pack_into(">f", db, 0, 42.0)
    points = [
        {"signal": "ok", "area": "DB", "db": 1, "byte": 0, "type": "REAL"},
        {"signal": "no_db", "area": "DB", "db": 9, "byte": 0, "type": "REAL"},  # DB9 does not exist
        {"signal": "past_end", "area": "DB", "db": 1, "byte": 200, "type": "INT"},  # DB1 has 8 bytes
    ]
    port = free_port()
    dev, signals = build({"name": "plc", "host": "127.0.0.1", "port": port, "points": points})
    caplog.set_level(logging.WARNING, logger="gateway.sources.s7")
    with S7Server(port=port, areas={("DB", 1): db}):
        async with source(dev, signals) as src:
            first = await src.poll_once(time.time())
            await src.poll_once(time.time())
            assert src.counters.item_codes == {0x0A: 2, 0x05: 2}
            assert src.health.ok  # the PLC answered: the refusals are the points', not the link's
    got = by_signal(first, signals)
    assert got["ok"] == (42.0, SampleQuality.GOOD)
    for name in ("no_db", "past_end"):
        assert math.isnan(got[name][0]) and got[name][1] == SampleQuality.COMM_ERROR
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2  # once per item and code, not once per poll
    assert "DB9 bytes 0..3" in refusals[0] + refusals[1] and "check that the DB exists" in refusals[0]


async def test_a_plc_that_stops_is_gaps_never_zeros_and_is_read_again_when_it_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = bytearray(4)
    struct.pack_into(">f", db, 0, 7.25)
    port = free_port()
    dev, signals = build(
        {
            "name": "cpu1",
            "host": "127.0.0.1",
            "port": port,
            "poll_s": 0.1,
            "timeout_s": 0.5,
            "points": [{"signal": "flow", "area": "DB", "db": 1, "byte": 0, "type": "REAL"}],
        }
    )
    caplog.set_level(logging.INFO, logger="gateway.core.health")
    queue: asyncio.Queue[SampleBatch] = asyncio.Queue()
    plc = S7Server(port=port, areas={("DB", 1): db})
    plc.start()
    src = source(dev, signals, queue)
    phases: dict[str, list[SampleBatch]] = {"up": [], "down": [], "back": []}

    async def drain(phase: str, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                phases[phase].append(await asyncio.wait_for(queue.get(), left))
            except TimeoutError:
                break

    async with src:
        task = asyncio.create_task(src.run())
        try:
            await drain("up", 0.6)
            plc.stop()
            await drain("down", 1.0)
            plc = S7Server(port=port, areas={("DB", 1): db})  # the PLC back, same port: a new connection needed
            plc.start()
            await drain("back", 2.0)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            plc.stop()
    assert phases["up"] and all(b.quality[0] == SampleQuality.GOOD and b.values[0] == 7.25 for b in phases["up"])
    down = [b for b in phases["down"] if b.quality[0] != SampleQuality.GOOD]
    assert down, "no gap while the PLC was away"
    assert all(math.isnan(b.values[0]) and b.quality[0] == SampleQuality.COMM_ERROR for b in down)  # never a zero
    assert not any(b.values[0] == 0.0 for b in phases["down"] + phases["back"])
    assert phases["back"][-1].quality[0] == SampleQuality.GOOD and phases["back"][-1].values[0] == 7.25
    assert src.counters.connects >= 2 and src.health.ok
    messages = [r.getMessage() for r in caplog.records]
    assert sum("s7[cpu1]: lost" in m for m in messages) == 1
    assert sum("s7[cpu1]: recovered" in m for m in messages) == 1


class FirstFrameProxy:
    """A loopback TCP proxy to a PLC that keeps the first frame the client sends (the COTP
    connection request, which carries the TSAPs)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.first: bytes = b""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> FirstFrameProxy:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        head = await reader.readexactly(4)
        body = await reader.readexactly(struct.unpack(">H", head[2:])[0] - 4)
        self.first = head + body
        up_writer.write(self.first)

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))

    def tsaps(self) -> dict[int, int]:
        """COTP parameter code -> value: 0xC1 the calling (local) TSAP, 0xC2 the called (remote) TSAP."""
        cotp = self.first[4:]
        assert cotp[1] == 0xE0, "not a COTP connection request"
        out: dict[int, int] = {}
        at = 7  # length, type, dst ref, src ref, class
        while at < len(cotp):
            code, n = cotp[at], cotp[at + 1]
            if n == 2:
                out[code] = struct.unpack(">H", cotp[at + 2 : at + 4])[0]
            at += 2 + n
        return out


@pytest.mark.parametrize(
    ("addressing", "local", "remote"),
    [
        ({"local_tsap": 0x1000, "remote_tsap": 0x0200}, 0x1000, 0x0200),  # a LOGO!: TSAPs as configured
        ({"rack": 0, "slot": 2}, 0x0100, 0x0102),  # an S7-300 CPU in slot 2: PG connection
        ({"rack": 1, "slot": 3}, 0x0100, 0x0123),
    ],
)
async def test_rack_slot_or_tsap_reach_the_plc_in_the_connection_request(
    addressing: dict[str, int], local: int, remote: int
) -> None:
    db = bytearray(4)
    struct.pack_into(">i", db, 0, -5)
    port = free_port()
    with S7Server(port=port, areas={("DB", 1): db}):
        async with FirstFrameProxy(port) as proxy:
            dev, signals = build(
                {
                    "name": "plc",
                    "host": "127.0.0.1",
                    "port": proxy.port,
                    "points": [{"signal": "count", "area": "DB", "db": 1, "byte": 0, "type": "DINT"}],
                }
                | addressing
            )
            async with source(dev, signals) as src:
                batch = await src.poll_once(time.time())
    assert by_signal(batch, signals)["count"] == (-5.0, SampleQuality.GOOD)
    assert proxy.tsaps() == {0xC1: local, 0xC2: remote}


async def test_no_plc_listening_fails_entry_with_a_message_that_says_what_to_check() -> None:
    from gateway.core.errors import SourceUnavailable

    port = free_port()
    dev, signals = build(
        {"name": "gone", "host": "127.0.0.1", "port": port, "points": [{"signal": "x", "area": "M", "byte": 0, "type": "INT"}]}
    )
    with pytest.raises(SourceUnavailable, match=r"cannot connect .*check that 127.0.0.1:\d+ is reachable, rack 0 / slot 1"):
        async with source(dev, signals):
            pass


async def test_the_gateway_runs_each_plc_as_s7_name_with_a_status_row_and_metrics(tmp_path: Any) -> None:
    from prometheus_client import generate_latest

    from gateway.alerts.budget_stage import SOURCE_PREFIXES
    from gateway.http.metrics import gateway_registry
    from gateway.http.status import device_rows
    from gateway.pipeline import Gateway

    db = bytearray(8)
    struct.pack_into(">f", db, 0, 12.5)
    port = free_port()
    settings = site_settings(
        "t",
        signals={"coke": {"unit": "t/h"}},
        ledger={"path": str(tmp_path / "l.sqlite")},
        s7={
            "devices": [
                {
                    "name": "cp1",
                    "host": "127.0.0.1",
                    "port": port,
                    "poll_s": 0.1,
                    "timeout_s": 0.5,
                    "points": [
                        {"signal": "coke", "area": "DB", "db": 1, "byte": 0, "type": "REAL"},
                        {"signal": "coke", "area": "DB", "db": 2, "byte": 0, "type": "REAL"},  # no DB2: refused
                    ],
                }
            ]
        },
    )
    plc = S7Server(port=port, areas={("DB", 1): db})
    plc.start()
    gw = Gateway.build(settings)
    task = asyncio.create_task(gw.run())

    async def until(check: Any, what: str, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
            await asyncio.sleep(0.05)

    try:
        await until(lambda: gw.health.get("s7[cp1]").polls > 0 and gw.health.get("s7[cp1]").ok, "a good poll")
        assert "s7[cp1]" in {t.get_name() for t in asyncio.all_tasks()}
        [row] = [r for r in device_rows(gw, gw.clock.now()) if r["name"] == "s7[cp1]"]
        assert row["ok"] is True and row["polls"] > 0 and row["latency_ms"] is not None
        assert "s7[cp1]".startswith(SOURCE_PREFIXES)  # device alerts cover the PLC
        text = generate_latest(gateway_registry(gw)).decode()
        assert 'emgate_s7_refused_items_total{code="0x0a",source="s7[cp1]"}' in text
        assert 'emgate_s7_connects_total{source="s7[cp1]"} 1.0' in text
        plc.stop()
        await until(lambda: not gw.health.get("s7[cp1]").ok, "the PLC lost")
        [row] = [r for r in device_rows(gw, gw.clock.now()) if r["name"] == "s7[cp1]"]
        assert row["ok"] is False and "check that 127.0.0.1" in row["last_error"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        gw.close()
        plc.stop()


class HostilePlc:
    """An S7 peer on loopback that connects properly, then answers every read with `reply(request)`
    (bytes of the S7 PDU, framed here), or not at all when it returns None."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> HostilePlc:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()

    @staticmethod
    def _frame(pdu: bytes) -> bytes:
        return struct.pack(">BBHBBB", 3, 0, len(pdu) + 7, 2, 0xF0, 0x80) + pdu

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readexactly(4)
            await reader.readexactly(struct.unpack(">H", head[2:])[0] - 4)  # COTP CR
            cc = struct.pack(">BBHHB", 6, 0xD0, 0x0001, 0x0001, 0)
            writer.write(struct.pack(">BBH", 3, 0, len(cc) + 4) + cc)
            while True:
                head = await reader.readexactly(4)
                pdu = (await reader.readexactly(struct.unpack(">H", head[2:])[0] - 4))[3:]
                seq = pdu[4:6]
                if pdu[10] == SETUP:
                    writer.write(self._frame(b"\x32\x03\x00\x00" + seq + struct.pack(">HHBB", 8, 0, 0, 0) + b"\xf0\x00\x00\x01\x00\x01\x00\xf0"))
                    continue
                answer = self.reply(b"\x32\x03\x00\x00" + seq)
                if answer is not None:
                    writer.write(self._frame(answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize(
    ("name", "reply", "message"),
    [
        # one item of 4 bytes asked; the reply's item claims 64 bytes the reply does not carry
        ("overlong item", lambda h: h + struct.pack(">HHBB", 2, 8, 0, 0) + b"\x04\x01" + struct.pack(">BBH", 0xFF, 4, 512) + b"\0" * 4, "malformed reply"),
        ("wrong item count", lambda h: h + struct.pack(">HHBB", 2, 8, 0, 0) + b"\x04\x02" + struct.pack(">BBH", 0xFF, 4, 32) + b"\0" * 4, "malformed reply"),
        ("error class", lambda h: h + struct.pack(">HHBB", 0, 0, 0x85, 0x00), "error class 0x85"),
        ("silence", lambda h: None, "no reply within 0.3s"),
    ],
)
async def test_a_hostile_or_silent_plc_is_a_gap_and_a_new_connection(name: str, reply: Any, message: str) -> None:
    async with HostilePlc(reply) as plc:
        dev, signals = build(
            {
                "name": "odd",
                "host": "127.0.0.1",
                "port": plc.port,
                "timeout_s": 0.3,
                "points": [{"signal": "x", "area": "DB", "db": 1, "byte": 0, "type": "REAL"}],
            }
        )
        async with source(dev, signals) as src:
            first = await src.poll_once(time.time())
            assert message in src.health.last_error, src.health.last_error
            second = await src.poll_once(time.time())  # reconnects (the stream could not be trusted)
    for batch in (first, second):
        assert math.isnan(batch.values[0]) and batch.quality[0] == SampleQuality.COMM_ERROR
    assert plc.connections == 2 and src.counters.connects == 2


async def test_a_plc_that_refuses_every_item_is_not_ok_but_keeps_its_connection() -> None:
    port = free_port()
    dev, signals = build(
        {"name": "empty", "host": "127.0.0.1", "port": port, "points": [{"signal": "x", "area": "DB", "db": 4, "byte": 0, "type": "REAL"}]}
    )
    with S7Server(port=port, areas={("DB", 1): bytearray(4)}):
        async with source(dev, signals) as src:
            batch = await src.poll_once(time.time())
            assert not src.health.ok and "PLC refused DB4 bytes 0..3 with return code 0x0a" in src.health.last_error
            assert src.counters.connects == 1 and src.counters.failed_polls == 0  # no reconnect, no backoff
    assert math.isnan(batch.values[0]) and batch.quality[0] == SampleQuality.COMM_ERROR
