"""Evidence records in the ledger: lab results (kind "lab") and the copies of their reports.

Table `evidence`, created on first use so that older ledgers still open. Like the minutes it is
append-only (triggers refuse UPDATE and DELETE) and SHA-256 chained on its own: row n's hash is
SHA-256(hash of row n-1 as 32 bytes + canonical bytes of row n), the first row chained on
GENESIS_HASH. The canonical bytes are, joined by U+001F and UTF-8 encoded: seq, kind,
record_id, recorded_at (repr of the float) and the record, a JSON object with sorted keys and
no spaces, stored exactly as hashed.

The evidence store is a folder beside the ledger, `<ledger>.evidence/` (owner-only, like the
ledger): each report file is kept once, named by its SHA-256 and its original suffix. A record
names its copy (`stored_as`) and its SHA-256 (`report_sha256`); `verify_evidence` walks the chain
and re-hashes every copy.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.ledger.database import Connection, open_ledger_db, reading, rollback, writing
from gateway.ledger.errors import LedgerError
from gateway.ledger.format import GENESIS_HASH, SEP, chain_hash

EVIDENCE_SCHEMA = """
CREATE TABLE IF NOT EXISTS evidence (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    record_id TEXT NOT NULL,
    record TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    hash TEXT NOT NULL,
    UNIQUE (kind, record_id)
);
CREATE TRIGGER IF NOT EXISTS evidence_no_update BEFORE UPDATE ON evidence
    BEGIN SELECT RAISE(ABORT, 'evidence records are never updated; import a superseding record instead'); END;
CREATE TRIGGER IF NOT EXISTS evidence_no_delete BEFORE DELETE ON evidence
    BEGIN SELECT RAISE(ABORT, 'evidence records are never deleted; import a superseding record instead'); END;
"""
_EXISTS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'evidence'"
_HEAD = "SELECT seq, hash FROM evidence ORDER BY seq DESC LIMIT 1"
_ALL = "SELECT seq, kind, record_id, record, recorded_at, hash FROM evidence ORDER BY seq"
_INSERT = "INSERT INTO evidence (seq, kind, record_id, record, recorded_at, hash) VALUES (?,?,?,?,?,?)"


def canonical_record(record: Mapping[str, Any]) -> str:
    """The record as the ledger stores and hashes it: JSON, sorted keys, no spaces."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def evidence_payload(seq: int, kind: str, record_id: str, recorded_at: float, record_text: str) -> bytes:
    """The bytes an evidence row's hash covers after the previous hash (module docstring)."""
    return SEP.join((str(seq), kind, record_id, repr(float(recorded_at)), record_text)).encode()


def evidence_dir(ledger_path: Path) -> Path:
    """The ledger's evidence store: `<ledger>.evidence/` beside it."""
    return ledger_path.with_name(ledger_path.name + ".evidence")


@dataclass(frozen=True)
class EvidenceRow:
    """One stored evidence record."""

    seq: int
    kind: str
    record_id: str
    record: dict[str, Any]
    recorded_at: float
    hash: str


@dataclass(frozen=True)
class EvidenceReport:
    """Outcome of `verify_evidence`; when not ok, `problems` say which record and what."""

    rows: int
    head_hash: str
    files: int
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


