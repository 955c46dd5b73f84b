"""A month's cells sealed into its archive file, so a report over archived months reads them
instead of walking every archived row again.

What is stored. When `emgate ledger archive` writes an archive file (gateway/ledger/archive.py),
it reads each month the file holds whole exactly as the export and the CBAM report read a month
(gateway/ledger/month.py: the chain walked, the current view as of the archive's head, one cell
per local day and line, exact sums) and stores the cells in the archive's table `month_cells`:
one row per month, its bounds and its cells as JSON (CELL_FIELDS tuples, `day` counted from the
month's first day; floats as Python writes them, which read back to the same bits). This happens
before the archive is made read-only and its SHA-256 taken, so the live ledger's record of the
archive (meta `archived`, `sha256`) covers the cells as it covers the rows.

Why they can be trusted. The cells are computed from rows whose chain verified, in a file whose
every byte the recorded SHA-256 fixes: a reader that finds the file's SHA-256 equal to the
record (gateway/ledger/period.py) reads the same cells the walk would give, at the cost of
hashing the file (about 1.3 GB/s a CPU) instead of walking its rows (about 1 M rows/s a CPU).
A file whose SHA-256 differs is walked, and the walk names the row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.ledger.database import Connection, open_ledger_db, reading
from gateway.ledger.month import CELL_FIELDS, pin_head, read_month

SCHEMA = """
CREATE TABLE IF NOT EXISTS month_cells (
    month TEXT PRIMARY KEY,
    start_s REAL NOT NULL,
    end_s REAL NOT NULL,
    cells TEXT NOT NULL
)
"""
_EXISTS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'month_cells'"
_DAY = CELL_FIELDS.index("day")


def day_starts(first_month: str, last_month: str, timezone: str) -> list[float]:
    """Epoch seconds of every local day's start from `first_month`'s first day to `last_month`'s
    end (inclusive: the day after its last), in `timezone`. Days are looked up, never counted as
    86,400 s: a day is 23 or 25 hours long across a daylight-saving change."""
    tz = ZoneInfo(timezone)
    day = datetime(int(first_month[:4]), int(first_month[5:7]), 1)
    y, m = int(last_month[:4]), int(last_month[5:7])
    end = datetime(y + m // 12, m % 12 + 1, 1)
    out = []
    while day <= end:
        out.append(day.replace(tzinfo=tz).timestamp())
        day += timedelta(days=1)
    return out


def read_cells(
    archive: Path, months: Sequence[tuple[str, float, float]], timezone: str, site: str
) -> list[tuple[str, float, float, str]]:
    """The months (month, start_s, end_s) the archive file at `archive` holds whole, read in one
    walk of its chain: (month, start_s, end_s, cells as JSON) for `insert_cells`. Raises
    LedgerIntegrityError when the file does not verify, LedgerError when it cannot be read."""
    if not months:
        return []
    ordered = sorted(months, key=lambda m: m[1])
    bounds = day_starts(ordered[0][0], ordered[-1][0], timezone)
    read = read_month(archive, bounds, pin_head(archive), site=site)
    month_of_day: list[tuple[str, int] | None] = [None] * (len(bounds) - 1)
    for month, start, end in ordered:
        d0 = d = bounds.index(start)
        while d < len(month_of_day) and bounds[d] < end:
            month_of_day[d] = (month, d0)
            d += 1
    cells: dict[str, list[tuple[Any, ...]]] = {m[0]: [] for m in ordered}
    for c in read.cells:
        at = month_of_day[c[_DAY]]
        if at is not None:  # a day of a month the file holds only in part is left out
            cells[at[0]].append((c[_DAY] - at[1], *c[_DAY + 1 :]))
    return [(m, s, e, json.dumps(sorted(cells[m]), separators=(",", ":"))) for m, s, e in ordered]


def insert_cells(db: Connection, rows: Sequence[tuple[str, float, float, str]]) -> None:
    """Create the table and store `read_cells`'s rows, in the caller's transaction."""
    db.execute(SCHEMA)
    db.executemany("INSERT INTO month_cells (month, start_s, end_s, cells) VALUES (?, ?, ?, ?)", rows)


def sealed_cells(archive: Path, month: str) -> tuple[float, float, list[tuple[Any, ...]]] | None:
    """(start_s, end_s, cells) stored for `month` in the archive file, or None when it stores
    none (an archive written before the cells were stored, or a month it holds in part)."""
    db = open_ledger_db(archive, readonly=True)
    try:
        with reading(archive, f"reading the stored cells of {month}"):
            if db.execute(_EXISTS).fetchone() is None:
                return None
            row = db.execute("SELECT start_s, end_s, cells FROM month_cells WHERE month = ?", (month,)).fetchone()
    finally:
        db.close()
    if row is None:
        return None
    return float(row[0]), float(row[1]), [tuple(c) for c in json.loads(row[2])]
