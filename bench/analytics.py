"""Samples per CPU-second through minute aggregation and emission calculation.

The gateway's own stages (MinuteWindow + EmissionCalculator), not the numpy kernels alone:
- live: 1,000 signals polled every second, one batch per poll, one minute closed at a time;
- replay: the same readings closed a day at a time, as `emgate replay` does.
CPU time is the process's (time.process_time), so the figure is per core.
"""

from __future__ import annotations

import time

import numpy as np

from gateway.core.model import SampleBatch
from gateway.core.signals import SignalTable
from gateway.settings.factors import site_factor_table
from gateway.settings.site import GatewaySettings
from gateway.stages.emissions import EmissionCalculator
from gateway.stages.minute import MinuteWindow

T0 = 1_767_225_600.0  # 2026-01-01T00:00Z, a minute boundary


def plant(n_signals: int) -> GatewaySettings:
    signals = {f"s{i:05d}": {"kind": "rate", "unit": "t/h", "max_gap_s": 3.0} for i in range(n_signals)}
    streams = [
        {"process": f"p{i % 10}", "stream": f"s{i:05d}", "signal": f"s{i:05d}", "method": "fuel_combustion", "factor": "cn.coke"}
        for i in range(n_signals)
    ]
    return GatewaySettings(site={"name": "bench"}, signals=signals, streams=streams)


def _readings(n_signals: int, minutes: int) -> list[SampleBatch]:
    """One batch per second, as a poller delivers them; made before the clock starts."""
    rng = np.random.default_rng(5)
    ids = np.arange(n_signals, dtype=np.int32)
    base = rng.uniform(10, 50, n_signals)
    good = np.zeros(n_signals, dtype=np.uint8)
    return [
        SampleBatch("bench", ids, np.full(n_signals, T0 + k), base + rng.normal(0, 0.5, n_signals), good)
        for k in range(minutes * 60 + 3)
    ]


def _run(settings: GatewaySettings, batches: list[SampleBatch], close_every_min: int) -> tuple[int, float, int]:
    """Ingest every batch, closing minutes every `close_every_min`; returns samples, CPU s, results."""
    table = SignalTable.from_settings(settings)
    calc = EmissionCalculator(settings, site_factor_table([], []))
    window = MinuteWindow(table, settings.window, next_minute=T0)
    step = close_every_min * 60
    results = 0
    cpu0 = time.process_time()
    for k, batch in enumerate(batches):
        window.ingest(batch)
        if k % step == step - 1 or k == len(batches) - 1:
            frame = window.close_due(float(batch.ts[0]) + 1.0)
            if frame is not None:
                results += len(calc.compute(frame))
    cpu = time.process_time() - cpu0
    return sum(len(b.ts) for b in batches), cpu, results


def run(quick: bool = False) -> dict[str, float]:
    n_signals, minutes = (1000, 10) if quick else (1000, 60)
    settings = plant(n_signals)
    batches = _readings(n_signals, minutes)
    live = _run(settings, batches, close_every_min=1)
    day = _run(settings, batches, close_every_min=minutes)
    if not live[2] == day[2] == n_signals * minutes:
        raise AssertionError(f"expected {n_signals * minutes} minute results, got {live[2]} and {day[2]}")
    out = {
        "analytics_samples_per_s": live[0] / live[1],
        "analytics_samples_per_s_replay": day[0] / day[1],
    }
    print(f"analytics: {n_signals} signals x {minutes} min at 1 s = {live[0]:,} samples")
    print(f"  live (close each minute):   {live[0] / live[1]:>14,.0f} samples per CPU-s   ({live[1]:.2f} CPU-s)")
    print(f"  replay (close all at once): {day[0] / day[1]:>14,.0f} samples per CPU-s   ({day[1]:.2f} CPU-s)")
    return out
