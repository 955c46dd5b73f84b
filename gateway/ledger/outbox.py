"""The ledger as an outbox: delivery cursors, the rows after them, and the quarantine.

A sink (gateway/sinks/influx.py) delivers the ledger's rows in seq order and records how far it
got in table `cursors` (name -> seq), in the ledger file itself, so a delivery position survives
every crash together with the rows it points into. Rows a sink's peer refuses for good are
recorded in table `quarantine` with the peer's message and passed (`emgate ledger show
--quarantine` lists them). Alert events travel the same way through the alerts table
(gateway/ledger/alerts_table.py), after a cursor of their own.

What a sink reads. `rows` returns the rows after a cursor packed for the line-protocol encoder
(gateway/codec/lineproto.py, `MinutePointEncoder`), plus the seqs among them that a later row
supersedes, so the sink can skip those and still move its cursor past them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.ledger.alerts_table import ALERT_EVENTS_AFTER, AlertEventRow
from gateway.ledger.database import Connection, DatabaseError, OperationalError, reading, rollback, writing
from gateway.ledger.seals import MARK_SEAL, SEALS_EXIST, UNSENT_SEALS

_SET_CURSOR = "INSERT INTO cursors(name, seq) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET seq = excluded.seq"

# The rows after a cursor, packed: (seq, minute_start, activity, co2_kg, coverage, series_key,
# state_key) with series_key the JSON array [site, process, stream, scope, activity_unit] and
# state_key the JSON array [quality, flags, is a correction (0/1)] (MinutePointEncoder's input).
# SQLite builds the two keys because draining a day's backlog is mostly per-row overhead and
# the encoder caches a point's escaped text by key: sqlite3 building two strings a row instead of
# eight columns measured 2.0 against 3.7 us a row to fetch, and 4.5 against 6.0 us fetched and
# encoded (120,000 rows of bench.ledger_drain --quick), where the whole drain costs the gateway
# about 7 us a point. Parameters: after, [upto,] limit.
_OUTBOX_ROWS = (
    "SELECT seq, minute_start, activity, co2_kg, coverage, json_array(site, process, stream, scope, activity_unit), "
    "json_array(quality, flags, supersedes IS NOT NULL) FROM minutes WHERE seq > ?{upto} ORDER BY seq LIMIT ?"
)
# The seqs in [?, ?] that a row supersedes.
_SUPERSEDED_BETWEEN = "SELECT supersedes FROM minutes WHERE supersedes IS NOT NULL AND supersedes BETWEEN ? AND ?"
_QUARANTINE = "INSERT INTO quarantine(sink, first_seq, last_seq, rows, status, message, at) VALUES (?,?,?,?,?,?,?)"
QUARANTINE_FIELDS = ("id", "sink", "first_seq", "last_seq", "rows", "status", "message", "at")


class Outbox:
    """Delivery cursors and quarantine of one ledger file, on the chain writer's connection."""

    def __init__(self, db: Connection, path: Path, clock: Callable[[], float]) -> None:
        self._db, self.path, self._clock = db, path, clock

    def cursor(self, name: str) -> int:
        """The seq a sink has delivered up to (0 when it has delivered nothing)."""
        with reading(self.path, f"reading cursor {name!r}"):
            row = self._db.execute("SELECT seq FROM cursors WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def set_cursor(self, name: str, seq: int) -> None:
        self.set_cursors({name: seq})

    def set_cursors(self, values: dict[str, int]) -> None:
        """Move cursors together, in one transaction. Raises SinkWriteError (retryable)."""
        with writing(self.path, f"moving cursor(s) {sorted(values)}"):
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(_SET_CURSOR, list(values.items()))
                self._db.execute("COMMIT")
            except DatabaseError:
                rollback(self._db)
                raise

    def rows(self, after: int, limit: int, upto: int | None = None) -> tuple[list[tuple[Any, ...]], set[int]]:
        """Rows with seq in (after, upto], oldest first, packed for MinutePointEncoder (see
        _OUTBOX_ROWS), and the seqs among them that are superseded. Superseded rows are included
        so the cursor can pass them."""
        sql = _OUTBOX_ROWS.format(upto=" AND seq <= ?" if upto is not None else "")
        params = (after, upto, limit) if upto is not None else (after, limit)
        with reading(self.path, "reading the outbox"):
            rows = self._db.execute(sql, params).fetchall()
            if not rows:
                return rows, set()
            superseded = {s for (s,) in self._db.execute(_SUPERSEDED_BETWEEN, (rows[0][0], rows[-1][0]))}
        return rows, superseded

    def alert_events(self, after: int, limit: int) -> list[AlertEventRow]:
        """Alert events with seq > after, oldest first, at most `limit`; none when the ledger has
        no alerts table (alerts are not configured)."""
        with reading(self.path, "reading the alert events"):
            try:
                rows = self._db.execute(ALERT_EVENTS_AFTER, (after, limit)).fetchall()
            except OperationalError:  # no alerts table: alerts are not configured
                if self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'alerts'").fetchone() is None:
                    return []
                raise
        return [AlertEventRow(*row) for row in rows]

    def unsent_seals(self) -> list[tuple[str, str]]:
        """(day, JSON payload) of the daily seals InfluxDB has not acknowledged (gateway/ledger/seals.py)."""
        with reading(self.path, "reading the seals not yet in InfluxDB"):
            if self._db.execute(SEALS_EXIST).fetchone() is None:
                return []
            return [(str(d), str(p)) for d, p in self._db.execute(UNSENT_SEALS["influx"])]

    def mark_seals_sent(self, days: list[str]) -> None:
        """Record that InfluxDB acknowledged these days' seals."""
        with writing(self.path, "marking seals written to InfluxDB"):
            self._db.executemany(MARK_SEAL["influx"], [(self._clock(), d) for d in days])

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
        """Record rows a sink rejected for good (with the server's message) and move past them.
        Raises SinkWriteError (retryable)."""
        with writing(self.path, "recording a quarantine"):
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(_QUARANTINE, (sink, first_seq, last_seq, rows, status, message[:4000], float(self._clock())))
                if cursors:
                    self._db.executemany(_SET_CURSOR, list(cursors.items()))
                self._db.execute("COMMIT")
            except DatabaseError:
                rollback(self._db)
                raise

    def quarantined(self, sink: str | None = None) -> list[dict[str, object]]:
        """The quarantine's records (QUARANTINE_FIELDS), oldest first; of one sink if given."""
        sql = f"SELECT {', '.join(QUARANTINE_FIELDS)} FROM quarantine" + (" WHERE sink = ?" if sink else "") + " ORDER BY id"
        with reading(self.path, "reading the quarantine"):
            cur = self._db.execute(sql, (sink,) if sink else ())
            return [dict(zip(QUARANTINE_FIELDS, row, strict=True)) for row in cur]
