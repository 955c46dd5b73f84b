"""Checking a ledger file's hash chain, read-only, for `emgate ledger verify` and auditors.

The walk recomputes every row's hash from its stored fields in seq order and stops at the first
row that breaks one of these rules, naming it:

- seqs run 1, 2, 3, ... without a gap (a gap is a deleted row);
- each row's hash is SHA-256 over the previous row's hash and its canonical encoding (else it
  was edited, or a row before it was inserted, deleted or moved: the hash covers the previous
  one, so the first row after the change breaks);
- a correction supersedes an earlier row of the same minute, process and stream;
- the head recorded in `meta` is the last row (else rows were cut off the end).

Speed. The walk reads only the hashed columns, in large batches, and rebuilds the canonical
bytes with one join, one struct pack and one SHA-256 per row (join also refuses a text column
holding anything but TEXT, such as a BLOB spelling the same bytes). Corrections, rare, are
checked with a lookup of the row they supersede instead of keeping every row's key in memory.
"""

from __future__ import annotations

import sqlite3
import struct
from dataclasses import dataclass
from pathlib import Path

from gateway.sinks.ledger_format import (
    _NUMBERS,
    SEP,
    TEXT_FIELDS,
    _sha256,
    open_ledger_db,
)

# One row is (the struct's nine numbers, the ten text parts, digest): the walk packs row[:9],
# joins row[9:19] and compares row[19]. SQLite supplies supersedes or 0 and the presence bits;
# ifnull(reason, '') keeps a BLOB reason a BLOB, which join refuses.
_WALK_SQL = (
    "SELECT seq, minute_start, activity, co2_kg, ef_kg_per_unit, coverage, recorded_at, ifnull(supersedes, 0), "
    "(supersedes IS NOT NULL) | ((reason IS NOT NULL) << 1), "
    f"{', '.join(TEXT_FIELDS)}, ifnull(reason, ''), digest FROM minutes ORDER BY seq"
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


class _Broken(Exception):
    def __init__(self, seq: int, problem: str) -> None:
        self.seq, self.problem = seq, problem


def _walk(db: sqlite3.Connection, expect_head: str | None) -> VerifyReport:
    superseded: set[int] = set()
    rows, prev_hash, found, broken = _check_rows(db, expect_head, superseded)
    if broken is not None:
        return VerifyReport(
            False,
            rows,
            rows,
            prev_hash,
            corrections=len(superseded),
            bad_seq=broken.seq,
            problem=broken.problem,
            expected_head_found=found,
        )
    meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('head_seq', 'head_hash')").fetchall())
    if meta and (int(meta.get("head_seq", -1)) != rows or meta.get("head_hash") != prev_hash):
        return VerifyReport(
            False,
            rows,
            rows,
            prev_hash,
            corrections=len(superseded),
            bad_seq=rows + 1,
            problem=f"the ledger recorded head row {meta.get('head_seq')} but its last row is {rows}: "
            f"row(s) after {rows} were removed",
            expected_head_found=found,
        )
    # Every correction names a distinct earlier row (checked in the walk), so the current view
    # is the rows nobody supersedes: no second pass over the table.
    return VerifyReport(
        True,
        rows,
        rows,
        prev_hash,
        current_rows=rows - len(superseded),
        corrections=len(superseded),
        expected_head_found=found,
    )


def _check_rows(
    db: sqlite3.Connection, expect_head: str | None, superseded: set[int]
) -> tuple[int, str, bool | None, _Broken | None]:
    """The hot loop: (rows checked good, their head hash, expect_head seen, the first problem)."""
    pack, sha, join = _NUMBERS.pack, _sha256, SEP.join
    prev, n, found = bytes(32), 0, None if expect_head is None else False
    try:
        expected = bytes.fromhex(expect_head) if expect_head is not None else None
    except ValueError:
        expected = None  # not a hash at all: never found
    cur = db.execute(_WALK_SQL)
    cur.arraysize = 4096
    try:
        while rows := cur.fetchmany():
            for row in rows:
                n += 1
                if row[0] != n:
                    _seq_problem(row[0], n)
                try:
                    h = sha(prev + join(row[9:19]).encode() + pack(*row[:9])).digest()
                except (TypeError, struct.error) as exc:
                    raise _Broken(n, f"row {n} ({_where(db, n)}): a field cannot be read ({exc}): edited") from None
                if h != row[19]:
                    raise _Broken(
                        n,
                        f"row {n} ({_where(db, n)}): contents do not match its hash: edited, "
                        "or a row before it was inserted, deleted or moved",
                    )
                if row[8] & 1:
                    _check_correction(db, n, row[7], superseded)
                prev = row[19]
                if prev == expected:
                    found = True
    except _Broken as broken:
        return n - 1, prev.hex(), found, broken
    return n, prev.hex(), found, None


def _seq_problem(seq: object, expected: int) -> None:
    if isinstance(seq, int) and seq > expected:
        raise _Broken(expected, f"row {expected} is missing (seq jumps from {expected - 1} to {seq}): deleted")
    raise _Broken(seq, f"row {seq} is out of order (expected seq {expected})")  # type: ignore[arg-type]


def _check_correction(db: sqlite3.Connection, seq: int, supersedes: object, superseded: set[int]) -> None:
    key = "SELECT minute_start, process, stream FROM minutes WHERE seq = ?"
    mine = db.execute(key, (seq,)).fetchone()
    theirs = db.execute(key, (supersedes,)).fetchone() if isinstance(supersedes, int) else None
    if not (isinstance(supersedes, int) and 0 < supersedes < seq) or theirs != mine or supersedes in superseded:
        raise _Broken(
            seq,
            f"row {seq} ({_where(db, seq)}): supersedes row {supersedes}, which is not an earlier "
            "row of the same minute, process and stream (or is superseded twice)",
        )
    superseded.add(supersedes)


def _where(db: sqlite3.Connection, seq: int) -> str:
    """Process/stream and minute of row `seq`, for messages."""
    row = db.execute("SELECT minute_start, process, stream FROM minutes WHERE seq = ?", (seq,)).fetchone()
    if row is None:
        return "?"
    try:
        from datetime import UTC, datetime

        when = datetime.fromtimestamp(float(row[0]), UTC).strftime("%Y-%m-%dT%H:%MZ")
    except (TypeError, ValueError, OverflowError):
        when = repr(row[0])
    return f"{row[1]}/{row[2]} {when}"
