"""A year of 1-minute data for 100 signals through `emgate replay` (replay_year_minutes_s).

The input is written once as a column-mapped CSV (one timestamp column, 100 value columns, as a
historian export looks); the figure is the wall time of the `emgate replay` command itself.
With --quick a month stands in for the year and the figure is scaled by 12.
"""

from __future__ import annotations

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


def run(quick: bool = False) -> dict[str, float]:
    minutes = 31 * 1440 if quick else 365 * 1440
    with tempfile.TemporaryDirectory(prefix="emgate-bench-year-") as tmp:
        d = Path(tmp)
        write_site(d / "site.toml")
        write_data(d / "year.csv", minutes)
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway",
                "replay",
                "--config",
                str(d / "site.toml"),
                "--input",
                str(d / "year.csv"),
                "--out",
                str(d / "out"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - started
    scale = 365 * 1440 / minutes
    print(
        f"replay: {minutes:,} minutes x {N_SIGNALS} signals ({STREAMS} streams) in {wall:.1f} s"
        + (f"; scaled to a year: {wall * scale:.1f} s" if scale != 1 else "")
    )
    return {"replay_year_minutes_s": wall * scale, "replay_samples": minutes * N_SIGNALS}
