"""A power cut, not only kill -9: what was not on disk at the cut is lost or torn, and the restart
completes or marks the interrupted minute, never counts one twice and never silently drops one.

The gateway runs as in test_crash_kill9.py (a subprocess, tests/support/gateway_child.py, polling
the simulated plant at 60x). After its kill -9 the files are damaged the way a power cut can leave them:

- torn WAL frame: the ledger's -wal file is cut in the middle of the last frame of the newest
  transaction (its commit never completed), and the -shm index, which is never synced, is
  garbage. SQLite must ignore the incomplete transaction: the ledger and the checkpoint go back
  to the transaction before it, together.
- garbage WAL tail: half a frame of random bytes after the last frame; nothing committed is lost.
- torn checkpoint: the stored checkpoint and its deltas end in garbage (cut short, random bytes
  after). Startup must say so and resume after the ledger's last minute, not crash.

Then a new gateway starts and runs a few minutes. Checked: the restart reported its recovery;
the chain verifies; one current row per stream for every minute from the first to the last (no
minute twice, none missing); the minute in progress at the cut is flagged gateway_restart and
is partial, substituted or missing, never a full measured minute.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import sqlite3
import struct
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from gateway.ledger.audit import verify_ledger
from gateway.ledger.store import Ledger
from tests.factories import REPO
from tests.support.gateway_child import SPEED, AnchoredClock, child_site, spawn, started

pytestmark = pytest.mark.integration

WAL_HEADER = 32
FRAME_HEADER = 24


def wal_frames(wal: Path) -> tuple[int, list[tuple[int, bool]]]:
    """(page size, [(offset, is_commit)]) of the frames of the WAL's current generation."""
    data = wal.read_bytes()
    if len(data) < WAL_HEADER:
        return 0, []
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    frames = []
    off = WAL_HEADER
    while off + FRAME_HEADER + page_size <= len(data) and data[off + 8 : off + 16] == salts:
        commit = struct.unpack(">I", data[off + 4 : off + 8])[0] != 0
        frames.append((off, commit))
        off += FRAME_HEADER + page_size
    return page_size, frames


