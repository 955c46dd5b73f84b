"""`emgate ledger archive`: closed months sealed and moved to an archive file that verifies on its
own and against its seals and exports the same totals; the live ledger verifies across the gap,
shrinks after VACUUM, and a gateway, restate and export still work on it."""

from __future__ import annotations

import json
import math
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.core.errors import SinkWriteError
from gateway.ledger.archive import ArchiveError, archive_ledger, archive_records, check_archive, month_seals
from gateway.ledger.audit import verify_ledger
from gateway.ledger.seals import Seal, check_witness
from gateway.ledger.store import Ledger
from gateway.pipeline import Gateway
from gateway.settings.load import load_settings
from tests.factories import results_of
from tests.support.archived_site import MONTHS, SITE, SITE_TOML, minute, month_minutes, start_of, write_ledger

pytestmark = pytest.mark.integration


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, Path]:
    ledger = tmp_path / "live" / "ledger.sqlite"
    config = tmp_path / "site.toml"
    config.write_text(SITE_TOML.format(ledger=ledger), encoding="utf-8")
    write_ledger(ledger)
    return config, ledger


def export_summary(config: Path, ledger: Path, month: str, out: Path) -> dict[str, Any]:
    assert main(["export", "--config", str(config), "--ledger", str(ledger), "--month", month, "--out", str(out)]) == 0
    s: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return s


def file_bytes(ledger: Path) -> int:
    return sum(p.stat().st_size for p in (ledger, ledger.with_name(ledger.name + "-wal")) if p.exists())


def figures(s: dict[str, Any]) -> tuple[Any, ...]:
    return (s["scopes"]["direct"]["co2_t"], s["scopes"]["indirect"]["co2_t"], s["ledger"]["month_rows"], s["complete"])


