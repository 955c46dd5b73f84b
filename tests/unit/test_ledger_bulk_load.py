"""Ledger.bulk_load: commits without fsync, one fsync at close, and what a crash midway leaves."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.core.errors import SinkWriteError
from gateway.ledger import store as ledger_module
from gateway.ledger.audit import verify_ledger
from gateway.ledger.store import Ledger
from tests.factories import minute_result as result
from tests.factories import results_of

SYNCHRONOUS_OFF, SYNCHRONOUS_FULL = 0, 2


def test_only_a_bulk_load_commits_without_fsync(tmp_path: Path) -> None:
    live = Ledger(tmp_path / "live.sqlite")
    bulk = Ledger(tmp_path / "bulk.sqlite")
    bulk.bulk_load()
    assert live._db.execute("PRAGMA synchronous").fetchone()[0] == SYNCHRONOUS_FULL
    assert bulk._db.execute("PRAGMA synchronous").fetchone()[0] == SYNCHRONOUS_OFF
    live.close()
    bulk.close()
    again = Ledger(tmp_path / "bulk.sqlite")  # the level is the connection's, not the file's
    assert again._db.execute("PRAGMA synchronous").fetchone()[0] == SYNCHRONOUS_FULL
    again.close()


def test_close_copies_the_wal_into_the_file_and_fsyncs_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    ledger.bulk_load()
    for day in range(3):
        ledger.append(results_of([result(day * 1440 + m) for m in range(1440)]), checkpoint=b"window")
    synced: list[int] = []
    monkeypatch.setattr(ledger_module.os, "fsync", lambda fd: synced.append(os.fstat(fd).st_ino))
    ledger.close()
    assert synced == [path.stat().st_ino]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.sqlite"]  # no WAL left beside it
    report = verify_ledger(path)
    assert report.ok and report.rows == 3 * 1440


def test_close_refuses_while_another_connection_holds_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    ledger.bulk_load()
    ledger.append(results_of([result(m) for m in range(10)]))
    reader = Ledger(path, readonly=True)
    reader._db.execute("BEGIN")
    reader._db.execute("SELECT count(*) FROM minutes").fetchone()  # a read snapshot pins the WAL
    ledger.append(results_of([result(m) for m in range(10, 20)]))
    ledger._db.execute("PRAGMA busy_timeout = 0")
    with pytest.raises(SinkWriteError, match="kept the WAL"):
        ledger.close()
    reader.close()


def test_a_killed_bulk_load_leaves_every_committed_append(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    script = f"""
import os
from pathlib import Path
from gateway.ledger.store import Ledger
from tests.factories import minute_result as result, results_of
ledger = Ledger(Path({str(path)!r}))
ledger.bulk_load()
ledger.append(results_of([result(m) for m in range(1440)]), checkpoint=b"day 1")
ledger.append(results_of([result(m) for m in range(1440, 2880)]), checkpoint=b"day 2")
os._exit(9)  # no close: as kill -9 after the second commit
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2], check=False, timeout=60)
    assert done.returncode == 9
    report = verify_ledger(path)
    assert report.ok and report.rows == 2880
    reopened = Ledger(path)
    assert reopened.head_seq == 2880 and reopened.checkpoints.load()[1] == b"day 2"
    reopened.close()
