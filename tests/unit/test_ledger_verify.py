"""`emgate ledger verify` catches an edited, deleted, inserted or reordered row and names it,
and says the same whatever number of ranges the chain is checked in."""

import hashlib
import json
import os
import sqlite3
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.ledger import audit as ledger_audit
from gateway.ledger.audit import verify_ledger
from gateway.ledger.errors import LedgerError
from gateway.ledger.format import INSERT_COLUMNS, TEXT_FIELDS, chain_checked, result_values
from gateway.ledger.store import Ledger
from tests.factories import T0, results_of
from tests.factories import minute_result as result


@pytest.fixture(params=["native", "python"])
def walk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test of the walk runs with both walks; they must agree on everything. CI builds the
    native one (its headers are installed with the services), so there it must be present."""
    if request.param == "python":
        monkeypatch.setattr(ledger_audit, "_native", None)
    elif not ledger_audit.native_walk():
        if os.environ.get("CI") == "true":
            pytest.fail("the native ledger walk is not built (setup.py; needs libsqlite3-dev and libssl-dev)")
        pytest.skip("the native ledger walk is not built here")
    return str(request.param)


@pytest.fixture
def ledger_file(tmp_path: Path, walk: str) -> Path:
    path = tmp_path / "ledger.sqlite"
    lg = Ledger(path)
    lg.append(results_of([result(m, p, "s", co2_kg=float(m)) for m in range(5) for p in ("a", "b")]))  # seq 1..10
    lg.correct([(3, result(1, "a", "s", co2_kg=99.0))], "late samples")  # seq 11
    lg.close()
    return path


def tamper(path: Path, *sql: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TRIGGER minutes_no_update")  # a tamperer with write access can do this too
    db.execute("DROP TRIGGER minutes_no_delete")
    for statement in sql:
        db.execute(statement)
    db.close()


def test_intact_prints_head_and_count(ledger_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head = Ledger(ledger_file).head_hash
    assert main(["ledger", "verify", str(ledger_file)]) == 0
    out = capsys.readouterr().out
    assert "11 row(s)" in out and head in out and "1 correction" in out
    assert main(["ledger", "verify", str(ledger_file), "--expect-head", head]) == 0


@pytest.mark.parametrize(
    ("name", "sql", "bad_row"),
    [
        ("edited value", ["UPDATE minutes SET co2_kg = 2.5 WHERE seq = 4"], 4),
        ("edited flags", ["UPDATE minutes SET flags = 'x' WHERE seq = 7"], 7),
        ("deleted row", ["DELETE FROM minutes WHERE seq = 6"], 6),
        ("deleted last row", ["DELETE FROM minutes WHERE seq = 11"], 11),
        (
            "inserted row",
            [
                "UPDATE minutes SET seq = seq + 100 WHERE seq >= 5",
                "UPDATE minutes SET seq = seq - 99 WHERE seq >= 105",
                "INSERT INTO minutes SELECT 5, minute_start, site, process, 'extra', scope, method, activity, "
                "activity_unit, co2_kg, factor_id, ef_kg_per_unit, coverage, quality, flags, NULL, NULL, "
                "recorded_at, digest FROM minutes WHERE seq = 4",
            ],
            5,
        ),
        (
            "reordered rows",
            [
                "UPDATE minutes SET seq = 100 WHERE seq = 8",
                "UPDATE minutes SET seq = 8 WHERE seq = 9",
                "UPDATE minutes SET seq = 9 WHERE seq = 100",
            ],
            8,
        ),
        ("re-pointed correction", ["UPDATE minutes SET supersedes = 5 WHERE seq = 11"], 11),
        ("text stored as bytes", ["UPDATE minutes SET process = CAST(process AS BLOB) WHERE seq = 6"], 6),
        ("edited hash", ["UPDATE minutes SET digest = zeroblob(32) WHERE seq = 9"], 9),
        ("moved reason", ["UPDATE minutes SET reason = 'x' WHERE seq = 2"], 2),
    ],
)
def test_tampering_is_named(
    ledger_file: Path,
    capsys: pytest.CaptureFixture[str],
    ranges_in_threads: None,
    name: str,
    sql: list[str],
    bad_row: int,
) -> None:
    tamper(ledger_file, *sql)
    assert main(["ledger", "verify", str(ledger_file)]) == 1, name
    err = capsys.readouterr().err
    assert f"BROKEN at row {bad_row}:" in err, err
    whole = verify_ledger(ledger_file)
    for processes in (2, 3, 4, 11):  # every range boundary of the 11 rows, and one row per range
        assert verify_ledger(ledger_file, processes=processes) == whole, (name, processes)


@pytest.fixture
def ranges_in_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges of any size, checked in threads of this process: the same code as in worker
    processes, started faster."""
    monkeypatch.setattr(ledger_audit, "ROWS_PER_PROCESS", 1)
    monkeypatch.setattr(ledger_audit, "ROWS_PER_THREAD", 1)
    monkeypatch.setattr(ledger_audit, "ProcessPoolExecutor", lambda workers, mp_context: ThreadPoolExecutor(workers))


