"""ModbusSource against pymodbus' own server (RegisterServer) on loopback.

Decoding of every type in one block, the exception-2 split, busy replies as gaps, a dead TCP
device that must not delay a live one, and a lost/recovered device logged once each.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import pytest

from gateway.codec import decode_registers, encode_value
from gateway.core.model import SampleBatch, SampleQuality
from gateway.sources.modbus_link import ModbusLinkPool
from gateway.sources.pymodbus_client import RegisterServer
from tests.services.ports import free_port
from tests.support.modbus import FAST_RETRY, build, collect, source

pytestmark = pytest.mark.integration

class Recorder:
    """A fill callback holding fixed registers; counts reads; refuses reads touching `refuse`."""

    def __init__(self, words: list[int], refuse: set[int] | None = None, code: int = 2) -> None:
        self.words, self.refuse, self.code = words, refuse or set(), code
        self.reads: list[tuple[int, int, int]] = []

    def __call__(self, function_code: int, address: int, count: int, registers: list[int]) -> int | None:
        self.reads.append((function_code, address, count))
        if any(a in self.refuse for a in range(address, address + count)):
            return self.code
        registers[: len(self.words)] = self.words
        return None


TYPES = [  # (type, byte order, value)
    ("INT16", "ABCD", -1234),
    ("UINT16", "BADC", 54321),
    ("INT32", "CDAB", -7654321),
    ("UINT32", "DCBA", 4_000_000_000),
    ("INT64", "ABCD", -(2**40) - 3),
    ("UINT64", "CDAB", 2**60 + 5),
    ("FLOAT16", "ABCD", 1.5),
    ("FLOAT32", "CDAB", 123.456),
    ("FLOAT32", "BADC", -0.25),
    ("FLOAT64", "DCBA", 98765.4321),
    ("FLOAT64", "ABCD", 1e-3),
]


async def test_every_type_and_byte_order_decodes_from_one_block() -> None:
    words: list[int] = []
    points = []
    for i, (dtype, order, value) in enumerate(TYPES):
        points.append({"signal": f"s{i}", "address": len(words), "type": dtype, "byte_order": order})
        words += encode_value(value, dtype, order)
    bit_at = len(words)
    words.append(0b1010_0000_0000_0100)
    points += [
        {"signal": "bit2", "address": bit_at, "type": "BIT", "bit": 2},
        {"signal": "bit15", "address": bit_at, "type": "BIT", "bit": 15},
        {"signal": "scaled", "address": 0, "type": "INT16", "scale": 0.1, "offset": 5.0},
    ]
    fill = Recorder(words)
    port = free_port()
    (dev,), signals = build(
        [{"name": "types", "port": port, "poll_s": 1.0, "timeout_s": 0.5, "points": points}]
    )
    async with RegisterServer(port=port, fills={1: fill}, n_registers=200), source(dev, signals) as src:
        batch = await src.poll_once(time.time())
    assert len(fill.reads) == 1  # the whole map in one request
    assert batch.quality.tolist() == [SampleQuality.GOOD] * len(points)
    for i, (dtype, order, value) in enumerate(TYPES):
        expected = decode_registers(encode_value(value, dtype, order), dtype, order)
        assert batch.values[i] == pytest.approx(float(expected), rel=1e-12), (dtype, order)
    assert batch.values[len(TYPES) :].tolist() == pytest.approx([1.0, 1.0, -1234 * 0.1 + 5.0])


async def test_out_of_range_is_kept_and_flagged_and_a_sentinel_is_no_reading() -> None:
    port = free_port()
    points = [
        {"signal": "hot", "address": 0, "max": 100.0},
        {"signal": "cold", "address": 1, "min": 10.0},
        {"signal": "none", "address": 2, "sentinel": 65535},
        {"signal": "ok", "address": 3, "min": 0, "max": 9},
    ]
    (dev,), signals = build([{"name": "range", "port": port, "timeout_s": 0.5, "points": points}])
    async with (
        RegisterServer(port=port, fills={1: Recorder([250, 3, 65535, 7])}, n_registers=10),
        source(dev, signals) as src,
    ):
        batch = await src.poll_once(time.time())
    assert batch.quality.tolist() == [
        SampleQuality.OUT_OF_RANGE,
        SampleQuality.OUT_OF_RANGE,
        SampleQuality.NO_READING,
        SampleQuality.GOOD,
    ]
    assert batch.values[[0, 1, 3]].tolist() == [250.0, 3.0, 7.0]
    assert np.isnan(batch.values[2])


async def test_illegal_address_in_a_block_isolates_the_point_and_remembers_the_split(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    fill = Recorder(list(range(100, 110)), refuse={5})
    points = [{"signal": f"p{a}", "address": a} for a in range(10)]
    (dev,), signals = build([{"name": "holey", "port": port, "timeout_s": 0.5, "points": points}])
    async with RegisterServer(port=port, fills={1: fill}, n_registers=20), source(dev, signals) as src:
        with caplog.at_level(logging.INFO, logger="gateway"):
            first = await src.poll_once(time.time())
            reads_first = len(fill.reads)
            second = await src.poll_once(time.time())
    for batch in (first, second):
        good = [i for i in range(10) if i != 5]
        assert batch.quality[good].tolist() == [SampleQuality.GOOD] * 9
        assert batch.values[good].tolist() == [100.0 + i for i in good]
        assert batch.quality[5] == SampleQuality.COMM_ERROR and np.isnan(batch.values[5])  # never 0
    assert [(b.start, b.count) for b in src.plan] == [(0, 5), (5, 1), (6, 1), (7, 3)]
    assert len(fill.reads) - reads_first == 4  # the second poll used the remembered plan
    assert src.health.ok  # a refused point does not make the device "lost"
    refused = [
        r
        for r in caplog.records
        if "refused with exception 2" in r.getMessage() and "point" in r.getMessage()
    ]
    assert len(refused) == 1 and "'p5'" in refused[0].getMessage()


async def test_a_busy_device_gives_gaps_never_zero() -> None:
    port = free_port()
    (dev,), signals = build(
        [
            {
                "name": "busy",
                "port": port,
                "timeout_s": 0.5,
                "points": [{"signal": "a", "address": 0}, {"signal": "b", "address": 1}],
            }
        ]
    )
    async with (
        RegisterServer(port=port, fills={1: Recorder([0, 0], refuse={0, 1}, code=6)}, n_registers=10),
        source(dev, signals) as src,
    ):
        batch = await src.poll_once(time.time())
    assert batch.quality.tolist() == [SampleQuality.COMM_ERROR] * 2
    assert np.isnan(batch.values).all()
    assert src.counters.exception_codes == {6: 1}
    assert not src.health.ok and "exception code 6" in src.health.last_error


class SilentServer:
    """Accepts TCP connections and never answers: a device that hung."""

    def __init__(self) -> None:
        self.port = free_port()
        self.connections = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await reader.read(1024):
                pass
        finally:
            writer.close()

    async def __aenter__(self) -> SilentServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()


@pytest.mark.flaky(reruns=2, reruns_delay=1)  # wall-clock timing on a shared 2-core machine; a real fault fails every rerun
async def test_a_dead_tcp_device_never_delays_a_live_one() -> None:
    port = free_port()
    async with SilentServer() as silent, RegisterServer(port=port, fills={1: Recorder([42])}, n_registers=4):
        devs, signals = build(
            [
                {
                    "name": "live",
                    "port": port,
                    "poll_s": 0.1,
                    "timeout_s": 0.5,
                    "points": [{"signal": "a", "address": 0}],
                },
                {
                    "name": "dead",
                    "port": silent.port,
                    "poll_s": 0.1,
                    "timeout_s": 0.8,
                    "retries": 2,
                    "points": [{"signal": "b", "address": 0}],
                },
            ]
        )
        queue: asyncio.Queue[SampleBatch] = asyncio.Queue()
        links = ModbusLinkPool(FAST_RETRY)
        got = await collect([source(d, signals, queue, links) for d in devs], queue, 3.5)
    live = got["live"]
    assert len(live) >= 32  # 3.5 s at 0.1 s
    assert all(b.quality[0] == SampleQuality.GOOD and b.values[0] == 42.0 for _, b in live)
    gaps = np.diff([t for t, _ in live])
    assert gaps.max() < 0.2, f"live device stalled {gaps.max():.3f}s while the dead one timed out"
    assert got["dead"] and all(b.quality[0] == SampleQuality.COMM_ERROR for _, b in got["dead"])


async def test_lost_and_recovered_are_logged_once_each(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    (dev,), signals = build(
        [
            {
                "name": "flaky",
                "port": port,
                "poll_s": 0.05,
                "timeout_s": 0.2,
                "points": [{"signal": "a", "address": 0}],
            }
        ]
    )
    queue: asyncio.Queue[SampleBatch] = asyncio.Queue()
    src = source(dev, signals, queue)
    fill = Recorder([7])
    with caplog.at_level(logging.INFO, logger="gateway"):
        server = RegisterServer(port=port, fills={1: fill}, n_registers=4)
        await server.__aenter__()
        async with src:
            task = asyncio.create_task(src.run())
            await asyncio.sleep(0.5)
            await server.__aexit__(None, None, None)  # the device goes away for 1.5 s
            await asyncio.sleep(1.5)
            failed_polls = src.counters.failed_polls
            server = RegisterServer(port=port, fills={1: fill}, n_registers=4)
            async with server:
                deadline = time.monotonic() + 5.0
                while not (src.health.ok and src.health.polls > 0) or src.counters.failed_polls == 0:
                    assert time.monotonic() < deadline, "the source did not recover within 5 s"
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.3)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    messages = [r.getMessage() for r in caplog.records if r.name == "gateway.core.health"]
    assert sum(": lost:" in m for m in messages) == 1, messages
    assert sum("recovered" in m for m in messages) == 1, messages
    assert failed_polls >= 2
    # backed off while away: far fewer attempts than the 30 polls that were due
    assert src.counters.skipped_polls > 0
    batches = []
    while not queue.empty():
        batches.append(queue.get_nowait())
    assert batches[-1].quality[0] == SampleQuality.GOOD
    bad = [b for b in batches if b.quality[0] != SampleQuality.GOOD]
    assert bad and all(np.isnan(b.values[0]) and b.quality[0] == SampleQuality.COMM_ERROR for b in bad)
