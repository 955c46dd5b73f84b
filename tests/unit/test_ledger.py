"""The ledger: append once in order, chain, corrections, current view vs history, disk failures."""

import sqlite3
import stat
from pathlib import Path

import pytest

from gateway.core.errors import SinkWriteError
from gateway.ledger.audit import verify_ledger
from gateway.ledger.store import DELAYED_FLAG, GENESIS_HASH, Ledger
from tests.factories import T0, results_of
from tests.factories import minute_result as result


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    lg = Ledger(tmp_path / "sub" / "ledger.sqlite")
    yield lg
    lg.close()


def test_append_is_ordered_idempotent_and_chained(ledger: Ledger) -> None:
    assert ledger.head_hash == GENESIS_HASH
    first = [result(0), result(0, "bf", "coke"), result(1)]
    assert ledger.append(results_of(first)) == 3
    assert ledger.append(results_of([result(1), result(2)])) == 1  # minute 1 again (a replayed checkpoint) is stored once
    assert [r.key() for r in ledger.reader.results()] == [r.key() for r in [*first, result(2)]]
    assert ledger.head_seq == 4
    report = verify_ledger(ledger.path)
    assert report.ok and report.rows == 4 and report.head_hash == ledger.head_hash


def test_negative_zero_and_integer_floats_verify(ledger: Ledger) -> None:
    # SQLite stores -0.0 as 0.0 and 5 as 5.0: the hash must cover what reads back.
    ledger.append(results_of([result(0, co2_kg=-0.0, activity=5, minute_start=int(T0))]))
    assert verify_ledger(ledger.path).ok


def test_nan_is_refused_not_stored(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="NaN"):
        ledger.append(results_of([result(0, co2_kg=float("nan"))]))
    assert ledger.head_seq == 0


def test_files_are_owner_only(ledger: Ledger) -> None:
    ledger.append(results_of([result(0)]))
    for p in ledger.path.parent.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, p


def test_rows_cannot_be_updated_or_deleted(ledger: Ledger) -> None:
    ledger.append(results_of([result(0)]))
    db = sqlite3.connect(ledger.path)
    with pytest.raises(sqlite3.IntegrityError, match="never updated"):
        db.execute("UPDATE minutes SET co2_kg = 0")
    with pytest.raises(sqlite3.IntegrityError, match="never deleted"):
        db.execute("DELETE FROM minutes")
    db.close()


def test_corrections_supersede_and_views_differ(ledger: Ledger) -> None:
    ledger.append(results_of([result(0), result(1), result(0, "bf", "coke")]))
    seq = ledger.reader.current_seq(T0, "sinter", "coke_breeze")
    assert seq == 1
    [c1] = ledger.correct([(seq, result(0, co2_kg=11.0, flags="late_samples=3"))], "late samples arrived")
    [c2] = ledger.correct([(c1, result(0, co2_kg=12.5))], "lab NCV restated for November")
    current = {r.key(): r.co2_kg for r in ledger.reader.results()}
    assert current[(T0, "sinter", "coke_breeze")] == 12.5
    assert len(current) == 3
    history = list(ledger.reader.history(process="sinter"))
    assert [(h.seq, h.supersedes, h.result.co2_kg) for h in history] == [
        (1, None, 10.0),
        (2, None, 10.0),
        (c1, 1, 11.0),
        (c2, c1, 12.5),
    ]
    assert history[-1].reason == "lab NCV restated for November"
    report = verify_ledger(ledger.path)
    assert report.ok and report.rows == 5 and report.current_rows == 3 and report.corrections == 2


def test_correction_rules(ledger: Ledger) -> None:
    ledger.append(results_of([result(0), result(1)]))
    with pytest.raises(ValueError, match="reason"):
        ledger.correct([(1, result(0))], " ")
    with pytest.raises(ValueError, match="sinter/coke_breeze"):
        ledger.correct([(1, result(1))], "wrong minute")
    ledger.correct([(1, result(0, co2_kg=9.0))], "fix")
    with pytest.raises(ValueError, match="already superseded"):
        ledger.correct([(1, result(0, co2_kg=8.0))], "second fix of a stale row")
    assert ledger.head_seq == 3


