"""The `alerts` table in the ledger database: the event log and the MQTT outbox in one.

Every event is stored once (unique event_id) before anyone publishes it; the MQTT sink
publishes rows with published_at NULL in seq order and marks them after the broker's PUBACK.
A broker or gateway restart therefore neither loses an event (it stays unpublished) nor
publishes one twice unless a PUBACK was lost in flight, and then the consumer sees the same
event_id twice. The active set after a restart is the last event of every alert not cleared.

This module opens its own connection to the ledger file (SQLite WAL allows it) and never
touches the ledger's `minutes` table except to read year-to-date sums of its current view (rows
no correction supersedes) at startup.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from gateway.alerts.model import Alert
from gateway.core.errors import SinkWriteError

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


# The ledger's current view: rows no correction supersedes (an original, or the latest correction).
CURRENT = "NOT EXISTS (SELECT 1 FROM minutes c WHERE c.supersedes = m.seq)"


def ensure_alerts_table(conn: sqlite3.Connection) -> None:
    """Create the alerts table and its indexes if missing (idempotent)."""
    conn.executescript(ALERTS_SCHEMA)


class AlertStore:
    """Events and outbox on a sqlite file (normally the ledger's). One writer, one thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            ensure_alerts_table(self._db)
        except (sqlite3.Error, OSError) as exc:
            raise SinkWriteError(
                f"alert store {path}: cannot open: {exc}; check the directory exists and is writable",
                retryable=False,
            ) from exc

    def close(self) -> None:
        self._db.close()

    def add(self, events: list[Alert]) -> int:
        """Store events not stored yet; returns how many were new."""
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
        try:
            before = self._db.total_changes
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT OR IGNORE INTO alerts (event_id, alert_id, kind, severity, state, at, at_s, process, "
                "message, details, payload) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise SinkWriteError(
                f"alert store {self.path}: insert failed: {exc}; check disk space", retryable=True
            ) from exc
        return self._db.total_changes - before

    def unpublished(self, limit: int = 100) -> list[tuple[int, str]]:
        """(seq, JSON payload) of events not yet acknowledged by the broker, oldest first."""
        cur = self._db.execute(
            "SELECT seq, payload FROM alerts WHERE published_at IS NULL ORDER BY seq LIMIT ?", (limit,)
        )
        return [(int(s), str(p)) for s, p in cur]

    def mark_published(self, seq: int, at_s: float) -> None:
        self._db.execute("UPDATE alerts SET published_at = ? WHERE seq = ?", (at_s, seq))

    def active(self) -> list[Alert]:
        """The last event of every alert whose last event is not a clear."""
        cur = self._db.execute(
            "SELECT a.payload FROM alerts a "
            "JOIN (SELECT alert_id, MAX(seq) AS seq FROM alerts GROUP BY alert_id) m "
            "ON a.seq = m.seq WHERE a.state != 'cleared' ORDER BY a.alert_id"
        )
        return [Alert.from_json(p) for (p,) in cur]

    def events(self) -> list[Alert]:
        return [Alert.from_json(p) for (p,) in self._db.execute("SELECT payload FROM alerts ORDER BY seq")]

    # --- reads of the ledger's minutes, for the budget after a restart -------------------------

    def ledger_sums(self, since_s: float, until_s: float, scopes: tuple[str, ...]) -> dict[str, float]:
        """CO2 (kg) per process of original ledger rows with since_s <= minute_start < until_s."""
        if not self._has_minutes():
            return {}
        marks = ",".join("?" * len(scopes))
        cur = self._db.execute(
            f"SELECT process, SUM(co2_kg) FROM minutes m WHERE {CURRENT} AND minute_start >= ? "
            f"AND minute_start < ? AND scope IN ({marks}) GROUP BY process",
            (since_s, until_s, *scopes),
        )
        return {str(p): float(v or 0.0) for p, v in cur}

    def ledger_production_t(self, since_s: float, until_s: float, process: str, stream: str) -> float:
        """Sum of a stream's activity (t of product) over the range."""
        if not self._has_minutes():
            return 0.0
        row = self._db.execute(
            f"SELECT SUM(activity) FROM minutes m WHERE {CURRENT} AND minute_start >= ? "
            "AND minute_start < ? AND process = ? AND stream = ?",
            (since_s, until_s, process, stream),
        ).fetchone()
        return float(row[0] or 0.0)

    def ledger_minutes(
        self, since_s: float, until_s: float, scopes: tuple[str, ...], production: tuple[str, str] | None
    ) -> list[tuple[float, float, float]]:
        """(minute_start, co2_kg in scope, production activity) per minute in the range, in order."""
        if not self._has_minutes():
            return []
        marks = ",".join("?" * len(scopes))
        prod_p, prod_s = production if production else ("", "")
        cur = self._db.execute(
            f"SELECT minute_start, SUM(CASE WHEN scope IN ({marks}) THEN co2_kg ELSE 0 END), "
            f"SUM(CASE WHEN process = ? AND stream = ? THEN activity ELSE 0 END) FROM minutes m "
            f"WHERE {CURRENT} AND minute_start >= ? AND minute_start < ? GROUP BY minute_start "
            f"ORDER BY minute_start",
            (*scopes, prod_p, prod_s, since_s, until_s),
        )
        return [(float(m), float(c or 0.0), float(p or 0.0)) for m, c, p in cur]

    def ledger_first_minute(self, since_s: float, until_s: float) -> float | None:
        if not self._has_minutes():
            return None
        row = self._db.execute(
            f"SELECT MIN(minute_start) FROM minutes m WHERE {CURRENT} AND minute_start >= ? "
            "AND minute_start < ?",
            (since_s, until_s),
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def _has_minutes(self) -> bool:
        return (
            self._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='minutes'").fetchone()
            is not None
        )
