"""Daily seals of the ledger's head, and checking a ledger against the seals a witness kept.

The hash chain shows a changed row only to someone who knows a hash from before the change:
whoever can write the file can change rows and compute the chain again with this package's own
functions, and `ledger verify` then passes. So once a day the gateway seals its head (the
`seals` table: the site day that ended, the head's seq and hash, when) and hands the seal to
witnesses outside the box: published retained over MQTT (gateway/sinks/alerts_mqtt.py) and
written to InfluxDB (gateway/sinks/influx.py); every export manifest records the latest seal its
rows are under. `check_witness` then compares a ledger with the seals a witness kept (`emgate
ledger verify --witness FILE`): a rewritten chain no longer has the witnessed hash at the
witnessed seq, and the first day that no longer matches is named. Rows after the last witnessed
seal are not yet covered by any witness; the report says how many.

The table is the seals' outbox too: `mqtt_at` and `influx_at` stay NULL until the broker's
PUBACK or InfluxDB's 204, so a seal made while a witness is away is handed over later.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.core.errors import SinkWriteError
from gateway.ledger.database import Connection, DatabaseError, open_ledger_db, reading, rollback, writing
from gateway.ledger.errors import LedgerError

SEALS_SCHEMA = """
CREATE TABLE IF NOT EXISTS seals (
    day TEXT PRIMARY KEY,
    head_seq INTEGER NOT NULL,
    head_hash TEXT NOT NULL,
    sealed_at REAL NOT NULL,
    payload TEXT NOT NULL,
    mqtt_at REAL,
    influx_at REAL
);
"""
SEALS_EXIST = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'seals'"
_INSERT = "INSERT OR IGNORE INTO seals (day, head_seq, head_hash, sealed_at, payload) VALUES (?,?,?,?,?)"
_LAST = "SELECT day, head_seq, head_hash, sealed_at, payload FROM seals ORDER BY day DESC LIMIT 1"
_ALL = "SELECT payload FROM seals ORDER BY day"
UNSENT_SEALS = {"mqtt": "SELECT day, payload FROM seals WHERE mqtt_at IS NULL ORDER BY day", "influx": "SELECT day, payload FROM seals WHERE influx_at IS NULL ORDER BY day"}
MARK_SEAL = {"mqtt": "UPDATE seals SET mqtt_at = ? WHERE day = ?", "influx": "UPDATE seals SET influx_at = ? WHERE day = ?"}
_LATEST_UP_TO = "SELECT payload FROM seals WHERE head_seq <= ? ORDER BY head_seq DESC LIMIT 1"
_HASH_AT = "SELECT hash FROM minutes WHERE seq = ?"
_HEAD = "SELECT seq FROM minutes ORDER BY seq DESC LIMIT 1"


@dataclass(frozen=True)
class Seal:
    site: str
    day: str  # YYYY-MM-DD, the site day that ended
    head_seq: int
    head_hash: str
    sealed_at: str  # ISO 8601 with the site's offset
    sealed_at_s: float

    def to_json(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> Seal:
        return cls(str(d["site"]), str(d["day"]), int(d["head_seq"]), str(d["head_hash"]), str(d["sealed_at"]), float(d["sealed_at_s"]))


def make_seal(site: str, day: str, head_seq: int, head_hash: str, at_s: float, tz: str) -> Seal:
    return Seal(site, day, head_seq, head_hash, datetime.fromtimestamp(at_s, ZoneInfo(tz)).isoformat(timespec="seconds"), at_s)


class SealStore:
    """The seals table of a ledger file: one writer (the gateway), one thread at a time.

    Raises SinkWriteError (not retryable) when the file cannot be opened as a ledger.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = open_ledger_db(path, busy_timeout_s=10.0)
            with writing(path, "creating the seals table"):
                self._db.executescript(SEALS_SCHEMA)
        except LedgerError as exc:
            raise SinkWriteError(f"seal store: {exc}", retryable=False) from exc

    def close(self) -> None:
        self._db.close()

    def last(self) -> Seal | None:
        with reading(self.path, "reading the last seal"):
            row = self._db.execute(_LAST).fetchone()
        return None if row is None else Seal.from_mapping(json.loads(row[4]))

    def add(self, seal: Seal) -> bool:
        """Store a seal (once per day); returns whether it was new. Raises SinkWriteError (retryable)."""
        with writing(self.path, "storing a seal"):
            try:
                before = self._db.total_changes
                self._db.execute(_INSERT, (seal.day, seal.head_seq, seal.head_hash, seal.sealed_at_s, seal.to_json()))
            except DatabaseError:
                rollback(self._db)
                raise
        return self._db.total_changes > before

    def unsent(self, witness: str) -> list[tuple[str, str]]:
        """(day, JSON payload) of the seals `witness` ("mqtt" or "influx") has not acknowledged."""
        with reading(self.path, f"reading the seals not yet sent to {witness}"):
            return [(str(d), str(p)) for d, p in self._db.execute(UNSENT_SEALS[witness])]

    def mark_sent(self, witness: str, day: str, at_s: float) -> None:
        with writing(self.path, f"marking a seal sent to {witness}"):
            self._db.execute(MARK_SEAL[witness], (at_s, day))


