"""`emgate ledger migrate OLD NEW`: a ledger written in an earlier schema, in the current one, proven.

The first release wrote schema 2: every row's hash was SHA-256 over the previous hash as hex
text, a newline and the row as compact JSON (seq, the fields in FIELDS order, supersedes,
reason, recorded_at), and each row stored prev_hash and hash as text. Schema 3 (this version,
gateway/ledger/format.py) hashes a binary encoding; a schema-2 file does not open in it.

A migration never changes OLD. It

1. walks OLD's chain by the schema-2 rules: a changed, missing or inserted row stops it, named;
2. writes NEW (as NEW.partial, renamed when complete): every row with its seq, fields,
   supersedes, reason and recorded_at, chained by the schema-3 rules; table `migrated_rows`
   keeps each row's schema-2 hash by seq, and `meta` key `migrated_from` the source file, its
   schema, head hash, row count and CO2 totals; the site, the InfluxDB cursor, the quarantine,
   the alert events and the crash checkpoint come along;
3. proves it: NEW's chain verifies, and reading both files row by row gives the same rows,
   the same count and the same totals (all rows, and the current view). Only then is NEW
   renamed into place.

A checkpoint holds the minute in progress when the gateway stopped. One of a format this
version cannot read is left out, and the report says so: that minute then starts anew (its
readings before the stop are not recovered; every closed minute is in the rows).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway.ledger.checkpoint import FORMAT as CHECKPOINT_FORMAT
from gateway.ledger.database import Connection, DatabaseError, open_any_schema_readonly, open_ledger_db, rollback
from gateway.ledger.errors import LedgerError
from gateway.ledger.format import (
    FIELDS,
    GENESIS_HASH,
    INSERT_COLUMNS,
    REAL_FIELDS,
    SCHEMA_VERSION,
    canonical_row,
    normalized_values,
)
from gateway.ledger.queries import CURRENT

_SCHEMA2_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=True)
_REAL_AT = tuple(i for i, f in enumerate(FIELDS) if f in REAL_FIELDS)
_OLD_ROWS = f"SELECT seq, {', '.join(FIELDS)}, supersedes, reason, recorded_at, prev_hash, hash FROM minutes ORDER BY seq"
_NEW_ROWS = f"SELECT seq, {', '.join(FIELDS)}, supersedes, reason, recorded_at FROM minutes ORDER BY seq"
_INSERT = f"INSERT INTO minutes ({', '.join(INSERT_COLUMNS)}) VALUES ({', '.join('?' * len(INSERT_COLUMNS))})"
_MIGRATED_ROWS = "CREATE TABLE migrated_rows (seq INTEGER PRIMARY KEY, old_hash TEXT NOT NULL)"
_TOTALS = f"SELECT m.co2_kg, m.activity, {CURRENT} FROM minutes m"
BATCH = 5000


class MigrationError(LedgerError):
    """OLD cannot be migrated: not a ledger of a schema this version migrates, or DEST exists
    (bad input); or, with `broken`, OLD's chain is broken (OLD is then evidence to keep as it
    is) or NEW does not prove equal."""

    broken = False


class BrokenLedgerError(MigrationError):
    broken = True


@dataclass
class MigrationReport:
    source: Path
    dest: Path
    from_schema: str
    rows: int
    old_head: str
    new_head: str
    co2_kg_all: float
    co2_kg_current: float
    checkpoint_carried: bool | None  # None: OLD had none
    tables: list[str] = field(default_factory=list)  # the other tables carried over
    seconds: float = 0.0


def schema2_hash(prev_hash: str, seq: int, values: Sequence[object], supersedes: int | None, reason: str | None, recorded_at: float) -> str:
    """A row's hash by the schema-2 rules (module docstring)."""
    payload = _SCHEMA2_JSON.encode([seq, *values, supersedes, reason, recorded_at]).encode()
    return hashlib.sha256(prev_hash.encode() + b"\n" + payload).hexdigest()


