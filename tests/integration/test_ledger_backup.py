"""`emgate ledger backup`: a consistent copy of a ledger a gateway is writing, that verifies on its
own, with its evidence store; never over an existing file."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.ledger.audit import verify_ledger
from gateway.ledger.backup import backup_ledger
from gateway.ledger.errors import LedgerError
from gateway.ledger.evidence import EvidenceStore, evidence_dir, verify_evidence
from gateway.ledger.store import Ledger
from tests import factories

pytestmark = pytest.mark.integration

STREAMS = [{"process": "bf", "stream": f"s{i}"} for i in range(20)]


def test_backup_of_a_ledger_being_written_verifies_and_holds_a_prefix(tmp_path: Path) -> None:
    src = tmp_path / "ledger.sqlite"
    ledger = Ledger(src, site="works", exclusive=True)
    ledger.append(factories.results_of(factories.minute_results(500, STREAMS, site="works")))
    with EvidenceStore(src) as store:  # one evidence record with its report copy
        report = tmp_path / "report.pdf"
        report.write_bytes(b"%PDF lab report\n")
        sha = hashlib.sha256(report.read_bytes()).hexdigest()
        name, _ = store.keep_copy(report, sha)
        store.append("lab", [("S-1", {"stored_as": name, "report_sha256": sha})])
    stop = threading.Event()
    appended = [0]

    def writer() -> None:  # the gateway goes on closing minutes during the backup
        minute = 500
        while not stop.is_set() and minute < 3000:
            ledger.append(factories.results_of(factories.minute_results([factories.T0 + 60.0 * minute], STREAMS, site="works")))
            minute += 1
            appended[0] += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        dest = tmp_path / "backup" / "ledger-copy.sqlite"
        dest.parent.mkdir()
        result = backup_ledger(src, dest)
    finally:
        stop.set()
        t.join()
    ledger.close()
    assert appended[0] > 0, "the writer appended nothing during the backup: the test shows nothing"
    copy = verify_ledger(dest)
    assert copy.ok and copy.rows >= 500 * len(STREAMS)
    original = verify_ledger(src)
    assert original.ok and original.rows >= copy.rows
    # the copy is a prefix of the original: its head is in the original's chain
    assert verify_ledger(src, expect_head=copy.head_hash).expected_head_found is True
    assert result.evidence_files == 1 and verify_evidence(dest).ok and verify_evidence(dest).files == 1
    assert not dest.with_name(dest.name + ".partial").exists()
    assert not Path(str(dest) + "-wal").exists() or Path(str(dest) + "-wal").stat().st_size == 0
    assert (dest.stat().st_mode & 0o077) == 0  # owner-only, like the ledger


def test_backup_refuses_an_existing_destination_and_a_missing_source(tmp_path: Path) -> None:
    src = tmp_path / "ledger.sqlite"
    ledger = Ledger(src, site="works")
    ledger.append(factories.results_of(factories.minute_results(3, site="works")))
    ledger.close()
    dest = tmp_path / "copy.sqlite"
    dest.write_bytes(b"something else")
    with pytest.raises(LedgerError, match="already exists"):
        backup_ledger(src, dest)
    assert dest.read_bytes() == b"something else"
    with pytest.raises(LedgerError, match="no such ledger file"):
        backup_ledger(tmp_path / "missing.sqlite", tmp_path / "copy2.sqlite")
    assert not evidence_dir(tmp_path / "copy2.sqlite").exists()


def test_the_command_backs_up_and_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "ledger.sqlite"
    ledger = Ledger(src, site="works")
    ledger.append(factories.results_of(factories.minute_results(10, STREAMS, site="works")))
    ledger.close()
    dest = tmp_path / "copy.sqlite"
    assert main(["ledger", "backup", str(src), str(dest)]) == 0
    out = capsys.readouterr().out
    assert f"{dest}: ok" in out and "200 row(s)" in out
    assert main(["ledger", "backup", str(src), str(dest)]) == 2
    assert "already exists" in capsys.readouterr().err
