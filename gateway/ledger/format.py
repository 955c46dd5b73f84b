"""The ledger's on-disk format: schema, canonical row encoding and the hash chain.

Storage. SQLite in WAL mode with synchronous=FULL. Live, an append commits one closed minute
(one transaction, one fsync of the WAL) per minute, so FULL costs about one fsync a minute, and
in exchange a power cut never loses a minute the ledger acknowledged. NORMAL would survive a
kill -9 just as well but may roll back the last commits after a power loss: minutes already
delivered to InfluxDB and shown to operators would vanish from the record of truth, and be
recomputed (differently, from an older checkpoint) after the restart.

Chain (schema 3). Row n's hash is SHA-256 over row n-1's hash (the 32 bytes) followed by the
canonical encoding of row n (`canonical_row`). It is stored as 32 bytes (`digest`); the column
`hash` is a virtual column showing it as 64 lowercase hex digits, which is what readers select
and what the API, `meta` and `emgate ledger verify` show. Row 1's previous hash is
GENESIS_HASH (32 zero bytes). The canonical encoding is two parts, so it can be parsed
back unambiguously from either end:

1. text, UTF-8: site, process, stream, scope, method, activity_unit, factor_id, quality, flags
   and reason ("" when NULL), joined by U+001F (unit separator). No field may contain U+001F
   (append refuses it), so the text always holds exactly nine separators.
2. 65 bytes, little-endian (struct "<q6dqB"): seq; minute_start, activity, co2_kg,
   ef_kg_per_unit, coverage, recorded_at as IEEE-754 doubles; supersedes (0 when NULL); and a
   presence byte: bit 0 set when supersedes is not NULL, bit 1 when reason is not NULL.

REAL fields are hashed as they read back from SQLite: as doubles, never -0.0 (SQLite stores it
as 0), and NaN is refused (SQLite would store NULL). So a re-read on any platform reproduces the
bytes. Schema 2 hashed compact JSON and stored prev_hash and hash as hex text in every row;
schema 3 drops prev_hash (it is the previous row's hash, which the hash covers), stores the hash
as bytes, and replaces the JSON with this encoding, which is several times cheaper to build and
to check. A ledger is about 40 % smaller on disk (174 bytes a row with its indexes, against 285).
The virtual column needs SQLite 3.31 or later (Debian 12 and the Docker image have 3.40).

Changing the format. A released ledger must open in the next version or be migrated by
`emgate ledger migrate` (gateway/ledger/migrate.py, which reads schema 2). Before changing this
encoding, the schema or the checkpoint, build a fixture with the last release's own code
(`scripts/make-ledger-fixture.sh REV NAME`, tests/fixtures/ledgers) so that
tests/integration/test_ledger_upgrade.py opens it with the new code.

Indexes. `minutes_key` is unique over (minute_start, process, stream, ifnull(supersedes, 0)):
for original rows (supersedes NULL) that is the "each minute, process and stream once" rule,
and since minute_start leads it, it also serves every time-range read (one index, not two).
`minutes_superseded` (unique, partial) keeps a row from being superseded twice and makes the
current view's NOT EXISTS probe an index lookup.

Layout. This module is the one definition of a row: FIELDS (a minute result's fields, in
column order), the columns around them, the canonical encoding and the columns the chain walk
reads (WALK_COLUMNS). The SQL of the writer, the readers and the audit is built from these
names, and the native walk (gateway/ledger/_walk.c) compiles against _walk_layout.h, which
scripts/gen_walk_layout.py generates from them (tests/unit/test_ledger_walk_layout.py fails
when the two disagree). The site a ledger belongs to: gateway/ledger/site.py; opening the
file: gateway/ledger/database.py.
"""

from __future__ import annotations

import hashlib
import operator
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gateway.core.model import STREAM_FIELDS, MinuteResult, MinuteResults

GENESIS_HASH = "0" * 64
SCHEMA_VERSION = "3"

