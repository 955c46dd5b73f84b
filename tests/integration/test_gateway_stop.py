"""Real gateway processes (`python -m gateway demo`, the simulated plant at 60x, no servers):

- a second gateway on a ledger in use exits 2 at once, naming the ledger and the first one's
  pid, while the first runs on and stores every minute it closes (hardening finding 4);
- SIGTERM (kill, docker stop, supervisord, Kubernetes) stops the gateway as Ctrl-C does: exit
  130, the window saved and marked as a stop, and the next start resumes without reporting a
  crash recovery ("recovered:", which test_crash_kill9 and test_power_cut expect after a kill).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.ledger.audit import verify_ledger
from gateway.ledger.store import Ledger

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MINUTE_LINE = "CO2 kg:"  # the demo prints one line per closed minute (gateway/sinks/console.py)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMGATE__")}
    return {**env, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def _demo_cmd(ledger: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gateway", "demo", "--speed", "60", "--ledger", str(ledger), *extra]


class Demo:
    """`emgate demo` in the background, its stdout and stderr in files."""

    def __init__(self, tmp_path: Path, name: str, ledger: Path, *extra: str) -> None:
        self.out, self.err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        with self.out.open("wb") as fo, self.err.open("wb") as fe:
            self.proc = subprocess.Popen(_demo_cmd(ledger, *extra), stdout=fo, stderr=fe, cwd=REPO, env=_env())

    def minutes(self) -> int:
        return self.out.read_text(errors="replace").count(MINUTE_LINE)

    def wait_for(self, what: str, cond: Callable[[], bool], timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not cond():
            if self.proc.poll() is not None:
                raise AssertionError(f"demo exited ({self.proc.returncode}) waiting for {what}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}:\n{self.tail()}")
            time.sleep(0.05)

    def stop(self, sig: signal.Signals, timeout_s: float = 30.0) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"no exit within {timeout_s} s of {sig.name}:\n{self.tail()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tail(self) -> str:
        return self.out.read_text(errors="replace")[-2000:] + "\n--- stderr ---\n" + self.err.read_text(errors="replace")[-3000:]


def _check_ledger(path: Path) -> list[float]:
    """The chain verifies, one current row per stream and minute, minutes consecutive; the minutes."""
    report = verify_ledger(path)
    assert report.ok, report.problem
    ledger = Ledger(path, readonly=True)
    current = [r for _, r in ledger.reader.current()]
    ledger.close()
    assert current, "no minute in the ledger"
    assert max(Counter(r.key() for r in current).values()) == 1, "a minute is stored twice"
    minutes = sorted({r.minute_start for r in current})
    assert minutes == [minutes[0] + 60 * i for i in range(len(minutes))], "a minute is missing from the ledger"
    streams = {(r.process, r.stream) for r in current}
    assert set(Counter(r.minute_start for r in current).values()) == {len(streams)}, "a minute lacks a stream"
    assert {r.site for r in current} == {"integrated-works"}  # the default demo
    return minutes


@pytest.mark.timeout(180)
def test_a_second_gateway_on_a_ledger_in_use_exits_2_and_the_first_keeps_every_minute(tmp_path: Path) -> None:
    ledger = tmp_path / "shared.sqlite"
    first = Demo(tmp_path, "first", ledger)
    try:
        first.wait_for("its first minute", lambda: first.minutes() >= 1)  # the lock is taken before the plant starts
        started = time.monotonic()
        second = subprocess.run(
            _demo_cmd(ledger, "--minutes", "2"), capture_output=True, text=True, timeout=90, cwd=REPO, env=_env()
        )
        assert second.returncode == 2, f"second gateway: exit {second.returncode}\n{second.stdout}\n{second.stderr}"
        assert time.monotonic() - started < 60  # at once, not after a minute's close or a timeout
        assert f"the ledger at {ledger} is in use by another gateway (pid {first.proc.pid} since" in second.stderr
        assert MINUTE_LINE not in second.stdout  # it closed no minute
        assert first.proc.poll() is None, "the first gateway stopped"
        closed = first.minutes()
        first.wait_for("two more minutes", lambda: first.minutes() >= closed + 2)
        assert first.stop(signal.SIGINT) == 130
    finally:
        first.kill()
    printed = first.minutes()
    minutes = _check_ledger(ledger)
    assert len(minutes) == printed, f"the first gateway closed {printed} minute(s), the ledger holds {len(minutes)}"
    assert "Traceback" not in first.err.read_text(errors="replace")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_gateway_in_order(tmp_path: Path, sig: signal.Signals) -> None:
    ledger = tmp_path / "ledger.sqlite"
    gw = Demo(tmp_path, "gateway", ledger)
    try:
        gw.wait_for("two minutes", lambda: gw.minutes() >= 2)
        code = gw.stop(sig)
    finally:
        gw.kill()
    err = gw.err.read_text(errors="replace")
    assert code == 130, f"exit {code} after {sig.name} (Ctrl-C exits 130)\n{gw.tail()}"
    assert "Traceback" not in err, err[-3000:]
    before = _check_ledger(ledger)

    restart = subprocess.run(
        _demo_cmd(ledger, "--minutes", "1"), capture_output=True, text=True, timeout=120, cwd=REPO, env=_env()
    )
    assert restart.returncode == 0, restart.stderr[-3000:]
    assert "recovered:" not in restart.stderr, restart.stderr[-3000:]  # what a crash's restart reports
    assert "resumed after the stop of" in restart.stderr, restart.stderr[-3000:]
    after = _check_ledger(ledger)
    assert after[: len(before)] == before and len(after) > len(before)
