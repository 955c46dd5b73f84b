"""A child process whose output goes to a log file and that never outlives the tests."""

import atexit
import ctypes
import os
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)  # resolved here: the child should not dlopen after fork
_live: weakref.WeakSet["ManagedProcess"] = weakref.WeakSet()


class ServiceError(RuntimeError):
    """A peer did not start, did not become ready, or died."""


def log_dir() -> Path:
    """Directory for the peers' logs: $EMGATE_TEST_LOGS, else <repo>/.test-logs (git-ignored)."""
    path = Path(os.environ.get("EMGATE_TEST_LOGS") or REPO_ROOT / ".test-logs")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if pytest is killed (SIGKILL, CI timeout) the
    # kernel kills the peer too, so no broker or database is left listening.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ManagedProcess:
    """One child process: start, wait until ready, stop (SIGTERM, then SIGKILL).

    Output (stdout and stderr) is appended to `log_path`; each start writes a header line.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [os.fspath(arg) for arg in argv]
        self.log_path = log_path
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None
        self._starts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            raise ServiceError(f"{self.name} is already running (pid {self.pid})")
        # The first start of this object truncates a log left by an earlier run on the same port.
        mode = "ab" if self._starts else "wb"
        with self.log_path.open(mode) as log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            log.write(f"=== {stamp} start: {' '.join(self.argv)}\n".encode())
            log.flush()
            # PDEATHSIG fires when the *thread* that forked exits, so only use it from the main thread.
            in_main = threading.current_thread() is threading.main_thread()
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,  # Ctrl-C reaches pytest only; teardown stops us in order
                preexec_fn=_die_with_parent if in_main else None,
            )
        self._starts += 1
        _live.add(self)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate, wait up to `timeout_s`, then kill. Safe to call when not running."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout_s)
        _live.discard(self)

    def wait_ready(self, check: Callable[[], bool], *, timeout_s: float, what: str) -> None:
        """Poll `check` until it returns True; raise ServiceError if the process dies or time runs out."""
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.running:
                code = self._proc.returncode if self._proc is not None else None
                self.stop()
                raise ServiceError(
                    f"{self.name} exited with status {code} before {what}; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            if check():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceError(
                    f"{self.name} did not get to {what} within {timeout_s:.0f}s; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@atexit.register
def _stop_leftovers() -> None:
    for process in list(_live):
        process.stop(timeout_s=2.0)
