"""A month of the ledger for the export: its cells, flagged minutes and corrections, chain verified.

What is read. The month's current view as of a pinned head (`pin_head`): the rows up to that
head whose minute falls in the month and that no row up to that head supersedes. Rows the
gateway appends while the export runs are left out, so two exports of the same head read the
same month. `read_month` returns only once the whole hash chain has been verified (the rules:
gateway/ledger/audit.py) and the head is still in it; otherwise it raises LedgerIntegrityError.

Cells. The month comes back summed, never as one object per minute (a large site's month is
millions of rows): one cell per local day, line (process, stream, scope, method, activity
unit), factor id and quality (CELL_FIELDS), holding its minute count, exact sums and extremes.
A cell's sums are math.fsum, the correctly rounded sum of its minutes, so they are the same
bits whatever order and pieces the rows are summed in. Beside the cells come the flagged minutes
(quality not measured, or flags), one record each (RECORD_FIELDS), and the month's corrections
with the figures they replaced.

One reader, two engines. The chain walk runs either natively (gateway/ledger/_walk.c, built by
setup.py) or in Python (worker processes); `native_walk()` says which, and this module is the
one place that acts on it:

- The native walk sums while it verifies: one pass over the chain on every CPU checks each row
  and adds the month's plain rows to their cells (`MonthWindow`). This is what keeps a month of
  the 10,000-signal plant (4.5 million rows) within its 5 s budget: the walk takes about 2.7 s on
  two CPUs, and SQLite summing the same month again would take far longer than the rest of the
  budget (48 s with exact sums, bench/export_month.py). The walk hands every row that is not
  plain (a correction, an unusual value) to the Python walk, row by row, and a day holding such
  a row is summed by SQLite instead: a correction supersedes a row of its own minute, which the
  native walk had already added.
- The Python walk only verifies, in worker processes, while SQLite sums every day here.

So the month is always: the walk's cells of the days it summed whole (none for the Python walk),
and SQLite's cells (`_DAY_CELLS`) of every other day, with the same rules. The Python sums of
aggregate_month (gateway/export/tables.py) are the reference both are tested against.
"""

from __future__ import annotations

import bisect
import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, cast

from gateway.core.errors import GatewayError
from gateway.ledger import queries
from gateway.ledger.audit import (
    CELL_KEY_FIELDS,
    FLAGGED_RECORD_FIELDS,
    MonthSums,
    MonthWindow,
    VerifyReport,
    cpus,
    native_walk,
    walk_ledger,
)
from gateway.ledger.database import Connection, open_ledger_db, reading
from gateway.ledger.errors import LedgerError
from gateway.ledger.format import GENESIS_HASH, SEP
from gateway.ledger.site import check_site_of

#: A flagged minute: its seq and fields, the site left out (a ledger holds one site); the native
#: walk's records (audit.FLAGGED_RECORD_FIELDS), and SQLite's selected in the same order.
RECORD_FIELDS = FLAGGED_RECORD_FIELDS
#: A cell: the minutes of one local day (index into the month's days) and key (audit.CELL_KEY_FIELDS:
#: line, factor id and quality), their count, exact sums and extremes.
CELL_FIELDS = (
    "day",
    *CELL_KEY_FIELDS,
    "minutes",
    "co2_kg",
    "activity",
    "coverage",
    "ef_min",
    "ef_max",
    "first_s",
    "last_s",
    "first_seq",
    "last_seq",
)
#: A correction of the month: the row, the row it supersedes, why, where, and both CO2 figures.
CORRECTION_FIELDS = ("seq", "supersedes", "reason", "minute_start", "process", "stream", "old_co2_kg", "new_co2_kg")


