"""Schema 3: the bulk append path, its careful fallback, and the canonical encoding's edges."""

import hashlib
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest

from gateway.core.errors import SinkWriteError
from gateway.core.model import MinuteResult
from gateway.ledger.audit import verify_ledger
from gateway.ledger.errors import LedgerError
from gateway.ledger.format import (
    FIELDS,
    GENESIS_HASH,
    INSERT_CHUNK,
    LedgerFormatError,
    canonical_row,
    chain_hash,
    result_values,
)
from gateway.ledger.store import Ledger
from tests.factories import T0, results_of
from tests.factories import minute_result as result


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    lg = Ledger(tmp_path / "ledger.sqlite", clock=lambda: 1_800_000_000.5)
    yield lg
    lg.close()


def test_bulk_append_spans_chunks_and_matches_the_public_encoding(ledger: Ledger) -> None:
    n = 3 * INSERT_CHUNK + 7  # whole multi-row statements and a remainder
    results = [result(m // 4, f"p{m % 4}", "s", co2_kg=m * 0.1) for m in range(n)]
    assert ledger.append(results_of(results)) == n
    rows = list(ledger.reader.history())
    assert [r.seq for r in rows] == list(range(1, n + 1))
    assert [r.result for r in rows] == results
    prev = GENESIS_HASH
    for r in rows:  # the documented functions reproduce what the fast path stored
        assert r.prev_hash == prev
        assert r.hash == chain_hash(prev, canonical_row(r.seq, result_values(r.result), None, None, r.recorded_at))
        prev = r.hash
    report = verify_ledger(ledger.path)
    assert report.ok and report.rows == n and report.head_hash == ledger.head_hash == prev


def test_duplicates_inside_one_batch_are_stored_once(ledger: Ledger) -> None:
    assert ledger.append(results_of([result(0), result(1), result(0), result(2), result(1)])) == 3
    assert [r.minute_start for r in ledger.reader.results()] == [T0, T0 + 60, T0 + 120]
    assert ledger.append(results_of([result(2), result(3), result(3)])) == 1
    assert verify_ledger(ledger.path).ok and ledger.head_seq == 4


def test_numpy_and_integer_values_are_stored_as_floats(ledger: Ledger) -> None:
    ledger.append(results_of([result(0, co2_kg=np.float32(1.5), activity=np.int64(3)), result(1, coverage=np.float64(0.5))]))
    got = list(ledger.reader.results())
    assert got[0].co2_kg == 1.5 and type(got[0].co2_kg) is float and got[0].activity == 3.0
    assert verify_ledger(ledger.path).ok


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"flags": "a\x1fb"}, "U\\+001F"),
        ({"stream": None}, "stream must be text"),
        ({"co2_kg": float("nan")}, "NaN"),
    ],
)
def test_unstorable_values_are_refused_and_nothing_is_written(ledger: Ledger, kw: dict, match: str) -> None:
    ledger.append(results_of([result(0)]))
    with pytest.raises(LedgerFormatError, match=match):
        ledger.append(results_of([result(1), result(2, **kw)]))
    assert ledger.head_seq == 1 and ledger.pending == 0
    assert ledger.append(results_of([result(1)])) == 1 and verify_ledger(ledger.path).ok


def test_a_reason_with_the_separator_is_refused(ledger: Ledger) -> None:
    ledger.append(results_of([result(0)]))
    with pytest.raises(ValueError, match="U\\+001F"):
        ledger.correct([(1, result(0, co2_kg=2.0))], "late\x1fsamples")


def test_many_corrections_at_once(ledger: Ledger) -> None:
    ledger.append(results_of([result(m) for m in range(1200)]))
    seqs = ledger.correct([(s, result(s - 1, co2_kg=1.0 + s)) for s in range(1, 1201)], "restated factor")
    assert seqs == list(range(1201, 2401))
    report = verify_ledger(ledger.path)
    assert report.ok and report.corrections == 1200 and report.current_rows == 1200
    with pytest.raises(ValueError, match="already superseded"):
        ledger.correct([(5, result(4))], "again")


def test_a_ledger_of_another_schema_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('schema', '2')")
    db.commit()
    db.close()
    with pytest.raises(SinkWriteError, match="schema 2"):
        Ledger(path)
    with pytest.raises(LedgerError, match="schema 2"):
        verify_ledger(path)


def test_fields_hashed_are_every_field() -> None:
    # a change to any field changes the canonical bytes (the encoding drops nothing)
    base = result_values(result(0))
    payload = canonical_row(1, base, None, None, 0.0)
    for i, name in enumerate(FIELDS):
        changed = list(base)
        changed[i] = changed[i] + 1.0 if isinstance(changed[i], float) else changed[i] + "x"
        assert canonical_row(1, changed, None, None, 0.0) != payload, name
    assert canonical_row(1, base, None, "", 0.0) != payload  # reason "" is not NULL
    assert canonical_row(1, base, 0, None, 0.0) != payload  # supersedes 0 is not NULL


# The head of `_awkward()` recorded at RECORDED_AT, computed by `_documented_chain`: a change to
# the bytes a row hashes changes it, and every ledger written before would then fail verify.
RECORDED_AT = 1_800_000_000.25
PINNED_HEAD = "494a29696981c22d74faa1c2308e75808f2db3f469742ba40cb8bb9a64efdf04"


def _awkward() -> list[MinuteResult]:
    return [
        result(0),
        result(0, "bf", "coke", co2_kg=-0.0, activity=5, flags="rule=last_good;bad_samples=2"),
        result(1, "eaf", "électrode", co2_kg=np.float32(1.5), coverage=np.float64(0.25), quality="substituted"),
        result(2, co2_kg=-1234.5678e-9, ef_kg_per_unit=1e300, activity=2**60, flags='a,"b"\n'),
    ]


def _documented_chain(results: list[MinuteResult], recorded_at: float) -> str:
    """The chain as the docstring of gateway/ledger/format.py describes it, from scratch."""
    prev = bytes(32)
    for seq, r in enumerate(results, start=1):
        text = "\x1f".join((r.site, r.process, r.stream, r.scope, r.method, r.activity_unit, r.factor_id, r.quality, r.flags, ""))
        reals = [float(x) + 0.0 for x in (r.minute_start, r.activity, r.co2_kg, r.ef_kg_per_unit, r.coverage)]
        prev = hashlib.sha256(prev + text.encode() + struct.pack("<q6dqB", seq, *reals, recorded_at, 0, 0)).digest()
    return prev.hex()


@pytest.mark.parametrize("path", ["bulk", "checked", "bulk_load"])
def test_every_append_path_writes_the_documented_chain(tmp_path: Path, path: str) -> None:
    results = _awkward()
    assert _documented_chain(results, RECORDED_AT) == PINNED_HEAD
    ledger = Ledger(tmp_path / "ledger.sqlite", clock=lambda: RECORDED_AT)
    if path == "bulk_load":
        ledger.bulk_load()
    if path == "checked":  # a stored minute in the range sends the rest through the row-by-row path
        assert ledger.append(results_of(results[:1])) == 1 and ledger.append(results_of(results)) == 3
    else:
        assert ledger.append(results_of(results[:2])) == 2 and ledger.append(results_of(results[2:]), checkpoint=b"window") == 2
    assert ledger.head_hash == PINNED_HEAD
    ledger.close()
    report = verify_ledger(tmp_path / "ledger.sqlite")
    assert report.ok and report.rows == 4 and report.head_hash == PINNED_HEAD
