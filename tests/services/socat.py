"""socat as a serial line without hardware: two linked ptys, and a TCP port bridged to a pty."""

import os
from pathlib import Path

from tests.services.binaries import require_binary
from tests.services.ports import free_port
from tests.services.process import ServiceProcess


class SocatPtyPair(ServiceProcess):
    """Bytes written to `a` come out of `b` and back; both are raw, without echo.

    Typically the slave opens `b` and the gateway (the master) opens `a`.
    """

    def __init__(self) -> None:
        self.binary = require_binary("socat")
        super().__init__("socat")
        self.a = str(self.tmp_dir / "ttyA")
        self.b = str(self.tmp_dir / "ttyB")

    @property
    def name(self) -> str:
        return f"socat pty pair in {self.tmp_dir}"

    def command(self) -> list[str | os.PathLike[str]]:
        return [self.binary, "-d", "-d", f"pty,raw,echo=0,link={self.a}", f"pty,raw,echo=0,link={self.b}"]

    @property
    def readiness(self) -> str:
        return f"linking {self.a} and {self.b}"

    def ready(self) -> bool:
        return Path(self.a).exists() and Path(self.b).exists()


class SocatTcpBridge(ServiceProcess):
    """A TCP port on 127.0.0.1 bridged to a serial `device`, like a serial device server.

    One connection at a time, no fork. Readiness is read from socat's own log line, never by
    connecting: a probe connection would open the device as a second reader and steal replies.
    """

    host = "127.0.0.1"

    def __init__(self, device: str, *, port: int | None = None) -> None:
        self.binary = require_binary("socat")
        self.device = device
        self.port = port if port is not None else free_port()
        super().__init__("socat", log_name=f"socat-bridge-{self.port}")

    @property
    def name(self) -> str:
        return f"socat tcp {self.port} <-> {self.device}"

    def command(self) -> list[str | os.PathLike[str]]:
        return [
            self.binary,
            "-d",
            "-d",
            f"TCP-LISTEN:{self.port},bind={self.host},reuseaddr",
            f"FILE:{self.device},raw,echo=0",
        ]

    @property
    def readiness(self) -> str:
        return f"listening on {self.port}"

    def ready(self) -> bool:
        return "listening on" in self.log_since_start()
