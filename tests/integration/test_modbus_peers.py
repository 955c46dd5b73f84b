"""ModbusSource against a second independent slave (uModbus) and against a hostile TCP peer that
answers garbage, short frames, wrong transaction ids, wrong function codes or nothing at all.
The source must count, never invent a value, and recover when the peer behaves again.
"""

from __future__ import annotations

import asyncio
import os
import socketserver
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from gateway.codec import encode_value
from gateway.core.model import SampleQuality
from tests.services.ports import free_port
from tests.support.modbus import build, source

pytestmark = pytest.mark.integration


# ---- uModbus: a second implementation, in a thread -----------------------------------------


@pytest.fixture
def umodbus_slave() -> Iterator[tuple[int, list[tuple[int, int]]]]:
    """A uModbus TCP slave, unit 5: holding 0..9 hold a FLOAT32 (ABCD) then 100 + address;
    input registers 0..3 hold 7. Yields (port, [(function code, address) of every read])."""
    server_mod = pytest.importorskip("umodbus.server.tcp")
    from umodbus import conf

    conf.SIGNED_VALUES = False
    seen: list[tuple[int, int]] = []
    holding = encode_value(-12.5, "FLOAT32", "ABCD") + [100 + a for a in range(2, 10)]
    socketserver.TCPServer.allow_reuse_address = True
    port = free_port()
    server = server_mod.get_server(socketserver.TCPServer, ("127.0.0.1", port), server_mod.RequestHandler)

    @server.route(slave_ids=[5], function_codes=[3], addresses=list(range(10)))
    def read_holding(slave_id: int, function_code: int, address: int) -> int:
        seen.append((function_code, address))
        return holding[address]

    @server.route(slave_ids=[5], function_codes=[4], addresses=list(range(4)))
    def read_input(slave_id: int, function_code: int, address: int) -> int:
        seen.append((function_code, address))
        return 7

    thread = threading.Thread(target=server.serve_forever, name="umodbus", daemon=True)
    thread.start()
    try:
        yield port, seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_umodbus_slave_decodes_the_same(umodbus_slave: tuple[int, list[tuple[int, int]]]) -> None:
    port, seen = umodbus_slave
    points = [
        {"signal": "f", "address": 0, "type": "FLOAT32"},
        {"signal": "h9", "address": 9},
        {"signal": "i3", "address": 3, "register": "input", "scale": 2.0},
        # beyond uModbus' routes: it answers exception 2, the point is isolated
        {"signal": "x", "address": 12},
    ]
    (dev,), signals = build(
        [
            {
                "name": "um",
                "port": port,
                "unit_id": 5,
                "timeout_s": 0.5,
                "max_gap_registers": 8,
                "points": points,
            }
        ]
    )
    async with source(dev, signals) as src:
        for _ in range(2):
            batch = await src.poll_once(time.time())
            assert batch.quality[:3].tolist() == [SampleQuality.GOOD] * 3
            assert batch.values[:3].tolist() == [-12.5, 109.0, 14.0]
            assert batch.quality[3] == SampleQuality.COMM_ERROR and np.isnan(batch.values[3])
    assert {fc for fc, _ in seen} == {3, 4}
    assert src.counters.splits >= 1


# ---- a hostile peer ---------------------------------------------------------------------------


class HostilePeer:
    """Modbus TCP on loopback whose answer to each request depends on `mode`."""

    MODES = ("good", "garbage", "short", "wrong_tid", "wrong_fc", "huge_length", "silent", "close")

    def __init__(self) -> None:
        self.port = free_port()
        self.mode = "good"
        self.requests = 0
        self.connections = 0
        self.function_codes: list[int] = []

    def reply(self, request: bytes) -> bytes | None:
        tid, _pid, _length, unit, fc, _address, count = struct.unpack(">HHHBBHH", request)
        self.function_codes.append(fc)
        data = b"".join(struct.pack(">H", 1000 + i) for i in range(count))
        pdu = bytes([fc, len(data)]) + data
        good = struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu
        match self.mode:
            case "good":
                return good
            case "garbage":
                return os.urandom(37)
            case "short":
                return good[: len(good) // 2]
            case "wrong_tid":
                return struct.pack(">HHHB", (tid + 7) % 65536, 0, len(pdu) + 1, unit) + pdu
            case "wrong_fc":
                return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + bytes([0x10]) + pdu[1:]
            case "huge_length":
                return struct.pack(">HHHB", tid, 0, 60000, unit) + pdu
            case _:
                return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                request = await reader.readexactly(12)
                self.requests += 1
                if self.mode == "close":
                    break
                answer = self.reply(request)
                if answer:
                    writer.write(answer)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> HostilePeer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()


async def test_garbage_short_frames_wrong_ids_and_silence_are_counted_and_survived() -> None:
    async with HostilePeer() as peer:
        (dev,), signals = build(
            [
                {
                    "name": "hostile",
                    "port": peer.port,
                    "timeout_s": 0.2,
                    "retries": 0,
                    "points": [{"signal": "a", "address": 0}, {"signal": "b", "address": 1}],
                }
            ]
        )
        seen: dict[str, Any] = {}
        async with source(dev, signals) as src:
            for mode in HostilePeer.MODES[1:] + HostilePeer.MODES[1:]:
                peer.mode = mode
                before = src.counters.no_replies
                for _ in range(2):
                    batch = await src.poll_once(time.time())
                    # whatever came back, nothing became a number
                    assert batch.quality.tolist() == [SampleQuality.COMM_ERROR] * 2, mode
                    assert np.isnan(batch.values).all(), mode
                seen[mode] = src.counters.no_replies - before
                peer.mode = "good"
                deadline = time.monotonic() + 5.0
                while True:  # and it comes back once the peer behaves
                    batch = await src.poll_once(time.time())
                    if batch.quality.tolist() == [SampleQuality.GOOD] * 2:
                        break
                    assert time.monotonic() < deadline, f"no recovery after {mode}"
                    await asyncio.sleep(0.05)
                assert batch.values.tolist() == [1000.0, 1001.0]
    assert all(n >= 2 for n in seen.values()), seen
    assert src.health.ok and src.health.errors >= 2 * len(seen)
    assert set(peer.function_codes) == {3}
    assert peer.connections >= 2  # the link was reset and reconnected along the way
