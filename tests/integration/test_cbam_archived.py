"""`emgate cbam` over months archived out of the ledger: read from their archive files (--archive)
with the same bits as from the live ledger, refused without them, and refused, naming the row or
the month, when an archive was changed or a month is split between two files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.ledger import period
from gateway.ledger.archive import archive_records, month_start_s, sha256_of
from gateway.ledger.store import Ledger
from tests.factories import results_of
from tests.support.archived_site import SITE, SITE_TOML, minute, start_of, write_ledger

pytestmark = pytest.mark.integration

TZ = "Asia/Shanghai"
CBAM_TOML = """
[[production]]
process = "blast_furnace"
product = "hot_metal"
monthly_t = {{ "2026-09" = 9000.0, "2026-10" = 9300.0, "2026-11" = 9000.0 }}
evidence = "{evidence}"

[cbam]
installation = {{ name = "Test Works", address = "1 Furnace Road", country = "CN", unlocode = "CNSHG", latitude = 31.4, longitude = 121.5, economic_activity = "Manufacture of basic iron and steel" }}

[cbam.processes.ironmaking]
goods_category = "Pig iron"
emgate_processes = ["blast_furnace", "utilities"]
production = ["blast_furnace/hot_metal"]
goods = [{{ cn = "72011011", name = "Non-alloy pig iron" }}]
"""
SEP_NOV = ["--from", "2026-09-01", "--to", "2026-11-30"]


@pytest.fixture
def works(tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    """The archive tests' three months with a [cbam] section; and the report before any archive."""
    ledger = tmp_path / "live" / "ledger.sqlite"
    evidence = tmp_path / "production-2026.pdf"
    evidence.write_bytes(b"%PDF monthly production statement\n")
    config = tmp_path / "site.toml"
    config.write_text(SITE_TOML.format(ledger=ledger) + CBAM_TOML.format(evidence=evidence), encoding="utf-8")
    write_ledger(ledger)
    before = report(config, ledger, tmp_path / "before")
    return config, ledger, before


def cbam(config: Path, ledger: Path, out: Path, *extra: str, period: list[str] = SEP_NOV) -> int:
    return main(["cbam", "--config", str(config), "--ledger", str(ledger), *period, "--out", str(out), *extra])


def report(config: Path, ledger: Path, out: Path, *extra: str) -> dict[str, Any]:
    assert cbam(config, ledger, out, *extra) == 0
    doc: dict[str, Any] = json.loads((out / "cbam.json").read_text())
    return doc


def archive(config: Path, ledger: Path, folder: Path) -> tuple[dict[str, Any], Path]:
    """September and October archived into `folder`: the live ledger's record and the archive file."""
    assert main(["ledger", "archive", "--config", str(config), "--before", "2026-11", str(folder)]) == 0
    [rec] = archive_records(ledger)
    return rec, folder / rec["file"]


def edit(path: Path, *sql: str) -> None:
    """Run statements on a ledger or archive file as someone editing it by hand would."""
    path.chmod(0o600)  # an archive is written read-only
    db = sqlite3.connect(path)
    for statement in sql:
        db.execute(statement)
    db.commit()
    db.close()


