"""One gateway per ledger (hardening finding 4): an flock on `<ledger>.lock` for a gateway's
lifetime, released by the kernel when its process dies; readers and restatements are not locked
out. The two-processes case with real gateways is tests/integration/test_gateway_stop.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.commands.demo import DEMO_CONFIG, demo_settings
from gateway.ledger.lock import LedgerInUseError, LedgerLock, lock_path
from gateway.ledger.store import Ledger
from gateway.pipeline import Gateway
from tests.factories import minute_result as result
from tests.factories import results_of

REPO = Path(__file__).resolve().parents[2]


def test_a_second_lock_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    ledger = tmp_path / "var" / "ledger.sqlite"  # the directory is made, as for the ledger
    first = LedgerLock(ledger)
    first.acquire()
    assert lock_path(ledger) == tmp_path / "var" / "ledger.sqlite.lock"
    with pytest.raises(LedgerInUseError) as exc:
        LedgerLock(ledger).acquire()  # another open file description: flock refuses it
    assert f"the ledger at {ledger} is in use by another gateway (pid {os.getpid()} since " in str(exc.value)
    first.release()
    again = LedgerLock(ledger)
    again.acquire()
    again.release()
    assert lock_path(ledger).stat().st_mode & 0o777 == 0o600


def test_the_lock_goes_with_a_killed_process(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    code = (
        "import sys, time; from pathlib import Path; from gateway.ledger.lock import LedgerLock; "
        "LedgerLock(Path(sys.argv[1])).acquire(); print('locked', flush=True); time.sleep(60)"
    )
    with subprocess.Popen([sys.executable, "-c", code, str(ledger)], stdout=subprocess.PIPE, cwd=REPO, text=True) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            with pytest.raises(LedgerInUseError, match=f"pid {holder.pid} "):
                LedgerLock(ledger).acquire()
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)
    lock = LedgerLock(ledger)  # no stale lock to clean up after kill -9
    lock.acquire()
    lock.release()


def test_readers_and_a_restatement_are_not_locked_out(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    gateway = Ledger(path, site="works", exclusive=True)
    gateway.append(results_of([result(0), result(1)]))
    with pytest.raises(LedgerInUseError):
        Ledger(path, site="works", exclusive=True)
    reader = Ledger(path, readonly=True)  # export, ledger verify/show
    assert reader.head_seq == 2
    reader.close()
    restate = Ledger(path, site="works")  # ledger restate: chains on the real head (test_ledger_two_writers)
    assert restate.append(results_of([result(2)])) == 1
    restate.close()
    assert gateway.append(results_of([result(3)])) == 1
    gateway.close()
    Ledger(path, site="works", exclusive=True).close()  # close() released it


def test_gateway_build_holds_the_lock_until_close(tmp_path: Path) -> None:
    settings = demo_settings(DEMO_CONFIG, 502, tmp_path / "ledger.sqlite")
    gw = Gateway.build(settings)
    with pytest.raises(LedgerInUseError):
        Gateway.build(settings)
    gw.close()
    Gateway.build(settings).close()
