"""The `exports` table in the ledger database: which month was exported, as of which ledger row.

`emgate export` records each export it completes: the month, the ledger head it read the month
as of, the SHA-256 of its deposit.json, the folder and when. The deposit
alert (gateway/alerts/deposit.py) reads it to tell a month that was exported after its last
change from one that was never exported, or has changed since (a late lab result restates
minutes: their correction rows come after the export's head).

The table is a log of what was done with the ledger, not accounting data: it is not chained and
not in the export. Like the other tables it is append-only.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from gateway.ledger.database import Connection, open_ledger_db, reading, rollback, writing

EXPORTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS exports (
    seq INTEGER PRIMARY KEY,
    month TEXT NOT NULL,
    head_seq INTEGER NOT NULL,
    deposit_sha256 TEXT NOT NULL,
    out_dir TEXT NOT NULL,
    exported_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS exports_by_month ON exports(month, seq);
CREATE TRIGGER IF NOT EXISTS exports_no_update BEFORE UPDATE ON exports
    BEGIN SELECT RAISE(ABORT, 'the export log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS exports_no_delete BEFORE DELETE ON exports
    BEGIN SELECT RAISE(ABORT, 'the export log is append-only'); END;
"""
_EXISTS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'exports'"
_INSERT = (
    "INSERT INTO exports (month, head_seq, deposit_sha256, out_dir, exported_at) VALUES (?,?,?,?,?)"
)
_LATEST = (
    "SELECT month, head_seq, deposit_sha256, out_dir, exported_at FROM exports "
    "WHERE month = ? ORDER BY seq DESC LIMIT 1"
)


class ExportRecord(NamedTuple):
    month: str  # YYYY-MM, the site's calendar month
    head_seq: int  # the ledger row the month was read as of
    deposit_sha256: str
    out_dir: str
    exported_at: float  # epoch s


def record_export(ledger_path: Path, record: ExportRecord) -> None:
    """Append one export to the log (creating the table in an older ledger).

    Raises SinkWriteError when the ledger refuses the write, LedgerError when it cannot be opened.
    """
    db = open_ledger_db(ledger_path)
    try:
        with writing(ledger_path, "recording the export"):
            try:
                db.executescript(EXPORTS_SCHEMA)
                db.execute(_INSERT, tuple(record))  # one statement: its own transaction
            except BaseException:
                rollback(db)
                raise
    finally:
        db.close()


def latest_export(db: Connection, ledger_path: Path, month: str) -> ExportRecord | None:
    """The month's last recorded export, or None (never exported, or a ledger without the log)."""
    with reading(ledger_path, "reading the export log"):
        if db.execute(_EXISTS).fetchone() is None:
            return None
        row = db.execute(_LATEST, (month,)).fetchone()
    return None if row is None else ExportRecord(str(row[0]), int(row[1]), str(row[2]), str(row[3]), float(row[4]))

