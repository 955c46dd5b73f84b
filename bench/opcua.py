"""Benchmark: OPC UA subscription ingest through emgate's source against a bare asyncua client,
side by side in one run.

    python -m bench.opcua            # full run
    python -m bench.opcua --quick    # smoke run

One server (asyncua's own, in a process of its own so it does not share our GIL) holds 200
Double variables and changes every one of them every 20 ms. Measured, in alternating segments
of equal length, each a new session subscribed to all 200 items (publishing 50 ms, sampling
20 ms, queue 10):

- emgate: `OpcUaSource` -> the sample queue: StatusCode -> quality, timestamps, scaling, the
  SampleBatch, health; a consumer task empties the queue as the minute stage would.
- bare: asyncua's `Client.create_subscription` with a handler that counts
  `datachange_notification` calls and keeps nothing.

`opcua_ratio_vs_bare` is the median over rounds of emgate's data changes/s against the mean of
the bare segments on either side; goal 0.8. The bare client imports asyncua itself: it measures
the library (the gateway reaches asyncua only through gateway/sources/opcua_client.py).
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
from gateway.core.model import SampleBatch
from gateway.core.signals import SignalTable
from gateway.settings.site import GatewaySettings
from gateway.sources.opcua import OpcUaSource
from tests.services.ports import free_port

NODES = 200
CHANGE_EVERY_S = 0.02
PUBLISHING_MS = 50.0
SAMPLING_MS = 20.0

SERVER = """
import asyncio, logging, sys
from asyncua import Server, ua
logging.getLogger("asyncua").setLevel(logging.CRITICAL)
async def main():
    server = Server()
    await server.init()
    server.set_endpoint("opc.tcp://127.0.0.1:" + sys.argv[1] + "/bench/")
    ns = await server.register_namespace("urn:emgate:bench")
    folder = await server.nodes.objects.add_folder(ua.NodeId("Bench", ns), "Bench")
    ids = []
    for i in range({nodes}):
        v = await folder.add_variable(ua.NodeId(f"v{{i}}", ns), f"v{{i}}", 0.0, varianttype=ua.VariantType.Double)
        ids.append(v.nodeid)
    async with server:
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        stdin_closed = loop.run_in_executor(None, sys.stdin.read)
        n = 0
        while not stdin_closed.done():
            n += 1
            for nid in ids:
                await server.write_attribute_value(nid, ua.DataValue(ua.Variant(float(n), ua.VariantType.Double)))
            await asyncio.sleep({every})
asyncio.run(main())
"""


def _settings(port: int) -> GatewaySettings:
    url = f"opc.tcp://127.0.0.1:{port}/bench/"
    return GatewaySettings(
        site={"name": "bench"},
        signals={f"v{i}": {"unit": "t/h"} for i in range(NODES)},
        opcua={
            "servers": [
                {
                    "name": "bench",
                    "url": url,
                    "publishing_interval_ms": PUBLISHING_MS,
                    "sampling_interval_ms": SAMPLING_MS,
                    "queue_size": 10,
                    "nodes": [{"node": f"ns=2;s=v{i}", "signal": f"v{i}"} for i in range(NODES)],
                }
            ]
        },
    )


async def _emgate_segment(settings: GatewaySettings, seconds: float) -> float:
    """Data changes per second through OpcUaSource into the sample queue."""
    signals = SignalTable.from_settings(settings)
    queue: asyncio.Queue[SampleBatch] = asyncio.Queue(maxsize=100_000)
    src = OpcUaSource(settings.opcua.servers[0], signals, queue, SystemClock(), ComponentHealth("opcua[bench]"))

    async def consume() -> None:
        while True:
            await queue.get()

    async with src:
        consumer = asyncio.create_task(consume())
        runner = asyncio.create_task(src.run())
        await asyncio.sleep(0.5)  # the initial values and the first publish cycles
        start_n, start_t = src.counters.notifications, time.perf_counter()
        await asyncio.sleep(seconds)
        rate = (src.counters.notifications - start_n) / (time.perf_counter() - start_t)
        for task in (runner, consumer):
            task.cancel()
        await asyncio.gather(runner, consumer, return_exceptions=True)
    return rate


async def _bare_segment(port: int, seconds: float) -> float:
    """Data changes per second delivered to a bare asyncua subscription handler."""
    from asyncua import Client, ua

    class Counter:
        n = 0

        def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
            self.n += 1

    handler = Counter()
    async with Client(f"opc.tcp://127.0.0.1:{port}/bench/") as client:
        sub = await client.create_subscription(PUBLISHING_MS, handler)
        nodes = [client.get_node(ua.NodeId(f"v{i}", 2)) for i in range(NODES)]
        await sub.subscribe_data_change(nodes, queuesize=10, sampling_interval=SAMPLING_MS)
        await asyncio.sleep(0.5)
        start_n, start_t = handler.n, time.perf_counter()
        await asyncio.sleep(seconds)
        rate = (handler.n - start_n) / (time.perf_counter() - start_t)
        await sub.delete()
    return rate


async def _measure(port: int, seconds: float, rounds: int) -> dict[str, Any]:
    settings = _settings(port)
    bare = [await _bare_segment(port, seconds)]
    ours: list[float] = []
    ratios: list[float] = []
    for _ in range(rounds):
        ours.append(await _emgate_segment(settings, seconds))
        bare.append(await _bare_segment(port, seconds))
        ratios.append(ours[-1] / max(1e-9, (bare[-2] + bare[-1]) / 2))
    return {
        "opcua_nodes": NODES,
        "opcua_emgate_changes_per_s": round(statistics.median(ours), 1),
        "opcua_bare_changes_per_s": round(statistics.median(bare), 1),
        "opcua_ratio_vs_bare": round(statistics.median(ratios), 3),
        "opcua_ratio_rounds_min_max": [round(min(ratios), 3), round(max(ratios), 3)],
    }


def run(quick: bool) -> dict[str, Any]:
    seconds, rounds = (1.0, 3) if quick else (3.0, 5)
    port = free_port()
    with peer_process(SERVER.format(nodes=NODES, every=CHANGE_EVERY_S), port):
        figures = asyncio.run(_measure(port, seconds, rounds))
    print(
        f"OPC UA, {figures['opcua_nodes']} items, every one changed each {CHANGE_EVERY_S * 1000:.0f} ms\n"
        f"  emgate OpcUaSource  {figures['opcua_emgate_changes_per_s']:>9.1f} data changes/s\n"
        f"  bare asyncua        {figures['opcua_bare_changes_per_s']:>9.1f} data changes/s\n"
        f"  ratio               {figures['opcua_ratio_vs_bare']:>9.3f}  "
        f"(rounds {figures['opcua_ratio_rounds_min_max']}; goal >= 0.8)"
    )
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.opcua", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick)))