def append_forged(path: Path, items: list[tuple[list[object], int | None, str | None]]) -> None:
    """Append rows with a valid chain that Ledger would refuse (its unique indexes dropped too)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP INDEX minutes_superseded")
    db.execute("DROP INDEX minutes_key")
    seq, head = db.execute("SELECT seq, hash FROM minutes ORDER BY seq DESC LIMIT 1").fetchone()
    flat, last_seq, last_hash = chain_checked(items, seq, head, 1_800_000_000.0)
    n = len(INSERT_COLUMNS)
    db.executemany(
        f"INSERT INTO minutes ({', '.join(INSERT_COLUMNS)}) VALUES ({', '.join('?' * n)})",
        [flat[i : i + n] for i in range(0, len(flat), n)],
    )
    db.executemany("UPDATE meta SET value = ? WHERE key = ?", [(str(last_seq), "head_seq"), (last_hash, "head_hash")])
    db.close()


def test_row_superseded_twice_across_ranges(ledger_file: Path, ranges_in_threads: None) -> None:
    """Row 11 supersedes row 3; a forged row 13 supersedes it again. With the rows split so the
    two corrections fall in different ranges, the merge still names row 13."""
    append_forged(
        ledger_file,
        [(result_values(result(5, "a", "s")), None, None), (result_values(result(1, "a", "s", co2_kg=5.0)), 3, "again")],
    )
    db = sqlite3.connect(ledger_file)
    row12, row13 = (h for (h,) in db.execute("SELECT hash FROM minutes WHERE seq IN (12, 13) ORDER BY seq"))
    db.close()
    for head in (None, row12, row13):
        whole = verify_ledger(ledger_file, expect_head=head)
        assert not whole.ok and whole.bad_seq == 13 and "superseded twice" in whole.problem
        assert (whole.rows, whole.corrections, whole.expected_head_found) == (12, 1, None if head is None else head == row12)
        for processes in (2, 6, 12, 13):
            assert verify_ledger(ledger_file, expect_head=head, processes=processes) == whole, (head, processes)


def test_workers_only_for_ranges_worth_one(ledger_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_audit, "_native", None)  # the worker processes of the Python walk
    pools: list[int] = []  # the workers of each pool started, in threads as in ranges_in_threads

    def pool(workers: int, mp_context: object) -> ThreadPoolExecutor:
        pools.append(workers)
        return ThreadPoolExecutor(workers)

    monkeypatch.setattr(ledger_audit, "ProcessPoolExecutor", pool)
    whole = verify_ledger(ledger_file)
    assert verify_ledger(ledger_file, processes=4) == whole and pools == []  # 11 rows: checked here
    monkeypatch.setattr(ledger_audit, "ROWS_PER_PROCESS", 6)
    assert verify_ledger(ledger_file, processes=4) == whole and pools == [1]  # one worker, the GIL left to the caller
    monkeypatch.setattr(ledger_audit, "ROWS_PER_PROCESS", 4)
    assert verify_ledger(ledger_file, processes=4) == whole and pools == [1, 2]
    assert verify_ledger(ledger_file, processes=0) == whole and pools == [1, 2]


def test_worker_processes_report_as_one_walk(ledger_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_audit, "ROWS_PER_PROCESS", 5)  # 11 rows: two ranges
    head = Ledger(ledger_file).head_hash
    assert verify_ledger(ledger_file, expect_head=head, processes=2) == verify_ledger(ledger_file, expect_head=head)
    tamper(ledger_file, "UPDATE minutes SET co2_kg = 2.5 WHERE seq = 8")  # in the second range
    report = verify_ledger(ledger_file, processes=2)
    assert report == verify_ledger(ledger_file) and report.bad_seq == 8 and report.rows == 7


def test_rewritten_chain_loses_recorded_head(ledger_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head = Ledger(ledger_file).head_hash
    # rebuild the whole ledger with one value changed: a consistent chain, but a different head
    db = sqlite3.connect(ledger_file)
    rows = db.execute(
        "SELECT minute_start, process, stream, co2_kg FROM minutes WHERE supersedes IS NULL ORDER BY seq"
    ).fetchall()
    db.close()
    forged = ledger_file.with_name("forged.sqlite")
    lg = Ledger(forged)
    lg.append(results_of([result(int((m - T0) // 60), p, s, co2_kg=(c if (m, p) != (T0, "a") else 0.0)) for m, p, s, c in rows]))
    lg.close()
    assert main(["ledger", "verify", str(forged)]) == 0
    assert main(["ledger", "verify", str(forged), "--expect-head", head]) == 1
    assert "not in the chain" in capsys.readouterr().err


def test_not_a_ledger_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ledger", "verify", str(tmp_path / "missing.sqlite")]) == 2
    junk = tmp_path / "junk.sqlite"
    junk.write_text(json.dumps({"not": "sqlite"}))
    assert main(["ledger", "verify", str(junk)]) == 2
    assert "cannot read as a ledger" in capsys.readouterr().err


def test_show_current_and_history(ledger_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "ledger",
                "show",
                str(ledger_file),
                "--process",
                "a",
                "--from",
                str(T0 + 60),
                "--to",
                str(T0 + 180),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3  # header + minutes 1 and 2 of process a
    assert "99.000" in out[2] or "99.000" in out[1]
    assert main(["ledger", "show", str(ledger_file), "--history", "--process", "a"]) == 0
    out = capsys.readouterr().out
    assert "supersedes row 3: late samples" in out
    with pytest.raises(SystemExit) as exc:
        main(["ledger", "show", str(ledger_file), "--from", "yesterday"])
    assert exc.value.code == 2


def test_show_quarantine(ledger_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lg = Ledger(ledger_file)
    lg.outbox.quarantine("influx", 4, 4, 1, 400, "partial write: field type conflict", cursors={"influx": 4})
    lg.close()
    assert main(["ledger", "show", str(ledger_file), "--quarantine"]) == 0
    out = capsys.readouterr().out
    assert "influx rows 4..4 (1)" in out and "HTTP 400 partial write: field type conflict" in out
    assert "1 quarantined batch(es)" in out


def test_rows_gone_during_the_walk_are_named(ledger_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk stops at the last row it saw when it started; rows deleted after that are missing."""
    snapshot = ledger_audit._snapshot
    monkeypatch.setattr(ledger_audit, "_snapshot", lambda db: (13, snapshot(db)[1]))  # saw 13 rows, 11 remain
    report = verify_ledger(ledger_file)
    assert (report.ok, report.bad_seq, report.rows) == (False, 12, 11)
    assert report.problem == "row 12 is missing (the rows end at 11): deleted"


