"""Checking a ledger file's hash chain, read-only, for `emgate ledger verify` and auditors.

The walk recomputes every row's hash from its stored fields in seq order and stops at the first
row that breaks one of these rules, naming it:

- seqs run 1, 2, 3, ... without a gap (a gap is a deleted row);
- each row's hash is SHA-256 over the previous row's hash and its canonical encoding (else it
  was edited, or a row before it was inserted, deleted or moved: the hash covers the previous
  one, so the first row after the change breaks);
- a correction supersedes an earlier row of the same minute, process and stream;
- the head recorded in `meta` is the last row (else rows were cut off the end).

Archived ledgers. Once `emgate ledger archive` has moved rows 1..S to an archive file
(gateway/ledger/archive.py), `meta` key `archived` records S and the hash of row S: the walk
then starts at row S + 1 chained on that hash, and a row numbered S or below is a problem.

Ranges. Checking row n needs row n and the *stored* hash of row n-1, not the walk up to it: if
every row before n is good, the hash the walk computed for n-1 is the stored one. So the chain
is cut into seq ranges checked independently (in worker processes: building each row's
objects and hashing 200-byte inputs hold the GIL, and two threads measured slower than one),
and the first range that fails names the same row and problem the walk in one piece would. A
range reads on past its end only to name a gap at its end, and the first range reads from the
smallest seq, so a row numbered 0 or below is caught. The one rule that spans ranges, a row
superseded twice, is checked when the ranges' corrections are merged in seq order. The last
row and the recorded head are read in one read transaction, and the walk stops at that row, so
rows appended meanwhile (the gateway keeps running) are neither checked nor mistaken for a
mismatch with `meta`.

Speed. The walk reads only the hashed columns, in large batches, and rebuilds the canonical
bytes with one join, one struct pack and one SHA-256 per row (join also refuses a text column
holding anything but TEXT, such as a BLOB spelling the same bytes). About two thirds of its time
is sqlite3 building the 20 column objects of each row, one third the join, pack and hash.
Corrections, rare, are checked with a lookup of the row they supersede instead of keeping every
row's key in memory.

Native walk. When the extension gateway/ledger/_walk.c is built (setup.py; it needs
SQLite's and OpenSSL's headers), each range is walked by it instead, about eight times faster,
in threads (it releases the GIL), and it can sum a month while it walks (`MonthWindow`: the
export's cells, exactly). It stops before any row that is not plain: a correction, a gap, a
column of another type, a mismatch, a value it cannot sum. This module's Python walk then takes
that one row, so the verdict and every message are the Python walk's, and the native walk goes
on from the next row. `native_walk()` says which one runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import multiprocessing
import os
import struct
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from gateway.ledger.database import Connection, open_ledger_db, reading
from gateway.ledger.errors import LedgerError
from gateway.ledger.format import (
    CANONICAL_DOUBLES,
    CANONICAL_NUMBERS,
    FIELDS,
    PRESENCE_REASON,
    PRESENCE_SUPERSEDES,
    SEP,
    TEXT_FIELDS,
    WALK_COLUMNS,
)

# One row is (the canonical numbers, the text parts, digest): the walk packs row[:_TEXT], joins
# row[_TEXT:_DIGEST] and compares row[_DIGEST]. SQLite supplies supersedes or 0 and the presence
# bits; ifnull(reason, '') keeps a BLOB reason a BLOB, which join refuses.
_WALK_SQL = (
    f"SELECT seq, {', '.join(CANONICAL_DOUBLES)}, ifnull(supersedes, 0), "
    f"((supersedes IS NOT NULL) * {PRESENCE_SUPERSEDES}) | ((reason IS NOT NULL) * {PRESENCE_REASON}), "
    f"{', '.join(TEXT_FIELDS)}, ifnull(reason, ''), digest FROM minutes WHERE seq >= ? ORDER BY seq"
)
_SUPERSEDES = 1 + len(CANONICAL_DOUBLES)  # row[_SUPERSEDES] is supersedes or 0, the next the presence bits
_PRESENCE = _SUPERSEDES + 1
_TEXT = _PRESENCE + 1
_DIGEST = _TEXT + len(TEXT_FIELDS) + 1  # the text fields and reason
# The native walk's columns (format.WALK_COLUMNS): the stored ones as they are (it makes the
# presence bits itself). gateway/ledger/_walk_layout.h gives it their positions.
_NATIVE_WALK_SQL = f"SELECT {', '.join(WALK_COLUMNS)} FROM minutes WHERE seq >= ? ORDER BY seq"
#: What the native walk sums a month's rows by: the text fields of a cell's key, joined by SEP.
CELL_KEY_FIELDS = ("process", "stream", "scope", "method", "activity_unit", "factor_id", "quality")
#: A flagged row as the native walk returns it (MonthSums.flagged): its seq and every field but
#: the site (a ledger holds one site).
FLAGGED_RECORD_FIELDS = ("seq", *(f for f in FIELDS if f != "site"))
_SMALLEST_SEQ = -(2**63)
#: The first original row (what the native walk takes) in [?, ?] by seq, after a correction.
_NEXT_ORIGINAL = "SELECT seq FROM minutes WHERE seq >= ? AND seq <= ? AND supersedes IS NULL ORDER BY seq LIMIT 1"
_BATCH = 4096
# A worker process costs about 0.3 s of CPU to start (a fresh interpreter importing this module,
# numpy included), what the walk spends on ~60,000 rows; a range smaller than this is not worth one.
ROWS_PER_PROCESS = 100_000
# The native walk runs in threads, which cost nothing to start; a range still has to be worth a
# thread switch. About 0.05 s of walking.
ROWS_PER_THREAD = 50_000


def _load_native() -> ModuleType | None:
    try:
        from gateway.ledger import _walk  # type: ignore[attr-defined]  # the C extension (_walk.c) has no stub
    except ImportError:  # not built on this machine: the Python walk does the same, slower
        return None
    native: ModuleType = _walk
    return native


_native = _load_native()


def native_walk() -> bool:
    """Whether the chain is walked by the native extension here (else by the Python walk)."""
    return _native is not None


@dataclass(frozen=True)
class MonthWindow:
    """What the native walk sums while it walks: rows with seq <= head and minute_start in
    [day_starts_s[0], day_starts_s[-1]), by the local day they fall in."""

    day_starts_s: tuple[float, ...]  # the month's day bounds: one per day, and the month's end
    head: int

    def native_args(self) -> tuple[float, float, int, bytes]:
        return (self.day_starts_s[0], self.day_starts_s[-1], self.head, struct.pack(f"{len(self.day_starts_s)}d", *self.day_starts_s))


@dataclass
class MonthSums:
    """The month as the native walk summed it, in pieces (one per call of the walk), for the export.

    `cells`: tuples (day, key, minutes, co2_kg partials, activity partials, coverage partials,
    ef_min, ef_max, first_s, last_s, first_seq, last_seq), key being the text fields process ..
    quality joined by U+001F; the partials' math.fsum is the exact sum's correctly rounded value.
    `flagged`: the summed rows whose quality is not measured or that carry flags, as records in
    the export's RECORD_FIELDS order (seq, minute_start, process, ..., quality, flags).
    `left`: seqs of rows the Python walk took instead (corrections, unusual rows): their days
    must be read another way, and nothing of those days here counts.
    """

    cells: list[tuple[object, ...]] = field(default_factory=list)
    flagged: list[tuple[object, ...]] = field(default_factory=list)
    left: list[int] = field(default_factory=list)

    def add(self, piece: tuple[list[tuple[object, ...]], list[tuple[object, ...]]]) -> None:
        cells, flagged = piece
        self.cells += cells
        self.flagged += flagged

    def merge(self, other: MonthSums) -> None:
        self.cells += other.cells
        self.flagged += other.flagged
        self.left += other.left


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of `verify_ledger`. When `ok` is false, `bad_seq` and `problem` say where and what."""

    ok: bool
    rows: int  # rows checked good (all rows when ok)
    head_seq: int
    head_hash: str
    current_rows: int = 0
    corrections: int = 0
    bad_seq: int | None = None
    problem: str = ""
    expected_head_found: bool | None = None
    archived_seq: int = 0  # rows 1..archived_seq are in archive files (meta `archived`); rows counts the others


