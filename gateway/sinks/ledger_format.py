"""The ledger's on-disk format: schema, canonical row encoding and the hash chain.

Storage. SQLite in WAL mode with synchronous=FULL. Live, an append commits one closed minute
(one transaction, one fsync of the WAL) per minute, so FULL costs about one fsync a minute, and
in exchange a power cut never loses a minute the ledger acknowledged. NORMAL would survive a
kill -9 just as well but may roll back the last commits after a power loss: minutes already
delivered to InfluxDB and shown to operators would vanish from the record of truth, and be
recomputed (differently, from an older checkpoint) after the restart.

Chain. Row n's hash is SHA-256 over row n-1's hash, a newline, and the canonical encoding of
row n (`canonical_row`: compact JSON of its seq, every field in FIELDS order, what it
supersedes, why, and when it was recorded). REAL fields are hashed as they read back from
SQLite (never -0.0; NaN is refused), so a re-read always reproduces the hash.

Files are created owner-only (0600, directory 0700 when we create it).
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.model import MinuteResult

GENESIS_HASH = "0" * 64
SCHEMA_VERSION = "2"

FIELDS = (
    "minute_start",
    "site",
    "process",
    "stream",
    "scope",
    "method",
    "activity",
    "activity_unit",
    "co2_kg",
    "factor_id",
    "ef_kg_per_unit",
    "coverage",
    "quality",
    "flags",
)
REAL_FIELDS = frozenset(("minute_start", "activity", "co2_kg", "ef_kg_per_unit", "coverage"))
_REAL_INDEX = tuple(i for i, f in enumerate(FIELDS) if f in REAL_FIELDS)
ROW_COLUMNS = ("seq", *FIELDS, "supersedes", "reason", "recorded_at", "prev_hash", "hash")
DELAYED_FLAG = "ledger_delayed"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS minutes (
    seq INTEGER PRIMARY KEY,
    {", ".join(f + (" REAL" if f in REAL_FIELDS else " TEXT") + " NOT NULL" for f in FIELDS)},
    supersedes INTEGER,
    reason TEXT,
    recorded_at REAL NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS minutes_original ON minutes(minute_start, process, stream) WHERE supersedes IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS minutes_superseded ON minutes(supersedes) WHERE supersedes IS NOT NULL;
CREATE INDEX IF NOT EXISTS minutes_by_time ON minutes(minute_start);
CREATE TRIGGER IF NOT EXISTS minutes_no_update BEFORE UPDATE ON minutes
    BEGIN SELECT RAISE(ABORT, 'ledger rows are never updated; append a correction instead'); END;
CREATE TRIGGER IF NOT EXISTS minutes_no_delete BEFORE DELETE ON minutes
    BEGIN SELECT RAISE(ABORT, 'ledger rows are never deleted; append a correction instead'); END;
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    sink TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    status INTEGER,
    message TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), saved_at REAL NOT NULL, state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoint_delta (n INTEGER PRIMARY KEY, saved_at REAL NOT NULL, state BLOB NOT NULL);
"""

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=True)
_get_fields = operator.attrgetter(*FIELDS)
_CURRENT = "NOT EXISTS (SELECT 1 FROM minutes c WHERE c.supersedes = m.seq)"


def normalized_values(values: Sequence[object]) -> list[object]:
    """Field values as they read back from SQLite: REAL fields as float, never -0.0 or NaN.

    SQLite stores -0.0 as 0.0 and cannot store NaN (it becomes NULL), and the hash must cover
    what reads back. Raises ValueError for NaN.
    """
    out = list(values)
    for i in _REAL_INDEX:
        x = float(out[i]) + 0.0  # type: ignore[arg-type]  # -0.0 + 0.0 == 0.0
        if x != x:
            raise ValueError(f"NaN cannot be stored in the ledger (field {FIELDS[i]})")
        out[i] = x
    return out


def canonical_row(
    seq: int, values: Sequence[object], supersedes: int | None, reason: str | None, recorded_at: float
) -> bytes:
    """The bytes a row's hash covers: seq, fields in FIELDS order, supersedes, reason, recorded_at.

    Compact JSON; floats in Python's shortest round-trip repr, so the encoding is stable across
    platforms and re-reads. `values` must already be normalized (`normalized_values`).
    """
    return _ENCODER.encode([seq, *values, supersedes, reason, recorded_at]).encode()


def chain_hash(prev_hash: str, payload: bytes) -> str:
    """SHA-256 (hex) of the previous row's hash, a newline, and this row's canonical bytes."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + payload).hexdigest()


def result_values(r: MinuteResult) -> list[object]:
    return normalized_values(_get_fields(r))


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One stored row, for auditors: the result plus its place in the chain."""

    seq: int
    result: MinuteResult
    supersedes: int | None
    reason: str | None
    recorded_at: float
    prev_hash: str
    hash: str


def _row(raw: Sequence[object]) -> LedgerRow:
    n = len(FIELDS)
    return LedgerRow(
        int(raw[0]),
        MinuteResult(*raw[1 : n + 1]),
        raw[n + 1],
        raw[n + 2],
        float(raw[n + 3]),  # type: ignore[arg-type]
        str(raw[n + 4]),
        str(raw[n + 5]),
    )


def create_owner_only(path: Path) -> None:
    """Create `path` (and the WAL/SHM side files SQLite makes) readable by the owner only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # only directories it creates
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if not p.exists():
            os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))


def open_ledger_db(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open (creating owner-only) a ledger database; `readonly` for audit tools."""
    if readonly:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such ledger file")
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # fails now if not a database
        return conn
    create_owner_only(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(_SCHEMA)
    conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
    return conn
