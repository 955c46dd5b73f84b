"""Benchmark: S7 reads through emgate's source against bare python-snap7, side by side in one run.

    python -m bench.s7            # full run
    python -m bench.s7 --quick    # smoke run

One PLC (python-snap7's server, in a process of its own so it does not share our GIL) serves a
DB of 2400 bytes (larger than one 480-byte PDU) and 64 bytes of markers; 300 points (REAL, DINT,
INT, WORD, BOOL) spread over both. Measured, in alternating segments of equal length:

- emgate: `S7Source.poll_once` -> the sample queue: the planned multi-variable reads within the
  agreed PDU, the compiled decoder with every quality rule, the SampleBatch, health.
- bare: python-snap7's own `Client.read_multi_vars` (its read optimizer merges and packs the
  same items into PDU-sized requests) of the same areas, returning bytes and decoding nothing.

`s7_ratio_vs_bare` is the median over rounds of emgate polls/s against the mean of the bare
segments on either side; goal 0.8. The bare loop imports snap7 itself: it measures the library
(the gateway reaches snap7 only through gateway/sources/snap7_client.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from bench.peer import peer_process
from gateway.core.clock import SystemClock
from gateway.core.health import ComponentHealth
from gateway.core.model import SampleBatch, SampleQuality
from gateway.core.signals import SignalTable
from gateway.settings.site import GatewaySettings
from gateway.sources.s7 import S7Source
from tests.services.ports import free_port

DB_BYTES = 2400
M_BYTES = 64

SERVER = """
import struct, sys, time
from gateway.sources.snap7_client import S7Server
db = bytearray({db}); m = bytearray({m})
for i in range(0, {db}, 8):
    struct.pack_into(">f", db, i, i * 0.5)
    struct.pack_into(">i", db, i + 4, -i)
for i in range(0, {m}, 2):
    struct.pack_into(">h", m, i, i - 10)
with S7Server(port=int(sys.argv[1]), areas={{("DB", 1): db, ("M", 0): m}}):
    print("ready", flush=True)
    sys.stdin.read()  # until the bench closes our stdin
"""


def _points() -> list[dict[str, Any]]:
    pts: list[dict[str, Any]] = []
    for i in range(0, DB_BYTES, 8):  # 300 REAL + DINT pairs would be 600 points; take every other
        if (i // 8) % 2 == 0:
            pts.append({"signal": f"db_r{i}", "area": "DB", "db": 1, "byte": i, "type": "REAL", "min": -1e9, "max": 1e9})
        else:
            pts.append({"signal": f"db_d{i}", "area": "DB", "db": 1, "byte": i + 4, "type": "DINT", "scale": 0.1})
    for i in range(0, M_BYTES, 4):
        pts.append({"signal": f"m_i{i}", "area": "M", "byte": i, "type": "INT"})
        pts.append({"signal": f"m_w{i}", "area": "M", "byte": i + 2, "type": "WORD"})
        pts.append({"signal": f"m_x{i}", "area": "M", "byte": i, "type": "BOOL", "bit": 3})
    return pts


def _settings(port: int) -> GatewaySettings:
    points = _points()
    return GatewaySettings(
        site={"name": "bench"},
        signals={p["signal"]: {"unit": "t/h"} for p in points},
        s7={"devices": [{"name": "plc", "host": "127.0.0.1", "port": port, "pdu_bytes": 480, "points": points}]},
    )


async def _emgate(src: S7Source, queue: asyncio.Queue[SampleBatch], seconds: float) -> float:
    n = 0
    end = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < end:
        batch = await src.poll_once(time.time())
        queue.put_nowait(batch)
        queue.get_nowait()
        n += 1
    return n / (time.perf_counter() - started)


def _bare(port: int, items: list[list[dict[str, Any]]], seconds: float) -> float:
    import snap7  # the library itself, as a user of it would

    client = snap7.Client()
    client.connect("127.0.0.1", 0, 1, port)
    try:
        n = 0
        end = time.perf_counter() + seconds
        started = time.perf_counter()
        while time.perf_counter() < end:
            for request in items:
                client.read_multi_vars(request)
            n += 1
        return n / (time.perf_counter() - started)
    finally:
        client.disconnect()


async def _measure(port: int, seconds: float, rounds: int) -> dict[str, Any]:
    import snap7

    settings = _settings(port)
    dev = settings.s7.devices[0]
    queue: asyncio.Queue[SampleBatch] = asyncio.Queue(maxsize=4)
    src = S7Source(dev, SignalTable.from_settings(settings), queue, SystemClock(), ComponentHealth("s7[plc]"))
    async with src:
        plan = src.plan
        area = {"DB": snap7.Area.DB, "M": snap7.Area.MK, "I": snap7.Area.PE, "Q": snap7.Area.PA}
        items = [
            [{"area": area[it.area], "db_number": it.db, "start": it.start, "size": it.size} for it in r.items] for r in plan
        ]
        check = await src.poll_once(time.time())
        assert (check.quality == SampleQuality.GOOD).all(), "the bench PLC must answer every point"
        bare: list[float] = [await asyncio.to_thread(_bare, port, items, seconds)]
        polls: list[float] = []
        for _ in range(rounds):
            polls.append(await _emgate(src, queue, seconds))
            bare.append(await asyncio.to_thread(_bare, port, items, seconds))
    ratios = [p / ((b0 + b1) / 2) for p, b0, b1 in zip(polls, bare, bare[1:], strict=False)]
    return {
        "s7_points": len(dev.points),
        "s7_requests_per_poll": len(plan),
        "s7_items_per_poll": sum(len(r.items) for r in plan),
        "s7_pdu_bytes": src.pdu_bytes,
        "s7_emgate_polls_per_s": round(statistics.mean(polls), 1),
        "s7_bare_reads_per_s": round(statistics.mean(bare), 1),
        "s7_ratio_vs_bare": round(statistics.median(ratios), 3),
        "s7_ratio_rounds_min_max": [round(min(ratios), 3), round(max(ratios), 3)],
    }


def run(quick: bool) -> dict[str, Any]:
    seconds, rounds = (1.0, 3) if quick else (3.0, 5)
    port = free_port()
    with peer_process(SERVER.format(db=DB_BYTES, m=M_BYTES), port):
        figures = asyncio.run(_measure(port, seconds, rounds))
    print(
        f"S7, {figures['s7_points']} points in {figures['s7_items_per_poll']} items, "
        f"{figures['s7_requests_per_poll']} request(s) per poll at PDU {figures['s7_pdu_bytes']}\n"
        f"  emgate S7Source   {figures['s7_emgate_polls_per_s']:>9.1f} polls/s\n"
        f"  bare snap7        {figures['s7_bare_reads_per_s']:>9.1f} reads/s of the same items\n"
        f"  ratio             {figures['s7_ratio_vs_bare']:>9.3f}  (rounds {figures['s7_ratio_rounds_min_max']}; goal >= 0.8)"
    )
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.s7", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick)))
