"""The local ledger: every closed minute result, once, in order, hash-chained.

`Ledger` is the open ledger file and its chain writer. It opens the file once (one connection,
the site check, the lock) and writes the minutes; the other tables of the file are reached
through the parts it builds on the same connection, one concept each:

- `ledger.checkpoints` (CheckpointTable, gateway/ledger/checkpoint_table.py): the window's
  saved state, written in the same transaction as the minutes a close appends;
- `ledger.outbox` (Outbox, gateway/ledger/outbox.py): delivery cursors, the rows after them,
  the quarantine;
- `ledger.reader` (LedgerReader, gateway/ledger/reader.py): the current view, the history, sums.

They share the one connection (and so the transaction an append opens) and the one lock, which
is why callers hold one Ledger rather than four objects: the pipeline opens the file once and
hands the sink the same handle.

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
in a new one (gateway/ledger/site.py); `exclusive=True`, for a gateway, holds
`<ledger>.lock` until close() (gateway/ledger/lock.py: one gateway per ledger).

Disk failures. If a write fails (disk full, file system remounted read-only), `append` keeps the
results in memory, in order, flags them `ledger_delayed`, and writes them before anything newer
once the disk takes writes again. The checkpoint is not advanced meanwhile, so a crash during
the failure restarts from the last checkpoint and the lost minutes are recomputed or marked,
not skipped. The in-memory backlog is bounded (`max_pending`): past it, append raises, the
gateway stops, and the restart recovers from the checkpoint. Rows are never dropped.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gateway.core.errors import SinkWriteError
from gateway.core.model import RESULT_FIELDS, MinuteResult, MinuteResults
from gateway.ledger import queries
from gateway.ledger.checkpoint_table import CheckpointTable
from gateway.ledger.database import INPUT_ERRORS, Connection, DatabaseError, open_ledger_db, rollback, writing
from gateway.ledger.errors import LedgerError
from gateway.ledger.format import (
    GENESIS_HASH,
    INSERT_CHUNK,
    INSERT_COLUMNS,
    ORIGINAL_COLUMNS,
    chain_checked,
    chain_originals,
    field_values,
)
from gateway.ledger.lock import LedgerLock
from gateway.ledger.outbox import Outbox
from gateway.ledger.reader import LedgerReader
from gateway.ledger.site import check_site, claim_site

log = logging.getLogger(__name__)
_T = TypeVar("_T")

DELAYED_FLAG = "ledger_delayed"  # a result the disk refused at first, written once it took writes again

_NCOL = len(INSERT_COLUMNS)
_INSERT_ROW = f"INSERT INTO minutes ({', '.join(INSERT_COLUMNS)}) VALUES ({','.join('?' * _NCOL)})"
_NORIG = len(ORIGINAL_COLUMNS)
_SET_HEAD = "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"


@functools.lru_cache(maxsize=INSERT_CHUNK)
def _insert_originals_sql(rows: int) -> str:
    """INSERT of `rows` original rows (ORIGINAL_COLUMNS each), recorded_at bound once as ?1."""
    values = ("(" + ",".join(f"?{2 + i * _NORIG + j}" for j in range(_NORIG)) + ",?1)" for i in range(rows))
    return f"INSERT INTO minutes ({', '.join(ORIGINAL_COLUMNS)}, recorded_at) VALUES {','.join(values)}"


_MINUTE_START, _PROCESS, _STREAM = (RESULT_FIELDS.index(f) for f in ("minute_start", "process", "stream"))


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
    """The open ledger file and its chain writer. Not thread-safe: one writer, called from one task.

    `site`: the `[site] name` of the caller; a ledger of another site raises LedgerSiteError, and
    a writable ledger that has no site yet records it. `exclusive`: hold the ledger's lock until
    close() (a gateway); raises LedgerInUseError while another process holds it. A file that
    cannot be opened as a ledger raises SinkWriteError (not retryable).
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
        self._pending = MinuteResults.empty()  # what the disk refused, flagged DELAYED_FLAG, in order
        self._pending_checkpoint: bytes | None = None
        self._failing = False
        self._bulk_load = False
        self._lock = LedgerLock(path) if exclusive else None
        db: Connection | None = None
        try:
            if self._lock is not None:
                self._lock.acquire()  # first: the site is claimed by the one writer that may
            db = open_ledger_db(path, readonly=readonly)
            if site is not None:
                (check_site if readonly else claim_site)(db, path, site)
            row = db.execute(queries.HEAD).fetchone()
        except LedgerError as exc:  # not a ledger, another schema, cannot be created
            self._abandon(db)
            raise SinkWriteError(str(exc), retryable=False) from exc
        except (DatabaseError, OSError) as exc:
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
        self.checkpoints = CheckpointTable(db, path, clock, self.counters, lambda: self.holding)
        self.outbox = Outbox(db, path, clock)
        self.reader = LedgerReader(db, path)

    def _abandon(self, db: Connection | None) -> None:
        if db is not None:
            db.close()
        if self._lock is not None:
            self._lock.release()

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
        except (DatabaseError, OSError) as exc:
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
    def append(self, results: MinuteResults, *, checkpoint: bytes | None = None) -> int:
        """Append results not already stored, in the order given; returns the rows written.

        `checkpoint` (the minute window's state after the close that produced `results`) is
        stored in the same transaction. If the disk refuses the write, the results wait in
        memory (flagged `ledger_delayed`) and go first at the next successful append; 0 is
        returned. Raises SinkWriteError only when that in-memory backlog exceeds max_pending.
        """
        if checkpoint is not None:
            self._pending_checkpoint = checkpoint
        if len(self._pending):
            results = self._pending = MinuteResults.concat([self._pending, results.with_flag(DELAYED_FLAG)])
        if not len(results) and self._pending_checkpoint is None:
            return 0
        try:
            written = self._retrying(lambda: self._write_originals(results, self._pending_checkpoint))
        except SinkWriteError as exc:
            self.counters.write_failures += 1
            if not self._failing:
                log.error("%s; %d result(s) held in memory until the disk takes writes again", exc, len(results))
                self._failing = True
            if results is not self._pending:
                self._pending = results.with_flag(DELAYED_FLAG)
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
        self._pending, self._pending_checkpoint = MinuteResults.empty(), None
        self.counters.pending = 0
        return written

    @property
    def pending(self) -> int:
        """Results waiting in memory for the disk (0 when healthy)."""
        return len(self._pending)

    def retry_pending(self) -> int:
        """Try again to write results held in memory; returns the rows written."""
        return self.append(MinuteResults.empty()) if (len(self._pending) or self._pending_checkpoint is not None) else 0

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
        if len(self._pending):
            raise SinkWriteError(
                f"ledger {self.path}: {len(self._pending)} result(s) still wait for the disk; correct after they are written",
                retryable=True,
            )
        targets: set[int] = set()
        found: dict[object, tuple[Any, ...]] = {}  # the targets that exist and are current, in chunks of 500
        seqs = [old for old, _ in corrections]
        with writing(self.path, "reading the rows to correct"):
            for i in range(0, len(seqs), 500):
                part = seqs[i : i + 500]
                found.update((row[0], row) for row in self._db.execute(queries.current_of_seqs_sql(len(part)), part))
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
            [(field_values(new), old, reason) for old, new in corrections], self.head_seq, self.head_hash, self._clock()
        )
        self._insert(flat, seq, head, None)
        self.counters.corrections += seq - first + 1
        return list(range(first, seq + 1))

    def _write_originals(self, results: MinuteResults, checkpoint: bytes | None) -> int:
        if not len(results):
            self._insert([], self.head_seq, self.head_hash, checkpoint)
            return 0
        lo, hi = float(results.minute_start.min()), float(results.minute_start.max())
        with writing(self.path, "reading the stored minutes"):
            stored = self._db.execute(queries.ANY_ORIGINAL_BETWEEN, (lo, hi)).fetchone()
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

    def _write_checked(self, results: MinuteResults, lo: float, hi: float, checkpoint: bytes | None) -> int:
        with writing(self.path, "reading the stored minutes"):
            existing = set(self._db.execute(queries.ORIGINAL_KEYS_BETWEEN, (lo, hi)))
        fresh: list[tuple[tuple[object, ...], None, None]] = []
        for values in zip(*results.columns(), strict=True):  # rows, in RESULT_FIELDS order
            k = (float(values[_MINUTE_START]), values[_PROCESS], values[_STREAM])
            if k not in existing:
                existing.add(k)
                fresh.append((values, None, None))
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
            row = db.execute(queries.HEAD).fetchone()
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
                db.executemany(_SET_HEAD, [("head_seq", str(last_seq)), ("head_hash", last_hash)])
            if checkpoint is not None:
                self.checkpoints.put(checkpoint)  # the window's state goes with the minutes it closed
            db.execute("COMMIT")
        except DatabaseError as exc:
            rollback(db)
            if recorded_at is not None and isinstance(exc, INPUT_ERRORS):
                raise _BatchRefused(str(exc)) from exc
            raise SinkWriteError(
                f"ledger {self.path}: append failed: {exc}; check disk space, that the file system is "
                "writable and the file's permissions",
                retryable=True,
            ) from exc
        self.head_seq, self.head_hash = last_seq, last_hash

    @property
    def holding(self) -> bool:
        """Whether results or a checkpoint wait in memory for the disk (then no checkpoint is
        saved on its own: gateway/ledger/checkpoint_table.py)."""
        return bool(len(self._pending)) or self._pending_checkpoint is not None
