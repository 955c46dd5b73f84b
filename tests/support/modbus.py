"""Modbus sources as the integration tests build and run them: device settings, a source, a run.

Shared by the tests against pymodbus' server (test_modbus_source.py), modbus-tk
(test_modbus_tk.py) and the other peers (test_modbus_peers.py).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gateway.core.clock import SystemClock
from gateway.core.health import ComponentHealth
from gateway.core.model import SampleBatch
from gateway.core.signals import SignalTable
from gateway.settings.site import ModbusDeviceConfig, RetryConfig
from gateway.sources.modbus import ModbusSource
from gateway.sources.modbus_link import ModbusLinkPool
from tests.factories import site_settings

FAST_RETRY = RetryConfig(base_s=0.05, cap_s=0.4)


def build(devices: list[dict[str, Any]]) -> tuple[list[ModbusDeviceConfig], SignalTable]:
    """The devices' validated settings, and the signal table of every point on them (t/h)."""
    signals = {p["signal"]: {"unit": "t/h"} for d in devices for p in d["points"]}
    settings = site_settings(signals=signals, modbus={"devices": devices})
    return list(settings.modbus.devices), SignalTable.from_settings(settings)


def source(
    dev: ModbusDeviceConfig,
    signals: SignalTable,
    queue: asyncio.Queue[SampleBatch] | None = None,
    links: ModbusLinkPool | None = None,
) -> ModbusSource:
    """A ModbusSource on the system clock that retries fast (FAST_RETRY)."""
    return ModbusSource(
        dev,
        signals,
        queue or asyncio.Queue(),
        SystemClock(),
        ComponentHealth(f"modbus[{dev.name}]"),
        links=links,
        retry=FAST_RETRY,
    )


async def collect(
    sources: list[ModbusSource], queue: asyncio.Queue[SampleBatch], seconds: float
) -> dict[str, list[tuple[float, SampleBatch]]]:
    """Run the sources for `seconds`; (arrival time, batch) per source name."""
    got: dict[str, list[tuple[float, SampleBatch]]] = {s.cfg.name: [] for s in sources}

    async def drain() -> None:
        while True:
            batch = await queue.get()
            got[batch.source].append((time.monotonic(), batch))

    async def run(src: ModbusSource) -> None:
        async with src:
            await src.run()

    tasks = [asyncio.create_task(run(s)) for s in sources] + [asyncio.create_task(drain())]
    await asyncio.sleep(seconds)
    for t in tasks:
        t.cancel()
    # a source must stop promptly when cancelled (a service manager's stop does the same)
    _, pending = await asyncio.wait(tasks, timeout=10.0)
    assert not pending, f"{len(pending)} source task(s) did not stop within 10 s of cancellation"
    return got
