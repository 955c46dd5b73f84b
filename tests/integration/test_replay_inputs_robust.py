"""`emgate replay` refuses what it would otherwise guess: local times daylight saving makes
unclear, repeated instants with different values, wild timestamps that would have it write
decades of minutes, files it cannot read as text; and a failed replay does not block the next."""

from __future__ import annotations

import asyncio
import csv
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.core.model import MinuteResults
from gateway.replay.engine import replay
from gateway.replay.inputs import read_inputs
from gateway.settings.load import load_settings

pytestmark = pytest.mark.integration

SITE = """
[site]
name = "dst-works"
timezone = "Europe/Berlin"

[signals."m.power_kw"]
kind = "rate"
unit = "kW"
max_gap_s = 120.0

[[streams]]
process = "rolling"
stream = "electricity"
signal = "m.power_kw"
method = "electricity"
factor = "cn.grid.2023.national_avg"

[[replay.csv]]
match = "meter*.csv"
timestamp_column = "time"
timestamp_format = "%Y-%m-%d %H:%M"
columns = { "kW" = "m.power_kw" }
{extra}
"""


def site(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "site.toml"
    path.write_text(SITE.replace("{extra}", extra), encoding="utf-8")
    return path


def local_meter(path: Path, start: datetime, end_utc: datetime, kw: Callable[[int], float] = lambda _k: 400.0) -> list[str]:
    """A meter on local wall time (as many recorders are): one row a minute from `start`
    (naive, Europe/Berlin) to `end_utc`, written as the wall clock showed it; its lines."""
    tz = __import__("zoneinfo").ZoneInfo("Europe/Berlin")
    t = start.replace(tzinfo=tz).astimezone(UTC)
    lines = ["time,kW"]
    k = 0
    while t < end_utc:
        lines.append(f"{t.astimezone(tz):%Y-%m-%d %H:%M},{kw(k)}")
        t += timedelta(minutes=1)
        k += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


def replay_cli(config: Path, *inputs: Path, out: Path) -> int:
    args = ["replay", "--config", str(config), "--out", str(out)]
    for i in inputs:
        args += ["--input", str(i)]
    return main(args)


def mwh(out: Path) -> float:
    with (out / "minutes.csv").open() as fh:
        return math.fsum(float(r["activity"]) for r in csv.DictReader(fh))


# -- daylight saving ----------------------------------------------------------------------------

AUTUMN_START = datetime(2026, 10, 25, 0, 0)  # Berlin: 03:00 CEST -> 02:00 CET, 02:xx twice
AUTUMN_END_UTC = datetime(2026, 10, 25, 4, 0, tzinfo=UTC)  # 05:00 CET: 6 real hours after 00:00 CEST


def test_the_repeated_autumn_hour_is_an_error_unless_the_mapping_says_how(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    meter = tmp_path / "meter_autumn.csv"
    lines = local_meter(meter, AUTUMN_START, AUTUMN_END_UTC)
    first_repeat = lines.index("2026-10-25 02:00,400.0") + 1  # file lines count from 1
    assert lines.count("2026-10-25 02:00,400.0") == 2

    assert replay_cli(site(tmp_path), meter, out=tmp_path / "default") == 2
    err = capsys.readouterr().err
    assert f"meter_autumn.csv:{first_repeat}: local time 2026-10-25 02:00:00 occurs twice in Europe/Berlin" in err
    assert 'ambiguous = "earlier", "later" or "infer"' in err
    assert not (tmp_path / "default" / "ledger.sqlite").exists()

    # infer: the order of the rows tells the second 02:00 from the first: 400 kW over the 6 real
    # hours, but for the last minute, which has no reading after it (folded, an hour was lost)
    assert replay_cli(site(tmp_path, 'ambiguous = "infer"'), meter, out=tmp_path / "infer") == 0
    capsys.readouterr()
    assert mwh(tmp_path / "infer") == pytest.approx(0.4 * (6 * 60 - 1) / 60, rel=1e-9)

    # earlier: both 02:xx hours on the first; the repeats of the same value are dropped and counted
    assert replay_cli(site(tmp_path, 'ambiguous = "earlier"'), meter, out=tmp_path / "earlier") == 0
    assert "60 repeated reading(s) (same signal, time and value) dropped" in capsys.readouterr().out


def test_earlier_with_different_values_in_the_repeated_hour_names_both_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    meter = tmp_path / "meter_autumn.csv"
    lines = local_meter(meter, AUTUMN_START, AUTUMN_END_UTC, kw=lambda k: 300.0 + k)
    a = next(n for n, ln in enumerate(lines, 1) if ln.startswith("2026-10-25 02:00,"))
    b = next(n for n, ln in enumerate(lines, 1) if ln.startswith("2026-10-25 02:00,") and n != a)
    assert replay_cli(site(tmp_path, 'ambiguous = "earlier"'), meter, out=tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"meter_autumn.csv:{b}: signal 'm.power_kw' at 2026-10-25T00:00:00+00:00 has value" in err
    assert f"but {meter}:{a} gives" in err and "for the same instant" in err


def test_a_spring_time_that_does_not_exist_is_an_error_naming_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    meter = tmp_path / "meter_spring.csv"
    meter.write_text("time,kW\n2026-03-29 01:58,400\n2026-03-29 01:59,400\n2026-03-29 02:30,400\n2026-03-29 03:00,400\n")
    for mode in ("error", "infer", "later"):
        assert replay_cli(site(tmp_path, f'ambiguous = "{mode}"'), meter, out=tmp_path / mode) == 2
        err = capsys.readouterr().err
        assert "meter_spring.csv:4: local time 2026-03-29 02:30:00 does not exist in Europe/Berlin" in err, mode


def test_duplicates_in_a_long_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    rec = tmp_path / "recorded.csv"
    rows = [f"2026-11-02T08:{m:02d}:00+01:00,m.power_kw,500" for m in range(10)]
    rec.write_text("ts,signal,value\n" + "\n".join([*rows, rows[3], rows[4]]) + "\n")
    assert replay_cli(config, rec, out=tmp_path / "same") == 0
    assert "2 repeated reading(s) (same signal, time and value) dropped" in capsys.readouterr().out
    rec.write_text("ts,signal,value\n" + "\n".join([*rows, "2026-11-02T08:03:00+01:00,m.power_kw,501"]) + "\n")
    assert replay_cli(config, rec, out=tmp_path / "differ") == 2
    err = capsys.readouterr().err
    assert f"recorded.csv:12: signal 'm.power_kw' at 2026-11-02T07:03:00+00:00 has value 501.0, but {rec}:5 gives 500.0" in err
    assert not (tmp_path / "differ").exists()


# -- wild timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wild", "message"),
    [
        pytest.param("0", "timestamp 1970-01-01T00:00:00+00:00 is implausible", id="epoch-0"),
        pytest.param("2100-01-01T00:00:00+00:00", "timestamp 2100-01-01T00:00:00+00:00 is implausible", id="year-2100"),
        pytest.param("99999999999", "timestamp 5138-11-16T09:46:39+00:00 is implausible", id="epoch-year-5138"),
    ],
)
def test_a_wild_timestamp_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], wild: str, message: str
) -> None:
    rec = tmp_path / "recorded.csv"
    rows = [f"2026-11-02T08:{m:02d}:00+01:00,m.power_kw,500" for m in range(5)]
    rec.write_text("ts,signal,value\n" + "\n".join([*rows[:2], f"{wild},m.power_kw,500", *rows[2:]]) + "\n")
    assert replay_cli(site(tmp_path), rec, out=tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"recorded.csv:4: {message}" in err and "Nothing was written" in err
    assert not (tmp_path / "out").exists()


def test_a_gap_longer_than_max_gap_days_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meter = tmp_path / "meter_gap.csv"
    meter.write_text("time,kW\n2026-11-02 08:00,400\n2026-11-02 08:01,400\n2019-11-02 08:02,400\n2026-11-02 08:03,400\n")
    assert replay_cli(site(tmp_path), meter, out=tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "meter_gap.csv:4: timestamp 2019-11-02T07:02:00+00:00 is 2,557.0 days from the rest of the file" in err
    assert "meter_gap.csv:2, 2026-11-02T07:00:00+00:00" in err and "max_gap_days = 31" in err
    # a limit of its own: a week-long gap refused at 2 days, accepted at 8
    meter.write_text("time,kW\n2026-11-02 08:00,400\n2026-11-09 08:00,400\n")
    assert replay_cli(site(tmp_path, "max_gap_days = 2"), meter, out=tmp_path / "two") == 2
    assert "more than max_gap_days = 2" in capsys.readouterr().err
    assert replay_cli(site(tmp_path, "max_gap_days = 8"), meter, out=tmp_path / "eight") == 0


# -- files that are not what the mapping says ---------------------------------------------------


def test_encodings_and_huge_fields_are_exit_2_with_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    text = "ts,signal,value\n2026-11-02T08:00:00+01:00,m.power_kw,500\n"
    utf16 = tmp_path / "recorded16.csv"
    utf16.write_text(text, encoding="utf-16")
    assert replay_cli(config, utf16, out=tmp_path / "a") == 2
    err = capsys.readouterr().err
    assert f"{utf16}: not utf-8-sig text (byte 0)" in err and "save it as UTF-8" in err

    latin = tmp_path / "meter_latin.csv"
    latin.write_bytes("time,kW,Bemerkung\n2026-11-02 08:00,400,Störung\n".encode("latin-1"))
    assert replay_cli(config, latin, out=tmp_path / "b") == 2
    err = capsys.readouterr().err
    assert f"{latin}: not utf-8-sig text" in err and 'encoding = "latin-1" or "utf-16"' in err
    assert replay_cli(site(tmp_path, 'encoding = "latin-1"'), latin, out=tmp_path / "b2") == 0
    capsys.readouterr()
    assert replay_cli(site(tmp_path, 'encoding = "no-such-codec"'), latin, out=tmp_path / "b3") == 2
    assert "encoding 'no-such-codec' of its [[replay.csv]] entry is not one Python knows" in capsys.readouterr().err

    huge = tmp_path / "recorded_huge.csv"
    huge.write_text(text + f"2026-11-02T08:01:00+01:00,m.power_kw,{'9' * 200_000}\n")
    assert replay_cli(config, huge, out=tmp_path / "c") == 2
    err = capsys.readouterr().err
    assert f"{huge}:3: not readable as CSV: field larger than field limit" in err and "longer than 128 KB" in err
    assert not any((tmp_path / d / "ledger.sqlite").exists() for d in ("a", "b", "c"))


# -- a failed replay -----------------------------------------------------------------------------


def test_a_failed_replay_removes_its_partial_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    rec = tmp_path / "recorded.csv"
    rec.write_text(
        "ts,signal,value\n"
        + "".join(f"{datetime(2026, 11, 2, tzinfo=UTC).timestamp() + 60 * m!r},m.power_kw,500\n" for m in range(3000))
    )
    settings = load_settings(config)
    out = tmp_path / "out"

    def boom(results: MinuteResults) -> None:
        raise RuntimeError("a listener failed")

    with pytest.raises(RuntimeError, match="a listener failed"):
        asyncio.run(replay(settings, read_inputs([rec], settings), out, listeners=[boom]))
    assert sorted(p.name for p in out.iterdir()) == ["minutes.csv"]
    assert replay_cli(config, rec, out=out) == 0
    assert "partial ledger" not in capsys.readouterr().err
    assert (out / "ledger.sqlite").is_file()
