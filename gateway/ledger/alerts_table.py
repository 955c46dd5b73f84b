"""The `alerts` table in the ledger database: the event log and the MQTT outbox in one.

Every event is stored once (unique event_id) before anyone publishes it; the MQTT sink
publishes rows with published_at NULL in seq order and marks them after the broker's PUBACK.
A broker or gateway restart therefore neither loses an event (it stays unpublished) nor
publishes one twice unless a PUBACK was lost in flight, and then the consumer sees the same
event_id twice. The active set after a restart is the last event of every alert not cleared.

The table's queries are written here, once: the store's own, and `ALERT_EVENTS_AFTER`, which
the InfluxDB sink reads through the ledger's outbox (gateway/ledger/outbox.py). `AlertStore`
opens the ledger file the one way every ledger connection is opened (`open_ledger_db`: WAL,
synchronous=FULL, the schema checked) and never writes the ledger's other tables; it reads the
year-to-date sums of the current view (gateway/ledger/queries.py) for the budget after a restart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from gateway.alerts.model import Alert
from gateway.core.errors import SinkWriteError
from gateway.ledger.database import Connection, DatabaseError, open_ledger_db, reading, rollback, writing
from gateway.ledger.errors import LedgerError
from gateway.ledger.reader import LedgerReader

ALERTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    alert_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,
    at TEXT NOT NULL,
    at_s REAL NOT NULL,
    process TEXT,
    message TEXT NOT NULL,
    details TEXT NOT NULL,
    payload TEXT NOT NULL,
    published_at REAL
);
CREATE INDEX IF NOT EXISTS alerts_by_alert ON alerts(alert_id, seq);
CREATE INDEX IF NOT EXISTS alerts_outbox ON alerts(seq) WHERE published_at IS NULL;
"""

_INSERT = (
    "INSERT OR IGNORE INTO alerts (event_id, alert_id, kind, severity, state, at, at_s, process, "
    "message, details, payload) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
_UNPUBLISHED = "SELECT seq, payload FROM alerts WHERE published_at IS NULL ORDER BY seq LIMIT ?"
_MARK_PUBLISHED = "UPDATE alerts SET published_at = ? WHERE seq = ?"
# The last event of every alert, when it is not a clear.
_ACTIVE = (
    "SELECT a.payload FROM alerts a "
    "JOIN (SELECT alert_id, MAX(seq) AS seq FROM alerts GROUP BY alert_id) m "
    "ON a.seq = m.seq WHERE a.state != 'cleared' ORDER BY a.alert_id"
)
_EVENTS = "SELECT payload FROM alerts ORDER BY seq"
#: Events with seq > ?, oldest first, at most ? of them: the fields of AlertEventRow.
ALERT_EVENTS_AFTER = (
    "SELECT a.seq, a.alert_id, a.kind, a.severity, a.state, a.at_s, a.process, a.message, a.payload "
    "FROM alerts a WHERE a.seq > ? ORDER BY a.seq LIMIT ?"
)


class AlertEventRow(NamedTuple):
    """One stored alert event, as a sink past its cursor reads it (`ALERT_EVENTS_AFTER`)."""

    seq: int
    alert_id: str
    kind: str
    severity: str
    state: str
    at_s: float
    process: str | None
    message: str
    payload: str  # the event's JSON (Alert.to_json)


def ensure_alerts_table(conn: Connection) -> None:
    """Create the alerts table and its indexes if missing (idempotent)."""
    conn.executescript(ALERTS_SCHEMA)


class AlertStore:
    """Events and outbox in a ledger file. One writer, one thread.

    Raises SinkWriteError (not retryable) when the file cannot be opened as a ledger.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # a longer wait than the chain writer's: a restatement may hold the write lock a while
            self._db = open_ledger_db(path, busy_timeout_s=10.0)
        except LedgerError as exc:
            raise SinkWriteError(f"alert store: {exc}", retryable=False) from exc
        try:
            ensure_alerts_table(self._db)
        except DatabaseError as exc:
            self._db.close()
            raise SinkWriteError(
                f"alert store {path}: cannot create the alerts table: {exc}; check the directory exists and is writable",
                retryable=False,
            ) from exc
        #: the ledger's minutes on the same connection, for the budget after a restart
        self.minutes = LedgerReader(self._db, path)

    def close(self) -> None:
        self._db.close()

    def add(self, events: list[Alert]) -> int:
        """Store events not stored yet; returns how many were new. Raises SinkWriteError (retryable)."""
        if not events:
            return 0
        rows = [
            (
                a.event_id,
                a.id,
                a.kind,
                a.severity,
                a.state,
                a.at,
                a.at_s,
                a.process,
                a.message,
                json.dumps(a.details, separators=(",", ":")),
                a.to_json(),
            )
            for a in events
        ]
        with writing(self.path, "storing alert events"):
            try:
                before = self._db.total_changes
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(_INSERT, rows)
                self._db.execute("COMMIT")
            except DatabaseError:
                rollback(self._db)
                raise
        return self._db.total_changes - before

    def unpublished(self, limit: int = 100) -> list[tuple[int, str]]:
        """(seq, JSON payload) of events not yet acknowledged by the broker, oldest first."""
        with reading(self.path, "reading unpublished alert events"):
            return [(int(s), str(p)) for s, p in self._db.execute(_UNPUBLISHED, (limit,))]

    def mark_published(self, seq: int, at_s: float) -> None:
        """Record that the broker acknowledged event `seq`. Raises SinkWriteError (retryable)."""
        with writing(self.path, "marking an alert event published"):
            self._db.execute(_MARK_PUBLISHED, (at_s, seq))

    def active(self) -> list[Alert]:
        """The last event of every alert whose last event is not a clear."""
        with reading(self.path, "reading the active alerts"):
            return [Alert.from_json(p) for (p,) in self._db.execute(_ACTIVE)]

    def events(self) -> list[Alert]:
        """Every stored event, oldest first."""
        with reading(self.path, "reading the alert events"):
            return [Alert.from_json(p) for (p,) in self._db.execute(_EVENTS)]

    # --- the ledger's minutes, for the budget after a restart (self.minutes) -------------------
    # Kept under the names gateway/alerts/budget_tracker.py calls.

    def ledger_sums(self, since_s: float, until_s: float, scopes: tuple[str, ...]) -> dict[str, float]:
        """CO2 (kg) per process of current ledger rows with since_s <= minute_start < until_s."""
        return self.minutes.co2_by_process_between(since_s, until_s, scopes)

    def ledger_production_t(self, since_s: float, until_s: float, process: str, stream: str) -> float:
        """Sum of a stream's activity (t of product) over the range."""
        return self.minutes.activity_of_stream_between(since_s, until_s, process, stream)

    def ledger_minutes(
        self, since_s: float, until_s: float, scopes: tuple[str, ...], production: tuple[str, str] | None
    ) -> list[tuple[float, float, float]]:
        """(minute_start, co2_kg in scope, production activity) per minute in the range, in order."""
        return self.minutes.co2_and_production_by_minute(since_s, until_s, scopes, production)

    def ledger_first_minute(self, since_s: float, until_s: float) -> float | None:
        return self.minutes.first_minute_between(since_s, until_s)