def test_current_view_filters(ledger: Ledger) -> None:
    ledger.append(results_of([result(m, p, "s") for m in range(5) for p in ("a", "b")]))
    got = [r.key() for _, r in ledger.reader.current(from_s=T0 + 60, to_s=T0 + 180, process="b")]
    assert got == [(T0 + 60, "b", "s"), (T0 + 120, "b", "s")]


def test_outbox_rows_after_skips_superseded(ledger: Ledger) -> None:
    ledger.append(results_of([result(0), result(1)]))
    ledger.correct([(1, result(0, co2_kg=1.0))], "fix")
    assert [s for s, _ in ledger.reader.rows_after(0, 10)] == [1, 2, 3]
    assert [s for s, _ in ledger.reader.rows_after(0, 10, current_only=True)] == [2, 3]
    assert [s for s, _ in ledger.reader.rows_after(0, 10, upto=2)] == [1, 2]


def test_checkpoint_is_written_with_the_minute(ledger: Ledger) -> None:
    ledger.append(results_of([result(0)]), checkpoint=b"state-after-minute-0")
    assert ledger.checkpoints.load()[1] == b"state-after-minute-0"  # type: ignore[index]
    assert ledger.checkpoints.save(b"in-progress")
    assert ledger.checkpoints.load()[1] == b"in-progress"  # type: ignore[index]


def test_quarantine_moves_cursor_and_keeps_message(ledger: Ledger) -> None:
    ledger.append(results_of([result(0), result(1)]))
    ledger.outbox.quarantine("influx", 1, 2, 2, 400, "partial write: field type conflict", cursors={"influx": 2})
    assert ledger.outbox.cursor("influx") == 2
    [q] = ledger.outbox.quarantined("influx")
    assert q["status"] == 400 and "field type conflict" in str(q["message"]) and q["rows"] == 2


def _break_disk(ledger: Ledger) -> None:
    # A file system remounted read-only answers like a read-only connection: SQLITE_READONLY.
    ledger._db.execute("PRAGMA query_only = ON")


def _mend_disk(ledger: Ledger) -> None:
    ledger._db.execute("PRAGMA query_only = OFF")


def test_disk_failure_holds_results_in_order_then_writes_them_flagged(ledger: Ledger) -> None:
    ledger.append(results_of([result(0)]), checkpoint=b"c0")
    _break_disk(ledger)
    assert ledger.append(results_of([result(1)]), checkpoint=b"c1") == 0
    assert ledger.append(results_of([result(2)]), checkpoint=b"c2") == 0
    assert ledger.pending == 2 and ledger.counters.write_failures == 2
    assert not ledger.checkpoints.save(b"newer")  # never ahead of rows that wait in memory
    _mend_disk(ledger)
    assert ledger.checkpoints.load()[1] == b"c0"  # type: ignore[index]
    assert ledger.append(results_of([result(3)]), checkpoint=b"c3") == 3
    rows = list(ledger.reader.results())
    assert [r.minute_start for r in rows] == [T0 + 60 * m for m in range(4)]
    assert [DELAYED_FLAG in r.flags for r in rows] == [False, True, True, True]
    assert ledger.checkpoints.load()[1] == b"c3"  # type: ignore[index]
    assert ledger.pending == 0 and verify_ledger(ledger.path).ok


def test_disk_failure_beyond_bound_raises(tmp_path: Path) -> None:
    lg = Ledger(tmp_path / "l.sqlite", max_pending=2)
    _break_disk(lg)
    lg.append(results_of([result(0)]))
    lg.append(results_of([result(1)]))
    with pytest.raises(SinkWriteError, match="max_pending"):
        lg.append(results_of([result(2)]))
