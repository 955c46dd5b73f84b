"""The ledger file's connection: the one place that opens it, and where sqlite3's errors end.

Opening. `open_ledger_db` is the only connection setup for a ledger file, whoever reads or
writes it (the chain writer, the alerts table, the audit, the export, the status page's seed):
created owner-only, WAL, synchronous=FULL (why: gateway/ledger/format.py, "Storage"), the schema
of gateway/ledger/format.py created if missing, and a ledger of another schema version refused
by name. `readonly` opens an existing file for auditors and readers without creating anything.

Errors. `reading(path, doing)` turns a sqlite3.Error raised inside it into LedgerError (and
`writing` into SinkWriteError, retryable: a disk that refuses a write may take it later), with
the file and what the ledger was doing, so nothing outside this package handles sqlite3's
exceptions (gateway/ledger/errors.py). The other modules of the package take sqlite3's names
from here (`Connection`, `DatabaseError`), so this is the one module that imports it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeAlias

from gateway.core.errors import SinkWriteError
from gateway.ledger.errors import LedgerError
from gateway.ledger.format import SCHEMA, SCHEMA_VERSION

# The sqlite3 names the rest of the package uses: this is the one module that imports sqlite3.
Connection: TypeAlias = sqlite3.Connection
DatabaseError = sqlite3.Error  # every error sqlite3 raises
OperationalError = sqlite3.OperationalError  # e.g. a table that is not there
# SQLite errors that mean "these rows cannot be stored as given", not "the disk refused":
# a unique or NOT NULL constraint, a value of a type it cannot bind.
INPUT_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError)


def create_owner_only(path: Path) -> None:
    """Create `path` (and the WAL/SHM side files SQLite makes) readable by the owner only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # only directories it creates
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if not p.exists():
            os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))


def open_ledger_db(path: Path, *, readonly: bool = False, busy_timeout_s: float = 5.0) -> sqlite3.Connection:
    """Open (creating owner-only) a ledger database; `readonly` for audit tools and readers.

    `busy_timeout_s`: how long a statement waits for another process's write lock.
    Raises LedgerError when the file cannot be opened as a ledger: missing (readonly), not a
    database, or a ledger of another schema version (`emgate ledger migrate` writes a schema-2
    ledger into a new file of this schema: gateway/ledger/migrate.py).
    """
    conn: sqlite3.Connection | None = None
    try:
        if readonly:
            if not path.exists():
                raise LedgerError(path, "no such ledger file", "check the path")
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=busy_timeout_s,
            )
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # fails now if not a database
            _check_schema(conn, path)
            return conn
        create_owner_only(path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
        _check_schema(conn, path)
        _refuse_archive(conn, path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(SCHEMA)
        conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, sqlite3.Error):
            raise LedgerError(path, f"cannot open it as a ledger: {exc}") from exc
        if isinstance(exc, OSError):
            raise LedgerError(
                path, f"cannot open it: {exc}", "check the path, that its directory exists and is writable, and its permissions"
            ) from exc
        raise
    return conn


def open_any_schema_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to a ledger file of any schema, unchecked: for `emgate ledger
    migrate`, which reads the schemas this version does not open (gateway/ledger/migrate.py).
    Raises LedgerError when the file is missing or not a database."""
    if not path.is_file():
        raise LedgerError(path, "no such ledger file", "check the path")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        raise LedgerError(path, f"cannot open it as a database: {exc}") from exc
    return conn


def backup_into(conn: sqlite3.Connection, dest: Path, pages: int) -> None:
    """Copy the database of `conn` into a new file `dest` with SQLite's online backup API, `pages`
    pages a step (a writer waits at most one step), as one self-contained file (no -wal beside it).
    Raises sqlite3.Error (callers turn it into LedgerError with `reading`)."""
    create_owner_only(dest)
    out = sqlite3.connect(dest)
    try:
        conn.backup(out, pages=pages)
        out.execute("PRAGMA journal_mode=DELETE")
    finally:
        out.close()


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone() is None:
        return  # a new file (or not a ledger at all: the first query on minutes says so)
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if row is not None and row[0] != SCHEMA_VERSION:
        raise LedgerError(
            path,
            f"a ledger of schema {row[0]}; this version reads and writes schema {SCHEMA_VERSION} (see gateway/ledger/format.py)",
            "migrate it into a new file with `emgate ledger migrate OLD NEW` (schema 2), or keep it with the version "
            "that wrote it and start a new ledger file",
        )


def _refuse_archive(conn: sqlite3.Connection, path: Path) -> None:
    """An archive file (`emgate ledger archive`, gateway/ledger/archive.py) is never written: its
    SHA-256 is recorded in the live ledger it came from."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone() is None:
        return
    row = conn.execute("SELECT value FROM meta WHERE key = 'archive'").fetchone()
    if row is not None:
        try:
            what = "rows {first_seq}..{last_seq} of {of}".format(**json.loads(row[0]))
        except (ValueError, TypeError, KeyError):
            what = "rows"
        raise LedgerError(
            path,
            f"an archive of ledger {what}: it is only read, never written (its SHA-256 is recorded in the live ledger)",
            "point the gateway at the live ledger; read the archive with `emgate ledger verify` or `emgate export --ledger`",
        )


@contextmanager
def reading(path: Path, doing: str) -> Iterator[None]:
    """Turn a sqlite3.Error raised inside into LedgerError: "ledger PATH: DOING failed: ...; check ..."."""
    try:
        yield
    except sqlite3.Error as exc:
        raise LedgerError(path, f"{doing} failed: {exc}") from exc


@contextmanager
def writing(path: Path, doing: str) -> Iterator[None]:
    """Turn a sqlite3.Error raised inside into a retryable SinkWriteError (after the caller's rollback)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise SinkWriteError(
            f"ledger {path}: {doing} failed: {exc}; check disk space, that the file system is writable and the file's permissions",
            retryable=True,
        ) from exc


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if any; a failing rollback (a lost disk) is left to the next write."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass
