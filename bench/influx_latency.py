"""From a minute's close to its results being queryable in the real InfluxDB (minute_to_influx_p99_s).

The demo plant runs sixty times faster (a minute closes every real second) against a real
influxd; a watcher asks InfluxDB over plain HTTP every 20 ms for the newest minute it holds and
records, in real seconds, how long after each close that minute first appears.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np

from gateway.commands.demo import DEMO_PLANT_CONFIG as DEMO_CONFIG
from gateway.commands.demo import demo_settings
from gateway.core.clock import ScaledClock
from gateway.core.model import MinuteResults
from gateway.pipeline import Gateway
from gateway.settings.site import GatewaySettings
from gateway.sim.plant import UNITS, SimulatedPlant
from gateway.sources.pymodbus_client import RegisterServer
from tests.services.influxd import InfluxService
from tests.services.ports import free_port


def newest_minute(influx: InfluxService) -> float | None:
    result = influx.influxql("SELECT last(co2_kg) FROM emissions")
    series = result["results"][0].get("series")
    if not series:
        return None
    return float(np.datetime64(series[0]["values"][0][0].replace("Z", "")).astype("datetime64[s]").astype(np.int64))


async def measure(settings: GatewaySettings, port: int, influx: InfluxService, minutes: int) -> list[float]:
    clock = ScaledClock(speed=60.0)
    plant = SimulatedPlant(clock)
    gw = Gateway.build(settings, clock=clock)
    closed_at: dict[float, float] = {}
    seen_at: dict[float, float] = {}

    def closed(results: MinuteResults) -> None:
        closed_at.setdefault(float(results.minute_start.max()), time.perf_counter())

    gw.listeners.append(closed)

    async def watch() -> None:
        while True:
            newest = await asyncio.to_thread(newest_minute, influx)
            now = time.perf_counter()
            if newest is not None:
                for m in closed_at:
                    if m <= newest and m not in seen_at:
                        seen_at[m] = now
            await asyncio.sleep(0.02)

    async with RegisterServer(port=port, fills={u: plant.fill(u) for u in UNITS.values()}, n_registers=16):
        watcher = asyncio.create_task(watch())
        try:
            await gw.run(stop_after_minutes=minutes)
            deadline = time.perf_counter() + 10
            # the watcher fills seen_at; poll it briefly rather than wire an event for a benchmark
            while len(seen_at) < len(closed_at) and time.perf_counter() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        finally:
            watcher.cancel()
            gw.close()
    missing = [m for m in closed_at if m not in seen_at]
    if missing:
        raise RuntimeError(f"{len(missing)} closed minute(s) never appeared in InfluxDB")
    return [seen_at[m] - closed_at[m] for m in sorted(closed_at)]


def run(quick: bool = False) -> dict[str, float]:
    minutes = 20 if quick else 60
    with tempfile.TemporaryDirectory(prefix="emgate-bench-latency-") as tmp, InfluxService(flux=False) as influx:
        port = free_port()
        base = demo_settings(DEMO_CONFIG, port, Path(tmp) / "ledger.sqlite", speed=60.0)
        data = base.model_dump()
        data["influx"] = {
            **data["influx"],
            "enabled": True,
            "url": influx.url,
            "org": influx.org,
            "bucket": influx.bucket,
            "token": influx.token,
        }
        latencies = np.array(asyncio.run(measure(GatewaySettings(**data), port, influx, minutes)))
    p50, p99 = np.percentile(latencies, [50, 99])
    print(
        f"minute close -> queryable in InfluxDB over {len(latencies)} minutes: p50 {p50 * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {latencies.max() * 1000:.0f} ms (includes the 20 ms watch interval)"
    )
    return {"minute_to_influx_p50_s": float(p50), "minute_to_influx_p99_s": float(p99)}