class LedgerIntegrityError(GatewayError):
    """The ledger fails verification, or the head pinned when the read started is no longer in
    its chain; nothing read from it may be used."""

    def __init__(self, message: str, report: VerifyReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class LedgerHead(NamedTuple):
    """The ledger's last row when the export started: (seq, hash); (0, genesis) when empty."""

    seq: int
    hash: str


@dataclass
class MonthRead:
    """The month as of a head, verified: cells (CELL_FIELDS tuples, in no particular order),
    flagged minutes (RECORD_FIELDS, by minute then seq), corrections (CORRECTION_FIELDS, by seq)."""

    cells: list[tuple[Any, ...]]
    flagged: list[tuple[Any, ...]]
    corrections: list[tuple[Any, ...]]
    report: VerifyReport
    # "walk": wall time from the start until the chain's verdict; "sql": SQLite's share of the read
    seconds: dict[str, float] = field(default_factory=dict)


def exact_sum(values: Iterable[float]) -> float:
    """math.fsum (the correctly rounded sum), or NaN where it has none: an infinite value beside
    its opposite, or a sum beyond the float range. The export refuses a NaN cell, naming it."""
    try:
        return math.fsum(values)
    except (OverflowError, ValueError):
        return math.nan


class CellSums:
    """One cell being built from minutes or from partial sums; `record(key)` is its CELL_FIELDS
    tuple. The values are summed with math.fsum once the cell is whole, so the order they come in
    does not matter."""

    __slots__ = ("activity", "co2_kg", "coverage", "ef_max", "ef_min", "first_s", "first_seq", "last_s", "last_seq", "minutes")

    def __init__(self, ef: float, first_s: float, first_seq: int) -> None:
        self.minutes = 0
        self.co2_kg: list[float] = []
        self.activity: list[float] = []
        self.coverage: list[float] = []
        self.ef_min = self.ef_max = ef
        self.first_s = self.last_s = first_s
        self.first_seq = self.last_seq = first_seq

    def add(
        self,
        minutes: int,
        co2_kg: Iterable[float],
        activity: Iterable[float],
        coverage: Iterable[float],
        extremes: tuple[float, float, float, float, int, int],
    ) -> None:
        """Add minutes (their values, or a piece's partial sums) and their extremes
        (ef_min, ef_max, first_s, last_s, first_seq, last_seq)."""
        ef_min, ef_max, first_s, last_s, first_seq, last_seq = extremes
        self.minutes += minutes
        self.co2_kg += co2_kg
        self.activity += activity
        self.coverage += coverage
        self.ef_min, self.ef_max = min(self.ef_min, ef_min), max(self.ef_max, ef_max)
        self.first_s, self.last_s = min(self.first_s, first_s), max(self.last_s, last_s)
        self.first_seq, self.last_seq = min(self.first_seq, first_seq), max(self.last_seq, last_seq)

    def record(self, key: Sequence[object]) -> tuple[Any, ...]:
        """The CELL_FIELDS tuple: `key` is (day, process, stream, scope, method, activity_unit, factor_id, quality)."""
        return (
            *key,
            self.minutes,
            exact_sum(self.co2_kg),
            exact_sum(self.activity),
            exact_sum(self.coverage),
            self.ef_min,
            self.ef_max,
            self.first_s,
            self.last_s,
            self.first_seq,
            self.last_seq,
        )


def pin_head(path: Path) -> LedgerHead:
    """The ledger's last row now. Raises LedgerError: no such file, or not readable as a ledger."""
    db = open_ledger_db(path, readonly=True)
    try:
        with reading(path, "reading its last row"):
            row = db.execute(queries.HEAD).fetchone()
    finally:
        db.close()
    return LedgerHead(int(row[0]), str(row[1])) if row else LedgerHead(0, GENESIS_HASH)


class MinuteSpan(NamedTuple):
    """The ledger's first and last minute as of a head (None, None when it has no row), and
    whether a month has any minute in it."""

    first_s: float | None
    last_s: float | None
    month_has_minutes: bool


def minute_span(path: Path, head: LedgerHead, start_s: float, end_s: float) -> MinuteSpan:
    """The ledger's minute span as of `head`, and whether [start_s, end_s) holds any of its minutes.

    In an archive file (gateway/ledger/archive.py) the month's last minute counts as held when
    the archive holds the month whole (meta `archive`, `whole_months`): the live ledger held
    minutes after it when it was archived, so the month had ended.
    Raises LedgerError: the file cannot be read as a ledger, or the month was archived out of it
    (the message names the archive file to read it from)."""
    db = open_ledger_db(path, readonly=True)
    try:
        with reading(path, "reading its first and last minute"):
            first = db.execute(queries.FIRST_MINUTE_UPTO, (head.seq,)).fetchone()
            last = db.execute(queries.LAST_MINUTE_UPTO, (head.seq,)).fetchone()
            inside = db.execute(queries.ANY_MINUTE_UPTO_BETWEEN, (start_s, end_s, head.seq)).fetchone()
            archive = db.execute("SELECT value FROM meta WHERE key = 'archive'").fetchone()
            if inside is None:
                _refuse_archived_month(db, path, start_s, end_s)
    finally:
        db.close()
    last_s = None if last is None else float(last[0])
    if archive is not None and last_s is not None:
        whole = json.loads(archive[0]).get("whole_months", [])
        if any(float(s) == start_s and float(e) == end_s for _, s, e in whole):
            last_s = max(last_s, end_s - 60.0)
    return MinuteSpan(None if first is None else float(first[0]), last_s, inside is not None)


def _refuse_archived_month(db: Connection, path: Path, start_s: float, end_s: float) -> None:
    """Raise LedgerError naming the archive file when the month [start_s, end_s) was sealed and
    archived out of this ledger (meta `archived`, table `month_seals`: gateway/ledger/archive.py)."""
    archived = db.execute("SELECT value FROM meta WHERE key = 'archived'").fetchone()
    if archived is None or db.execute("SELECT 1 FROM sqlite_master WHERE name = 'month_seals'").fetchone() is None:
        return
    for month, text in db.execute("SELECT month, record FROM month_seals ORDER BY seq"):
        seal = json.loads(text)
        if float(seal["start_s"]) != start_s or float(seal["end_s"]) != end_s:
            continue
        for rec in json.loads(archived[0]):
            if int(rec["first_seq"]) <= int(seal["first_seq"]) and int(seal["last_seq"]) <= int(rec["last_seq"]):
                raise LedgerError(
                    path,
                    f"month {month} was archived (rows {rec['first_seq']}..{rec['last_seq']}) to {rec['file']}",
                    f"read it from the archive: --ledger <archive directory>/{rec['file']}",
                )


def read_month(
    path: Path, day_starts_s: Sequence[float], head: LedgerHead, *, site: str, on_day: Callable[[int], None] | None = None
) -> MonthRead:
    """The month whose local days start at `day_starts_s` (one per day, and the month's end), as
    of `head`, of the ledger of `site`.

    `on_day(d)` is called once for each day d = 0, 1, ... as the read gets through the month
    (from the walk's threads with the native walk), for a progress bar.

    Raises:
        LedgerSiteError: the ledger belongs to another site (its rows would be filed under the wrong one).
        LedgerIntegrityError: the chain fails verification or no longer holds `head`.
        LedgerError: the file cannot be read as a ledger.
    """
    # Whose ledger it is: instant when `meta` records the site; a ledger written before it did
    # is scanned for its sites (0.5 s for 4.5 million rows), on a CPU of its own beside the walk.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="month-site") as pool:
        site_checked = pool.submit(check_site_of, path, site)
        try:
            month = _read_month(path, [float(b) for b in day_starts_s], head, on_day or (lambda _d: None))
        except (LedgerError, LedgerIntegrityError):
            site_checked.result()  # a ledger of another site is refused for that first
            raise
        site_checked.result()
    return month


def _read_month(path: Path, bounds: list[float], head: LedgerHead, on_day: Callable[[int], None]) -> MonthRead:
    """`read_month` but the site: the walk, and SQLite's sums of the days the walk did not sum."""
    days = len(bounds) - 1
    day_done = _DaysDone(days, on_day)
    started = time.perf_counter()
    seconds: dict[str, float] = {}

    def walk(processes: int, window: MonthWindow | None) -> tuple[VerifyReport, MonthSums | None]:
        try:
            with reading(path, "walking its hash chain"):
                return walk_ledger(
                    path,
                    expect_head=head.hash if head.seq else None,
                    processes=processes,
                    month=window,
                    on_range=day_done.ranges if window is not None else None,
                )
        except OSError as exc:
            raise LedgerError(path, f"cannot read it: {exc}", "check the path and the file's permissions") from exc
        finally:
            seconds["walk"] = time.perf_counter() - started  # wall time from the start of the read

    walking: Future[tuple[VerifyReport, MonthSums | None]] | None = None
    if native_walk():
        # The walk sums the month as it verifies, on every CPU; SQLite sums the days it left.
        report, sums = walk(cpus(), MonthWindow(tuple(bounds), head.seq))
        _check(path, head, report)
        assert sums is not None  # the native walk sums the month of a ledger that verifies
    else:
        # The walk verifies in worker processes, from a thread that only waits for them and so
        # leaves the GIL to this one, which has SQLite sum the month meanwhile.
        sums = None
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="month-walk")
        walking = pool.submit(walk, max(1, cpus() - 1), None)
        pool.shutdown(wait=False)  # takes no more work; walking.result() waits for the walk
    t0 = time.perf_counter()
    db = open_ledger_db(path, readonly=True)
    try:
        db.create_aggregate("fsum", 1, _FSum)  # type: ignore[arg-type]  # typeshed has finalize() return int; SQLite takes a float
        with reading(path, "reading the month"):
            left = set(range(days)) if sums is None else _left_days(db, sums, bounds, head.seq)
            cells, flagged = ([], []) if sums is None else _walked(sums, bounds, left)
            for d in sorted(left):
                day = (bounds[d], bounds[d + 1], head.seq, head.seq)
                cells += db.execute(_DAY_CELLS, (d, *day)).fetchall()
                flagged += db.execute(_DAY_FLAGGED, day).fetchall()
                day_done(d)
            corrections = db.execute(_CORRECTIONS, (bounds[0], bounds[-1], head.seq)).fetchall()
    finally:
        db.close()
    day_done(days - 1)
    seconds["sql"] = time.perf_counter() - t0
    if walking is not None:
        report = walking.result()[0]
        _check(path, head, report)
    flagged.sort(key=lambda r: (r[1], r[0]))
    return MonthRead(cells, flagged, corrections, report, seconds)


