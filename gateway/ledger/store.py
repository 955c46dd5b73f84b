"""The local ledger: every closed minute result, once, in order, hash-chained.

Storage. SQLite, WAL, synchronous=FULL (why: gateway/ledger/format.py, with the schema
and the canonical encoding). The in-progress minute's checkpoint lives in the same file and is
written in the same transaction as the minute it closes (see gateway/ledger/checkpoint.py), so the two
cannot disagree. A replay writing a new file uses synchronous=OFF instead, and one fsync at the
end (`Ledger.bulk_load`).

Chain. Row n's hash is SHA-256 over row n-1's hash and the canonical encoding of row n
(`canonical_row`: its seq, every field, what it supersedes, why, when it was recorded). Editing,
deleting, inserting or reordering rows breaks the chain at the first row touched; `verify`
(gateway/ledger/audit.py) walks it. The head (seq, hash) is also kept in `meta`, so cutting
rows off the end is caught too, unless the head is rewritten as well: for that, an auditor keeps
the head hash `emgate ledger verify` prints and later checks it with `--expect-head`.

Corrections. Rows are never updated or deleted (triggers refuse it). A late sample, a corrected
factor or a restated month is a new row that names the row it supersedes and a reason. The
current view (export, status, InfluxDB) is every row nobody supersedes; the history is every
row. A row can be superseded once, so the corrections of one minute form a chain.

Idempotence. A unique index on (minute_start, process, stream) over original rows (in schema 3
`minutes_key`, which also serves time-range reads) makes an append idempotent: a minute written
twice (a restart replaying its checkpoint) is stored once.

Bulk appends. `append` takes any number of results and writes them in one transaction: a
replay or a drained backlog passes a day or a year at once. When no stored original row falls
in the results' time range (the usual case: new minutes) they are chained and inserted with no
per-row lookup, and the unique index is the duplicate check; if SQLite refuses the batch (a
duplicate inside it, NaN, a wrong type), it is rolled back and written again the careful way,
row by row checked and de-duplicated, which names a bad value.

Site and lock. `Ledger(path, site=...)` refuses a ledger of another site and records the site
in a new one (gateway/ledger/format.py, "Site"); `exclusive=True`, for a gateway, holds
`<ledger>.lock` until close() (gateway/ledger/lock.py: one gateway per ledger).

Disk failures. If a write fails (disk full, file system remounted read-only), `append` keeps the
results in memory, in order, flags them `ledger_delayed`, and writes them before anything newer
once the disk takes writes again. The checkpoint is not advanced meanwhile, so a crash during
the failure restarts from the last checkpoint and the lost minutes are recomputed or marked,
not skipped. The in-memory backlog is bounded (`max_pending`): past it, append raises, the
gateway stops, and the restart recovers from the checkpoint. Rows are never dropped.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import operator
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gateway.core.errors import SinkWriteError
from gateway.core.model import MinuteResult
from gateway.ledger.format import (  # re-exported: the ledger's public names
    _CURRENT,
    DELAYED_FLAG,
    FIELDS,
    GENESIS_HASH,
    INSERT_CHUNK,
    INSERT_COLUMNS,
    ORIGINAL_COLUMNS,
    REAL_FIELDS,
    ROW_COLUMNS,
    SCHEMA_VERSION,
    LedgerFormatError,
    LedgerRow,
    LedgerSiteError,
    SiteRecord,
    _get_fields,
    _row,
    canonical_row,
    chain_checked,
    chain_hash,
    chain_originals,
    check_site,
    claim_site,
    create_owner_only,
    normalized_values,
    open_ledger_db,
    result_values,
    site_record,
)
from gateway.ledger.lock import LedgerInUseError, LedgerLock

__all__ = [
    "DELAYED_FLAG",
    "FIELDS",
    "GENESIS_HASH",
    "REAL_FIELDS",
    "ROW_COLUMNS",
    "SCHEMA_VERSION",
    "Ledger",
    "LedgerCounters",
    "LedgerFormatError",
    "LedgerInUseError",
    "LedgerRow",
    "LedgerSiteError",
    "SiteRecord",
    "canonical_row",
    "chain_hash",
    "create_owner_only",
    "normalized_values",
    "open_ledger_db",
    "read_site_record",
    "result_values",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_NCOL = len(INSERT_COLUMNS)
_INSERT_ROW = f"INSERT INTO minutes ({', '.join(INSERT_COLUMNS)}) VALUES ({','.join('?' * _NCOL)})"
_NORIG = len(ORIGINAL_COLUMNS)


@functools.lru_cache(maxsize=INSERT_CHUNK)
def _insert_originals_sql(rows: int) -> str:
    """INSERT of `rows` original rows (ORIGINAL_COLUMNS each), recorded_at bound once as ?1."""
    values = ("(" + ",".join(f"?{2 + i * _NORIG + j}" for j in range(_NORIG)) + ",?1)" for i in range(rows))
    return f"INSERT INTO minutes ({', '.join(ORIGINAL_COLUMNS)}, recorded_at) VALUES {','.join(values)}"


# A gateway running again writes checkpoints: the mark of the last orderly stop goes with the first.
_UNMARK_STOPPED = "DELETE FROM meta WHERE key = 'stopped_at'"
_minute_start = operator.attrgetter("minute_start")
# SQLite errors that mean "these rows cannot be stored as given", not "the disk refused":
# a unique or NOT NULL constraint, a value of a type it cannot bind.
_INPUT_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError)


class _BatchRefused(Exception):
    """The bulk insert was refused for its content (rolled back); write it the careful way."""


class _HeadMoved(Exception):
    """Another process (e.g. `emgate ledger restate`) appended since this Ledger last wrote.

    The rows were chained on a head that is no longer the last row; the transaction was rolled
    back and the head re-read, so the caller builds the chain again on the real head.
    """


_HEAD_MOVED_RETRIES = 5


@dataclass
class LedgerCounters:
    rows_appended: int = 0
    corrections: int = 0
    write_failures: int = 0
    pending: int = 0  # results held in memory while the disk refuses writes


class Ledger:
    """Append-only store of minute results. Not thread-safe: one writer, called from one task.

    `site`: the `[site] name` of the caller; a ledger of another site raises LedgerSiteError, and
    a writable ledger that has no site yet records it. `exclusive`: hold the ledger's lock until
    close() (a gateway); raises LedgerInUseError while another process holds it.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_pending: int = 2_000_000,
        clock: Callable[[], float] = time.time,
        readonly: bool = False,
        site: str | None = None,
        exclusive: bool = False,
    ) -> None:
        self.path = path
        self.max_pending = max_pending
        self.counters = LedgerCounters()
        self._clock = clock
        self._pending: list[MinuteResult] = []
        self._pending_checkpoint: bytes | None = None
        self._failing = False
        self._bulk_load = False
        self._lock = LedgerLock(path) if exclusive else None
        db: sqlite3.Connection | None = None
        try:
            if self._lock is not None:
                self._lock.acquire()  # first: the site is claimed by the one writer that may
            db = open_ledger_db(path, readonly=readonly)
            if site is not None:
                (check_site if readonly else claim_site)(db, path, site)
            row = db.execute("SELECT seq, hash FROM minutes ORDER BY seq DESC LIMIT 1").fetchone()
        except (sqlite3.Error, OSError) as exc:
            self._abandon(db)
            raise SinkWriteError(
                f"ledger {path}: cannot open: {exc}; check the path, that its directory exists and is writable, and its permissions",
                retryable=False,
            ) from exc
        except BaseException:  # LedgerSiteError, LedgerInUseError
            self._abandon(db)
            raise
        self._db = db
        self.head_seq, self.head_hash = (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)

    def _abandon(self, db: sqlite3.Connection | None) -> None:
        if db is not None:
            db.close()
        if self._lock is not None:
            self._lock.release()

    def site_record(self) -> SiteRecord:
        """Whose ledger this is (for `emgate ledger show`); see gateway/ledger/format.py, "Site"."""
        return site_record(self._db)

    def close(self) -> None:
        """Close the file and release the lock; after bulk_load(), first make every row durable
        (raises SinkWriteError if it cannot)."""
        try:
            self._close()
        finally:
            if self._lock is not None:
                self._lock.release()

    def _close(self) -> None:
        if not self._bulk_load:
            self._db.close()
            return
        # At synchronous=OFF SQLite fsynced nothing, and a checkpoint with nothing left to copy
        # fsyncs nothing either, so: copy the whole WAL into the file, close, fsync the file.
        try:
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            self._db.close()
            if busy:
                raise SinkWriteError(
                    f"ledger {self.path}: another connection kept the WAL from being copied into the file; "
                    "close every other reader or writer of it first",
                    retryable=False,
                )
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except (sqlite3.Error, OSError) as exc:
            raise SinkWriteError(
                f"ledger {self.path}: cannot make the bulk load durable: {exc}; check the disk", retryable=False
            ) from exc

    def bulk_load(self) -> None:
        """Commit without waiting for the disk from now on; close() then waits for it once.

        Only for a new ledger written in one go and given its name after close(), as `emgate
        replay` does (it writes ledger.sqlite.partial and renames it). With synchronous=OFF a
        commit skips its fsyncs (tens of ms each, one commit per replayed day), and WAL still
        makes every commit atomic: after a crash of the process the file holds every committed
        append and `emgate ledger verify` passes it. A power cut may corrupt it, which is why it
        must not carry the ledger's name before close() has made it durable. A live gateway
        never calls this: its commits must be on disk when append returns (see
        gateway/ledger/format.py).
        """
        self._db.execute("PRAGMA synchronous=OFF")
        self._bulk_load = True

    # -- writing ----------------------------------------------------------------------------
    def append(self, results: Iterable[MinuteResult], *, checkpoint: bytes | None = None) -> int:
        """Append results not already stored, in the order given; returns the rows written.

        `checkpoint` (the minute window's state after the close that produced `results`) is
        stored in the same transaction. If the disk refuses the write, the results wait in
        memory (flagged `ledger_delayed`) and go first at the next successful append; 0 is
        returned. Raises SinkWriteError only when that in-memory backlog exceeds max_pending.
        """
        results = list(results)
        if checkpoint is not None:
            self._pending_checkpoint = checkpoint
        if self._pending:
            self._pending.extend(dataclasses.replace(r, flags=_add_flag(r.flags, DELAYED_FLAG)) for r in results)
            results = self._pending
        if not results and self._pending_checkpoint is None:
            return 0
        try:
            written = self._retrying(lambda: self._write_originals(results, self._pending_checkpoint))
        except SinkWriteError as exc:
            self.counters.write_failures += 1
            if not self._failing:
                log.error("%s; %d result(s) held in memory until the disk takes writes again", exc, len(results))
                self._failing = True
            if results is not self._pending:
                self._pending = [dataclasses.replace(r, flags=_add_flag(r.flags, DELAYED_FLAG)) for r in results]
            self.counters.pending = len(self._pending)
            if len(self._pending) > self.max_pending:
                raise SinkWriteError(
                    f"ledger {self.path}: {len(self._pending)} result(s) waiting in memory, more than "
                    f"max_pending {self.max_pending}; stopping so the restart recovers from the checkpoint",
                    retryable=False,
                ) from exc
            return 0
        if self._failing:
            log.info("ledger %s: recovered; %d delayed result(s) written", self.path, len(results))
            self._failing = False
        self._pending, self._pending_checkpoint = [], None
        self.counters.pending = 0
        return written

    @property
    def pending(self) -> int:
        """Results waiting in memory for the disk (0 when healthy)."""
        return len(self._pending)

    def retry_pending(self) -> int:
        """Try again to write results held in memory; returns the rows written."""
        return self.append([]) if (self._pending or self._pending_checkpoint is not None) else 0

    def save_checkpoint(self, state: bytes, *, delta: bool = False) -> bool:
        """Store the window's in-progress state on its own (between closes). False if not stored.

        A full state replaces the checkpoint and its deltas; a `delta` (readings since the last
        save) is added to them. Skipped while results wait in memory: a checkpoint newer than
        the ledger's last row would make a crash skip those minutes instead of recomputing them.
        """
        if self._pending or self._pending_checkpoint is not None:
            return False
        try:
            self._db.execute("BEGIN IMMEDIATE")
            if delta:
                self._db.execute(
                    "INSERT INTO checkpoint_delta(saved_at, state) VALUES (?, ?)",
                    (float(self._clock()), state),
                )
                self._db.execute(_UNMARK_STOPPED)
            else:
                self._put_checkpoint(state)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            self.counters.write_failures += 1
            log.debug("ledger %s: checkpoint not saved: %s", self.path, exc)
            return False
        return True

    def mark_stopped(self, state: bytes) -> bool:
        """Store the window's state at an orderly stop, with the mark that says so (meta
        `stopped_at`), in one transaction. The next start resumes from it without reporting a
        crash (gateway/ledger/checkpoint.py); any later checkpoint removes the mark. False if not
        stored (results still wait for the disk, or the write failed)."""
        if self._pending or self._pending_checkpoint is not None:
            return False
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._put_checkpoint(state)
            self._db.execute(
                "INSERT INTO meta(key, value) VALUES ('stopped_at', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (repr(float(self._clock())),),
            )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            self.counters.write_failures += 1
            log.warning("ledger %s: final checkpoint not saved: %s", self.path, exc)
            return False
        return True

    def stopped_at(self) -> float | None:
        """When the gateway last stopped in order, if no checkpoint was written since (`mark_stopped`)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'stopped_at'").fetchone()
        return None if row is None else float(row[0])

    def load_checkpoint(self) -> tuple[float, bytes] | None:
        """(saved_at, state) of the last full checkpoint, or None."""
        row = self._db.execute("SELECT saved_at, state FROM checkpoint WHERE id = 1").fetchone()
        return (float(row[0]), bytes(row[1])) if row else None

    def load_checkpoint_deltas(self) -> list[tuple[float, bytes]]:
        """(saved_at, readings) saved since the last full checkpoint, oldest first."""
        return [(float(t), bytes(b)) for t, b in self._db.execute("SELECT saved_at, state FROM checkpoint_delta ORDER BY n")]

    def correct(self, corrections: Iterable[tuple[int, MinuteResult]], reason: str) -> list[int]:
        """Append corrections: (seq superseded, corrected result) pairs, one reason for all.

        The superseded row must exist, be current (not superseded already) and be for the same
        minute, process and stream. Returns the new rows' seqs. All or nothing.
        """
        corrections = list(corrections)
        return self._retrying(lambda: self._correct(corrections, reason))

    def _retrying(self, write: Callable[[], _T]) -> _T:
        """Run a write, again on the new head if another process appended meanwhile."""
        for _ in range(_HEAD_MOVED_RETRIES):
            try:
                return write()
            except _HeadMoved:
                log.info("ledger %s: another process appended rows; chaining on its new head %d", self.path, self.head_seq)
        raise SinkWriteError(
            f"ledger {self.path}: another process keeps appending rows; only one writer at a time is supported "
            "(stop the other writer, e.g. a running `emgate ledger restate`)",
            retryable=True,
        )

    def _correct(self, corrections: list[tuple[int, MinuteResult]], reason: str) -> list[int]:
        if not reason.strip():
            raise ValueError("a correction needs a reason (what changed and why)")
        if self._pending:
            raise SinkWriteError(
                f"ledger {self.path}: {len(self._pending)} result(s) still wait for the disk; correct after they are written",
                retryable=True,
            )
        targets: set[int] = set()
        found: dict[object, tuple[Any, ...]] = {}  # the targets that exist and are current, in chunks of 500
        seqs = [old for old, _ in corrections]
        for i in range(0, len(seqs), 500):
            part = seqs[i : i + 500]
            found.update(
                (row[0], row)
                for row in self._db.execute(
                    f"SELECT seq, minute_start, process, stream, site, scope, activity_unit FROM minutes m "
                    f"WHERE seq IN ({','.join('?' * len(part))}) AND {_CURRENT}",
                    part,
                )
            )
        for old_seq, new in corrections:
            row = found.get(old_seq)
            if row is None:
                raise ValueError(
                    f"ledger {self.path}: row {old_seq} does not exist or is already superseded; "
                    "correct the current row (see `emgate ledger show`)"
                )
            if (float(row[1]), row[2], row[3]) != new.key() or old_seq in targets:
                raise ValueError(
                    f"ledger {self.path}: row {old_seq} is {row[2]}/{row[3]} at {row[1]:.0f}, "
                    f"the correction is {new.process}/{new.stream} at {new.minute_start:.0f} (or repeats a row)"
                )
            # InfluxDB keys a point by these too (gateway/sinks/influx.py): a correction that changed
            # one would land beside the old point instead of overwriting it
            if (row[4], row[5], row[6]) != (new.site, new.scope, new.activity_unit):
                raise ValueError(
                    f"ledger {self.path}: row {old_seq} has site/scope/unit {row[4]}/{row[5]}/{row[6]}, the correction "
                    f"{new.site}/{new.scope}/{new.activity_unit}; a correction may change amounts, factors and flags only"
                )
            targets.add(old_seq)
        first = self.head_seq + 1
        flat, seq, head = chain_checked(
            [(_get_fields(new), old, reason) for old, new in corrections], self.head_seq, self.head_hash, self._clock()
        )
        self._insert(flat, seq, head, None)
        self.counters.corrections += seq - first + 1
        return list(range(first, seq + 1))

    def last_minute(self) -> float | None:
        """Start of the latest minute in the ledger, or None when it is empty."""
        row = self._db.execute("SELECT max(minute_start) FROM minutes").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def current_seq(self, minute_start: float, process: str, stream: str) -> int | None:
        """Seq of the current row for a minute, process and stream (for corrections)."""
        row = self._db.execute(
            f"SELECT seq FROM minutes m WHERE minute_start = ? AND process = ? AND stream = ? AND {_CURRENT}",
            (float(minute_start), process, stream),
        ).fetchone()
        return int(row[0]) if row else None

    def _write_originals(self, results: list[MinuteResult], checkpoint: bytes | None) -> int:
        if not results:
            self._insert([], self.head_seq, self.head_hash, checkpoint)
            return 0
        lo = float(min(map(_minute_start, results)))
        hi = float(max(map(_minute_start, results)))
        try:
            stored = self._db.execute(
                "SELECT 1 FROM minutes WHERE minute_start BETWEEN ? AND ? AND supersedes IS NULL LIMIT 1", (lo, hi)
            ).fetchone()
        except sqlite3.Error as exc:
            raise SinkWriteError(f"ledger {self.path}: read failed: {exc}; check the disk", retryable=True) from exc
        if stored is None:  # only new minutes: no per-row lookup; the unique index checks for repeats
            try:
                now = float(self._clock())
                flat, seq, head = chain_originals(results, self.head_seq, self.head_hash, now)
                self._insert(flat, seq, head, checkpoint, recorded_at=now)
            except (_BatchRefused, TypeError, ValueError, OverflowError):
                pass  # write it the careful way below, which names a bad value
            else:
                written = len(results)
                self.counters.rows_appended += written
                return written
        return self._write_checked(results, lo, hi, checkpoint)

    def _write_checked(self, results: list[MinuteResult], lo: float, hi: float, checkpoint: bytes | None) -> int:
        try:
            existing = set(
                self._db.execute(
                    "SELECT minute_start, process, stream FROM minutes WHERE supersedes IS NULL AND minute_start BETWEEN ? AND ?",
                    (lo, hi),
                )
            )
        except sqlite3.Error as exc:
            raise SinkWriteError(f"ledger {self.path}: read failed: {exc}; check the disk", retryable=True) from exc
        fresh: list[tuple[tuple[object, ...], None, None]] = []
        for r in results:
            k = (float(r.minute_start), r.process, r.stream)
            if k not in existing:
                existing.add(k)
                fresh.append((_get_fields(r), None, None))
        flat, seq, head = chain_checked(fresh, self.head_seq, self.head_hash, self._clock())
        self._insert(flat, seq, head, checkpoint)
        self.counters.rows_appended += len(fresh)
        return len(fresh)

    def _insert(
        self,
        flat: list[object],
        last_seq: int,
        last_hash: str,
        checkpoint: bytes | None,
        *,
        recorded_at: float | None = None,
    ) -> None:
        """Insert flattened rows and move the head, in one transaction.

        Rows are in INSERT_COLUMNS order (chain_checked), or with `recorded_at` given, original
        rows in ORIGINAL_COLUMNS order (chain_originals): then a constraint or binding error
        raises _BatchRefused (after the rollback) instead of SinkWriteError, so the caller can
        write them again the careful way.
        """
        if not flat and checkpoint is None:
            return
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            # The chain was built on self.head_*; another process may have appended since (the
            # write lock is ours from here on, so the check cannot race).
            row = db.execute("SELECT seq, hash FROM minutes ORDER BY seq DESC LIMIT 1").fetchone()
            actual = (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)
            if actual != (self.head_seq, self.head_hash):
                db.execute("ROLLBACK")
                self.head_seq, self.head_hash = actual
                raise _HeadMoved
            if flat and recorded_at is not None:
                step = INSERT_CHUNK * _NORIG
                whole = len(flat) - len(flat) % step
                sql, now = _insert_originals_sql(INSERT_CHUNK), [recorded_at]
                for i in range(0, whole, step):
                    db.execute(sql, now + flat[i : i + step])
                if whole < len(flat):
                    db.execute(_insert_originals_sql((len(flat) - whole) // _NORIG), now + flat[whole:])
            elif flat:
                db.executemany(_INSERT_ROW, [flat[i : i + _NCOL] for i in range(0, len(flat), _NCOL)])
            if flat:
                db.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [("head_seq", str(last_seq)), ("head_hash", last_hash)],
                )
            if checkpoint is not None:
                self._put_checkpoint(checkpoint)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            if recorded_at is not None and isinstance(exc, _INPUT_ERRORS):
                raise _BatchRefused(str(exc)) from exc
            raise SinkWriteError(
                f"ledger {self.path}: append failed: {exc}; check disk space, that the file system is "
                "writable and the file's permissions",
                retryable=True,
            ) from exc
        self.head_seq, self.head_hash = last_seq, last_hash

    def _put_checkpoint(self, state: bytes) -> None:
        self._db.execute("DELETE FROM checkpoint_delta")
        self._db.execute(_UNMARK_STOPPED)
        self._db.execute(
            "INSERT INTO checkpoint(id, saved_at, state) VALUES (1, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET saved_at = excluded.saved_at, state = excluded.state",
            (float(self._clock()), state),
        )

    def _rollback(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    # -- outbox cursors and quarantine --------------------------------------------------------
    def rows_after(
        self, seq: int, limit: int, *, upto: int | None = None, current_only: bool = False
    ) -> list[tuple[int, MinuteResult]]:
        """Rows with seq in (seq, upto], oldest first; `current_only` skips superseded rows."""
        where = "m.seq > ?" + (" AND m.seq <= ?" if upto is not None else "") + (f" AND {_CURRENT}" if current_only else "")
        params = (seq, upto, limit) if upto is not None else (seq, limit)
        cur = self._db.execute(
            f"SELECT m.seq, {', '.join('m.' + f for f in FIELDS)} FROM minutes m WHERE {where} ORDER BY m.seq LIMIT ?",
            params,
        )
        return [(row[0], MinuteResult(*row[1:])) for row in cur]

    @property
    def connection(self) -> sqlite3.Connection:
        """The ledger's database, for readers of its other tables (alerts); never write minutes through it."""
        return self._db

    def cursor(self, name: str) -> int:
        row = self._db.execute("SELECT seq FROM cursors WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def set_cursor(self, name: str, seq: int) -> None:
        self.set_cursors({name: seq})

    def set_cursors(self, values: dict[str, int]) -> None:
        """Move cursors together, in one transaction."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO cursors(name, seq) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET seq = excluded.seq",
                list(values.items()),
            )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise SinkWriteError(f"ledger {self.path}: cannot move cursor(s) {sorted(values)}: {exc}", retryable=True) from exc

    def outbox_rows(self, after: int, limit: int, upto: int | None = None) -> tuple[list[tuple[Any, ...]], set[int]]:
        """Rows for a sink with seq in (after, upto], oldest first, packed for encoding, and the
        seqs among them that are superseded.

        A packed row is (seq, minute_start, activity, co2_kg, coverage, series, strings) where
        `series` is the JSON array [site, process, stream, scope, activity_unit] and `strings`
        the JSON array [quality, flags, is a correction (0/1)], built by SQLite: draining a day's
        backlog is mostly per-row overhead, and two cached keys cost less than seven string
        objects. Superseded rows are included so the cursor can pass them.
        """
        where = "seq > ?" + (" AND seq <= ?" if upto is not None else "")
        params = (after, upto, limit) if upto is not None else (after, limit)
        rows = self._db.execute(
            "SELECT seq, minute_start, activity, co2_kg, coverage, json_array(site, process, stream, scope, activity_unit), "
            f"json_array(quality, flags, supersedes IS NOT NULL) FROM minutes WHERE {where} ORDER BY seq LIMIT ?",
            params,
        ).fetchall()
        if not rows:
            return rows, set()
        superseded = {
            s
            for (s,) in self._db.execute(
                "SELECT supersedes FROM minutes WHERE supersedes IS NOT NULL AND supersedes BETWEEN ? AND ?",
                (rows[0][0], rows[-1][0]),
            )
        }
        return rows, superseded

    def quarantine(
        self,
        sink: str,
        first_seq: int,
        last_seq: int,
        rows: int,
        status: int | None,
        message: str,
        cursors: dict[str, int] | None = None,
    ) -> None:
        """Record rows a sink rejected for good (with the server's message) and move past them."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO quarantine(sink, first_seq, last_seq, rows, status, message, at) VALUES (?,?,?,?,?,?,?)",
                (sink, first_seq, last_seq, rows, status, message[:4000], float(self._clock())),
            )
            if cursors:
                self._db.executemany(
                    "INSERT INTO cursors(name, seq) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET seq = excluded.seq",
                    list(cursors.items()),
                )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise SinkWriteError(f"ledger {self.path}: cannot record quarantine: {exc}", retryable=True) from exc

    def quarantined(self, sink: str | None = None) -> list[dict[str, object]]:
        cur = self._db.execute(
            "SELECT id, sink, first_seq, last_seq, rows, status, message, at FROM quarantine"
            + (" WHERE sink = ?" if sink else "")
            + " ORDER BY id",
            (sink,) if sink else (),
        )
        names = ("id", "sink", "first_seq", "last_seq", "rows", "status", "message", "at")
        return [dict(zip(names, row, strict=True)) for row in cur]

    # -- reading ----------------------------------------------------------------------------
    def results(self) -> Iterator[MinuteResult]:
        """The current view: every result nobody supersedes, in ledger order."""
        for _, r in self.current():
            yield r

    def current(
        self,
        *,
        from_s: float | None = None,
        to_s: float | None = None,
        process: str | None = None,
        by_minute: bool = False,
    ) -> Iterator[tuple[int, MinuteResult]]:
        """(seq, result) of the current view, minute_start in [from_s, to_s), in ledger order
        (or by minute, then ledger order, with `by_minute`)."""
        where, params = _filters(from_s, to_s, process)
        order = "m.minute_start, m.seq" if by_minute else "m.seq"
        sql = f"SELECT m.seq, {', '.join('m.' + f for f in FIELDS)} FROM minutes m WHERE {_CURRENT}{where} ORDER BY {order}"
        for row in self._db.execute(sql, params):
            yield row[0], MinuteResult(*row[1:])

    def history(
        self, *, from_s: float | None = None, to_s: float | None = None, process: str | None = None
    ) -> Iterator[LedgerRow]:
        """Every row, superseded or not, with its chain data, in ledger order."""
        where, params = _filters(from_s, to_s, process)
        sql = (
            f"SELECT {', '.join('m.' + c for c in ROW_COLUMNS)}, "
            f"ifnull((SELECT p.hash FROM minutes p WHERE p.seq = m.seq - 1), '{GENESIS_HASH}') "
            f"FROM minutes m WHERE 1=1{where} ORDER BY m.seq"
        )
        for raw in self._db.execute(sql, params):
            yield _row(raw)


def read_site_record(path: Path) -> SiteRecord:
    """Whose ledger the file at `path` is, read-only (`emgate ledger verify`). Raises OSError or
    sqlite3.Error when it cannot be read as a ledger."""
    db = open_ledger_db(path, readonly=True)
    try:
        return site_record(db)
    finally:
        db.close()


def _filters(from_s: float | None, to_s: float | None, process: str | None) -> tuple[str, tuple[object, ...]]:
    where, params = "", []
    if from_s is not None:
        where += " AND m.minute_start >= ?"
        params.append(float(from_s))
    if to_s is not None:
        where += " AND m.minute_start < ?"
        params.append(float(to_s))
    if process is not None:
        where += " AND m.process = ?"
        params.append(process)
    return where, tuple(params)


def _add_flag(flags: str, flag: str) -> str:
    parts = set(filter(None, flags.split(";")))
    parts.add(flag)
    return ";".join(sorted(parts))