def migrate_ledger(source: Path, dest: Path) -> MigrationReport:
    """Migrate the ledger at `source` into a new file `dest` (module docstring).

    Raises MigrationError (what and where), LedgerError when a file cannot be opened or written.
    """
    started = time.perf_counter()
    if dest.exists():
        raise MigrationError(dest, "already exists", "name a new file: a migration never overwrites one")
    if not source.is_file():
        raise MigrationError(source, "no such ledger file", "check the path")
    old = open_any_schema_readonly(source)
    partial = dest.with_name(dest.name + ".partial")
    try:
        schema = _schema_of(old, source)
        partial.unlink(missing_ok=True)
        for side in ("-wal", "-shm"):
            Path(str(partial) + side).unlink(missing_ok=True)
        new = open_ledger_db(partial)
        try:
            report = _copy(old, new, source, dest, schema)
            _prove(old, partial, source, report)
            new.execute("PRAGMA journal_mode=DELETE")  # one self-contained file to rename; WAL again when opened
        finally:
            new.close()
    except BaseException:
        for p in (partial, Path(str(partial) + "-wal"), Path(str(partial) + "-shm")):
            p.unlink(missing_ok=True)
        raise
    finally:
        old.close()
    os.replace(partial, dest)
    for side in ("-wal", "-shm"):
        Path(str(partial) + side).unlink(missing_ok=True)
    report.seconds = time.perf_counter() - started
    return report


def _schema_of(old: Connection, source: Path) -> str:
    try:
        row = old.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    except DatabaseError as exc:
        raise MigrationError(source, f"cannot read it as a ledger: {exc}", "check the path") from exc
    schema = None if row is None else str(row[0])
    if schema == SCHEMA_VERSION:
        raise MigrationError(source, f"already schema {SCHEMA_VERSION}: nothing to migrate", "open it as it is")
    if schema != "2":
        raise MigrationError(source, f"a ledger of schema {schema!r}; this version migrates schema 2 only")
    return schema


def _old_rows(old: Connection, source: Path) -> Iterator[tuple[int, list[object], int | None, str | None, float, str]]:
    """OLD's rows, each checked against the schema-2 chain: (seq, values, supersedes, reason,
    recorded_at, hash)."""
    prev, expected_seq = GENESIS_HASH, 1
    for raw in old.execute(_OLD_ROWS):
        seq = int(raw[0])
        n = len(FIELDS)
        values = list(raw[1 : n + 1])
        for i in _REAL_AT:
            values[i] = float(values[i]) + 0.0
        supersedes, reason, recorded_at, prev_hash, stored = raw[n + 1], raw[n + 2], float(raw[n + 3]), str(raw[n + 4]), str(raw[n + 5])
        if seq != expected_seq:
            raise BrokenLedgerError(source, f"row {seq}: expected seq {expected_seq}: a row was deleted or inserted", "keep the file as evidence; it cannot be migrated")
        if prev_hash != prev or schema2_hash(prev, seq, values, supersedes, reason, recorded_at) != stored:
            raise BrokenLedgerError(source, f"row {seq}: its hash does not match its content: the chain is broken", "keep the file as evidence; it cannot be migrated")
        yield seq, values, supersedes, reason, recorded_at, stored
        prev, expected_seq = stored, seq + 1


def _copy(old: Connection, new: Connection, source: Path, dest: Path, schema: str) -> MigrationReport:
    new.execute("BEGIN IMMEDIATE")
    try:
        new.execute(_MIGRATED_ROWS)
        prev, rows, old_head = bytes(32), 0, GENESIS_HASH
        batch: list[tuple[object, ...]] = []
        hashes: list[tuple[int, str]] = []
        for seq, values, supersedes, reason, recorded_at, old_hash in _old_rows(old, source):
            values = normalized_values(values)
            digest = hashlib.sha256(prev + canonical_row(seq, values, supersedes, reason, recorded_at)).digest()
            batch.append((seq, *values, supersedes, reason, recorded_at, digest))
            hashes.append((seq, old_hash))
            prev, rows, old_head = digest, rows + 1, old_hash
            if len(batch) >= BATCH:
                new.executemany(_INSERT, batch)
                new.executemany("INSERT INTO migrated_rows VALUES (?, ?)", hashes)
                batch, hashes = [], []
        new.executemany(_INSERT, batch)
        new.executemany("INSERT INTO migrated_rows VALUES (?, ?)", hashes)
        tables = _carry_tables(old, new)
        carried = _carry_checkpoint(old, new)
        sites = [str(s) for (s,) in new.execute("SELECT DISTINCT site FROM minutes")]
        if len(sites) == 1:
            new.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('site', ?)", (sites[0],))
        all_kg, current_kg, _, _ = _totals(new)
        record = {
            "path": str(source.resolve()),
            "schema": schema,
            "rows": rows,
            "head_hash": old_head,
            "co2_kg_all": all_kg,
            "co2_kg_current": current_kg,
            "migrated_at": time.time(),
        }
        new.execute("INSERT INTO meta(key, value) VALUES ('migrated_from', ?)", (json.dumps(record, sort_keys=True),))
        new.execute("COMMIT")
    except BaseException:
        rollback(new)
        raise
    return MigrationReport(source, dest, schema, rows, old_head, prev.hex(), all_kg, current_kg, carried, tables)


