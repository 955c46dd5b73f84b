"""A day of 1-minute data for 100,000 signals through `emgate replay` (replay_day_100k_s, goal 60 s).

    python -m bench --only replay_day_100k    # the whole day (issue 20's figure)
    python -m bench.replay_day_100k --quick   # a tenth of the columns: a smoke run, not the goal's size

The site is the one bench/load_100k.py polls: 375 devices of 240 points and 100 MQTT topics of
100 fields (100,000 rate signals in t/h), one emission stream per device and per topic (475).
The input is one day of that site as a historian exports it: one CSV of 1,441 lines, a
timestamp column in ISO 8601 with the site's offset and one column per signal (100,000 value
columns, about 1 GB), mapped by a [[replay.csv]] entry. The wide layout is what historian
exports write (one row per time, one column per tag), and the one that holds a day of 100,000
signals in 1 GB: the long `ts,signal,value` layout would take 144 million lines of about 30
bytes. Five devices were offline for half an hour (their 1,200 cells of each of those minutes
are empty), so the replay's substitution and coverage work on real gaps.

The figure is the wall time of the `emgate replay` command itself (a subprocess), with the
peak resident memory of that process (wait4's rusage). With --quick the site has a tenth of
the devices and topics (10,120 signals, 48 streams) and the figure is not compared to the goal.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

GOAL_S = 60.0
MINUTES = 1440
DEVICES, POINTS = 375, 240  # as bench/load_100k.py
TOPICS, FIELDS = 100, 100
OFFLINE_DEVICES, OFFLINE_MINUTES = 5, 30  # devices d000.. with empty cells from 10:00 for this long
OFFLINE_FROM_MINUTE = 600
TZ = timezone(timedelta(hours=8))  # Asia/Shanghai: no daylight saving
DAY = datetime(2025, 3, 1, tzinfo=TZ)


def signal_names(devices: int, topics: int) -> list[str]:
    return [f"d{d:03d}.p{k:03d}" for d in range(devices) for k in range(POINTS)] + [
        f"m{t:03d}.f{k:03d}" for t in range(topics) for k in range(FIELDS)
    ]


def write_site(path: Path, devices: int, topics: int) -> None:
    names = signal_names(devices, topics)
    out = ['[site]\nname = "bench-replay-100k"\ntimezone = "Asia/Shanghai"\n']
    # one row a minute: max_gap_s = 120 s lets a minute be integrated between two rows (the live
    # site polls every second and takes the default, three polls)
    out.extend(f'[signals."{n}"]\nunit = "t/h"\nmax_gap_s = 120.0\n' for n in names)
    out.extend(
        f'[[streams]]\nprocess = "unit{d:03d}"\nstream = "fuel"\nsignal = "d{d:03d}.p000"\n'
        'method = "fuel_combustion"\nfactor = "cn.coke"\n'
        for d in range(devices)
    )
    out.extend(
        f'[[streams]]\nprocess = "mqtt{t:03d}"\nstream = "fuel"\nsignal = "m{t:03d}.f000"\n'
        'method = "fuel_combustion"\nfactor = "cn.coke"\n'
        for t in range(topics)
    )
    cols = ", ".join(f'"{n}" = "{n}"' for n in names)
    out.append(
        f'[[replay.csv]]\nmatch = "historian-*.csv"\ntimestamp_column = "Time"\ntimestamp_format = "iso8601"\ncolumns = {{ {cols} }}\n'
    )
    path.write_text("\n".join(out))


def write_data(path: Path, devices: int, topics: int, minutes: int = MINUTES) -> int:
    """The day's CSV (values 10.000 to 19.999 t/h, three decimals); the number of empty cells."""
    names = signal_names(devices, topics)
    width = len(names)
    offline = min(OFFLINE_DEVICES, devices) * POINTS
    rng = np.random.default_rng(20)
    # one cell is 7 bytes, "dd.ddd," (the last of a row ends in a newline): the digits are set
    # by numpy a block of rows at a time, so writing 1 GB takes seconds, not a Python loop per cell
    empty = 0
    with path.open("wb") as fh:
        fh.write(("Time," + ",".join(names) + "\n").encode())
        for lo in range(0, minutes, 60):
            rows = min(60, minutes - lo)
            milli = rng.integers(10_000, 20_000, size=(rows, width), dtype=np.int32)
            cells = np.empty((rows, width, 7), dtype=np.uint8)
            for pos, div in ((0, 10_000), (1, 1_000), (3, 100), (4, 10), (5, 1)):
                cells[:, :, pos] = (milli // div) % 10 + ord("0")
            cells[:, :, 2] = ord(".")
            cells[:, :, 6] = ord(",")
            cells[:, -1, 6] = ord("\n")
            for r in range(rows):
                minute = lo + r
                stamp = (DAY + timedelta(minutes=minute)).isoformat() + ","
                line = cells[r].tobytes()
                if OFFLINE_FROM_MINUTE <= minute < OFFLINE_FROM_MINUTE + OFFLINE_MINUTES and offline:
                    line = b"," * offline + line[7 * offline :]  # the offline devices' cells, empty
                    empty += offline
                fh.write(stamp.encode() + line)
    return empty


def run_replay(site: Path, data: Path, out: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, the summary line) of one `emgate replay` of `data`."""
    cmd = [sys.executable, "-m", "gateway", "replay", "--config", str(site), "--input", str(data), "--out", str(out)]
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as std:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=std, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        wall_s = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        std.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"emgate replay exited {proc.returncode}: {err.read().decode(errors='replace')[-2000:]}")
        return wall_s, usage.ru_maxrss / 1024.0, std.read().decode().strip()


def run(quick: bool = False, tmp: Path | None = None) -> dict[str, Any]:
    devices, topics = (DEVICES // 10 + 1, TOPICS // 10) if quick else (DEVICES, TOPICS)
    n_signals = devices * POINTS + topics * FIELDS
    streams = devices + topics
    with tempfile.TemporaryDirectory(prefix="emgate-bench-replay-100k-", dir=tmp) as where:
        d = Path(where)
        started = time.perf_counter()
        write_site(d / "site.toml", devices, topics)
        empty = write_data(d / "historian-day.csv", devices, topics)
        written_s = time.perf_counter() - started
        size_mb = (d / "historian-day.csv").stat().st_size / 1e6
        wall_s, rss_mb, summary = run_replay(d / "site.toml", d / "historian-day.csv", d / "out")
        ledger_rows = MINUTES * streams
    key = "replay_day_10k_s" if quick else "replay_day_100k_s"
    figures: dict[str, Any] = {
        key: round(wall_s, 2),
        f"{key[:-2]}_rss_mb": round(rss_mb, 1),
        f"{key[:-2]}_samples": MINUTES * n_signals,
        f"{key[:-2]}_ledger_rows": ledger_rows,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    met = "meets" if wall_s <= GOAL_S else "MISSES"
    print(
        f"replay: {MINUTES:,} minutes x {n_signals:,} signals ({streams} streams; {MINUTES * n_signals:,} samples, "
        f"{empty:,} empty cells; {size_mb:,.0f} MB CSV written in {written_s:.0f} s) in {wall_s:.1f} s, "
        f"peak RSS {rss_mb:,.0f} MB"
        + ("" if quick else f"; goal {GOAL_S:.0f} s: {met}")
        + f"\n  {summary}\n  load average {figures['load_average_1m']}"
    )
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="10,120 signals instead of 100,000")
    p.add_argument("--tmp", type=Path, help="the directory for the site file, the CSV and the output (default: the system's)")
    args = p.parse_args()
    run(args.quick, args.tmp)


if __name__ == "__main__":
    main()
