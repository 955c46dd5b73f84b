"""A ledger on a disk that really runs full (a 4 MB tmpfs, filled by another file until the kernel
says ENOSPC): the minutes closed meanwhile wait in memory, flagged, none lost; when space
returns they are written first, in order, once; beyond the memory bound the gateway stops so
that its restart recovers from the checkpoint. The disk budget and the refusing disk raise
data_quality alerts, which clear when space returns."""

from __future__ import annotations

import errno
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.alerts.budget_stage import AlertStage
from gateway.core.errors import SinkWriteError
from gateway.ledger.alerts_table import AlertStore
from gateway.ledger.audit import verify_ledger
from gateway.ledger.reader import LedgerReader
from gateway.ledger.store import DELAYED_FLAG, Ledger
from gateway.settings.alerts import AlertsConfig
from tests import factories

pytestmark = pytest.mark.integration

STREAMS = [{"process": "bf", "stream": f"s{i}"} for i in range(20)]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the kernel refuses with ENOSPC; returns it (delete it to free the space)."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def minute(m: int) -> object:
    return factories.results_of(factories.minute_results([factories.T0 + 60.0 * m], STREAMS, site="works"))


def test_minutes_wait_in_memory_while_the_disk_is_full_and_are_written_once_when_it_frees(small_disk: Path) -> None:
    ledger = Ledger(small_disk / "ledger.sqlite", site="works", max_pending=10_000)
    for m in range(10):
        assert ledger.append(minute(m)) == len(STREAMS)
    filler = fill(small_disk)
    held = 0
    for m in range(10, 60):  # a large row count so the WAL must grow past what it has
        ledger.append(minute(m))
        held = ledger.pending
    assert ledger.counters.write_failures > 0 and held > 0, "the full disk refused nothing: the test shows nothing"
    assert ledger.counters.pending == held
    filler.unlink()
    written = ledger.append(minute(60))
    assert ledger.pending == 0 and written == held + len(STREAMS)
    ledger.close()

    report = verify_ledger(small_disk / "ledger.sqlite")
    assert report.ok and report.rows == 61 * len(STREAMS)
    with LedgerReader.open(small_disk / "ledger.sqlite") as reader:
        rows = list(reader.results())
    starts = [r.minute_start for r in rows]
    assert starts == sorted(starts) and len(set(zip(starts, (r.stream for r in rows), strict=True))) == len(rows)  # in order, each once
    delayed = [r for r in rows if DELAYED_FLAG in r.flags]
    # every minute that waited says so, and the one whose close found the backlog still there
    assert len(delayed) == held + len(STREAMS)


def test_beyond_the_memory_bound_the_gateway_stops_for_a_restart(small_disk: Path) -> None:
    ledger = Ledger(small_disk / "ledger.sqlite", site="works", max_pending=100)
    ledger.append(minute(0))
    fill(small_disk)
    with pytest.raises(SinkWriteError, match="more than max_pending 100") as exc_info:
        for m in range(1, 500):
            ledger.append(minute(m))
    assert not exc_info.value.retryable
    ledger.close()


def test_the_disk_budget_and_a_refusing_disk_raise_data_quality_alerts(small_disk: Path) -> None:
    """The alert stage reads the real tmpfs: below the budget a warning, full a refusing ledger
    (critical); both clear once the space is back."""
    path = small_disk / "ledger.sqlite"
    ledger = Ledger(path, site="works", max_pending=10_000)
    alerts = AlertsConfig(
        enabled=True,
        spike={"enabled": False},
        data_quality={"disk": {"min_free_mb": 3.0, "min_duration_s": 0, "clear_duration_s": 0}},
    )
    stage = AlertStage(
        "works",
        "UTC",
        None,
        alerts,
        AlertStore(path),
        disk_free_bytes=lambda: shutil.disk_usage(small_disk).free,
        ledger_pending=lambda: ledger.pending,
    )

    def close_minute(m: int) -> None:
        results = minute(m)
        ledger.append(results)  # type: ignore[arg-type]
        stage(results)  # type: ignore[arg-type]

    close_minute(0)
    assert stage.active() == []  # 4 MB disk, a few hundred KB used: above the 3 MB budget
    filler = fill(small_disk)
    for m in range(1, 40):
        close_minute(m)
    subjects = {a.subject: a for a in stage.active()}
    assert subjects["ledger_disk"].severity == "critical" and subjects["ledger_disk"].details["free_mb"] < 0.5
    assert subjects["ledger_write"].severity == "critical" and subjects["ledger_write"].details["held_rows"] > 0
    assert "held in memory" in subjects["ledger_write"].message
    filler.unlink()
    for m in range(40, 42):
        close_minute(m)
    assert stage.active() == [] and ledger.pending == 0
    states = [(e.subject, e.state) for e in stage.store.events()]
    assert states.count(("ledger_disk", "cleared")) == 1 and states.count(("ledger_write", "cleared")) == 1
    stage.close()
    ledger.close()
