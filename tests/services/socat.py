"""Two linked pseudo-terminals from socat: a serial line without hardware, for Modbus RTU."""

import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.services.binaries import require_binary
from tests.services.process import ManagedProcess, log_dir

START_TIMEOUT_S = 10.0


class SocatPtyPair:
    """Bytes written to `a` come out of `b` and back; both are raw, without echo.

    Typically the slave opens `b` and the gateway (the master) opens `a`.
    """

    def __init__(self) -> None:
        self.binary = require_binary("socat")
        self._tmp = Path(tempfile.mkdtemp(prefix="emgate-socat-"))
        self.a = str(self._tmp / "ttyA")
        self.b = str(self._tmp / "ttyB")
        self.log_path = log_dir() / f"socat-{self._tmp.name}.log"
        self._process = ManagedProcess(
            f"socat pty pair in {self._tmp}",
            [
                self.binary,
                "-d",
                "-d",
                f"pty,raw,echo=0,link={self.a}",
                f"pty,raw,echo=0,link={self.b}",
            ],
            log_path=self.log_path,
        )

    @property
    def running(self) -> bool:
        return self._process.running

    def start(self) -> None:
        self._process.start()
        self._process.wait_ready(
            lambda: Path(self.a).exists() and Path(self.b).exists(),
            timeout_s=START_TIMEOUT_S,
            what=f"linking {self.a} and {self.b}",
        )

    def stop(self) -> None:
        self._process.stop()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
