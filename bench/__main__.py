"""`python -m bench [--quick] [--json FILE] [--only NAME ...]`: measure emgate against its goals.

Each area is a module with `run(quick) -> dict` that prints its own table; this driver runs them
in one process, side by side where a ratio is measured, and writes every figure to one JSON file
with the machine it ran on. Figures on a 2-core machine are noisy: compare ratios from one run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

AREAS = (
    "analytics",
    "histories",
    "acquisition",
    "ledger_drain",
    "ledger_throughput",
    "checkpoint_cost",
    "export_month",
    "cbam",
    "replay_year",
    "replay_day_100k",
    "influx_latency",
    "load_10k",
    "load_100k",
    "s7",
    "opcua",
    "soak",
)
# 25 minutes on their own: left out of --quick unless named with --only
FULL_ONLY = {"load_100k"}
# figure -> (goal, "min" or "max")
GOALS: dict[str, tuple[float, str]] = {
    "modbus_ratio_vs_bare": (0.8, "min"),
    "mqtt_ratio_vs_bare": (0.8, "min"),
    "s7_ratio_vs_bare": (0.8, "min"),
    "opcua_ratio_vs_bare": (0.8, "min"),
    "analytics_samples_per_s": (2_000_000, "min"),
    "rss_mb_10k_signals": (90, "max"),
    "cpu_ratio_emgate_vs_telegraf": (1.0, "max"),
    "cpu_core_fraction_100k_signals": (0.5, "max"),
    "rss_mb_100k_signals": (300, "max"),
    "minute_to_influx_p99_s_100k": (5.0, "max"),
    "cpu_core_fraction_10k_signals": (0.10, "max"),
    "minute_to_influx_p99_s": (2.0, "max"),
    "backlog_drain_points_per_s": (100_000, "min"),
    "export_month_s": (5.0, "max"),
    "cbam_year_s": (10.0, "max"),
    "replay_day_100k_s": (60.0, "max"),
    "soak_rss_mb_growth_per_day": (1.0, "max"),
    "soak_fds_growth_per_day": (0.5, "max"),  # a fit: under half a descriptor a day is none
}


def machine() -> dict[str, Any]:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_avg": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller runs (under 10 minutes in all)")
    p.add_argument("--json", type=Path, help="write every figure to this file")
    p.add_argument("--only", nargs="*", choices=AREAS, help="run only these areas")
    args = p.parse_args(argv)
    figures: dict[str, Any] = {}
    failures: dict[str, str] = {}
    started = time.perf_counter()
    for name in args.only or [a for a in AREAS if not (args.quick and a in FULL_ONLY)]:
        print(f"\n== {name}", flush=True)
        try:
            module = importlib.import_module(f"bench.{name}")
            figures.update(module.run(quick=args.quick))
        except Exception as exc:
            failures[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
    print("\n== summary (goal)")
    for key, value in sorted(figures.items()):
        goal = GOALS.get(key)
        verdict = ""
        if goal is not None and isinstance(value, int | float):
            ok = value >= goal[0] if goal[1] == "min" else value <= goal[0]
            verdict = f"  {'meets' if ok else 'MISSES'} {'>=' if goal[1] == 'min' else '<='} {goal[0]:,}"
        shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
        print(f"  {key:<40} {shown:>18}{verdict}")
    for name, why in failures.items():
        print(f"  {name}: FAILED ({why})")
    print(f"  machine: {machine()}; {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "figures": figures, "failures": failures}, indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