def verify_ledger(path: Path, *, expect_head: str | None = None, processes: int = 0) -> VerifyReport:
    """Walk the chain of the ledger at `path`; see the module docstring for the rules.

    `expect_head`: a head hash recorded earlier; the report says whether it is still in the
    chain (a rewritten or truncated chain loses it). `processes`: at most this many worker
    processes (or threads, for the native walk) check the chain, in ranges of at least
    ROWS_PER_PROCESS (ROWS_PER_THREAD) rows; a smaller ledger, or 0, is checked in this
    process. Even one worker helps a caller with work of its own: its threads then have the GIL
    to themselves. The report is the same whatever the split.

    Workers start with `spawn`, which imports the caller's main module again: it must not do its
    work on import (the multiprocessing rule; the `emgate` script and `python -m gateway` are
    fine). Fork is not safe here: the export's main thread is inside SQLite meanwhile, and a
    forked worker inherited its allocator mutex held and hung in sqlite3Malloc.
    Raises LedgerError when the file cannot be read as a ledger.
    """
    return walk_ledger(path, expect_head=expect_head, processes=processes)[0]


def walk_ledger(
    path: Path,
    *,
    expect_head: str | None = None,
    processes: int = 0,
    month: MonthWindow | None = None,
    on_range: Callable[[int, int], None] | None = None,
) -> tuple[VerifyReport, MonthSums | None]:
    """`verify_ledger`, and with the native walk and a `month`, the month's sums found on the way
    (None without the native walk, or when the walk found a problem). `on_range(done, total)`
    is called from the native walk's threads as each range of rows is done: for a progress bar,
    the walk is then cut into a few ranges per thread."""
    try:
        expected = bytes.fromhex(expect_head) if expect_head is not None else None
    except ValueError:
        expected = None  # not a hash at all: never found
    db = open_ledger_db(path, readonly=True)
    try:
        with reading(path, "verifying the chain"):
            last, meta = _snapshot(db)
            base, base_prev = archived_base(path, meta)
            smallest = db.execute("SELECT min(seq) FROM minutes").fetchone()[0] if base else None
            if smallest is not None and smallest <= base:
                return VerifyReport(
                    False, 0, base, base_prev.hex(), bad_seq=smallest, archived_seq=base,
                    problem=f"row {smallest} is in the archived range 1..{base} (meta `archived`): inserted",
                ), None
            last = max(last, base)
            live = last - base
            if _native is not None:
                parts = max(1, min(processes, live // ROWS_PER_THREAD))
                n = max(1, min(live // ROWS_PER_THREAD, 8 * parts)) if on_range is not None else parts
                spans = [(base + a + 1, base + b) for a, b in itertools.pairwise(live * i // n for i in range(n + 1))]
                native_month = month.native_args() if month is not None else None
                done = itertools.count(1)

                def walk_span(first: int, end: int) -> _Range:
                    r = _native_range(path, first, end, expected, native_month, base_prev if first == base + 1 else None)
                    if on_range is not None:
                        on_range(next(done), n)
                    return r

                if n > 1:
                    with ThreadPoolExecutor(parts, thread_name_prefix="ledger-walk") as threads:
                        walking = [threads.submit(walk_span, a, b) for a, b in spans]
                        ranges = [f.result() for f in walking]
                else:
                    ranges = [walk_span(base + 1, last)] if live or not base else []
            else:
                parts = min(processes, live // ROWS_PER_PROCESS)
                if parts > 0:
                    bounds = itertools.pairwise(base + live * i // parts for i in range(parts + 1))
                    with ProcessPoolExecutor(parts, mp_context=multiprocessing.get_context("spawn")) as pool:
                        checking = [
                            pool.submit(_check_range, path, a + 1, b, expected, base_prev if a == base else None) for a, b in bounds
                        ]
                        ranges = [f.result() for f in checking]
                else:
                    ranges = [_walk_range(db, base + 1, last, expected, start_prev=base_prev if base else None)] if live or not base else []
            report = _merge(db, ranges, expect_head is not None, meta, (base, base_prev))
            if base and report.ok and expected == base_prev:  # the head recorded is the last row archived
                report = dataclasses.replace(report, expected_head_found=True)
    finally:
        db.close()
    sums = None
    if report.ok and month is not None and _native is not None:
        sums = MonthSums()
        for r in ranges:
            if r.sums is not None:
                sums.merge(r.sums)
    return report, sums


def cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0))


def archived_base(path: Path, meta: dict[str, str]) -> tuple[int, bytes]:
    """(S, hash of row S as bytes) of the last archive record in `meta` (key `archived`: a JSON
    list, gateway/ledger/archive.py), or (0, genesis) for a ledger never archived. Raises
    LedgerError for a record that is not one."""
    text = meta.get("archived")
    if not text:
        return 0, bytes(32)
    try:
        last = json.loads(text)[-1]
        seq, digest = int(last["last_seq"]), bytes.fromhex(last["last_hash"])
        if seq < 1 or len(digest) != 32:
            raise ValueError("last_seq below 1 or last_hash not 32 bytes")
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise LedgerError(path, f"meta key `archived` is not a list of archive records ({exc})", "restore the file from a backup") from exc
    return seq, digest


def _snapshot(db: Connection) -> tuple[int, dict[str, str]]:
    """The position of the last row (seq, or 1 when rows exist but none has a seq above 0) and
    the head and archive records in meta, read in one read transaction so they agree."""
    db.execute("BEGIN")
    try:
        # Two subqueries, each one step down the primary key; min() and max() in one SELECT read the table.
        smallest, largest = db.execute("SELECT (SELECT min(seq) FROM minutes), (SELECT max(seq) FROM minutes)").fetchone()
        meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('head_seq', 'head_hash', 'archived')").fetchall())
    finally:
        db.execute("COMMIT")
    return (0 if smallest is None else max(largest, 1)), meta


@dataclass(frozen=True)
class _Range:
    """What one range's walk found: rows first..checked are good, prev is row `checked`'s hash."""

    checked: int
    prev: bytes
    found_at: int | None  # first good row whose hash is the expected head
    corrections: list[tuple[int, int]]  # (seq, the seq it supersedes) of the good rows, in order
    bad_seq: int | None = None
    problem: str = ""
    sums: MonthSums | None = None


class _Broken(Exception):
    def __init__(self, seq: int, problem: str) -> None:
        self.seq, self.problem = seq, problem


def _check_range(path: Path, first: int, last: int, expected: bytes | None, start_prev: bytes | None = None) -> _Range:
    """A worker process's range; it opens the file itself."""
    db = open_ledger_db(path, readonly=True)
    try:
        return _walk_range(db, first, last, expected, start_prev=start_prev)
    finally:
        db.close()


def _native_range(
    path: Path,
    first: int,
    last: int,
    expected: bytes | None,
    month: tuple[float, float, int, bytes] | None,
    start_prev: bytes | None = None,
) -> _Range:
    """A range walked natively, row by row in the Python walk wherever the native walk stops.
    `start_prev`: the hash row first-1 had, when that row is archived."""
    assert _native is not None
    db = open_ledger_db(path, readonly=True)
    try:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        if first == 1:
            prev = bytes(32)
        elif start_prev is not None:
            prev = start_prev
        else:
            stored = db.execute("SELECT digest FROM minutes WHERE seq = ?", (first - 1,)).fetchone()
            prev = stored[0] if stored else b""
            if not isinstance(prev, bytes) or len(prev) != 32:
                return _walk_range(db, first, last, expected)  # fails at its first row, like the range before
        corrections: list[tuple[int, int]]
        superseded: set[int]
        n, found_at, corrections, superseded = first - 1, None, [], set()
        sums = MonthSums() if month is not None else None
        while True:
            lowest = _SMALLEST_SEQ if n == 0 else n + 1
            n, prev, found, piece = _native.walk(uri, _NATIVE_WALK_SQL, n + 1, last, lowest, prev, expected, month)
            found_at = found if found_at is None else found_at
            if sums is not None:
                sums.add(piece)
            if n >= last:
                return _Range(n, prev, found_at, corrections, sums=sums)
            # Row n + 1 is not plain: the Python walk takes it and the rows after it up to the next
            # original (a restatement appends its corrections in one run: one hand-over per run, not
            # per row, each costing the native walk a new connection), and names a broken one.
            nxt = db.execute(_NEXT_ORIGINAL, (n + 2, last)).fetchone()
            upto = int(nxt[0]) - 1 if nxt else last
            one = _walk_range(db, n + 1, upto, expected, superseded)
            corrections += one.corrections
            found_at = one.found_at if found_at is None else found_at
            if one.bad_seq is not None:
                return _Range(one.checked, one.prev, found_at, corrections, one.bad_seq, one.problem)
            if sums is not None:
                sums.left.extend(range(n + 1, one.checked + 1))
            n, prev = one.checked, one.prev
    finally:
        db.close()


def _walk_range(
    db: Connection,
    first: int,
    last: int,
    expected: bytes | None,
    superseded: set[int] | None = None,
    *,
    start_prev: bytes | None = None,
) -> _Range:
    """The hot loop over the rows at positions first..last. `superseded`: the rows corrections
    earlier in the same range supersede (the native walk hands rows over one at a time).
    `start_prev`: the hash row first-1 had, when that row is archived."""
    pack, sha, join = CANONICAL_NUMBERS.pack, hashlib.sha256, SEP.join
    text, digest, supersedes, presence = _TEXT, _DIGEST, _SUPERSEDES, _PRESENCE
    if first == 1:
        prev, lowest = bytes(32), _SMALLEST_SEQ
    elif start_prev is not None:
        prev, lowest = start_prev, first
    else:
        stored = db.execute("SELECT digest FROM minutes WHERE seq = ?", (first - 1,)).fetchone()
        # Row first-1 missing or unreadable: the range before this one fails at it, so what this
        # one finds is never reported.
        prev, lowest = (stored[0] if stored else b""), first
    n, found_at, corrections = first - 1, None, []
    superseded = set() if superseded is None else superseded
    cur = db.execute(_WALK_SQL, (lowest,))
    try:
        while n < last and (rows := cur.fetchmany(min(_BATCH, last - n))):
            for row in rows:
                n += 1
                if row[0] != n:
                    _seq_problem(row[0], n)
                try:
                    h = sha(prev + join(row[text:digest]).encode() + pack(*row[:text])).digest()
                except (TypeError, struct.error) as exc:
                    raise _Broken(n, f"row {n} ({_where(db, n)}): a field cannot be read ({exc}): edited") from None
                if h != row[digest]:
                    raise _Broken(
                        n,
                        f"row {n} ({_where(db, n)}): contents do not match its hash: edited, "
                        "or a row before it was inserted, deleted or moved",
                    )
                if row[presence] & PRESENCE_SUPERSEDES:
                    _check_correction(db, n, row[supersedes], superseded)
                    corrections.append((n, row[supersedes]))
                prev = row[digest]
                if prev == expected and found_at is None:
                    found_at = n
        if n < last:  # rows that were there when the walk started are gone
            n += 1
            raise _Broken(n, f"row {n} is missing (the rows end at {n - 1}): deleted")
    except _Broken as broken:
        return _Range(n - 1, prev, found_at, corrections, broken.seq, broken.problem)
    return _Range(n, prev, found_at, corrections)


def _merge(
    db: Connection, ranges: list[_Range], expecting: bool, meta: dict[str, str], archived: tuple[int, bytes] = (0, bytes(32))
) -> VerifyReport:
    """One report from the ranges in seq order: the first problem any of them found, or a row
    superseded a second time in a later range, or the head in meta not being the last row.
    `archived`: (S, hash of row S) when rows 1..S are archived (the ranges start at S + 1)."""
    superseded: set[int] = set()
    found = False if expecting else None
    base, base_prev = archived

    def broken(rows: int, head: bytes, seq: int, problem: str) -> VerifyReport:
        return VerifyReport(
            False,
            rows - base,
            rows,
            head.hex(),
            corrections=len(superseded),
            bad_seq=seq,
            problem=problem,
            expected_head_found=found,
            archived_seq=base,
        )

    for r in ranges:
        for seq, old in r.corrections:
            if old in superseded:
                if r.found_at is not None and r.found_at < seq:
                    found = True
                head = base_prev if seq - 1 == base else db.execute("SELECT digest FROM minutes WHERE seq = ?", (seq - 1,)).fetchone()[0]
                return broken(seq - 1, head, seq, _bad_correction(db, seq, old).problem)
            superseded.add(old)
        if r.found_at is not None:
            found = True
        if r.bad_seq is not None:
            return broken(r.checked, r.prev, r.bad_seq, r.problem)
    rows, head = (ranges[-1].checked, ranges[-1].prev) if ranges else (base, base_prev)
    if meta and (int(meta.get("head_seq", -1)) != rows or meta.get("head_hash") != head.hex()):
        return broken(
            rows,
            head,
            rows + 1,
            f"the ledger recorded head row {meta.get('head_seq')} but its last row is {rows}: row(s) after {rows} were removed",
        )
    # Every correction names a distinct earlier row (checked in the walk), so the current view
    # is the rows nobody supersedes: no second pass over the table.
    return VerifyReport(
        True,
        rows - base,
        rows,
        head.hex(),
        current_rows=rows - base - len(superseded),
        corrections=len(superseded),
        expected_head_found=found,
        archived_seq=base,
    )


def _seq_problem(seq: object, expected: int) -> None:
    if isinstance(seq, int) and seq > expected:
        raise _Broken(expected, f"row {expected} is missing (seq jumps from {expected - 1} to {seq}): deleted")
    raise _Broken(seq, f"row {seq} is out of order (expected seq {expected})")  # type: ignore[arg-type]  # a stored seq that is not an int is reported as it is


def _check_correction(db: Connection, seq: int, supersedes: object, superseded: set[int]) -> None:
    key = "SELECT minute_start, process, stream FROM minutes WHERE seq = ?"
    mine = db.execute(key, (seq,)).fetchone()
    theirs = db.execute(key, (supersedes,)).fetchone() if isinstance(supersedes, int) else None
    if not (isinstance(supersedes, int) and 0 < supersedes < seq) or theirs != mine or supersedes in superseded:
        raise _bad_correction(db, seq, supersedes)
    superseded.add(supersedes)


def _bad_correction(db: Connection, seq: int, supersedes: object) -> _Broken:
    return _Broken(
        seq,
        f"row {seq} ({_where(db, seq)}): supersedes row {supersedes}, which is not an earlier "
        "row of the same minute, process and stream (or is superseded twice)",
    )


def _where(db: Connection, seq: int) -> str:
    """Process/stream and minute of row `seq`, for messages."""
    row = db.execute("SELECT minute_start, process, stream FROM minutes WHERE seq = ?", (seq,)).fetchone()
    if row is None:
        return "?"
    try:
        from datetime import UTC, datetime

        when = datetime.fromtimestamp(float(row[0]), UTC).strftime("%Y-%m-%dT%H:%MZ")
    except (TypeError, ValueError, OverflowError):
        when = repr(row[0])
    return f"{row[1]}/{row[2]} {when}"
