"""`emgate ledger verify` catches an edited, deleted, inserted or reordered row and names it."""

import json
import sqlite3
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.sinks.ledger import Ledger
from tests.unit.test_ledger import T0, result


@pytest.fixture
def ledger_file(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.sqlite"
    lg = Ledger(path)
    lg.append([result(m, p, "s", co2_kg=float(m)) for m in range(5) for p in ("a", "b")])  # seq 1..10
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
    ledger_file: Path, capsys: pytest.CaptureFixture[str], name: str, sql: list[str], bad_row: int
) -> None:
    tamper(ledger_file, *sql)
    assert main(["ledger", "verify", str(ledger_file)]) == 1, name
    err = capsys.readouterr().err
    assert f"BROKEN at row {bad_row}:" in err, err


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
    lg.append([result(int((m - T0) // 60), p, s, co2_kg=(c if (m, p) != (T0, "a") else 0.0)) for m, p, s, c in rows])
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
    lg.quarantine("influx", 4, 4, 1, 400, "partial write: field type conflict", cursors={"influx": 4})
    lg.close()
    assert main(["ledger", "show", str(ledger_file), "--quarantine"]) == 0
    out = capsys.readouterr().out
    assert "influx rows 4..4 (1)" in out and "HTTP 400 partial write: field type conflict" in out
    assert "1 quarantined batch(es)" in out