def largest_row(
    path: Path, head: LedgerHead, *, process: str, stream: str, scope: str, quality: str, factor_id: str, seqs: tuple[int, int]
) -> tuple[int, float, float, float] | None:
    """(seq, minute_start, co2_kg, activity) of the current row with the largest CO2 or activity
    among one cell's rows (seqs: the cell's first and last seq), for a message; None if it cannot
    be read."""
    try:
        db = open_ledger_db(path, readonly=True)
        try:
            with reading(path, "reading a cell's largest row"):
                row = db.execute(
                    _LARGEST_ROW, (seqs[0], min(seqs[1], head.seq), process, stream, scope, quality, factor_id, head.seq)
                ).fetchone()
        finally:
            db.close()
    except LedgerError:
        return None
    return None if row is None else (int(row[0]), float(row[1]), float(row[2]), float(row[3]))


# -- SQL ---------------------------------------------------------------------------------------
# The current view as of the head (gateway/ledger/queries.py, is_current with as_of), over one
# local day: parameters day start, day end, head, head. `+m.seq` keeps SQLite from scanning the
# primary key up to the head instead of using the time index (minutes_key): a year-long ledger
# would otherwise be read whole for one day.
_DAY_VIEW = (
    f"FROM minutes m WHERE m.minute_start >= ? AND m.minute_start < ? AND +m.seq <= ? AND {queries.is_current('m', as_of=True)}"
)
# A day's cells (CELL_FIELDS): the day's index, then the view's parameters. fsum is `_FSum`.
_DAY_CELLS = (
    f"SELECT ?, {', '.join('m.' + f for f in CELL_KEY_FIELDS)}, "
    "count(*), fsum(m.co2_kg), fsum(m.activity), fsum(m.coverage), "
    "min(m.ef_kg_per_unit), max(m.ef_kg_per_unit), "
    f"min(m.minute_start), max(m.minute_start), min(m.seq), max(m.seq) {_DAY_VIEW} "
    f"GROUP BY {', '.join(str(i) for i in range(2, 2 + len(CELL_KEY_FIELDS)))}"
)
# A day's flagged minutes (RECORD_FIELDS).
_DAY_FLAGGED = (
    f"SELECT {', '.join('m.' + f for f in RECORD_FIELDS)} {_DAY_VIEW} "
    "AND (m.quality != 'measured' OR m.flags != '') ORDER BY m.minute_start, m.seq"
)
# The month's corrections up to the head (CORRECTION_FIELDS; o is the row superseded): month
# start, month end, head. Through the partial index of corrections: left to itself SQLite scans
# the month's rows (1.4 s for 4.5 million) for the few that are corrections.
_CORRECTIONS = (
    "SELECT m.seq, m.supersedes, m.reason, m.minute_start, m.process, m.stream, o.co2_kg, m.co2_kg "
    "FROM minutes m INDEXED BY minutes_superseded JOIN minutes o ON o.seq = m.supersedes "
    "WHERE m.supersedes IS NOT NULL AND m.minute_start >= ? AND m.minute_start < ? AND m.seq <= ? ORDER BY m.seq"
)
# One cell's current row with the largest CO2 or activity: first seq, last seq, the cell's
# process, stream, scope, quality and factor id, head.
_LARGEST_ROW = (
    "SELECT m.seq, m.minute_start, m.co2_kg, m.activity FROM minutes m WHERE m.seq BETWEEN ? AND ? "
    "AND m.process = ? AND m.stream = ? AND m.scope = ? AND m.quality = ? AND m.factor_id = ? "
    f"AND {queries.is_current('m', as_of=True)} ORDER BY max(abs(m.co2_kg), abs(m.activity)) DESC, m.seq LIMIT 1"
)
_MINUTE_OF_SEQS = "SELECT seq, minute_start FROM minutes WHERE seq IN ({})"
_BY_SEQ = 500  # seqs per IN (...) list; SQLite takes 999 parameters in every build


