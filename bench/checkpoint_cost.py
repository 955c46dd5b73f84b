"""CPU per closed minute: the window checkpoint the gateway writes with every close, against the close.

For 1,000 and 10,000 rate signals polled every second, in steady state (every substitution history
holding a day of measured minutes), per minute: ingest + close + emission compute; the checkpoint
(MinuteWindow.export_state + encode, `window_checkpoint`); and what storing it adds to the ledger
append of the minute's rows. Per substitution rule, as the history a checkpoint carries is what the
rule reads. `python -m bench.checkpoint_cost [--quick]`
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np

from gateway.core.model import SampleBatch
from gateway.core.signals import SignalTable
from gateway.ledger.checkpoint import window_checkpoint
from gateway.ledger.store import Ledger
from gateway.settings.factors import site_factor_table
from gateway.settings.site import GatewaySettings
from gateway.stages.emissions import EmissionCalculator
from gateway.stages.minute import MinuteWindow, WindowState
from gateway.stages.minute_history import CAPACITY, HistoryColumns

T0 = 1_767_225_600.0  # 2026-01-01T00:00Z, a minute boundary
R = TypeVar("R")


def plant(n_signals: int, rule: str) -> GatewaySettings:
    names = [f"s{i:05d}" for i in range(n_signals)]
    signals = {n: {"kind": "rate", "unit": "t/h", "max_gap_s": 3.0, "substitution": rule} for n in names}
    streams = [
        {"process": f"p{i % 10}", "stream": n, "signal": n, "method": "fuel_combustion", "factor": "cn.coke"}
        for i, n in enumerate(names)
    ]
    return GatewaySettings(site={"name": "bench"}, signals=signals, streams=streams)


def _cpu(f: Callable[[], R]) -> tuple[R, float]:
    t = time.process_time()
    out = f()
    return out, time.process_time() - t


def measure(n_signals: int, rule: str, minutes: int) -> dict[str, float]:
    """Mean CPU ms per minute over the last `minutes` of `minutes + 1` closes, and the checkpoint's MB."""
    settings = plant(n_signals, rule)
    window = MinuteWindow(SignalTable.from_settings(settings), settings.window, next_minute=T0)
    full = np.full(n_signals, CAPACITY)
    window.import_state(  # a day of measured minutes behind every signal
        WindowState(
            T0,
            np.empty(0, np.int32),
            np.empty(0),
            np.empty(0),
            np.empty(0, np.uint8),
            HistoryColumns(
                np.arange(n_signals, dtype=np.int32),
                full,
                full,
                np.full(n_signals * CAPACITY, 0.5),
                np.tile(np.arange(CAPACITY), n_signals),
            ),
        )
    )
    calc = EmissionCalculator(settings, site_factor_table([], []))
    rng = np.random.default_rng(1)
    ids = np.arange(n_signals, dtype=np.int32)
    good = np.zeros(n_signals, np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        plain, with_checkpoint = Ledger(Path(tmp) / "a.sqlite"), Ledger(Path(tmp) / "b.sqlite")
        totals = np.zeros(4)
        size = 0
        for m in range(minutes + 1):
            # polls up to the close of minute m (its end + delay_s 2 s), the first ones on from the last close
            batches = [
                SampleBatch("bench", ids, np.full(n_signals, T0 + k), 30 + rng.normal(0, 1, n_signals), good)
                for k in range(60 * m + 3 if m else 0, 60 * m + 63)
            ]

            def close(batches: list[SampleBatch] = batches):
                for b in batches:
                    window.ingest(b)
                frame = window.close_due(float(batches[-1].ts[0]) + 0.5)
                if frame is None:
                    raise RuntimeError("no minute closed: the polls must reach past the minute's close")
                return calc.compute(frame)

            results, close_s = _cpu(close)
            blob, checkpoint_s = _cpu(partial(window_checkpoint, window))
            _, append_s = _cpu(partial(plain.append, results))
            _, append_checkpoint_s = _cpu(partial(with_checkpoint.append, results, checkpoint=blob))
            if m:  # the first close warms caches
                totals += (close_s, checkpoint_s, append_s, append_checkpoint_s)
            size = len(blob)
        plain.close()
        with_checkpoint.close()
    close_ms, checkpoint_ms, append_ms, append_checkpoint_ms = totals / minutes * 1000.0
    return {
        "close_ms": close_ms,
        "checkpoint_ms": checkpoint_ms,
        "checkpoint_ledger_ms": append_checkpoint_ms - append_ms,
        "checkpoint_mb": size / 1e6,
    }


def run(quick: bool = False) -> dict[str, float]:
    out: dict[str, float] = {}
    sizes = (1000,) if quick else (1000, 10_000)
    print("checkpoint per closed minute (CPU ms), steady state: every history a day long")
    for n_signals in sizes:
        for rule in ("last_good", "hour_average", "lookback_max"):
            r = measure(n_signals, rule, minutes=3)
            print(
                f"  {n_signals:>6} signals {rule:<12}  close+compute {r['close_ms']:7.1f}   checkpoint {r['checkpoint_ms']:7.1f}"
                f"   ledger +{r['checkpoint_ledger_ms']:7.1f}   ({r['checkpoint_mb']:.2f} MB)"
            )
            out |= {f"{k}_{n_signals}_{rule}": v for k, v in r.items()}
    return out


if __name__ == "__main__":
    run(quick="--quick" in sys.argv[1:])