def test_archived_months_read_from_their_archive_give_the_same_report(
    works: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ledger, before = works
    folder = tmp_path / "archive"
    rec, _ = archive(config, ledger, folder)
    capsys.readouterr()

    # without the archive the live ledger alone would leave September and October out: refused
    assert cbam(config, ledger, tmp_path / "no-archive") == 2
    err = capsys.readouterr().err
    assert "2026-09, 2026-10 in " + rec["file"] in err and "--archive DIR" in err
    assert not (tmp_path / "no-archive").exists()

    after = report(config, ledger, tmp_path / "after", "--archive", str(folder))
    assert {k: v for k, v in after.items() if k != "ledger"} == {k: v for k, v in before.items() if k != "ledger"}
    assert before["goods"][0]["see_direct_tco2_per_t"] > 0 and before["ledger"]["archives"] == []
    assert after["ledger"]["head_hash"] == before["ledger"]["head_hash"]
    assert after["ledger"]["archives"] == [
        {"file": rec["file"], "sha256": rec["sha256"], "months": ["2026-09", "2026-10"], "cells": "stored"}
    ]
    assert after["ledger"]["rows_verified"] == before["ledger"]["rows_verified"] - rec["rows"]
    # the workbook carries no file names: the same bytes
    assert (tmp_path / "after" / "cbam.xlsx").read_bytes() == (tmp_path / "before" / "cbam.xlsx").read_bytes()

    # November alone needs no archive; December has no minute, archived or live
    assert cbam(config, ledger, tmp_path / "nov", period=["--from", "2026-11-01", "--to", "2026-11-30"]) == 0
    capsys.readouterr()
    assert (
        cbam(config, ledger, tmp_path / "dec", "--archive", str(folder), period=["--from", "2026-12-01", "--to", "2026-12-31"])
        == 2
    )
    assert "has no minute in 2026-12-01..2026-12-31" in capsys.readouterr().err


def test_a_period_cut_inside_archived_months_reads_the_same_cells(
    works: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    config, ledger, _ = works
    days = [month_start_s("2026-09", TZ) + 86400.0 * d for d in range(14, 14 + 50)]  # 15 Sep .. 3 Nov

    def cells(archive_dir: Path | None) -> list[tuple[Any, ...]]:
        return sorted(period.read_period(ledger, days, site=SITE, timezone=TZ, archive_dir=archive_dir).cells)

    live = cells(None)
    assert {c[0] for c in live} == set(range(49))  # a cell on every day, September's, October's and November's
    archive(config, ledger, tmp_path / "archive")
    assert cells(tmp_path / "archive") == live


def test_an_archive_written_without_stored_cells_is_walked(works: tuple[Path, Path, dict[str, Any]], tmp_path: Path) -> None:
    config, ledger, before = works
    folder = tmp_path / "archive"
    rec, path = archive(config, ledger, folder)
    edit(path, "DROP TABLE month_cells", "VACUUM")  # as an archive of an emgate that did not store them
    rec["sha256"] = sha256_of(path)  # and the live ledger's record of it
    edit(ledger, f"UPDATE meta SET value = '{json.dumps([rec], sort_keys=True, separators=(',', ':'))}' WHERE key = 'archived'")
    after = report(config, ledger, tmp_path / "after", "--archive", str(folder))
    assert after["ledger"]["archives"][0]["cells"] == "walked"
    assert after["goods"] == before["goods"] and after["processes"] == before["processes"]


def test_an_edited_row_of_an_archive_is_refused_naming_it(
    works: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ledger, _ = works
    folder = tmp_path / "archive"
    rec, path = archive(config, ledger, folder)
    edit(path, "DROP TRIGGER minutes_no_update", "UPDATE minutes SET co2_kg = co2_kg / 2 WHERE seq = 7")
    capsys.readouterr()
    assert cbam(config, ledger, tmp_path / "out", "--archive", str(folder)) == 1
    err = capsys.readouterr().err
    assert "SHA-256" in err and rec["sha256"] in err and "BROKEN at row 7" in err
    assert not (tmp_path / "out").exists()
    path.unlink()
    assert cbam(config, ledger, tmp_path / "out", "--archive", str(folder)) == 2
    assert "no such archive file" in capsys.readouterr().err


def test_a_late_minute_of_an_archived_month_is_refused_naming_the_month(
    works: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ledger, _ = works
    folder = tmp_path / "archive"
    archive(config, ledger, folder)
    lg = Ledger(ledger, site=SITE)
    try:
        lg.append(results_of([minute(start_of("2026-10") + 600.0, "blast_furnace")]))  # never sent before
    finally:
        lg.close()
    capsys.readouterr()
    assert cbam(config, ledger, tmp_path / "out", "--archive", str(folder)) == 2
    err = capsys.readouterr().err
    assert "month 2026-10 was archived to" in err and "split between two files" in err
    # September alone is whole in its archive
    assert (
        cbam(config, ledger, tmp_path / "sep", "--archive", str(folder), period=["--from", "2026-09-01", "--to", "2026-09-30"])
        == 0
    )
