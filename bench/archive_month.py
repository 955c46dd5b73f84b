"""Benchmark: `emgate ledger archive` of closed months, and `ledger verify` before and after.

    python -m bench.archive_month                # 100 streams, a 31-day month + 1 day (4,608,000 rows)
    python -m bench.archive_month --months 12    # a year + 1 day (52,704,000 rows, about 9 GB; 20-25 minutes)
    python -m bench.archive_month --streams 5    # a smoke run

The ledger is bench.export_month's (100 streams: the 10,000-signal plant, one row per stream per
minute, a real hash chain), from 1 January 2026: its --months whole months and one day of the
next, so that they are closed. Archiving --before the next month moves them out in one archive
file (as `emgate ledger archive --before 2027-01` would a year): the figures are the archive's
phases (verify the live ledger, seal, write the archive file, verify it, delete the rows from the
live ledger, VACUUM), the verify of the live ledger across the gap and of the archive on its own,
and the sizes. Archive time grows with the rows archived (verify, copy, delete) plus VACUUM,
which grows with what is left in the live file.
"""

from __future__ import annotations

import argparse
import calendar
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.export_month import MONTH, TZ, build_ledger


def _mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 1e6, 1)


def run(streams: int, months: int = 1) -> dict[str, Any]:
    from gateway.ledger.archive import archive_ledger, next_month
    from gateway.ledger.audit import cpus, native_walk, verify_ledger

    figures: dict[str, Any] = {"streams": streams, "months": months, "walk": "native" if native_walk() else "python"}
    before, days = MONTH, 0
    for _ in range(months):
        days += calendar.monthrange(int(before[:4]), int(before[5:]))[1]
        before = next_month(before)
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp:
        ledger = Path(tmp) / "ledger.sqlite"
        t = time.perf_counter()
        # the months' days and one day of the next (the months are then closed)
        rows = build_ledger(ledger, streams, days + 1)
        figures["build_s"] = round(time.perf_counter() - t, 1)
        figures["rows"] = rows
        figures["ledger_mb_before"] = _mb(ledger)
        t = time.perf_counter()
        assert verify_ledger(ledger, processes=cpus()).ok
        figures["verify_before_s"] = round(time.perf_counter() - t, 2)
        r = archive_ledger(ledger, Path(tmp) / "archive", before, timezone=TZ, site="bench-works")
        figures["archived_rows"] = r.record["rows"]
        figures.update({f"archive_{k}_s": round(v, 2) for k, v in r.seconds.items()})
        figures["ledger_mb_after"] = _mb(ledger)
        figures["archive_mb"] = _mb(r.archive)
        t = time.perf_counter()
        live = verify_ledger(ledger, processes=cpus())
        figures["verify_live_after_s"] = round(time.perf_counter() - t, 2)
        assert live.ok and live.archived_seq == r.record["last_seq"]
        t = time.perf_counter()
        assert verify_ledger(r.archive, processes=cpus()).ok
        figures["verify_archive_s"] = round(time.perf_counter() - t, 2)
    print(json.dumps(figures, indent=2))
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, default=100)
    p.add_argument("--months", type=int, default=1, help="whole months to archive, from January 2026 (12: a year)")
    a = p.parse_args()
    if not 1 <= a.months <= 120 or a.streams < 1:
        p.error("--months takes 1..120 and --streams a positive number")
    run(a.streams, a.months)


if __name__ == "__main__":
    main()