class EvidenceStore:
    """The ledger's evidence table and its folder of report copies.

    `readonly` opens an existing ledger without creating anything (an older ledger without the
    table reads as empty).
    """

    def __init__(self, ledger_path: Path, *, readonly: bool = False) -> None:
        self.path = ledger_path
        self.folder = evidence_dir(ledger_path)
        self._readonly = readonly
        self._db: Connection = open_ledger_db(ledger_path, readonly=readonly)
        if not readonly:
            with reading(ledger_path, "creating the evidence table"):
                self._db.executescript(EVIDENCE_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EvidenceStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _has_table(self) -> bool:
        return self._db.execute(_EXISTS).fetchone() is not None

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last record; (0, GENESIS_HASH) when there is none. Cheap: one indexed row."""
        with reading(self.path, "reading the evidence head"):
            if not self._has_table():
                return 0, GENESIS_HASH
            row = self._db.execute(_HEAD).fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)

    def rows(self, kind: str | None = None) -> list[EvidenceRow]:
        """Every record (of `kind`), oldest first."""
        with reading(self.path, "reading the evidence records"):
            if not self._has_table():
                return []
            raw = self._db.execute(_ALL).fetchall()
        out = [EvidenceRow(int(r[0]), str(r[1]), str(r[2]), json.loads(r[3]), float(r[4]), str(r[5])) for r in raw]
        return [r for r in out if kind is None or r.kind == kind]

    def lab_records(self) -> list[dict[str, Any]]:
        """The lab records, oldest first."""
        return [r.record for r in self.rows("lab")]

    def append(self, kind: str, records: Iterable[tuple[str, Mapping[str, Any]]], recorded_at: float | None = None) -> list[int]:
        """Append (record_id, record) pairs of `kind`, chained, in one transaction; returns their seqs.

        Raises SinkWriteError when the ledger refuses the write (nothing is written then).
        """
        if self._readonly:
            raise LedgerError(self.path, "opened read-only; cannot append evidence")
        at = time.time() if recorded_at is None else float(recorded_at)
        db = self._db
        seqs: list[int] = []
        with writing(self.path, "appending evidence records"):
            try:
                db.execute("BEGIN IMMEDIATE")
                row = db.execute(_HEAD).fetchone()
                seq, prev = (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)
                for record_id, record in records:
                    seq += 1
                    text = canonical_record(record)
                    prev = chain_hash(prev, evidence_payload(seq, kind, record_id, at, text))
                    db.execute(_INSERT, (seq, kind, record_id, text, at, prev))
                    seqs.append(seq)
                db.execute("COMMIT")
            except BaseException:
                rollback(db)
                raise
        return seqs

    def keep_copy(self, source: Path, sha256: str) -> tuple[str, bool]:
        """Copy `source` into the store as `<sha256><suffix>` (owner-only); returns (name, created).

        A copy already there (the same content) is kept as it is.
        """
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = sha256 + source.suffix.lower()
        target = self.folder / name
        if target.exists():
            return name, False
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return name, True

    def remove_copies(self, names: Iterable[str]) -> None:
        """Remove copies this import created (after a failed append)."""
        for name in names:
            (self.folder / name).unlink(missing_ok=True)


def verify_evidence(ledger_path: Path) -> EvidenceReport:
    """Walk the evidence chain and re-hash every report copy it names.

    Raises LedgerError when the file cannot be read as a ledger.
    """
    import hashlib

    problems: list[str] = []
    store = EvidenceStore(ledger_path, readonly=True)
    try:
        with reading(ledger_path, "verifying the evidence chain"):
            raw = store._db.execute(_ALL).fetchall() if store._has_table() else []
    finally:
        store.close()
    prev, files = GENESIS_HASH, 0
    for n, (seq, kind, record_id, text, recorded_at, stored_hash) in enumerate(raw, start=1):
        if seq != n:
            problems.append(f"evidence row {seq}: expected seq {n}: a record was deleted or inserted")
            break
        expected = chain_hash(prev, evidence_payload(int(seq), str(kind), str(record_id), float(recorded_at), str(text)))
        if expected != stored_hash:
            problems.append(f"evidence row {seq} ({kind} {record_id}): hash mismatch: the record was changed after it was stored")
            break
        prev = str(stored_hash)
        try:
            record = json.loads(text)
        except ValueError:
            problems.append(f"evidence row {seq} ({kind} {record_id}): not a JSON record")
            continue
        name, sha = record.get("stored_as"), record.get("report_sha256")
        if not name or not sha:
            continue
        copy = evidence_dir(ledger_path) / str(name)
        files += 1
        try:
            digest = hashlib.sha256(copy.read_bytes()).hexdigest()
        except OSError as exc:
            problems.append(f"evidence row {seq} ({kind} {record_id}): report copy {copy} cannot be read: {exc.strerror}")
            continue
        if digest != sha:
            problems.append(
                f"evidence row {seq} ({kind} {record_id}): report copy {copy} has SHA-256 {digest}, "
                f"the record says {sha}: the copy was changed"
            )
    return EvidenceReport(len(raw), prev, files, tuple(problems))