FIELDS = (
    "minute_start",
    "site",
    "process",
    "stream",
    "scope",
    "method",
    "activity",
    "activity_unit",
    "co2_kg",
    "factor_id",
    "ef_kg_per_unit",
    "coverage",
    "quality",
    "flags",
)
REAL_FIELDS = frozenset(("minute_start", "activity", "co2_kg", "ef_kg_per_unit", "coverage"))
_REAL_INDEX = tuple(i for i, f in enumerate(FIELDS) if f in REAL_FIELDS)
TEXT_FIELDS = tuple(f for f in FIELDS if f not in REAL_FIELDS)
_TEXT_INDEX = tuple(i for i, f in enumerate(FIELDS) if f not in REAL_FIELDS)
ROW_COLUMNS = ("seq", *FIELDS, "supersedes", "reason", "recorded_at", "hash")  # what readers select
INSERT_COLUMNS = (*ROW_COLUMNS[:-1], "digest")  # what an append writes (hash is computed from digest)
SEP = "\x1f"  # joins the text fields in the canonical encoding; never inside a field
# The canonical encoding's numbers, in order (struct CANONICAL_NUMBERS): seq, the REAL fields and
# recorded_at as doubles, supersedes or 0, the presence bits. Its text: TEXT_FIELDS, then reason.
CANONICAL_DOUBLES = (*(f for f in FIELDS if f in REAL_FIELDS), "recorded_at")
PRESENCE_SUPERSEDES = 1  # presence bit: supersedes is not NULL
PRESENCE_REASON = 2  # presence bit: reason is not NULL
# What the chain walk reads per row, stored columns as they are: the numbers in canonical order,
# supersedes and reason (it makes the presence bits itself), the text fields, the digest.
WALK_COLUMNS = ("seq", *CANONICAL_DOUBLES, "supersedes", "reason", *TEXT_FIELDS, "digest")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS minutes (
    seq INTEGER PRIMARY KEY,
    {", ".join(f + (" REAL" if f in REAL_FIELDS else " TEXT") + " NOT NULL" for f in FIELDS)},
    supersedes INTEGER,
    reason TEXT,
    recorded_at REAL NOT NULL,
    digest BLOB NOT NULL,
    hash TEXT GENERATED ALWAYS AS (lower(hex(digest))) VIRTUAL
);
CREATE UNIQUE INDEX IF NOT EXISTS minutes_key ON minutes(minute_start, process, stream, ifnull(supersedes, 0));
CREATE UNIQUE INDEX IF NOT EXISTS minutes_superseded ON minutes(supersedes) WHERE supersedes IS NOT NULL;
CREATE TRIGGER IF NOT EXISTS minutes_no_update BEFORE UPDATE ON minutes
    BEGIN SELECT RAISE(ABORT, 'ledger rows are never updated; append a correction instead'); END;
CREATE TRIGGER IF NOT EXISTS minutes_no_delete BEFORE DELETE ON minutes
    BEGIN SELECT RAISE(ABORT, 'ledger rows are never deleted; append a correction instead'); END;
CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    sink TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    status INTEGER,
    message TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), saved_at REAL NOT NULL, state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoint_delta (n INTEGER PRIMARY KEY, saved_at REAL NOT NULL, state BLOB NOT NULL);
"""

CANONICAL_NUMBERS = struct.Struct(f"<q{len(CANONICAL_DOUBLES)}dqB")  # "<q6dqB", 65 bytes (module docstring)
_pack = CANONICAL_NUMBERS.pack
_sha256 = hashlib.sha256
#: A MinuteResult's values in FIELDS order, as a tuple.
field_values = operator.attrgetter(*FIELDS)
# The bulk path inserts original rows as ORIGINAL_COLUMNS (supersedes and reason stay NULL),
# recorded_at bound once per statement as ?1, and INSERT_CHUNK rows per multi-row VALUES: about
# a fifth less work per row than executemany over all columns. 1 + 50 x 16 parameters stays
# under 999, the smallest SQLITE_MAX_VARIABLE_NUMBER a Python build may have.
ORIGINAL_COLUMNS = ("seq", *FIELDS, "digest")
INSERT_CHUNK = 50


class LedgerFormatError(ValueError):
    """A result cannot be stored as it is (NaN, a separator inside a text field, a wrong type)."""


def normalized_values(values: Sequence[object]) -> list[object]:
    """Field values as they read back from SQLite: REAL fields as float, never -0.0 or NaN.

    SQLite stores -0.0 as 0.0 and cannot store NaN (it becomes NULL), and the hash must cover
    what reads back. Raises ValueError for NaN, and for a text field that is not a str or holds
    the separator U+001F.
    """
    out = list(values)
    for i in _REAL_INDEX:
        x = float(out[i]) + 0.0  # type: ignore[arg-type]  # a REAL field holds a number (float() raises otherwise); -0.0 + 0.0 == 0.0
        if x != x:
            raise LedgerFormatError(f"NaN cannot be stored in the ledger (field {FIELDS[i]})")
        out[i] = x
    for i in _TEXT_INDEX:
        v = out[i]
        if not isinstance(v, str):
            raise LedgerFormatError(f"ledger field {FIELDS[i]} must be text, got {type(v).__name__} {v!r}")
        if SEP in v:
            raise LedgerFormatError(f"ledger field {FIELDS[i]} contains U+001F, which the ledger reserves: {v!r}")
    return out


def canonical_row(seq: int, values: Sequence[object], supersedes: int | None, reason: str | None, recorded_at: float) -> bytes:
    """The bytes a row's hash covers after the previous hash (layout: module docstring).

    `values` are in FIELDS order and already normalized (`normalized_values`).
    """
    ms, site, process, stream, scope, method, activity, unit, co2, factor_id, ef, coverage, quality, flags = values
    text = SEP.join((site, process, stream, scope, method, unit, factor_id, quality, flags, reason or ""))  # type: ignore[arg-type]  # normalized_values checked these are str
    presence = (PRESENCE_SUPERSEDES if supersedes is not None else 0) | (PRESENCE_REASON if reason is not None else 0)
    return text.encode() + _pack(seq, ms, activity, co2, ef, coverage, recorded_at, supersedes or 0, presence)


def chain_hash(prev_hash: str, payload: bytes) -> str:
    """SHA-256 (lowercase hex) of the previous row's hash (given as hex, hashed as its 32 bytes)
    and this row's canonical bytes."""
    return _sha256(bytes.fromhex(prev_hash) + payload).hexdigest()


