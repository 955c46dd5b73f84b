"""Upgrades keep every minute: ledgers written by earlier releases' own code (tests/fixtures/ledgers,
built by scripts/make-ledger-fixture.sh) open in this version, or are migrated by
`emgate ledger migrate` into a new file that proves to hold the same rows and totals.

- release-2026-12-07 (schema 3, with lab evidence and restated minutes): verifies with the head
  its release recorded, exports the totals its release exported, and a gateway starts on it;
- release-1 (schema 2, the first release): this version refuses to open it and names the
  migration; the migration keeps the old file as it was, and the new one verifies, records each
  row's old hash and exports the totals the first release exported; a broken old chain is
  refused, naming the row.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.ledger.migrate import MigrationError, migrate_ledger
from gateway.pipeline import Gateway
from gateway.settings.load import load_settings

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ledgers"


def fixture(tmp_path: Path, name: str) -> tuple[Path, dict[str, Any]]:
    """A copy of the fixture's ledger (and evidence store) in tmp_path, and what its release said of it."""
    shutil.copytree(FIXTURES / name, tmp_path / name)
    return tmp_path / name / "ledger.sqlite", json.loads((FIXTURES / name / "expected.json").read_text())


def export_totals(tmp_path: Path, ledger: Path, out: str) -> dict[str, Any]:
    assert main(["export", "--config", str(FIXTURES / "site.toml"), "--ledger", str(ledger), "--month", "2026-11", "--out", str(tmp_path / out)]) == 0
    summary = json.loads((tmp_path / out / "summary.json").read_text())
    return {"direct": summary["scopes"]["direct"]["co2_t"], "indirect": summary["scopes"]["indirect"]["co2_t"]}


def test_the_previous_release_ledger_opens_verifies_and_exports_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger, expected = fixture(tmp_path, "release-2026-12-07")
    assert expected["schema"] == "3" and expected["corrections"] > 0
    assert main(["ledger", "verify", str(ledger)]) == 0
    out = capsys.readouterr().out
    assert f"head {expected['export']['head_hash']}" in out and f"{expected['rows']} row(s)" in out
    assert "evidence: ok — 1 record(s), 1 report copy(ies) intact" in out
    totals = export_totals(tmp_path, ledger, "export")
    assert totals == {"direct": expected["export"]["direct_co2_t"], "indirect": expected["export"]["indirect_co2_t"]}
    # a gateway of this version starts on it and appends after its head
    settings = load_settings(FIXTURES / "site.toml")
    settings = settings.model_copy(update={"ledger": settings.ledger.model_copy(update={"path": ledger})})
    gw = Gateway.build(settings)
    try:
        assert gw.ledger.head_seq == expected["rows"] and gw.ledger.head_hash == expected["export"]["head_hash"]
    finally:
        gw.close()


def test_the_first_release_ledger_is_refused_with_the_way_to_migrate_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger, expected = fixture(tmp_path, "release-1")
    assert expected["schema"] == "2"
    assert main(["ledger", "verify", str(ledger)]) == 2
    assert "emgate ledger migrate" in capsys.readouterr().err


def test_migrating_the_first_release_ledger_keeps_every_row_and_total(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger, expected = fixture(tmp_path, "release-1")
    before = hashlib.sha256(ledger.read_bytes()).hexdigest()
    new = tmp_path / "migrated.sqlite"
    assert main(["ledger", "migrate", str(ledger), str(new)]) == 0
    out = capsys.readouterr().out
    assert f"{expected['rows']} row(s)" in out and expected["export"]["head_hash"] in out
    assert hashlib.sha256(ledger.read_bytes()).hexdigest() == before  # the old file is kept as it was
    assert main(["ledger", "verify", str(new)]) == 0
    db = sqlite3.connect(new)
    old_hashes = dict(db.execute("SELECT seq, old_hash FROM migrated_rows"))
    assert len(old_hashes) == expected["rows"] and old_hashes[expected["rows"]] == expected["export"]["head_hash"]
    record = json.loads(db.execute("SELECT value FROM meta WHERE key = 'migrated_from'").fetchone()[0])
    assert (record["schema"], record["rows"], record["head_hash"]) == ("2", expected["rows"], expected["export"]["head_hash"])
    assert db.execute("SELECT value FROM meta WHERE key = 'site'").fetchone()[0] == "fixture-works"
    assert db.execute("SELECT count(*) FROM alerts").fetchone()[0] > 0  # the alert events came along
    db.close()
    totals = export_totals(tmp_path, new, "export")
    assert totals == {"direct": expected["export"]["direct_co2_t"], "indirect": expected["export"]["indirect_co2_t"]}
    # never over an existing file; a current ledger has nothing to migrate
    assert main(["ledger", "migrate", str(ledger), str(new)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["ledger", "migrate", str(new), str(tmp_path / "again.sqlite")]) == 2
    assert "nothing to migrate" in capsys.readouterr().err


def test_a_broken_old_chain_is_not_migrated(tmp_path: Path) -> None:
    ledger, _ = fixture(tmp_path, "release-1")
    db = sqlite3.connect(ledger)
    db.execute("DROP TRIGGER minutes_no_update")  # what someone with the file could do
    db.execute("UPDATE minutes SET co2_kg = co2_kg / 2 WHERE seq = 17")
    db.commit()
    db.close()
    with pytest.raises(MigrationError, match="row 17: its hash does not match its content"):
        migrate_ledger(ledger, tmp_path / "migrated.sqlite")
    assert not (tmp_path / "migrated.sqlite").exists()
    assert not (tmp_path / "migrated.sqlite.partial").exists()


def test_the_command_exits_1_for_a_broken_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger, _ = fixture(tmp_path, "release-1")
    db = sqlite3.connect(ledger)
    db.execute("DROP TRIGGER minutes_no_delete")
    db.execute("DELETE FROM minutes WHERE seq = 5")
    db.commit()
    db.close()
    assert main(["ledger", "migrate", str(ledger), str(tmp_path / "migrated.sqlite")]) == 1
    assert "row 6: expected seq 5: a row was deleted or inserted" in capsys.readouterr().err
