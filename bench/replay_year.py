"""A year of 1-minute data for 100 signals through `emgate replay` (replay_year_minutes_s).

The input is written once as a column-mapped CSV (one timestamp column, 100 value columns, as a
historian export looks); the figure is the wall time of the `emgate replay` command itself.
With --quick a month stands in for the year and the figure is scaled by 12; a one-day replay
beside it separates the fixed cost, counted once in `replay_year_extrapolated_s`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_SIGNALS = 100
STREAMS = 10  # ten streams (one per process) over the hundred signals' first ten


def write_site(path: Path) -> None:
    lines = ['[site]\nname = "bench-year"\ntimezone = "Asia/Shanghai"\n']
    for i in range(N_SIGNALS):
        lines.append(
            f'[signals."s{i:03d}"]\nkind = "interval_total"\nunit = "kWh"\ninterval_s = 60.0\ninterval_label = "start"\nsubstitution = "none"\n'
        )
    for i in range(STREAMS):
        lines.append(
            f'[[streams]]\nprocess = "p{i}"\nstream = "power"\nsignal = "s{i:03d}"\nmethod = "electricity"\nfactor = "cn.grid.2023.national_avg"\n'
        )
    cols = ", ".join(f'"c{i:03d}" = "s{i:03d}"' for i in range(N_SIGNALS))
    lines.append(
        f'[[replay.csv]]\nmatch = "year*.csv"\ntimestamp_column = "ts"\ntimestamp_format = "epoch_s"\ncolumns = {{ {cols} }}\n'
    )
    path.write_text("\n".join(lines))


def write_data(path: Path, minutes: int) -> None:
    rng = np.random.default_rng(1)
    t0 = 1_735_660_800  # 2025-01-01T00:00+08:00
    ts = t0 + 60 * np.arange(minutes)
    values = rng.uniform(10, 20, (minutes, N_SIGNALS)).round(3)
    header = "ts," + ",".join(f"c{i:03d}" for i in range(N_SIGNALS))
    np.savetxt(path, np.column_stack([ts, values]), delimiter=",", header=header, comments="", fmt=["%d"] + ["%.3f"] * N_SIGNALS)


def _replay_wall(d: Path, data: Path) -> float:
    """Wall time of one `emgate replay` of `data` into a new output directory."""
    out = d / f"out-{data.stem}"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "gateway", "replay", "--config", str(d / "site.toml"), "--input", str(data), "--out", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def run(quick: bool = False) -> dict[str, float]:
    minutes = 31 * 1440 if quick else 365 * 1440
    scale = 365 * 1440 / minutes
    with tempfile.TemporaryDirectory(prefix="emgate-bench-year-") as tmp:
        d = Path(tmp)
        write_site(d / "site.toml")
        write_data(d / "year.csv", minutes)
        wall = _replay_wall(d, d / "year.csv")
        figures = {"replay_year_minutes_s": wall * scale, "replay_samples": minutes * N_SIGNALS}
        if scale != 1:
            # Scaling the month by 12 also counts 12 times what a replay costs once (start-up,
            # imports, opening the ledger): a one-day replay measures that part, and the
            # extrapolation counts it once.
            write_data(d / "year-1d.csv", 1440)
            one_day = _replay_wall(d, d / "year-1d.csv")
            per_minute = (wall - one_day) / (minutes - 1440)
            figures["replay_fixed_s"] = one_day - 1440 * per_minute
            figures["replay_year_extrapolated_s"] = figures["replay_fixed_s"] + 365 * 1440 * per_minute
    print(
        f"replay: {minutes:,} minutes x {N_SIGNALS} signals ({STREAMS} streams) in {wall:.1f} s"
        + (
            f"; scaled to a year: {wall * scale:.1f} s; fixed part {figures['replay_fixed_s']:.1f} s, "
            f"so a year extrapolates to {figures['replay_year_extrapolated_s']:.1f} s"
            if scale != 1
            else ""
        )
    )
    figures["load_average_1m"] = round(os.getloadavg()[0], 2)
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="31 days, scaled to a year")
    run(p.parse_args().quick)


if __name__ == "__main__":
    main()
