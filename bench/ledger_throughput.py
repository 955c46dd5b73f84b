"""Benchmark: ledger appends/s and chain verification rows/s, beside SQLite's own ceiling.

    python -m bench.ledger_throughput            # 300,000 rows (100 streams x 3,000 minutes)
    python -m bench.ledger_throughput --quick    # 60,000 rows
    python -m bench.ledger_throughput --rows 1000000 --batch 10000

Four append figures on the same rows, side by side (on a loaded 2-core machine only the ratios
mean much): `append_bulk` passes every row in one Ledger.append (a drained backlog);
`append_batched` one append per `--batch` rows (one transaction each, as a live gateway with that
many streams per minute); `append_batched_bulk_load` the same after Ledger.bulk_load(), as
`emgate replay` appends a day at a time, its time including the close that makes the file
durable; `ceiling_executemany` inserts the very rows Ledger stored (already hashed) with one
plain executemany into a fresh file of the same schema, pragmas and indexes: what SQLite alone
costs, the bound for the append. `verify` is verify_ledger over the bulk ledger (the
whole chain, as `emgate ledger verify` and the export do); `read_current` is LedgerReader.current().
Targets: appends >= 200,000 rows/s, verify >= 300,000 rows/s.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway.core.model import MinuteResult, MinuteResults
from gateway.ledger.audit import native_walk, verify_ledger
from gateway.ledger.database import open_ledger_db
from gateway.ledger.format import INSERT_COLUMNS
from gateway.ledger.store import Ledger

START = 1_795_000_000.0 - 1_795_000_000.0 % 86400
GOAL_APPENDS_PER_S = 200_000
GOAL_VERIFY_PER_S = 300_000


def synthetic_result(minute_start: float, minute: int, stream: int, activity_drift: float = 1e-6) -> MinuteResult:
    """Stream `stream`'s result for minute `minute` of a synthetic works: eight processes, five
    sizes of coke feed, about 1 % of minutes substituted and flagged (the export bench uses it too)."""
    sub = (minute * 31 + stream) % 97 == 0
    return MinuteResult(
        minute_start,
        "bench-works",
        f"p{stream % 8}",
        f"s{stream:05d}",
        "direct",
        "fuel_combustion",
        0.01 * (1 + stream % 5) + minute * activity_drift,
        "t",
        28.53 * (1 + stream % 5),
        "cn.coke",
        2853.0,
        0.2 if sub else 1.0,
        "substituted" if sub else "measured",
        "rule=last_good" if sub else "",
    )


def minute_results(rows: int, streams: int = 100) -> MinuteResults:
    return MinuteResults.from_rows(synthetic_result(START + 60.0 * m, m, i) for m, i in (divmod(k, streams) for k in range(rows)))


def _append(path: Path, results: MinuteResults, batch: int, *, bulk_load: bool = False) -> float:
    ledger = Ledger(path, clock=lambda: 1_800_000_000.0)
    if bulk_load:
        ledger.bulk_load()
    t0 = time.perf_counter()
    for i in range(0, len(results), batch):
        ledger.append(results.take(slice(i, i + batch)))
    if bulk_load:
        ledger.close()  # the one fsync of a bulk load is part of its cost
    elapsed = time.perf_counter() - t0
    if not bulk_load:
        ledger.close()
    return elapsed


def _ceiling(source: Path, target: Path) -> float:
    src = open_ledger_db(source, readonly=True)
    rows = src.execute(f"SELECT {', '.join(INSERT_COLUMNS)} FROM minutes ORDER BY seq").fetchall()
    src.close()
    db = open_ledger_db(target)
    placeholders = ",".join("?" * len(INSERT_COLUMNS))
    t0 = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    db.executemany(f"INSERT INTO minutes ({', '.join(INSERT_COLUMNS)}) VALUES ({placeholders})", rows)
    db.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    db.close()
    return elapsed


def run(quick: bool, *, rows: int | None = None, batch: int | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the figures (rows/s) for `python -m bench`."""
    rows = rows or (60_000 if quick else 300_000)
    batch = batch or 10_000
    results = minute_results(rows)
    with tempfile.TemporaryDirectory(prefix="emgate-bench-") as tmp:
        bulk, batched, plain = Path(tmp) / "bulk.sqlite", Path(tmp) / "batched.sqlite", Path(tmp) / "plain.sqlite"
        bulk_s = _append(bulk, results, len(results))
        batched_s = _append(batched, results, batch)
        bulk_load_s = _append(Path(tmp) / "bulk_load.sqlite", results, batch, bulk_load=True)
        ceiling_s = _ceiling(bulk, plain)
        t0 = time.perf_counter()
        report = verify_ledger(bulk)
        verify_s = time.perf_counter() - t0
        if not (report.ok and report.rows == rows):
            raise RuntimeError(f"verify of the benchmark ledger failed: {report}")
        ledger = Ledger(bulk, readonly=True)
        t0 = time.perf_counter()
        read = sum(1 for _ in ledger.reader.current())
        read_s = time.perf_counter() - t0
        ledger.close()
        ledger_mb = sum(p.stat().st_size for p in Path(tmp).glob("bulk.sqlite*")) / 1e6
    figures = {
        "ledger_rows": rows,
        "ledger_batch": batch,
        "ledger_append_bulk_rows_per_s": round(rows / bulk_s),
        "ledger_append_batched_rows_per_s": round(rows / batched_s),
        "ledger_append_batched_bulk_load_rows_per_s": round(rows / bulk_load_s),
        "ledger_ceiling_executemany_rows_per_s": round(rows / ceiling_s),
        "ledger_append_vs_ceiling": round(ceiling_s / bulk_s, 2),
        "ledger_verify_rows_per_s": round(rows / verify_s),
        "ledger_verify_walk": "native" if native_walk() else "python",  # see gateway/ledger/audit.py
        "ledger_read_current_rows_per_s": round(read / read_s),
        "ledger_bytes_per_row": round(ledger_mb * 1e6 / rows),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(figures, indent=2))
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="60,000 rows instead of 300,000")
    p.add_argument("--rows", type=int, default=None, help="rows to append and verify")
    p.add_argument("--batch", type=int, default=None, help="rows per append for append_batched (default 10,000)")
    a = p.parse_args()
    run(a.quick, rows=a.rows, batch=a.batch)


if __name__ == "__main__":
    main()