def tear_last_transaction(ledger: Path) -> None:
    """Cut the WAL in the middle of the newest commit frame; garble the -shm."""
    wal = ledger.with_name(ledger.name + "-wal")
    page_size, frames = wal_frames(wal)
    commits = [off for off, commit in frames if commit]
    assert len(commits) >= 2, f"the WAL holds {len(commits)} committed transaction(s); nothing to tear"
    with wal.open("r+b") as fh:
        fh.truncate(commits[-1] + FRAME_HEADER + page_size // 2)
    shm = ledger.with_name(ledger.name + "-shm")
    shm.write_bytes(random.Random(1).randbytes(max(shm.stat().st_size, 32768)))


def garbage_after_wal(ledger: Path) -> None:
    wal = ledger.with_name(ledger.name + "-wal")
    page_size, frames = wal_frames(wal)
    assert frames, "the WAL is empty"
    end = frames[-1][0] + FRAME_HEADER + page_size
    with wal.open("r+b") as fh:
        fh.seek(end)
        fh.write(random.Random(2).randbytes(FRAME_HEADER + page_size // 2))
        fh.truncate()
    ledger.with_name(ledger.name + "-shm").unlink()


def tear_checkpoint(ledger: Path) -> None:
    db = sqlite3.connect(ledger)
    try:
        assert db.execute("SELECT count(*) FROM checkpoint").fetchone()[0] == 1
        rng = random.Random(3)
        for table, key in (("checkpoint", "id"), ("checkpoint_delta", "n")):
            for k, state in db.execute(f"SELECT {key}, state FROM {table}").fetchall():
                torn = bytes(state[: len(state) // 2]) + rng.randbytes(97)
                db.execute(f"UPDATE {table} SET state = ? WHERE {key} = ?", (torn, k))
        db.commit()
    finally:
        db.close()


def snapshot(ledger: Path) -> tuple[int, float, int]:
    """(rows, checkpoint saved_at, deltas) as SQLite reads the files now (on a copy: reading
    runs WAL recovery, which must happen in the restarted gateway, not here)."""
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in ("", "-wal"):
            src = ledger.with_name(ledger.name + suffix)
            if src.exists():
                shutil.copyfile(src, Path(tmp) / (ledger.name + suffix))
        db = sqlite3.connect(Path(tmp) / ledger.name)
        try:
            rows = db.execute("SELECT count(*) FROM minutes").fetchone()[0]
            saved = db.execute("SELECT coalesce(max(saved_at), 0) FROM checkpoint").fetchone()[0]
            deltas = db.execute("SELECT count(*) FROM checkpoint_delta").fetchone()[0]
        finally:
            db.close()
    return int(rows), float(saved), int(deltas)


DAMAGE = {"torn_wal_frame": tear_last_transaction, "garbage_wal_tail": garbage_after_wal, "torn_checkpoint": tear_checkpoint}


@pytest.mark.flaky(reruns=2, reruns_delay=1)  # wall-clock timing on a shared 2-core machine, as the kill -9 test
@pytest.mark.parametrize("damage", list(DAMAGE))
async def test_restart_after_a_power_cut_recovers(damage: str, tmp_path: Path) -> None:
    from gateway.sim.plant import UNITS, SimulatedPlant
    from gateway.sources.pymodbus_client import RegisterServer
    from tests.services.ports import free_port

    clock = AnchoredClock(SPEED, time.time(), time.monotonic())
    port = free_port()
    ledger_path = tmp_path / "var" / "ledger.sqlite"
    settings = child_site(port, ledger_path, {})
    settings["influx"] = {"enabled": False}
    # checkpoints every 5 site seconds: a WAL of many small transactions, as on a live site
    settings["ledger"] = {"path": str(ledger_path), "checkpoint_s": 5.0}
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps(settings))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env = {k: v for k, v in env.items() if not k.startswith("EMGATE__")}
    log = tmp_path / "gateway.log"
    plant = SimulatedPlant(clock)
    async with RegisterServer(port=port, fills={u: plant.fill(u) for u in UNITS.values()}, n_registers=16):
        proc = await spawn(settings_file, clock, log, env)
        await started(proc, log)
        await asyncio.sleep(3.3)  # about three site minutes, the last one in progress at the cut
        assert proc.returncode is None, f"gateway exited early; see {log}"
        proc.send_signal(signal.SIGKILL)
        cut = clock.now()
        await proc.wait()

        before = snapshot(ledger_path)
        assert before[0] > 0, "no minute reached the ledger before the cut"
        DAMAGE[damage](ledger_path)
        after = snapshot(ledger_path)
        if damage == "torn_wal_frame":
            assert after != before and after[0] <= before[0], "the torn transaction was not lost"
        elif damage == "garbage_wal_tail":
            assert after == before, "garbage after the WAL lost committed data"
        log_before = log.stat().st_size

        # The power comes back after the interrupted minute has ended, so each of its streams lost
        # the rest of it. A restart within the same site minute (one real second is a site minute
        # here, and a gateway that imports less starts in under one) would let a counter's next
        # reading bracket the gap, which rightly counts the minute as covered.
        await asyncio.sleep(max(0.0, (cut // 60 * 60 + 65 - clock.now()) / SPEED))
        final = await spawn(settings_file, clock, log, env, minutes=3)
        await started(final, log)
        assert await asyncio.wait_for(final.wait(), 60) == 0, log.read_text()[-3000:]

    restart_log = log.read_bytes()[log_before:].decode(errors="replace")
    assert "recovered:" in restart_log, restart_log[-3000:]
    if damage == "torn_checkpoint":
        assert "checkpoint unreadable" in restart_log and "resuming after the ledger's last minute" in restart_log

    report = verify_ledger(ledger_path)
    assert report.ok, report.problem
    ledger = Ledger(ledger_path, readonly=True)
    current = [r for _, r in ledger.reader.current()]
    ledger.close()
    keys = Counter(r.key() for r in current)
    assert max(keys.values()) == 1, "a minute is stored twice"
    streams = {(r.process, r.stream) for r in current}
    minutes = sorted({r.minute_start for r in current})
    assert minutes == [minutes[0] + 60 * i for i in range(len(minutes))], "a minute is missing from the ledger"
    assert set(Counter(r.minute_start for r in current).values()) == {len(streams)}, "a minute lacks a stream"
    in_progress = cut // 60 * 60
    assert minutes[0] < in_progress <= minutes[-1]
    interrupted = [r for r in current if r.minute_start == in_progress]
    assert interrupted and all("gateway_restart" in r.flags.split(";") for r in interrupted), interrupted
    assert all(r.coverage < 1.0 and r.quality in ("partial", "substituted", "missing", "estimated") for r in interrupted), [
        (r.stream, r.quality, r.coverage) for r in interrupted
    ]