def test_text_beyond_ascii_is_walked_and_summed(tmp_path: Path, walk: str) -> None:
    """Chinese process names are plain rows for either walk; the native one sums them itself."""
    path = tmp_path / "ledger.sqlite"
    lg = Ledger(path)
    lg.append(results_of([result(m, "烧结", "焦粉 №2") for m in range(6)]))
    lg.close()
    window = ledger_audit.MonthWindow((T0, T0 + 86400.0), head=6)
    report, sums = ledger_audit.walk_ledger(path, month=window)
    assert report.ok and report.rows == 6
    if walk == "native":
        assert sums is not None and sums.left == [] and len(sums.cells) == 1
        (cell,) = sums.cells
        assert cell[1] == "烧结\x1f焦粉 №2\x1fdirect\x1ffuel_combustion\x1ft\x1fcn.coke\x1fmeasured" and cell[2] == 6
    else:
        assert sums is None


def test_text_that_is_not_utf8_fails_alike(ledger_file: Path) -> None:
    """A TEXT column holding bytes that are not UTF-8 cannot be read by the Python walk; the native
    walk hands the row to it rather than hash bytes the Python walk would refuse, even when the
    row's hash covers those bytes (a forger who rehashed the chain's last row)."""
    lg = Ledger(ledger_file)
    lg.append(results_of([result(5, "a", "s")]))  # row 12, a plain one, the native walk's to hash
    lg.close()
    tamper(ledger_file, "UPDATE minutes SET stream = CAST(x'73c0af' AS TEXT) WHERE seq = 12")
    db = sqlite3.connect(ledger_file, isolation_level=None)
    texts = db.execute(
        f"SELECT {', '.join(f'CAST({f} AS BLOB)' for f in TEXT_FIELDS)}, CAST(ifnull(reason, '') AS BLOB) FROM minutes WHERE seq = 12"
    ).fetchone()
    numbers = db.execute(
        "SELECT seq, minute_start, activity, co2_kg, ef_kg_per_unit, coverage, recorded_at FROM minutes WHERE seq = 12"
    ).fetchone()
    (prev,) = db.execute("SELECT digest FROM minutes WHERE seq = 11").fetchone()
    digest = hashlib.sha256(prev + b"\x1f".join(texts) + struct.pack("<q6dqB", *numbers, 0, 0)).digest()
    db.execute("UPDATE minutes SET digest = ? WHERE seq = 12", (digest,))
    db.execute("UPDATE meta SET value = ? WHERE key = 'head_hash'", (digest.hex(),))
    db.close()
    with pytest.raises(LedgerError, match="UTF-8"):
        verify_ledger(ledger_file)
