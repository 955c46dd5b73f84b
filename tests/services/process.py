"""The base of every real peer: a child process with a temp dir and a log, that never outlives the tests.

A peer (mosquitto, influxd, the modbus-tk slave, socat) is a `ServiceProcess` that gives only
what is its own: the command line, the readiness check and a name for messages. The base owns
the rest, the same for all of them: starting the process with its output in the test-log
directory, waiting until it is ready within a deadline (and saying why not, with the log's last
lines), stop/restart keeping ports and data, close, and the `with` statement.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

REPO_ROOT = Path(__file__).resolve().parents[2]

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)  # resolved here: the child should not dlopen after fork
_live: weakref.WeakSet[ServiceProcess] = weakref.WeakSet()


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


class ServiceProcess(ABC):
    """One peer process: start, wait until ready, stop (SIGTERM, then SIGKILL), restart, close.

    A subclass sets what differs and nothing else:
      * `name` (a property): what the peer is and where, for messages ("mosquitto on 127.0.0.1:1883");
      * `command()`: its argv; `environment()` and `working_dir()` if it needs them;
      * `ready()`: True once it serves, and `readiness`: what that means, for the timeout message;
      * `start_timeout_s`, and `_after_ready()` for what must follow each start (e.g. create a database).

    Its `__init__` calls `super().__init__(kind, log_name=...)` first: that makes `tmp_dir`, a
    temp directory removed by `close()`, and `log_path` in `log_dir()`, which stays. Output
    (stdout and stderr) is appended to the log, each start after a header line; the first start
    of an object truncates a log left by an earlier run under the same name. `stop()` and
    `start()` (or `restart()`) keep the ports, the temp dir and the log.
    """

    start_timeout_s: ClassVar[float] = 10.0

    def __init__(self, kind: str, *, log_name: str | None = None) -> None:
        self.tmp_dir = Path(tempfile.mkdtemp(prefix=f"emgate-{kind}-"))
        self.log_path = log_dir() / f"{log_name or f'{kind}-{self.tmp_dir.name}'}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._starts = 0
        self._log_offset = 0

    # ---- what a peer gives -----------------------------------------------------------------

    @property
    @abstractmethod
    def name(self) -> str:
        """What the peer is and where, e.g. "influxd on http://127.0.0.1:40123"."""

    @abstractmethod
    def command(self) -> Sequence[str | os.PathLike[str]]:
        """The argv that starts the peer."""

    @property
    @abstractmethod
    def readiness(self) -> str:
        """What `ready()` waits for, e.g. "accepting connections on 127.0.0.1:1883"."""

    @abstractmethod
    def ready(self) -> bool:
        """True once the started process serves."""

    def environment(self) -> Mapping[str, str] | None:
        """The child's environment; None inherits the test process's."""
        return None

    def working_dir(self) -> Path | None:
        return None

    def _before_start(self) -> None:  # noqa: B027 - an optional hook, empty unless a peer needs it
        """Runs before each start (e.g. remove a readiness marker the last run left)."""

    def _after_ready(self) -> None:  # noqa: B027 - an optional hook, empty unless a peer needs it
        """Runs after each start once `ready()` (e.g. create the database the tests use)."""

    # ---- the lifecycle, the same for every peer --------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the process and return once it is ready; raise ServiceError if it is not in time."""
        if self.running:
            raise ServiceError(f"{self.name} is already running (pid {self.pid})")
        self._before_start()
        self._spawn()
        self._wait_ready()
        self._after_ready()

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

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and delete the temp dir. The log stays in the log directory."""
        self.stop()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def log_since_start(self) -> str:
        """What the process wrote since its last start (from that start's header line on)."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _spawn(self) -> None:
        argv = [os.fspath(arg) for arg in self.command()]
        mode = "ab" if self._starts else "wb"
        with self.log_path.open(mode) as log:
            self._log_offset = log.tell()
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            log.write(f"=== {stamp} start: {' '.join(argv)}\n".encode())
            log.flush()
            # PDEATHSIG fires when the *thread* that forked exits, so only use it from the main thread.
            in_main = threading.current_thread() is threading.main_thread()
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                cwd=self.working_dir(),
                start_new_session=True,  # Ctrl-C reaches pytest only; teardown stops us in order
                preexec_fn=_die_with_parent if in_main else None,
            )
        self._starts += 1
        _live.add(self)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if not self.running:
                code = self._proc.returncode if self._proc is not None else None
                self.stop()
                raise ServiceError(
                    f"{self.name} exited with status {code} before {self.readiness}; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            if self.ready():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceError(
                    f"{self.name} did not get to {self.readiness} within {self.start_timeout_s:.0f}s; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)


@atexit.register
def _stop_leftovers() -> None:
    for process in list(_live):
        process.stop(timeout_s=2.0)
