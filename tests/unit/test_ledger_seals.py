"""Daily seals and the witness check: a ledger rewritten with the project's own chain functions
still passes `verify`, but no longer matches the seals a witness kept, and the first day that no
longer matches is named."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.cli import main
from gateway.ledger.audit import verify_ledger
from gateway.ledger.seals import SealStore, check_witness, read_witness_file, seals_of
from gateway.ledger.store import Ledger
from gateway.stages.seal import DailySealer
from tests import factories
from tests.support.tamper import rewrite_halving_co2

TZ = "Asia/Shanghai"
DAY_S = 86400.0
START = datetime(2026, 11, 13, tzinfo=ZoneInfo(TZ)).timestamp()


def write_days(path: Path, days: int, per_day: int = 5) -> DailySealer:
    """`days` site days of minutes (`per_day` minutes of two streams each, one frame a minute),
    sealed as the gateway seals them."""
    ledger = Ledger(path, site="works")
    sealer = DailySealer(SealStore(path), "works", TZ, now=lambda: START)
    for d in range(days):
        for m in range(per_day):
            rows = factories.minute_results(
                [START + d * DAY_S + 60.0 * m], [{"stream": "a"}, {"stream": "b"}], site="works"
            )
            results = factories.results_of(rows)
            ledger.append(results)
            sealer(results, ledger.head_seq, ledger.head_hash, ledger.pending)
    ledger.close()
    return sealer


def test_each_ended_day_is_sealed_once_with_the_head_after_it(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    sealer = write_days(path, 3)
    db = sqlite3.connect(path)
    seals = seals_of(db, path)
    assert [s.day for s in seals] == ["2026-11-13", "2026-11-14"]  # the third day has not ended
    assert [s.head_seq for s in seals] == [12, 22]  # sealed at the first close of the next day
    for s in seals:
        assert db.execute("SELECT hash FROM minutes WHERE seq = ?", (s.head_seq,)).fetchone()[0] == s.head_hash
    db.close()
    # a restart does not seal a day twice
    sealer.close()
    again = DailySealer(SealStore(path), "works", TZ, now=lambda: START)
    assert again.sealed_day == "2026-11-14"
    again.close()


def test_a_rewritten_chain_passes_verify_but_not_the_witness(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    write_days(path, 4).close()
    db = sqlite3.connect(path)
    witnessed = seals_of(db, path)  # what a witness received, day by day
    db.close()
    witness = tmp_path / "seals.jsonl"
    witness.write_text("".join(s.to_json() + "\n" for s in witnessed))
    ok = check_witness(path, read_witness_file(witness), site="works")
    assert ok.ok and ok.checked == 3 and ok.rows_after == 40 - 32
    rewrite_halving_co2(path)
    assert verify_ledger(path).ok  # the chain alone cannot tell
    bad = check_witness(path, read_witness_file(witness), site="works")
    assert not bad.ok and bad.first_bad is not None and bad.first_bad.day == "2026-11-13"
    assert "day 2026-11-13: row 12 has hash" in bad.problem and "rewritten at or before row 12" in bad.problem


def test_verify_with_a_witness_names_the_first_day_that_no_longer_matches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ledger.sqlite"
    write_days(path, 4).close()
    db = sqlite3.connect(path)
    witnessed = seals_of(db, path)
    db.close()
    witness = tmp_path / "seals.jsonl"
    witness.write_text("".join(s.to_json() + "\n" for s in witnessed))
    assert main(["ledger", "verify", str(path), "--witness", str(witness)]) == 0
    assert "witness: ok — 3 seal(s) match, the last 2026-11-15 at row 32; 8 row(s) after it not witnessed yet" in capsys.readouterr().out
    # only the last day's rows changed: the first two days still match
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER minutes_no_update")
    db.execute("UPDATE minutes SET co2_kg = 1.0 WHERE seq = 30")
    db.commit()
    db.close()
    assert main(["ledger", "verify", str(path), "--witness", str(witness)]) == 1  # the chain itself breaks here
    rewrite_halving_co2(path)
    assert main(["ledger", "verify", str(path), "--witness", str(witness)]) == 1
    err = capsys.readouterr().err
    assert "no longer matches its witness: day 2026-11-13" in err
    witness.write_text('{"day": "2026-11-13"}\n')
    assert main(["ledger", "verify", str(path), "--witness", str(witness)]) == 2
    assert f"{witness}:1: not a seal" in capsys.readouterr().err
    json.loads(witnessed[0].to_json())  # the published form is JSON