def result_values(r: MinuteResult) -> list[object]:
    """A result's values in FIELDS order, normalized (`normalized_values`)."""
    return normalized_values(field_values(r))


def chain_originals(results: MinuteResults, seq: int, prev_hash: str, recorded_at: float) -> tuple[list[object], int, str]:
    """Number and hash-chain original results after (seq, prev_hash), for a bulk insert.

    Returns the rows' column values flattened in ORIGINAL_COLUMNS order (16 per row; all
    recorded at `recorded_at`), the last seq and the last hash (hex). This is the append hot
    path, and where the columns become rows: one tuple and one hash per row, the text a stream's
    rows share joined once per stream. It normalizes REAL fields like `normalized_values` and
    refuses a separator inside a text field, but leaves NaN to SQLite (stored as NULL, refused
    by NOT NULL) and a text field that is not a str to join (TypeError); after such a failure
    the caller retries with `chain_checked`, which names the value it cannot store.
    """
    flat: list[object] = []
    add = flat.extend
    pack, sha, sep = _pack, _sha256, SEP
    now = float(recorded_at)
    prev = bytes.fromhex(prev_hash)
    # site, process, stream, scope, method and activity_unit of each stream, and the text they begin
    shared = list(zip(*(results.streams.column(f).tolist() for f in STREAM_FIELDS), strict=True))
    lead = [sep.join(e) + sep for e in shared]
    for k, ms, activity, co2, factor_id, ef, coverage, quality, flags in zip(
        results.stream_ids.tolist(),
        _reals(results.minute_start),
        _reals(results.activity),
        _reals(results.co2_kg),
        results.factor_id.tolist(),
        _reals(results.ef_kg_per_unit),
        _reals(results.coverage),
        results.text("quality").tolist(),
        results.flags.tolist(),
        strict=True,
    ):
        seq += 1
        text = lead[k] + sep.join((factor_id, quality, flags, ""))
        if text.count(sep) != 9:
            raise LedgerFormatError(f"row {seq}: a text field contains U+001F, which the ledger reserves")
        prev = sha(prev + text.encode() + pack(seq, ms, activity, co2, ef, coverage, now, 0, 0)).digest()
        site, process, stream, scope, method, unit = shared[k]
        add((seq, ms, site, process, stream, scope, method, activity, unit, co2, factor_id, ef, coverage, quality, flags, prev))
    return flat, seq, prev.hex()


def _reals(column: NDArray[np.float64]) -> list[float]:
    """A REAL column as Python floats (a numpy scalar would bind as a BLOB), -0.0 as 0.0 (as it
    reads back from SQLite)."""
    reals: list[float] = (np.asarray(column, dtype=np.float64) + 0.0).tolist()
    return reals


def chain_checked(
    items: Iterable[tuple[Sequence[object], int | None, str | None]], seq: int, prev_hash: str, recorded_at: float
) -> tuple[list[object], int, str]:
    """Like `chain_originals` for (values in FIELDS order, supersedes, reason) items, validating
    each row (`normalized_values`); for corrections and for the retry after a failed bulk insert.
    The rows come flattened in INSERT_COLUMNS order (19 per row)."""
    flat: list[object] = []
    now = float(recorded_at)
    prev = bytes.fromhex(prev_hash)
    for raw, supersedes, reason in items:
        values = normalized_values(raw)
        if reason is not None and (not isinstance(reason, str) or SEP in reason):
            raise LedgerFormatError(f"a correction's reason must be text without U+001F: {reason!r}")
        seq += 1
        prev = _sha256(prev + canonical_row(seq, values, supersedes, reason, now)).digest()
        flat.extend((seq, *values, supersedes, reason, now, prev))
    return flat, seq, prev.hex()


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One stored row, for auditors: the result plus its place in the chain."""

    seq: int
    result: MinuteResult
    supersedes: int | None
    reason: str | None
    recorded_at: float
    prev_hash: str
    hash: str


def ledger_row(raw: Sequence[Any]) -> LedgerRow:
    """A LedgerRow from (*ROW_COLUMNS, prev_hash) as SQLite returns it (untyped: the table's
    column types hold): the previous row's hash is selected with it."""
    n = len(FIELDS)
    return LedgerRow(
        int(raw[0]),
        MinuteResult(*raw[1 : n + 1]),
        raw[n + 1],
        raw[n + 2],
        float(raw[n + 3]),
        str(raw[n + 5]),
        str(raw[n + 4]),
    )
