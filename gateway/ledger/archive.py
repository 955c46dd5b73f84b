"""Sealed months and archive files: `emgate ledger archive --before YYYY-MM DIR`.

A ledger grows by every stream's every minute (a year of the 10,000-signal plant is about 52 M
rows, 9 GB). Closed months can be moved out of the live file into an archive file that is a
ledger of its own, and the live ledger keeps verifying across the gap.

Month seals. Table `month_seals` (created on first use), append-only (triggers refuse UPDATE and
DELETE) and SHA-256 chained on its own like the evidence table (gateway/ledger/evidence.py): row
n's hash is SHA-256(hash of row n-1 as 32 bytes + the canonical bytes of row n), the first row
chained on GENESIS_HASH; the canonical bytes are seq, month, sealed_at (repr of the float) and
the record (JSON, sorted keys, no spaces, stored as hashed), joined by U+001F. A seal records,
as of the ledger head when it was made (head_seq, head_hash): the month (YYYY-MM in the site's
time zone, its bounds start_s/end_s), its rows (every row with minute_start in the month,
originals and corrections), the seq range holding them (first_seq, last_seq), the hash of row
last_seq, its current rows, and its CO2 as exact sums (math.fsum) of the current rows
(co2_kg_current) and of all rows (co2_kg_all). A month is sealed once the ledger holds a minute
after its end; `check_month_seal` counts and sums the month again in a file (the live ledger or
an archive) and names what differs.

Archiving (`archive_ledger`). The rows moved are a seq prefix base+1..S of the live ledger, base
being the end of the previous archive (0 the first time): S is the largest seq such that every
row up to it has minute_start before the cut month, and no row after S supersedes a row up to
S (the chain would otherwise need an archived row to check that correction: S is lowered below
the corrected row, and the result names the months this holds back). Every month before the cut
with rows is sealed first. The archive file, DIR/<site>-ledger-<first month>-<last month>.sqlite,
is a ledger file of this schema holding those rows exactly as they are (same seq and digest), its
meta head at S, the meta `archived` records before it (so it verifies on its own from its own
start), meta `archive` (what it is) and copies of the side tables an export reads (evidence with
its report copies, exports, seals, month_seals), and the cells of each month it holds whole
(gateway/ledger/month_cells.py). It is written as a hidden partial file, verified
(its chain, its head, the seals of the months wholly in it), made read-only, and only then
renamed into place. The live ledger then records the archive in meta `archived` (a JSON list:
file name, SHA-256 of the archive file, first_seq, last_seq, last_hash, rows, months, CO2 totals)
and deletes rows base+1..S, dropping and re-creating the no-delete trigger in the same
transaction; VACUUM then gives the space back to the file system (`vacuum=False` skips it: the
freed pages are then reused by the next appends instead).

Verifying across the gap: gateway/ledger/audit.py starts the walk at S + 1 chained on the
`last_hash` of the last `archived` record; `check_archive` compares an archive file with its
record (SHA-256 and head) and the seals of its months.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.core.errors import GatewayError
from gateway.ledger import month_cells
from gateway.ledger.audit import archived_base, cpus, verify_ledger
from gateway.ledger.backup import copy_evidence
from gateway.ledger.database import Connection, open_ledger_db, reading, rollback
from gateway.ledger.evidence import evidence_dir, verify_evidence
from gateway.ledger.format import GENESIS_HASH, INSERT_COLUMNS, SEP, chain_hash

ARCHIVED_KEY = "archived"  # meta key of the live ledger: JSON list of archive records, oldest first
ARCHIVE_KEY = "archive"  # meta key of an archive file: what it holds and where it came from

MONTH_SEALS_SCHEMA = """
CREATE TABLE IF NOT EXISTS month_seals (
    seq INTEGER PRIMARY KEY,
    month TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL,
    sealed_at REAL NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS month_seals_no_update BEFORE UPDATE ON month_seals
    BEGIN SELECT RAISE(ABORT, 'month seals are never updated'); END;
CREATE TRIGGER IF NOT EXISTS month_seals_no_delete BEFORE DELETE ON month_seals
    BEGIN SELECT RAISE(ABORT, 'month seals are never deleted'); END;
"""
_SEALS_EXIST = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'month_seals'"
_SEALS_ALL = "SELECT seq, month, record, sealed_at, hash FROM month_seals ORDER BY seq"
_SEALS_HEAD = "SELECT seq, hash FROM month_seals ORDER BY seq DESC LIMIT 1"
# The rows of a month as of a head: (seq, co2_kg, current as of the head). `minutes_key` serves the range.
_MONTH_ROWS = (
    "SELECT m.seq, m.co2_kg, NOT EXISTS (SELECT 1 FROM minutes c WHERE c.supersedes = m.seq AND c.seq <= ?3) "
    "FROM minutes m WHERE m.minute_start >= ?1 AND m.minute_start < ?2 AND m.seq <= ?3"
)
_ALL_ROWS = "SELECT m.seq, m.co2_kg, NOT EXISTS (SELECT 1 FROM minutes c WHERE c.supersedes = m.seq) FROM minutes m"
# Tables an export or a later check reads, copied into the archive as they are.
_SIDE_TABLES = ("evidence", "exports", "seals", "month_seals")
_META_NOT_COPIED = ("head_seq", "head_hash", "stopped_at", ARCHIVED_KEY)


class ArchiveError(GatewayError):
    """Archiving cannot go ahead (bad input, nothing to archive) or its result does not verify
    (`broken`: the live ledger's chain, or the written archive)."""

    def __init__(self, message: str, *, broken: bool = False) -> None:
        super().__init__(message)
        self.broken = broken


# -- months in the site's time zone --------------------------------------------------------------


def month_start_s(month: str, timezone: str) -> float:
    """Epoch seconds of the first instant of `month` (YYYY-MM) in `timezone` (as the export's month)."""
    year, mon = int(month[:4]), int(month[5:7])
    return datetime(year, mon, 1).replace(tzinfo=ZoneInfo(timezone)).timestamp()


def next_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def month_of(ts: float, timezone: str) -> str:
    """The month (YYYY-MM) of the site's time zone that epoch second `ts` falls in."""
    return datetime.fromtimestamp(ts, ZoneInfo(timezone)).strftime("%Y-%m")


# -- month seals ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonthSeal:
    seq: int
    month: str
    record: dict[str, Any]
    sealed_at: float
    hash: str

    @property
    def first_seq(self) -> int:
        return int(self.record["first_seq"])

    @property
    def last_seq(self) -> int:
        return int(self.record["last_seq"])


def _canonical(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def seal_payload(seq: int, month: str, sealed_at: float, record_text: str) -> bytes:
    """The bytes a month seal's hash covers after the previous hash (module docstring)."""
    return SEP.join((str(seq), month, repr(float(sealed_at)), record_text)).encode()


def _read_seals(db: Connection) -> list[MonthSeal]:
    if db.execute(_SEALS_EXIST).fetchone() is None:
        return []
    return [MonthSeal(int(r[0]), str(r[1]), json.loads(r[2]), float(r[3]), str(r[4])) for r in db.execute(_SEALS_ALL)]


def month_seals(path: Path) -> list[MonthSeal]:
    """The month seals of the ledger (or archive) at `path`, oldest first."""
    db = open_ledger_db(path, readonly=True)
    try:
        with reading(path, "reading its month seals"):
            return _read_seals(db)
    finally:
        db.close()


def verify_month_seals(path: Path) -> tuple[int, list[str]]:
    """Walk the month seals' chain: (seals, problems; empty when intact)."""
    db = open_ledger_db(path, readonly=True)
    try:
        with reading(path, "verifying its month seals"):
            raw = db.execute(_SEALS_ALL).fetchall() if db.execute(_SEALS_EXIST).fetchone() else []
    finally:
        db.close()
    prev = GENESIS_HASH
    for n, (seq, month, text, sealed_at, stored) in enumerate(raw, start=1):
        if seq != n:
            return len(raw), [f"month seal {seq}: expected seq {n}: a seal was deleted or inserted"]
        if chain_hash(prev, seal_payload(int(seq), str(month), float(sealed_at), str(text))) != stored:
            return len(raw), [f"month seal {seq} ({month}): hash mismatch: the seal was changed after it was made"]
        prev = str(stored)
    return len(raw), []


@dataclass
class _Stats:
    rows: int = 0
    current_rows: int = 0
    first_seq: int = 0
    last_seq: int = 0
    co2_all: list[float] = field(default_factory=list)
    co2_current: list[float] = field(default_factory=list)

    def add(self, rows: list[tuple[int, float, int]]) -> None:
        for seq, co2, current in rows:
            self.rows += 1
            self.first_seq = seq if not self.first_seq else min(self.first_seq, seq)
            self.last_seq = max(self.last_seq, seq)
            self.co2_all.append(co2)
            if current:
                self.current_rows += 1
                self.co2_current.append(co2)

    def totals(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "current_rows": self.current_rows,
            "co2_kg_all": math.fsum(self.co2_all),
            "co2_kg_current": math.fsum(self.co2_current),
        }


def _stats(db: Connection, sql: str, params: tuple[object, ...]) -> _Stats:
    s = _Stats()
    cur = db.execute(sql, params)
    while rows := cur.fetchmany(65536):
        s.add(rows)
    return s


def _month_record(db: Connection, month: str, timezone: str, head_seq: int, head_hash: str) -> dict[str, Any] | None:
    """The seal record of `month` as of the head, or None when the month has no row."""
    start_s, end_s = month_start_s(month, timezone), month_start_s(next_month(month), timezone)
    s = _stats(db, _MONTH_ROWS, (start_s, end_s, head_seq))
    if not s.rows:
        return None
    last_hash = db.execute("SELECT hash FROM minutes WHERE seq = ?", (s.last_seq,)).fetchone()[0]
    return {
        "month": month,
        "timezone": timezone,
        "start_s": start_s,
        "end_s": end_s,
        "first_seq": s.first_seq,
        "last_seq": s.last_seq,
        "last_hash": str(last_hash),
        "head_seq": head_seq,
        "head_hash": head_hash,
        **s.totals(),
    }


def seal_months(path: Path, timezone: str, before: str, now: float | None = None) -> list[MonthSeal]:
    """Seal every month before `before` (YYYY-MM) that has rows in the live ledger, is closed (the
    ledger holds a minute at or after its end) and is not sealed yet; returns the new seals.
    Raises ArchiveError when `before` is not closed (no minute at or after its start)."""
    at = time.time() if now is None else float(now)
    db = open_ledger_db(path)
    made: list[MonthSeal] = []
    try:
        with reading(path, "sealing months"):
            try:
                db.executescript(MONTH_SEALS_SCHEMA)
                db.execute("BEGIN IMMEDIATE")
                head = db.execute("SELECT seq, hash FROM minutes ORDER BY seq DESC LIMIT 1").fetchone()
                cut_s = month_start_s(before, timezone)
                if (
                    head is None
                    or db.execute("SELECT 1 FROM minutes WHERE minute_start >= ? LIMIT 1", (cut_s,)).fetchone() is None
                ):
                    raise ArchiveError(
                        f"ledger {path}: no minute at or after {before} ({timezone}) yet: the months before it are not "
                        "closed; archive an earlier month, or wait until the ledger holds minutes of that month"
                    )
                head_seq, head_hash = int(head[0]), str(head[1])
                sealed = {s.month for s in _read_seals(db)}
                first = db.execute("SELECT minute_start FROM minutes ORDER BY minute_start LIMIT 1").fetchone()
                month = month_of(float(first[0]), timezone)
                row = db.execute(_SEALS_HEAD).fetchone()
                seq, prev = (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)
                while month < before:
                    if month not in sealed:
                        record = _month_record(db, month, timezone, head_seq, head_hash)
                        if record is not None:
                            seq += 1
                            text = _canonical(record)
                            prev = chain_hash(prev, seal_payload(seq, month, at, text))
                            db.execute(
                                "INSERT INTO month_seals (seq, month, record, sealed_at, hash) VALUES (?,?,?,?,?)",
                                (seq, month, text, at, prev),
                            )
                            made.append(MonthSeal(seq, month, record, at, prev))
                    month = next_month(month)
                db.execute("COMMIT")
            except BaseException:
                rollback(db)
                raise
    finally:
        db.close()
    return made


def check_month_seal(path: Path, seal: MonthSeal) -> str | None:
    """Count and sum the sealed month again in the file at `path` (as of the seal's head):
    None when it matches, else what differs."""
    r = seal.record
    db = open_ledger_db(path, readonly=True)
    try:
        with reading(path, f"checking month {seal.month} against its seal"):
            now = _month_record(db, seal.month, str(r["timezone"]), int(r["head_seq"]), str(r["head_hash"]))
    finally:
        db.close()
    if now is None:
        return f"month {seal.month}: sealed with {r['rows']} row(s), {path} has none of them"
    for key in ("rows", "current_rows", "first_seq", "last_seq", "last_hash", "co2_kg_all", "co2_kg_current"):
        if now[key] != r[key]:
            return f"month {seal.month}: {key} is {now[key]!r} in {path}, the seal says {r[key]!r}"
    return None


# -- archiving -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveResult:
    archive: Path
    record: dict[str, Any]
    sealed: list[MonthSeal]
    held_back: list[str]  # why rows of months before the cut stay in the live ledger
    warnings: list[str]
    bytes_before: int
    bytes_after: int
    seconds: dict[str, float]


def archive_records(path: Path) -> list[dict[str, Any]]:
    """The live ledger's archive records (meta `archived`), oldest first."""
    db = open_ledger_db(path, readonly=True)
    try:
        with reading(path, "reading its archive records"):
            row = db.execute("SELECT value FROM meta WHERE key = ?", (ARCHIVED_KEY,)).fetchone()
    finally:
        db.close()
    records: list[dict[str, Any]] = json.loads(row[0]) if row else []
    return records


def _file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def sha256_of(path: Path) -> str:
    """The file's SHA-256 (hex). hashlib releases the GIL while it hashes: files hash in parallel in threads."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _prefix_end(db: Connection, base: int, cut_s: float, timezone: str) -> tuple[int, list[str]]:
    """S (module docstring) and why it is lower than the rows before the cut would allow."""
    first_after = db.execute("SELECT min(seq) FROM minutes WHERE minute_start >= ?", (cut_s,)).fetchone()[0]
    end = int(first_after) - 1
    held: list[str] = []
    if end < int(db.execute("SELECT max(seq) FROM minutes WHERE minute_start < ?", (cut_s,)).fetchone()[0] or 0):
        held.append(f"rows of months before the cut appended after row {end + 1} (a minute of the cut month or later) stay live")
    while end > base:
        row = db.execute(
            "SELECT seq, supersedes FROM minutes WHERE supersedes IS NOT NULL AND supersedes <= ? AND seq > ? ORDER BY supersedes LIMIT 1",
            (end, end),
        ).fetchone()
        if row is None:
            break
        minute = db.execute("SELECT minute_start FROM minutes WHERE seq = ?", (row[1],)).fetchone()[0]
        held.append(
            f"row {row[0]} corrects row {row[1]} of {month_of(float(minute), timezone)}: rows from {row[1]} on stay live "
            "until a later archive takes the correction too"
        )
        end = int(row[1]) - 1
    return end, held


def archive_ledger(
    path: Path,
    out_dir: Path,
    before: str,
    *,
    timezone: str,
    site: str,
    vacuum: bool = True,
    now: float | None = None,
    processes: int | None = None,
    progress: Callable[[str], None] = lambda _what: None,
) -> ArchiveResult:
    """Seal the closed months before `before` and move them to an archive file in `out_dir`
    (module docstring). Raises ArchiveError (bad input, nothing to archive; `broken` when the
    live ledger or the archive written does not verify) and LedgerError (a file that is not a ledger)."""
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    workers = cpus() if processes is None else processes
    bytes_before = _file_bytes(path)
    progress("verifying the live ledger")
    report = verify_ledger(path, processes=workers)
    if not report.ok:
        raise ArchiveError(f"ledger {path}: BROKEN at row {report.bad_seq}: {report.problem}; nothing archived", broken=True)
    seconds["verify_live"] = time.perf_counter() - t0
    progress("sealing months")
    t = time.perf_counter()
    sealed = seal_months(path, timezone, before, now)
    seconds["seal"] = time.perf_counter() - t
    cut_s = month_start_s(before, timezone)
    db = open_ledger_db(path, readonly=True)
    try:
        with reading(path, "choosing the rows to archive"):
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            base = archived_base(path, meta)[0]
            end, held = _prefix_end(db, base, cut_s, timezone)
            seals = _read_seals(db)
            end_hash = db.execute("SELECT hash FROM minutes WHERE seq = ?", (end,)).fetchone() if end > base else None
            warnings = [
                f"delivery cursor {name!r} is at row {seq}: rows {seq + 1}..{end} were never delivered to it and are in the archive only"
                for name, seq in db.execute("SELECT name, seq FROM cursors WHERE seq < ? ORDER BY name", (end,))
            ]
    finally:
        db.close()
    if end_hash is None:
        raise ArchiveError(
            f"ledger {path}: nothing to archive before {before}: "
            + ("; ".join(held) if held else f"the live ledger's first row {base + 1} is already of {before} or later")
        )
    last_hash = str(end_hash[0])
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = out_dir / f".archive-{os.getpid()}.sqlite.partial"
    try:
        progress(f"writing rows {base + 1}..{end} to the archive")
        t = time.perf_counter()
        whole = [s for s in seals if base < s.first_seq and s.last_seq <= end]
        months = _write_archive(path, partial, base, end, meta, timezone, site, whole)
        seconds["write_archive"] = time.perf_counter() - t
        name = f"{site}-ledger-{months[0]}-{months[-1]}.sqlite"
        dest = out_dir / name
        if dest.exists() or evidence_dir(dest).exists():
            raise ArchiveError(f"{dest} already exists: an archive is never overwritten; move it away or name another DIR")
        progress("verifying the archive")
        t = time.perf_counter()
        record = _check_written(partial, base, end, last_hash, seals, workers)
        seconds["verify_archive"] = time.perf_counter() - t
        os.chmod(partial, 0o400)
        sha = sha256_of(partial)
        copy_evidence(path, dest)
        os.replace(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    record = {
        "file": name,
        "sha256": sha,
        "first_seq": base + 1,
        "last_seq": end,
        "last_hash": last_hash,
        "months": months,
        "archived_at": time.time() if now is None else float(now),
        **record,
    }
    progress(f"deleting rows {base + 1}..{end} from the live ledger")
    t = time.perf_counter()
    _cut_live(path, base, end, last_hash, record)
    seconds["delete_live"] = time.perf_counter() - t
    if vacuum:
        progress("VACUUM")
        t = time.perf_counter()
        db = open_ledger_db(path)
        try:
            with reading(
                path, "VACUUM after archiving (the rows are archived and deleted; only the space is not given back yet)"
            ):
                db.execute("VACUUM")
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
        seconds["vacuum"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t0
    return ArchiveResult(dest, record, sealed, held, warnings, bytes_before, _file_bytes(path), seconds)


def _write_archive(
    source: Path, partial: Path, base: int, end: int, meta: dict[str, str], timezone: str, site: str, whole: list[MonthSeal]
) -> list[str]:
    """Rows base+1..end of `source` into a new ledger file at `partial`, with its meta and side
    tables; returns the first and last month (in `timezone`) it holds. `whole`: the seals of the
    months it holds whole (meta `archive`, `whole_months`: the export counts them complete); their
    cells are read from the rows written and stored beside them (gateway/ledger/month_cells.py)."""
    partial.unlink(missing_ok=True)
    db = open_ledger_db(partial)
    try:
        with reading(partial, f"writing rows {base + 1}..{end} of {source}"):
            db.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
            db.execute("PRAGMA synchronous=OFF")  # one fsync at the end: a failed archive is deleted
            db.execute("ATTACH DATABASE ? AS src", (str(source),))
            db.execute("BEGIN")
            cols = ", ".join(INSERT_COLUMNS)
            db.execute(
                f"INSERT INTO main.minutes ({cols}) SELECT {cols} FROM src.minutes WHERE seq > ? AND seq <= ? ORDER BY seq",
                (base, end),
            )
            for table in _SIDE_TABLES:
                ddl = db.execute(
                    "SELECT sql FROM src.sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL ORDER BY type = 'table' DESC",
                    (table,),
                ).fetchall()
                if not ddl:
                    continue
                for (sql,) in ddl:
                    db.execute(sql)
                db.execute(f"INSERT INTO main.{table} SELECT * FROM src.{table}")
            for key, value in meta.items():
                if key not in _META_NOT_COPIED:
                    db.execute("INSERT OR REPLACE INTO main.meta (key, value) VALUES (?, ?)", (key, value))
            head = db.execute("SELECT seq, hash FROM main.minutes ORDER BY seq DESC LIMIT 1").fetchone()
            db.executemany(
                "INSERT OR REPLACE INTO main.meta (key, value) VALUES (?, ?)",
                [("head_seq", str(head[0])), ("head_hash", str(head[1]))],
            )
            if meta.get(ARCHIVED_KEY):  # the archives before this one: it starts after the last of them
                db.execute("INSERT INTO main.meta (key, value) VALUES (?, ?)", (ARCHIVED_KEY, meta[ARCHIVED_KEY]))
            db.execute("COMMIT")
            db.execute("DETACH DATABASE src")
            months = [(s.month, float(s.record["start_s"]), float(s.record["end_s"])) for s in whole]
            cells = month_cells.read_cells(partial, months, timezone, site)  # a walk of the rows just written
            db.execute("BEGIN")
            month_cells.insert_cells(db, cells)
            # last: from here on the file is an archive, which open_ledger_db never opens to write
            whole_months = [[m, start, end_s] for m, start, end_s in months]
            archive = {"of": source.name, "first_seq": base + 1, "last_seq": end, "whole_months": whole_months}
            db.execute("INSERT OR REPLACE INTO main.meta (key, value) VALUES (?, ?)", (ARCHIVE_KEY, _canonical(archive)))
            db.execute("COMMIT")
            first, last = db.execute(
                "SELECT (SELECT minute_start FROM minutes ORDER BY minute_start LIMIT 1), "
                "(SELECT minute_start FROM minutes ORDER BY minute_start DESC LIMIT 1)"
            ).fetchone()
    finally:
        db.close()
    with partial.open("rb+") as f:
        os.fsync(f.fileno())
    return [month_of(float(first), timezone), month_of(float(last), timezone)]


def _check_written(partial: Path, base: int, end: int, last_hash: str, seals: list[MonthSeal], workers: int) -> dict[str, Any]:
    """Verify the archive written: its chain and evidence, its head (end, last_hash), and every
    month seal whose rows it holds whole. Returns its totals for the record."""
    report = verify_ledger(partial, processes=workers)
    if not report.ok:
        raise ArchiveError(
            f"the archive written ({partial}) does not verify: row {report.bad_seq}: {report.problem}", broken=True
        )
    if (report.head_seq, report.head_hash) != (end, last_hash):
        raise ArchiveError(
            f"the archive written ({partial}) ends at row {report.head_seq} {report.head_hash}, not {end} {last_hash}",
            broken=True,
        )
    evidence = verify_evidence(partial)
    if not evidence.ok:
        raise ArchiveError(f"the archive written ({partial}): evidence: {'; '.join(evidence.problems)}", broken=True)
    whole = [s for s in seals if base < s.first_seq and s.last_seq <= end]
    for seal in whole:
        problem = check_month_seal(partial, seal)
        if problem is not None:
            raise ArchiveError(f"the archive written ({partial}) does not match its month seal: {problem}", broken=True)
    db = open_ledger_db(partial, readonly=True)
    try:
        with reading(partial, "summing the archive"):
            totals = _stats(db, _ALL_ROWS, ()).totals()
    finally:
        db.close()
    return {**totals, "sealed_months": [s.month for s in whole]}


def _cut_live(path: Path, base: int, end: int, last_hash: str, record: dict[str, Any]) -> None:
    """In one transaction of the live ledger: record the archive, delete rows base+1..end."""
    db = open_ledger_db(path)
    try:
        with reading(path, f"deleting the archived rows {base + 1}..{end} (nothing was deleted; the archive file stays)"):
            try:
                db.execute("BEGIN IMMEDIATE")
                meta = db.execute("SELECT value FROM meta WHERE key = ?", (ARCHIVED_KEY,)).fetchone()
                records = json.loads(meta[0]) if meta else []
                if archived_base(path, {ARCHIVED_KEY: meta[0]} if meta else {})[0] != base:
                    raise ArchiveError(f"ledger {path}: another archive ran meanwhile; run this one again")
                stored = db.execute("SELECT hash FROM minutes WHERE seq = ?", (end,)).fetchone()
                if stored is None or stored[0] != last_hash:
                    raise ArchiveError(f"ledger {path}: row {end} changed while it was archived; nothing deleted", broken=True)
                trigger = db.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'minutes_no_delete'"
                ).fetchone()
                records.append(record)
                db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (ARCHIVED_KEY, json.dumps(records, sort_keys=True, separators=(",", ":"))),
                )
                db.execute("DROP TRIGGER IF EXISTS minutes_no_delete")
                db.execute("DELETE FROM minutes WHERE seq <= ?", (end,))
                if trigger is not None:
                    db.execute(trigger[0])
                db.execute("COMMIT")
            except BaseException:
                rollback(db)
                raise
    finally:
        db.close()


def identity_problem(archive: Path, record: dict[str, Any], sha: str) -> str | None:
    """The archive file compared with its record: `sha` (its SHA-256) and its head (last_seq,
    last_hash). None when both match, else what differs."""
    if sha != record["sha256"]:
        return f"{archive}: SHA-256 {sha}, the live ledger recorded {record['sha256']}: the archive was changed or replaced"
    db = open_ledger_db(archive, readonly=True)
    try:
        with reading(archive, "reading its head"):
            meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('head_seq', 'head_hash')").fetchall())
    finally:
        db.close()
    if (int(meta.get("head_seq", -1)), meta.get("head_hash")) != (int(record["last_seq"]), record["last_hash"]):
        return f"{archive}: its head is row {meta.get('head_seq')} {meta.get('head_hash')}, the record says {record['last_seq']} {record['last_hash']}"
    return None


def check_archive(folder: Path, record: dict[str, Any]) -> list[str]:
    """Compare the archive file `record` names, in `folder`, with the record: its SHA-256, its
    head (last_seq, last_hash), and the month seals of the months it holds whole. Problems, or []."""
    archive = folder / str(record["file"])
    if not archive.is_file():
        return [f"{archive}: no such archive file"]
    try:
        sha = sha256_of(archive)
    except OSError as exc:
        return [f"{archive}: cannot read it: {exc.strerror}"]
    problem = identity_problem(archive, record, sha)
    if problem is not None:
        return [problem]
    problems = []
    for seal in month_seals(archive):
        if seal.month in record.get("sealed_months", []):
            problem = check_month_seal(archive, seal)
            if problem is not None:
                problems.append(f"{archive}: {problem}")
    return problems
