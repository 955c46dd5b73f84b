"""The checkpoint tables of the ledger file: the minute window's saved state and the stop mark.

What is saved and when, and how a restart uses it: gateway/ledger/checkpoint.py. This module
stores the bytes. `checkpoint` holds one full state (id 1); `checkpoint_delta` the readings
saved since it, in order; `meta` key `stopped_at` marks the last full state as taken at an
orderly stop. A full state replaces the deltas; any checkpoint written after a stop removes the
mark (a running gateway writes checkpoints, so a mark with later checkpoints is not the last
word).

Never ahead of the ledger. The chain writer puts the checkpoint that goes with a close in the
same transaction as the close's minutes (`put`, called inside its transaction). While the
writer holds results in memory because the disk refuses writes, a checkpoint saved on its own
would be newer than the ledger's last row, and a crash would then skip those minutes instead of
recomputing them: `save` and `mark_stopped` refuse meanwhile (the `held` callable says so).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from gateway.ledger.database import Connection, DatabaseError, reading, rollback

log = logging.getLogger(__name__)

# A gateway running again writes checkpoints: the mark of the last orderly stop goes with the first.
_UNMARK_STOPPED = "DELETE FROM meta WHERE key = 'stopped_at'"
_MARK_STOPPED = "INSERT INTO meta(key, value) VALUES ('stopped_at', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
_PUT = (
    "INSERT INTO checkpoint(id, saved_at, state) VALUES (1, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET saved_at = excluded.saved_at, state = excluded.state"
)
_PUT_DELTA = "INSERT INTO checkpoint_delta(saved_at, state) VALUES (?, ?)"


class _FailureCount(Protocol):
    write_failures: int


class CheckpointTable:
    """The window's saved state in the ledger file. Not thread-safe: one writer, called from one task.

    Args:
        db: the ledger's writable connection (shared with the chain writer).
        path: the ledger file, for messages.
        clock: the gateway's clock (saved_at, stopped_at).
        counters: where a failed save is counted (the ledger's counters).
        held: whether the chain writer holds results in memory (then nothing is saved).
    """

    def __init__(
        self,
        db: Connection,
        path: Path,
        clock: Callable[[], float],
        counters: _FailureCount,
        held: Callable[[], bool],
    ) -> None:
        self._db, self.path, self._clock, self._counters, self._held = db, path, clock, counters, held

    def put(self, state: bytes) -> None:
        """Replace the full state and drop its deltas and the stop mark, inside the caller's transaction."""
        self._db.execute("DELETE FROM checkpoint_delta")
        self._db.execute(_UNMARK_STOPPED)
        self._db.execute(_PUT, (float(self._clock()), state))

    def save(self, state: bytes, *, delta: bool = False) -> bool:
        """Store the window's in-progress state on its own (between closes). False if not stored.

        A full state replaces the checkpoint and its deltas; a `delta` (readings since the last
        save) is added to them. Skipped while results wait in memory (module docstring).
        """
        if self._held():
            return False
        try:
            self._db.execute("BEGIN IMMEDIATE")
            if delta:
                self._db.execute(_PUT_DELTA, (float(self._clock()), state))
                self._db.execute(_UNMARK_STOPPED)
            else:
                self.put(state)
            self._db.execute("COMMIT")
        except DatabaseError as exc:
            rollback(self._db)
            self._counters.write_failures += 1
            log.debug("ledger %s: checkpoint not saved: %s", self.path, exc)
            return False
        return True

    def mark_stopped(self, state: bytes) -> bool:
        """Store the window's state at an orderly stop, with the mark that says so (meta
        `stopped_at`), in one transaction. The next start resumes from it without reporting a
        crash (gateway/ledger/checkpoint.py). False if not stored (results still wait for the
        disk, or the write failed)."""
        if self._held():
            return False
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self.put(state)
            self._db.execute(_MARK_STOPPED, (repr(float(self._clock())),))
            self._db.execute("COMMIT")
        except DatabaseError as exc:
            rollback(self._db)
            self._counters.write_failures += 1
            log.warning("ledger %s: final checkpoint not saved: %s", self.path, exc)
            return False
        return True

    def stopped_at(self) -> float | None:
        """When the gateway last stopped in order, if no checkpoint was written since (`mark_stopped`)."""
        with reading(self.path, "reading the stop mark"):
            row = self._db.execute("SELECT value FROM meta WHERE key = 'stopped_at'").fetchone()
        return None if row is None else float(row[0])

    def load(self) -> tuple[float, bytes] | None:
        """(saved_at, state) of the last full checkpoint, or None."""
        with reading(self.path, "reading the checkpoint"):
            row = self._db.execute("SELECT saved_at, state FROM checkpoint WHERE id = 1").fetchone()
        return (float(row[0]), bytes(row[1])) if row else None

    def load_deltas(self) -> list[tuple[float, bytes]]:
        """(saved_at, readings) saved since the last full checkpoint, oldest first."""
        with reading(self.path, "reading the checkpoint's deltas"):
            cur = self._db.execute("SELECT saved_at, state FROM checkpoint_delta ORDER BY n")
            return [(float(t), bytes(b)) for t, b in cur]
