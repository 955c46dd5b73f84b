"""The monthly export of months it should not file as they are, and of text that must stay text:
a month without a minute in the ledger is refused; a month the ledger does not hold to its end
is exported marked incomplete (decided by the ledger, so the bytes stay reproducible); cell text
that a spreadsheet would run as a formula is escaped; the manifest's config digest does not
hash secrets. And `ledger show` for people: escape codes in a reason are shown, not run, and a
closed pipe is not a traceback. The ledger is recorded by `emgate replay` (the live stages)."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from gateway.cli import main

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
TZ = ZoneInfo("Asia/Shanghai")
TOKEN = "s3cret-influx-token"
SOURCE = '=HYPERLINK("http://example.invalid/x","supplier statement")'
REASON = "supplier statement\x1b[2J\x1b[31m corrected\x07 =cmd"

SITE = f"""
[site]
name = "rolling-mill"
timezone = "Asia/Shanghai"

[influx]
enabled = false
token = "{TOKEN}"

[signals."m.power_kw"]
kind = "rate"
unit = "kW"
max_gap_s = 7200.0

[[streams]]
process = "rolling"
stream = "electricity"
signal = "m.power_kw"
method = "electricity"
factor = "site.grid"

[[factors.overrides]]
id = "site.grid"
kind = "grid"
unit = "MWh"
ef_tco2_per_unit = {{ef}}
source = '{SOURCE}'
year = 2026
status = "confirmed"
"""


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(site file, ledger): 600 kW every hour from 2026-02-01 to 2026-03-03 00:00, Shanghai time."""
    tmp = tmp_path_factory.mktemp("recorded")
    config = tmp / "site.toml"
    config.write_text(SITE.replace("{ef}", "0.55"), encoding="utf-8")
    rec = tmp / "recorded.csv"
    t, end = datetime(2026, 2, 1, tzinfo=TZ), datetime(2026, 3, 3, tzinfo=TZ)
    rows = ["ts,signal,value"]
    while t <= end:
        rows.append(f"{t.isoformat()},m.power_kw,600")
        t += timedelta(hours=1)
    rec.write_text("\n".join(rows) + "\n")
    assert main(["replay", "--config", str(config), "--input", str(rec), "--out", str(tmp / "rec")]) == 0
    return config, tmp / "rec" / "ledger.sqlite"


def export(config: Path, ledger: Path, month: str, out: Path) -> int:
    return main(["export", "--config", str(config), "--ledger", str(ledger), "--month", month, "--out", str(out)])


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("month", ["2017-06", "2099-01", "2026-04"])
def test_a_month_without_a_minute_in_the_ledger_is_refused(
    recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], month: str
) -> None:
    config, ledger = recorded
    capsys.readouterr()
    assert export(config, ledger, month, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"ledger {ledger} has no minute in {month} (Asia/Shanghai)" in err
    assert "its minutes run from 2026-02-01T00:00+08:00 to 2026-03-02T23:59+08:00" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_a_month_the_ledger_does_not_hold_to_its_end_is_exported_marked_incomplete(
    recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ledger = recorded
    capsys.readouterr()
    assert export(config, ledger, "2026-03", tmp_path / "a") == 0
    err = capsys.readouterr().err
    assert "emgate export: warning: 2026-03 is INCOMPLETE: the ledger's last minute (2026-03-02T23:59+08:00)" in err
    s = summary(tmp_path / "a")
    assert s["complete"] is False and "do not deposit it" in s["incomplete_reason"]
    assert "before the month's last (2026-03-31T23:59+08:00)" in s["incomplete_reason"]
    book = openpyxl.load_workbook(tmp_path / "a" / "workbook.xlsx", read_only=True)
    items = {r[0]: r[1] for r in book["Summary"].iter_rows(values_only=True)}
    book.close()
    assert str(items["Complete"]).startswith("NO: the ledger's last minute")
    # the marker depends on the ledger, not the clock: the same head gives the same bytes
    assert export(config, ledger, "2026-03", tmp_path / "b") == 0
    for f in sorted((tmp_path / "a").iterdir()):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name

    capsys.readouterr()
    assert export(config, ledger, "2026-02", tmp_path / "feb") == 0
    assert "INCOMPLETE" not in capsys.readouterr().err
    feb = summary(tmp_path / "feb")
    assert feb["complete"] is True and feb["incomplete_reason"] is None


def test_cell_text_is_never_a_formula_and_the_config_digest_hides_secrets(recorded: tuple[Path, Path], tmp_path: Path) -> None:
    config, ledger = recorded
    out = tmp_path / "feb"
    assert export(config, ledger, "2026-02", out) == 0
    with (out / "evidence.csv").open(newline="") as fh:
        sources = {r["factor_source"] for r in csv.DictReader(fh)}
    assert "'" + SOURCE in sources and SOURCE not in sources
    for name in ("workbook.xlsx", "deposit.xlsx"):
        book = openpyxl.load_workbook(out / name)
        cells = [c for ws in book.worksheets for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
        assert not [c.coordinate for c in cells if c.data_type == "f" or c.value.startswith(("=", "+", "-", "@"))], name
        if name == "workbook.xlsx":
            assert any(c.value == "'" + SOURCE for c in cells)

    man = json.loads((out / "manifest.json").read_text())
    raw = config.read_bytes()
    assert TOKEN.encode() in raw
    assert man["config_sha256"] == hashlib.sha256(raw.replace(TOKEN.encode(), b"**********")).hexdigest()
    assert man["config_sha256"] != hashlib.sha256(raw).hexdigest()


def test_ledger_show_escapes_control_characters_and_survives_a_closed_pipe(
    recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _config, ledger = recorded
    copy = tmp_path / "ledger.sqlite"
    copy.write_bytes(ledger.read_bytes())
    revised = tmp_path / "site.toml"
    revised.write_text(SITE.replace("{ef}", "0.6"), encoding="utf-8")
    window = ["--from", "2026-02-01T00:00+08:00", "--to", "2026-02-01T01:00+08:00"]
    assert main(["ledger", "restate", "--config", str(revised), str(copy), *window, "--reason", REASON]) == 0
    capsys.readouterr()
    assert main(["ledger", "show", str(copy), "--history", *window]) == 0
    out = capsys.readouterr().out
    assert "supersedes row" in out and "\x1b" not in out and "\x07" not in out
    assert "supplier statement\\x1b[2J\\x1b[31m corrected\\x07 =cmd" in out

    # a reader that stops early (`| head -1`): exit 0, no traceback
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "ledger", "show", str(ledger), "--limit", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().split()[:2] == [b"seq", b"minute"]
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err


@pytest.mark.parametrize(
    ("month", "message"),
    [
        ("9999-12", "--month: month '9999-12': YYYY-MM with a year from 1970 to 9998"),
        ("\uff12\uff10\uff12\uff16-\uff10\uff12", "is not YYYY-MM in ASCII digits"),
    ],
)
def test_a_month_out_of_range_or_in_other_digits_is_exit_2(
    recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], month: str, message: str
) -> None:
    config, ledger = recorded
    capsys.readouterr()
    assert export(config, ledger, month, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not (tmp_path / "out").exists()


def test_ledger_show_of_an_empty_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    assert main(["ledger", "show", str(empty)]) == 2
    assert "cannot read as a ledger" in capsys.readouterr().err