def _carry_tables(old: Connection, new: Connection) -> list[str]:
    """The InfluxDB cursor, the quarantine and the alert events, row for row (their layout is the same)."""
    from gateway.ledger.alerts_table import ALERTS_SCHEMA  # the alerts table is its module's

    carried = []
    names = {str(n) for (n,) in old.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "alerts" in names:
        for statement in ALERTS_SCHEMA.split(";"):
            if statement.strip():
                new.execute(statement)
    for table in ("cursors", "quarantine", "alerts"):
        if table not in names:
            continue
        columns = [str(c[1]) for c in old.execute(f"PRAGMA table_info({table})")]
        rows = old.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
        new.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows)
        carried.append(f"{table} ({len(rows)})")
    return carried


def _carry_checkpoint(old: Connection, new: Connection) -> bool | None:
    """Copy the crash checkpoint when this version reads its format; None when there is none."""
    row = old.execute("SELECT saved_at, state FROM checkpoint WHERE id = 1").fetchone()
    if row is None:
        return None
    if CHECKPOINT_FORMAT.encode() not in bytes(row[1]):  # the format name is in the header array
        return False
    new.execute("INSERT INTO checkpoint (id, saved_at, state) VALUES (1, ?, ?)", (row[0], row[1]))
    new.executemany(
        "INSERT INTO checkpoint_delta (n, saved_at, state) VALUES (?, ?, ?)",
        old.execute("SELECT n, saved_at, state FROM checkpoint_delta ORDER BY n").fetchall(),
    )
    return True


def _totals(db: Connection) -> tuple[float, float, float, float]:
    """Exact sums (math.fsum) of co2_kg and activity over all rows and over the current view."""
    co2_all, co2_cur, act_all, act_cur = [], [], [], []
    for co2, activity, current in db.execute(_TOTALS):
        co2_all.append(co2)
        act_all.append(activity)
        if current:
            co2_cur.append(co2)
            act_cur.append(activity)
    return math.fsum(co2_all), math.fsum(co2_cur), math.fsum(act_all), math.fsum(act_cur)


def _prove(old: Connection, partial: Path, source: Path, report: MigrationReport) -> None:
    """NEW verifies, and holds OLD's rows, count and totals: else MigrationError."""
    from gateway.ledger.audit import verify_ledger  # the audit's walk (and its native extension)

    verdict = verify_ledger(partial)
    if not verdict.ok or verdict.rows != report.rows or verdict.head_hash != report.new_head:
        raise BrokenLedgerError(partial, f"the new chain does not verify: {verdict.problem or verdict}")
    new = open_any_schema_readonly(partial)
    try:
        old_rows = old.execute(_NEW_ROWS)
        for a, b in zip(old_rows, new.execute(_NEW_ROWS), strict=False):
            if tuple(a) != tuple(b):
                raise BrokenLedgerError(partial, f"row {a[0]} differs from the old file's: {b} != {a}")
        if old.execute("SELECT count(*) FROM minutes").fetchone()[0] != new.execute("SELECT count(*) FROM minutes").fetchone()[0]:
            raise BrokenLedgerError(partial, "the row counts differ")
        if _totals(old) != _totals(new):
            raise BrokenLedgerError(partial, f"the totals differ: {_totals(old)} != {_totals(new)}")
        kept = dict(new.execute("SELECT seq, old_hash FROM migrated_rows").fetchall())
        if len(kept) != report.rows or kept.get(report.rows, GENESIS_HASH if not report.rows else None) != report.old_head:
            raise BrokenLedgerError(partial, "the old hashes are not all recorded")
    finally:
        new.close()