def test_archive_moves_the_closed_months_and_both_files_verify(
    site: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ledger = site
    before = {m: figures(export_summary(config, ledger, m, tmp_path / f"before-{m}")) for m in MONTHS}
    full = verify_ledger(ledger)
    assert full.ok
    size_before = file_bytes(ledger)
    capsys.readouterr()

    archive_dir = tmp_path / "archive"
    assert main(["ledger", "archive", "--config", str(config), "--before", "2026-11", str(archive_dir)]) == 0
    out = capsys.readouterr().out
    archive = archive_dir / f"{SITE}-ledger-2026-09-2026-10.sqlite"
    assert archive.is_file() and f"{archive}: ok" in out
    assert "sealed 2026-09" in out and "sealed 2026-10" in out and "sealed 2026-11" not in out

    # the record in the live ledger; S = the last row before November's first
    [rec] = archive_records(ledger)
    sep_oct_rows = len(month_minutes("2026-09")) + len(month_minutes("2026-10")) + 1  # and the correction
    assert (rec["first_seq"], rec["last_seq"], rec["rows"], rec["months"]) == (
        1,
        sep_oct_rows,
        sep_oct_rows,
        ["2026-09", "2026-10"],
    )
    assert rec["sealed_months"] == ["2026-09", "2026-10"]
    expected_co2 = math.fsum(r.co2_kg for m in MONTHS[:2] for r in month_minutes(m)) - (1426.5 - 1500.0)
    assert rec["co2_kg_current"] == pytest.approx(expected_co2, abs=1e-6)

    # the archive verifies on its own, its head is the record's; the live ledger across the gap
    alone = verify_ledger(archive)
    assert alone.ok and (alone.head_seq, alone.head_hash, alone.rows) == (rec["last_seq"], rec["last_hash"], sep_oct_rows)
    assert alone.corrections == 1
    live = verify_ledger(ledger)
    assert live.ok and live.archived_seq == sep_oct_rows and live.head_hash == full.head_hash and live.head_seq == full.head_seq
    assert live.rows == full.rows - sep_oct_rows
    assert main(["ledger", "verify", str(archive)]) == 0
    assert main(["ledger", "verify", str(ledger), "--archive", str(archive_dir)]) == 0
    out = capsys.readouterr().out
    assert f"rows 1..{sep_oct_rows} archived" in out and f"in {archive.name}" in out and "sealed months match their seals" in out

    # each archived month matches its seal, in the archive (its seals travel with it)
    seals = {s.month: s for s in month_seals(archive)}
    assert set(seals) == {"2026-09", "2026-10"} and seals["2026-10"].record["rows"] == len(month_minutes("2026-10")) + 1
    assert check_archive(archive_dir, rec) == []

    # exports: archived months from the archive file, November from the live ledger, same figures
    for m in MONTHS[:2]:
        assert figures(export_summary(config, archive, m, tmp_path / f"after-{m}")) == before[m]
    assert figures(export_summary(config, ledger, "2026-11", tmp_path / "after-2026-11")) == before["2026-11"]

    # the live ledger is smaller (VACUUM gave the space back)
    size_after = file_bytes(ledger)
    assert size_after < size_before * 0.6, (size_before, size_after)

    # nothing more to archive before November
    assert main(["ledger", "archive", "--config", str(config), "--before", "2026-11", str(archive_dir)]) == 2
    assert "nothing to archive" in capsys.readouterr().err


def test_a_tampered_or_missing_archive_is_caught(
    site: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ledger = site
    archive_dir = tmp_path / "archive"
    assert main(["ledger", "archive", "--config", str(config), "--before", "2026-11", str(archive_dir)]) == 0
    [rec] = archive_records(ledger)
    archive = archive_dir / rec["file"]
    assert not os.access(archive, os.W_OK) or os.geteuid() == 0  # written read-only
    os.chmod(archive, 0o600)
    db = sqlite3.connect(archive)  # an edit that keeps the archive's own chain readable: one meta value
    db.execute("INSERT INTO meta (key, value) VALUES ('note', 'x')")
    db.commit()
    db.close()
    capsys.readouterr()
    assert main(["ledger", "verify", str(ledger), "--archive", str(archive_dir)]) == 1
    err = capsys.readouterr().err
    assert "archive BROKEN" in err and "SHA-256" in err and rec["sha256"] in err
    archive.unlink()
    assert main(["ledger", "verify", str(ledger), "--archive", str(archive_dir)]) == 1
    assert "no such archive file" in capsys.readouterr().err
    # without --archive the live ledger still verifies on its own, printing the record
    assert main(["ledger", "verify", str(ledger)]) == 0
    assert f"archived: rows 1..{rec['last_seq']}" in capsys.readouterr().out


def test_heads_and_witnessed_seals_of_archived_rows(
    site: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ledger = site
    db = sqlite3.connect(ledger)
    old_hash = db.execute("SELECT hash FROM minutes WHERE seq = 100").fetchone()[0]
    db.close()
    assert main(["ledger", "archive", "--config", str(config), "--before", "2026-11", str(tmp_path / "a")]) == 0
    [rec] = archive_records(ledger)
    live_head = verify_ledger(ledger)
    capsys.readouterr()
    # the last archived row's hash is still known to the live chain; an older head is on the archive
    assert main(["ledger", "verify", str(ledger), "--expect-head", rec["last_hash"]]) == 0
    assert main(["ledger", "verify", str(ledger), "--expect-head", old_hash]) == 1
    assert "checked on the archive file" in capsys.readouterr().err
    assert main(["ledger", "verify", str(tmp_path / "a" / rec["file"]), "--expect-head", old_hash]) == 0
    # witnessed seals: each file checks the ones of the rows it holds and counts the others
    seals = [
        Seal(SITE, "2026-09-02", 100, old_hash, "2026-09-03T00:00:00+08:00", 0.0),
        Seal(SITE, "2026-11-30", live_head.head_seq, live_head.head_hash, "2026-12-01T00:00:00+08:00", 0.0),
    ]
    on_live, on_archive = check_witness(ledger, seals, SITE), check_witness(tmp_path / "a" / rec["file"], seals, SITE)
    assert on_live.ok and on_live.checked == 1 and on_live.elsewhere == 1 and on_live.rows_after == 0
    assert on_archive.ok and on_archive.checked == 1 and on_archive.elsewhere == 1
    forged = [Seal(SITE, "2026-11-30", live_head.head_seq, "0" * 64, "2026-12-01T00:00:00+08:00", 0.0)]
    assert not check_witness(ledger, forged, SITE).ok


def test_a_row_put_back_into_the_archived_range_is_caught(site: tuple[Path, Path], tmp_path: Path) -> None:
    config, ledger = site
    assert main(["ledger", "archive", "--config", str(config), "--before", "2026-11", str(tmp_path / "a")]) == 0
    [rec] = archive_records(ledger)
    db = sqlite3.connect(ledger)
    row = db.execute("SELECT * FROM minutes ORDER BY seq LIMIT 1").fetchone()
    cols = [c[1] for c in db.execute("PRAGMA table_info(minutes)") if c[1] != "hash"]
    values = dict(zip(cols, row, strict=False))
    values.update(seq=5, minute_start=values["minute_start"] - 86400.0 * 60)  # a minute of two months before
    db.execute(f"INSERT INTO minutes ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", [values[c] for c in cols])
    db.commit()
    db.close()
    report = verify_ledger(ledger)
    assert not report.ok and report.bad_seq == 5 and f"archived range 1..{rec['last_seq']}" in report.problem


def test_a_gateway_restate_and_export_still_work_on_the_archived_ledger(site: tuple[Path, Path], tmp_path: Path) -> None:
    config, ledger = site
    assert main(["ledger", "archive", "--config", str(config), "--before", "2026-11", str(tmp_path / "archive")]) == 0
    settings = load_settings(config)
    gw = Gateway.build(settings)
    try:
        head = gw.ledger.head_seq
        gw.ledger.append(results_of([minute(start_of("2026-12"), "blast_furnace")]))
        assert gw.ledger.head_seq == head + 1
    finally:
        gw.close()
    assert verify_ledger(ledger).ok
    # restate a day of November with the config's factors: corrections appended after the gap
    assert main(["ledger", "restate", "--config", str(config), str(ledger), "--from", "2026-11-01T00:00+08:00",
                 "--to", "2026-11-02T00:00+08:00", "--reason", "check"]) == 0  # fmt: skip
    assert verify_ledger(ledger).ok
    s = export_summary(config, ledger, "2026-11", tmp_path / "nov")
    assert s["ledger"]["month_rows"] == len(month_minutes("2026-11"))
    # the archive is never opened for writing: a gateway pointed at it is refused, naming it
    archive = tmp_path / "archive" / f"{SITE}-ledger-2026-09-2026-10.sqlite"
    with pytest.raises(SinkWriteError, match=r"an archive of ledger rows 1\.\.733 of ledger\.sqlite"):
        Ledger(archive, site=SITE)


def test_a_later_correction_of_an_old_month_holds_its_rows_back(site: tuple[Path, Path], tmp_path: Path) -> None:
    _, ledger = site
    lg = Ledger(ledger, site=SITE)
    sept_row = next(iter(lg.reader.current(from_s=start_of("2026-09") + 86400, to_s=start_of("2026-09") + 86400 + 60)))[0]
    lg.correct([(sept_row, minute(start_of("2026-09") + 86400, "blast_furnace", co2_kg=1.0))], "late lab result")
    lg.close()
    r = archive_ledger(ledger, tmp_path / "a", "2026-11", timezone="Asia/Shanghai", site=SITE)
    assert r.record["last_seq"] == sept_row - 1 and r.record["months"] == ["2026-09", "2026-09"]
    assert r.record["sealed_months"] == [] and any("corrects row" in why and "2026-09" in why for why in r.held_back)
    report = verify_ledger(ledger)
    assert report.ok and report.archived_seq == sept_row - 1 and report.corrections == 2
    with pytest.raises(ArchiveError, match="not closed"):
        archive_ledger(ledger, tmp_path / "b", "2027-01", timezone="Asia/Shanghai", site=SITE)


@pytest.mark.parametrize("engine", ["native", "python"])
def test_the_walk_across_the_gap_in_ranges_names_an_edited_row(
    site: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    from gateway.ledger import audit

    config, ledger = site
    assert main(["ledger", "archive", "--config", str(config), "--before", "2026-11", str(tmp_path / "a")]) == 0
    if engine == "python":
        monkeypatch.setattr(audit, "_native", None)
        monkeypatch.setattr(audit, "ROWS_PER_PROCESS", 100)  # three worker ranges, the first chained on the archive
    elif not audit.native_walk():
        pytest.skip("the native walk is not built here")
    monkeypatch.setattr(audit, "ROWS_PER_THREAD", 100)
    [rec] = archive_records(ledger)
    whole = verify_ledger(ledger, processes=3)
    assert whole.ok and whole.archived_seq == rec["last_seq"] and whole.rows == 360
    # the first live row edited: the walk chained on the archived hash names it
    db = sqlite3.connect(ledger)
    db.execute("DROP TRIGGER minutes_no_update")
    db.execute("UPDATE minutes SET co2_kg = co2_kg / 2 WHERE seq = ?", (rec["last_seq"] + 1,))
    db.commit()
    db.close()
    broken = verify_ledger(ledger, processes=3)
    assert not broken.ok and broken.bad_seq == rec["last_seq"] + 1 and "do not match its hash" in broken.problem


def test_bad_input_exits_2_and_archives_nothing(
    site: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ledger = site
    rows = verify_ledger(ledger).rows
    out = str(tmp_path / "a")
    assert main(["ledger", "archive", "--config", str(config), "--before", "2026-13", out]) == 2
    assert "not YYYY-MM" in capsys.readouterr().err
    assert main(["ledger", "archive", "--config", str(config), "--before", "2027-01", out]) == 2
    assert "not closed" in capsys.readouterr().err
    other = tmp_path / "other.toml"
    other.write_text(config.read_text().replace('name = "test-works"', 'name = "other-works"'), encoding="utf-8")
    assert main(["ledger", "archive", "--config", str(other), "--before", "2026-11", out]) == 2
    assert "other-works" in capsys.readouterr().err
    assert (
        main(
            ["ledger", "archive", "--config", str(config), "--ledger", str(tmp_path / "nope.sqlite"), "--before", "2026-11", out]
        )
        == 2
    )
    assert "no such ledger file" in capsys.readouterr().err
    assert verify_ledger(ledger).rows == rows and archive_records(ledger) == []
    assert not list((tmp_path / "a").glob("*.sqlite"))


def test_exporting_an_archived_month_from_the_live_ledger_names_the_archive(
    site: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ledger = site
    assert main(["ledger", "archive", "--config", str(config), "--before", "2026-11", str(tmp_path / "a")]) == 0
    [rec] = archive_records(ledger)
    capsys.readouterr()
    out = tmp_path / "sep"
    assert main(["export", "--config", str(config), "--ledger", str(ledger), "--month", "2026-09", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"month 2026-09 was archived (rows 1..{rec['last_seq']}) to {rec['file']}" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