def seals_of(db: Connection, path: Path) -> list[Seal]:
    """Every seal of the ledger, oldest first ([] for a ledger without the table)."""
    with reading(path, "reading the seals"):
        if db.execute(SEALS_EXIST).fetchone() is None:
            return []
        return [Seal.from_mapping(json.loads(p)) for (p,) in db.execute(_ALL)]


def latest_seal_up_to(path: Path, head_seq: int) -> Seal | None:
    """The latest seal at or before row `head_seq` (the export manifest's), or None."""
    db = open_ledger_db(path, readonly=True)
    try:
        with reading(path, "reading the seals"):
            if db.execute(SEALS_EXIST).fetchone() is None:
                return None
            row = db.execute(_LATEST_UP_TO, (head_seq,)).fetchone()
    finally:
        db.close()
    return None if row is None else Seal.from_mapping(json.loads(row[0]))


@dataclass(frozen=True)
class WitnessReport:
    ok: bool
    checked: int  # witnessed seals compared
    first_bad: Seal | None = None
    problem: str = ""
    last_witnessed: Seal | None = None
    rows_after: int = 0  # rows after the last witnessed seal: no witness covers them yet
    elsewhere: int = 0  # seals of rows this file does not hold: archived (`emgate ledger archive`), or after an archive's end


def read_witness_file(path: Path) -> list[Seal]:
    """Seals as a witness kept them: JSON lines (one seal object per line, as published on
    `<prefix>/<site>/seal`), e.g. `mosquitto_sub -t emgate/works/seal -F %p >> seals.jsonl`.
    Raises ValueError naming file:line for a line that is not a seal."""
    seals: list[Seal] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            seals.append(Seal.from_mapping(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: not a seal ({type(exc).__name__}: {exc}); each line is one seal's JSON") from None
    return seals


def check_witness(path: Path, witnessed: Iterable[Seal], site: str | None = None) -> WitnessReport:
    """Compare the ledger at `path` with witnessed seals (module docstring). Raises LedgerError."""
    seals = sorted({(s.head_seq, s.day): s for s in witnessed}.values(), key=lambda s: (s.head_seq, s.day))
    db = open_ledger_db(path, readonly=True)
    try:
        with reading(path, "comparing it with the witnessed seals"):
            head = db.execute(_HEAD).fetchone()
            last_seq = int(head[0]) if head else 0
            # Rows archived out of this file (meta `archived`), and for an archive file (meta
            # `archive`) the rows after its end, are checked against the file that holds them.
            meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('archived', 'archive')").fetchall())
            base = int(json.loads(meta["archived"])[-1]["last_seq"]) if meta.get("archived") else 0
            end = int(json.loads(meta["archive"])["last_seq"]) if meta.get("archive") else None
            checked = elsewhere = 0
            for seal in seals:
                if site is not None and seal.site != site:
                    return WitnessReport(False, checked, seal, f"the seal of {seal.day} is of site {seal.site!r}, this ledger is {site!r}")
                if seal.head_seq <= base or (end is not None and seal.head_seq > end):
                    elsewhere += 1
                    continue
                row = db.execute(_HASH_AT, (seal.head_seq,)).fetchone()
                checked += 1
                if row is None:
                    return WitnessReport(
                        False, checked, seal, f"day {seal.day}: the witnessed row {seal.head_seq} is not in the ledger (it ends at row {last_seq}): cut back"
                    )
                if str(row[0]) != seal.head_hash:
                    return WitnessReport(
                        False,
                        checked,
                        seal,
                        f"day {seal.day}: row {seal.head_seq} has hash {row[0]}, the witness saw {seal.head_hash}: "
                        f"the ledger was rewritten at or before row {seal.head_seq}",
                    )
    finally:
        db.close()
    inside = [s for s in seals if base < s.head_seq and (end is None or s.head_seq <= end)]
    last = inside[-1] if inside else None
    return WitnessReport(
        True, checked, last_witnessed=last, rows_after=last_seq - (last.head_seq if last else base), elsewhere=elsewhere
    )