class _FSum:
    """SQLite aggregate fsum(x): `exact_sum` of the group's values."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def step(self, x: float) -> None:
        self.values.append(x)

    def finalize(self) -> float:
        return exact_sum(self.values)


def _check(path: Path, head: LedgerHead, report: VerifyReport) -> None:
    """Raise LedgerIntegrityError unless the walk found the chain whole and `head` in it."""
    if not report.ok:
        raise LedgerIntegrityError(
            f"ledger {path}: hash chain broken at row {report.bad_seq}: {report.problem}. "
            "The export refuses a ledger that fails verification; "
            f"run `emgate ledger verify {path}` and restore the file from a backup "
            "whose head hash matches the last manifest",
            report,
        )
    if head.seq and not report.expected_head_found:
        raise LedgerIntegrityError(
            f"ledger {path}: row {head.seq} (hash {head.hash[:16]}…) was the head when the export "
            "started and is no longer in the chain: the file was rewritten meanwhile. The export refuses it; "
            f"run `emgate ledger verify {path}`",
            report,
        )


def _left_days(db: Connection, sums: MonthSums, bounds: Sequence[float], head: int) -> set[int]:
    """The days of the month holding a row the native walk left to the Python walk, up to the head."""
    seqs = sums.left
    left: set[int] = set()
    for i in range(0, len(seqs), _BY_SEQ):
        chunk = seqs[i : i + _BY_SEQ]
        for seq, minute_start in db.execute(_MINUTE_OF_SEQS.format(", ".join("?" * len(chunk))), chunk):
            if seq <= head and bounds[0] <= minute_start < bounds[-1]:
                left.add(_day(bounds, minute_start))
    return left


# A piece of a cell as the native walk returns it (MonthSums.cells): day, key (process .. quality
# joined by SEP), minutes, the partials of co2_kg, activity and coverage, ef_min, ef_max,
# first_s, last_s, first_seq, last_seq.
_Piece = tuple[int, str, int, list[float], list[float], list[float], float, float, float, float, int, int]


def _walked(sums: MonthSums, bounds: Sequence[float], left: set[int]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The native walk's cells (merged across its ranges) and flagged minutes, of the days it summed whole."""
    merged: dict[tuple[int, str], CellSums] = {}
    for day, key, minutes, co2, act, cov, ef_min, ef_max, first_s, last_s, first_seq, last_seq in cast(list[_Piece], sums.cells):
        if day in left:
            continue
        cell = merged.get((day, key))
        if cell is None:
            merged[(day, key)] = cell = CellSums(ef_min, first_s, first_seq)
        cell.add(minutes, co2, act, cov, (ef_min, ef_max, first_s, last_s, first_seq, last_seq))
    cells = [cell.record((day, *key.split(SEP))) for (day, key), cell in merged.items()]
    flagged = [r for r in sums.flagged if _day(bounds, r[1]) not in left] if left else list(sums.flagged)
    return cells, flagged


def _day(bounds: Sequence[float], minute_start: Any) -> int:
    return bisect.bisect_right(bounds, minute_start) - 1


class _DaysDone:
    """Progress in days: `day_done(d)` passes on each day once, in order; `ranges(done, total)`
    (called from the native walk's threads as its ranges end) stands for days up to done/total of
    the month, since the walk reads the month's days as it goes."""

    def __init__(self, days: int, on_day: Callable[[int], None]) -> None:
        self._days, self._on_day = days, on_day
        self._reported = 0
        self._lock = threading.Lock()

    def __call__(self, d: int) -> None:
        with self._lock:
            while self._reported <= d:
                self._on_day(self._reported)
                self._reported += 1

    def ranges(self, done: int, total: int) -> None:
        if done * self._days // total:
            self(done * self._days // total - 1)
