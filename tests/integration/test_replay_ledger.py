"""The ledger `emgate replay` writes: bulk loaded, named ledger.sqlite only once complete and on disk."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gateway.cli import main
from gateway.ledger.audit import verify_ledger
from gateway.replay.engine import replay
from gateway.replay.inputs import read_inputs
from gateway.settings.load import load_settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
SITE = """
[site]
name = "bulk"
timezone = "Asia/Shanghai"

[signals."s0"]
kind = "interval_total"
unit = "kWh"
interval_s = 60.0
interval_label = "start"
substitution = "none"

[[streams]]
process = "p0"
stream = "power"
signal = "s0"
method = "electricity"
factor = "cn.grid.2023.national_avg"
"""
DAYS = 3


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, Path]:
    site, data = tmp_path / "site.toml", tmp_path / "recorded.csv"
    site.write_text(SITE)
    t0 = 1_735_660_800  # 2025-01-01T00:00+08:00: replay steps are local days
    values = np.random.default_rng(5).uniform(10, 20, DAYS * 1440).round(3)
    data.write_text("ts,signal,value\n" + "".join(f"{t0 + 60 * k},s0,{v!r}\n" for k, v in enumerate(values.tolist())))
    return site, data


def test_a_finished_replay_leaves_only_the_ledger(tmp_path: Path, recorded: tuple[Path, Path]) -> None:
    site, data = recorded
    settings = load_settings(site)
    summary = asyncio.run(replay(settings, read_inputs([data], settings), tmp_path / "out"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["alerts.jsonl", "ledger.sqlite", "minutes.csv"]
    report = verify_ledger(tmp_path / "out" / "ledger.sqlite")
    assert report.ok and report.rows == summary.rows == DAYS * 1440 and report.head_hash == summary.ledger_head


def test_a_killed_replay_leaves_no_ledger_and_is_not_resumed_over(
    tmp_path: Path, recorded: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    site, data = recorded
    out = tmp_path / "out"
    script = f"""
import asyncio, os
from pathlib import Path
from gateway.replay.engine import replay
from gateway.replay.inputs import read_inputs
from gateway.settings.load import load_settings

days = []

def crash(results):
    days.append(results)
    if len(days) == 2:  # the second day is committed; kill -9 before the third
        os._exit(9)

settings = load_settings(Path({str(site)!r}))
asyncio.run(replay(settings, read_inputs([Path({str(data)!r})], settings), Path({str(out)!r}), listeners=[crash]))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, check=False, timeout=120)
    assert done.returncode == 9
    assert not (out / "ledger.sqlite").exists()
    assert main(["ledger", "verify", str(out / "ledger.sqlite")]) == 2
    assert "no such ledger file" in capsys.readouterr().err
    partial = verify_ledger(out / "ledger.sqlite.partial")  # a process crash loses no commit
    assert partial.ok and partial.rows == 2 * 1440
    # the next replay into the same directory removes the interrupted one's partial ledger, says
    # so, and writes the whole ledger again
    assert main(["replay", "--config", str(site), "--input", str(data), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "ledger.sqlite.partial, the partial ledger of an interrupted replay" in err
    assert not (out / "ledger.sqlite.partial").exists()
    again = verify_ledger(out / "ledger.sqlite")
    assert again.ok and again.rows == DAYS * 1440
