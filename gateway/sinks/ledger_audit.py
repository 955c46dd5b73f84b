"""Checking a ledger file's hash chain, read-only, for `emgate ledger verify` and auditors.

The walk recomputes every row's hash from its stored fields in seq order and stops at the first
row that breaks one of these rules, naming it:

- seqs run 1, 2, 3, ... without a gap (a gap is a deleted row);
- each row's prev_hash is the hash of the row before it (else rows were inserted, removed or
  reordered before it);
- each row's hash is SHA-256 over prev_hash and its canonical encoding (else it was edited);
- a correction supersedes an earlier row of the same minute, process and stream;
- the head recorded in `meta` is the last row (else rows were cut off the end).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from gateway.sinks.ledger_format import (
    FIELDS,
    GENESIS_HASH,
    ROW_COLUMNS,
    canonical_row,
    chain_hash,
    normalized_values,
    open_ledger_db,
)


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of `verify_ledger`. When `ok` is false, `bad_seq` and `problem` say where and what."""

    ok: bool
    rows: int  # rows checked good (all rows when ok)
    head_seq: int
    head_hash: str
    current_rows: int = 0
    corrections: int = 0
    bad_seq: int | None = None
    problem: str = ""
    expected_head_found: bool | None = None


def verify_ledger(path: Path, *, expect_head: str | None = None) -> VerifyReport:
    """Walk the chain of the ledger at `path`; see the module docstring for the rules.

    `expect_head`: a head hash recorded earlier; the report says whether it is still in the
    chain (a rewritten or truncated chain loses it). Raises OSError/sqlite3.Error when the file
    cannot be read as a ledger.
    """
    db = open_ledger_db(path, readonly=True)
    try:
        return _walk(db, expect_head)
    finally:
        db.close()


def _walk(db: sqlite3.Connection, expect_head: str | None) -> VerifyReport:
    n_fields = len(FIELDS)
    prev_hash, expected_seq, corrections = GENESIS_HASH, 1, 0
    keys: dict[int, tuple[object, ...]] = {}
    found = None if expect_head is None else False
    cur = db.execute(f"SELECT {', '.join(ROW_COLUMNS)} FROM minutes ORDER BY seq")

    def bad(seq: int, problem: str) -> VerifyReport:
        return VerifyReport(
            False,
            expected_seq - 1,
            expected_seq - 1,
            prev_hash,
            corrections=corrections,
            bad_seq=seq,
            problem=problem,
            expected_head_found=found,
        )

    for raw in cur:
        seq = raw[0]
        values = raw[1 : n_fields + 1]
        supersedes, reason, recorded_at, stored_prev, stored_hash = raw[n_fields + 1 :]
        if seq != expected_seq:
            if isinstance(seq, int) and seq > expected_seq:
                return bad(
                    expected_seq,
                    f"row {expected_seq} is missing (seq jumps from {expected_seq - 1} to {seq}): deleted",
                )
            return bad(seq, f"row {seq} is out of order (expected seq {expected_seq})")
        key = (values[0], values[2], values[3])
        if stored_prev != prev_hash:
            return bad(
                seq,
                f"row {seq} ({_where(values)}): prev_hash does not match row {seq - 1}'s hash: "
                "a row before it was inserted, deleted or moved",
            )
        try:
            payload = canonical_row(seq, normalized_values(values), supersedes, reason, float(recorded_at))
        except (TypeError, ValueError) as exc:
            return bad(seq, f"row {seq} ({_where(values)}): a field cannot be read ({exc}): edited")
        if chain_hash(prev_hash, payload) != stored_hash:
            return bad(seq, f"row {seq} ({_where(values)}): contents do not match its hash: edited")
        if supersedes is not None:
            corrections += 1
            if not (isinstance(supersedes, int) and 0 < supersedes < seq) or keys.get(supersedes) != key:
                return bad(
                    seq,
                    f"row {seq} ({_where(values)}): supersedes row {supersedes}, which is not an earlier "
                    "row of the same minute, process and stream",
                )
        keys[seq] = key
        prev_hash = stored_hash
        if expect_head is not None and stored_hash == expect_head:
            found = True
        expected_seq += 1
    rows = expected_seq - 1
    meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('head_seq', 'head_hash')").fetchall())
    if meta and (int(meta.get("head_seq", -1)) != rows or meta.get("head_hash") != prev_hash):
        return VerifyReport(
            False,
            rows,
            rows,
            prev_hash,
            corrections=corrections,
            bad_seq=rows + 1,
            problem=f"the ledger recorded head row {meta.get('head_seq')} but its last row is {rows}: "
            f"row(s) after {rows} were removed",
            expected_head_found=found,
        )
    current = db.execute(
        "SELECT count(*) FROM minutes m WHERE NOT EXISTS (SELECT 1 FROM minutes c WHERE c.supersedes = m.seq)"
    ).fetchone()[0]
    return VerifyReport(
        True,
        rows,
        rows,
        prev_hash,
        current_rows=int(current),
        corrections=corrections,
        expected_head_found=found,
    )


def _where(values: tuple[object, ...] | list[object]) -> str:
    try:
        from datetime import UTC, datetime

        when = datetime.fromtimestamp(float(values[0]), UTC).strftime("%Y-%m-%dT%H:%MZ")  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        when = repr(values[0])
    return f"{values[2]}/{values[3]} {when}"
