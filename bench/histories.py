"""Substitution histories at 100,000 signals: memory held and time per close over two hours of closes.

    python -m bench.histories [--quick]

A minute window keeps every signal's substitution history (gateway/stages/minute_history.py). The
plant's bulk reads one entry (last_good); a few signals read an hour (hour_average). This drives
SignalHistories through 125 one-minute closes (past the hourly fold) for 100,000 signals, 1 % of
them hour_average, and prints the most memory it held (tracemalloc, a run of its own), the time a
close takes (the mean over the closes, another run without tracing), and a checkpoint's export
and reload. --quick: 10,000 signals.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from typing import Any

import numpy as np

CLOSES = 125


def _drive(n: int, trace: bool) -> dict[str, float]:
    from gateway.stages.minute_history import RULE_NEEDS, SignalHistories

    needs = np.full(n, RULE_NEEDS["last_good"], dtype=np.int64)
    needs[::100] = RULE_NEEDS["hour_average"]
    amounts = np.linspace(1.0, 2.0, n)[:, None]
    no_gap = np.empty(0, dtype=np.intp)
    if trace:
        tracemalloc.start()
    hist, held = SignalHistories(needs), 0
    t = time.perf_counter()
    for close in range(CLOSES):
        hist.add(amounts + close, no_gap)
        if trace:
            held = max(held, tracemalloc.get_traced_memory()[0])
    add_s = (time.perf_counter() - t) / CLOSES
    t = time.perf_counter()
    columns = hist.columns()
    export_s = time.perf_counter() - t
    t = time.perf_counter()
    SignalHistories(needs).load(columns)
    load_s = time.perf_counter() - t
    if trace:
        tracemalloc.stop()
    return {"held_mb": held / 1e6, "close_ms": add_s * 1000, "export_ms": export_s * 1000, "load_ms": load_s * 1000}


def run(quick: bool = False) -> dict[str, Any]:
    n = 10_000 if quick else 100_000
    traced, timed = _drive(n, True), _drive(n, False)
    figures = {
        f"histories_held_mb_{n // 1000}k_signals": round(traced["held_mb"], 2),
        f"histories_close_ms_{n // 1000}k_signals": round(timed["close_ms"], 3),
        f"histories_checkpoint_export_ms_{n // 1000}k_signals": round(timed["export_ms"], 1),
        f"histories_checkpoint_load_ms_{n // 1000}k_signals": round(timed["load_ms"], 1),
    }
    print(
        f"substitution histories, {n:,} signals (1 % hour_average), {CLOSES} one-minute closes: held at most "
        f"{traced['held_mb']:.1f} MB; {timed['close_ms']:.2f} ms a close; checkpoint export {timed['export_ms']:.1f} ms, "
        f"load {timed['load_ms']:.1f} ms"
    )
    print(json.dumps(figures))
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    run(p.parse_args().quick)


if __name__ == "__main__":
    main()
