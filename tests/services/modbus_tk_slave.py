"""A Modbus slave built on modbus-tk: an implementation independent of the gateway's pymodbus.

It runs as its own process (`python -m tests.services.modbus_tk_slave --spec FILE`) so a test
exercises real sockets or a real pty, and it appends every request's unit id and function
code to a record file, so a test can prove the gateway never sends a write.

Spec (JSON; `ModbusTkSlave` fills in everything but `units`)::

    {
      "units": {                      # unit id -> register blocks, keyed by start address
        "1": {"holding": {"0": [10, 20, 30]}, "input": {"100": [7]},
              "coils": {"0": [1, 0, 1]}, "discrete": {"0": [0, 1]}}
      },
      "unsigned": true,               # register values 0..65535 (false: -32768..32767)
      "transport": "tcp",             # or "rtu"
      "host": "127.0.0.1", "port": 15020,            # tcp
      "device": "/path/to/pty", "baudrate": 19200,   # rtu (8N1)
      "record": "/path/requests.jsonl",              # one {"unit", "function_code"} per request
      "ready": "/path/ready"                         # created once the slave serves
    }
"""

import argparse
import importlib.util
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from tests.services.ports import free_port, tcp_accepts
from tests.services.process import REPO_ROOT, ServiceError, ServiceProcess

START_TIMEOUT_S = 15.0
BLOCK_KINDS = {"coils": 1, "discrete": 2, "holding": 3, "input": 4}  # modbus_tk.defines codes


class ModbusTkSlave(ServiceProcess):
    """Runs the modbus-tk slave process for one spec.

    `stop()`/`start()` serve again on the same port or device and keep the record.

    Attributes:
        transport: "tcp" or "rtu".
        host, port: where the TCP slave listens (port is None for RTU).
        device: the serial device the RTU slave opens (None for TCP).
        record_path, log_path: the request record and the process log.
    """

    host = "127.0.0.1"
    start_timeout_s = START_TIMEOUT_S

    def __init__(self, spec: Mapping[str, Any]) -> None:
        if importlib.util.find_spec("modbus_tk") is None:
            raise ServiceError(f"modbus-tk is not installed for {sys.executable}; install the test extra (make venv)")
        self.transport: str = spec.get("transport", "tcp")
        if self.transport not in ("tcp", "rtu"):
            raise ValueError(f"modbus-tk slave spec: transport must be 'tcp' or 'rtu', not {self.transport!r}")
        if self.transport == "rtu" and not spec.get("device"):
            raise ValueError("modbus-tk slave spec: transport 'rtu' needs 'device' (e.g. SocatPtyPair().b)")
        self.port: int | None = None
        if self.transport == "tcp":
            self.port = int(spec["port"]) if spec.get("port") else free_port()
        self.device: str | None = str(spec["device"]) if self.transport == "rtu" else None
        super().__init__("modbus-tk", log_name=f"modbus-tk-{self.host}-{self.port}" if self.port else None)
        self._where = f"{self.host}:{self.port}" if self.port else f"rtu-{self.tmp_dir.name}"
        self.record_path = self.tmp_dir / "requests.jsonl"
        self.record_path.touch()
        self._ready_path = self.tmp_dir / "ready"
        self._spec_path = self.tmp_dir / "spec.json"
        full_spec = {
            **spec,
            "transport": self.transport,
            "host": self.host,
            "port": self.port,
            "device": self.device,
            "record": str(self.record_path),
            "ready": str(self._ready_path),
        }
        self._spec_path.write_text(json.dumps(full_spec, indent=2))

    @property
    def name(self) -> str:
        return f"modbus-tk slave on {self._where}"

    def command(self) -> list[str | os.PathLike[str]]:
        return [sys.executable, "-m", "tests.services.modbus_tk_slave", "--spec", self._spec_path]

    def environment(self) -> dict[str, str]:
        pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        return {**os.environ, "PYTHONPATH": pythonpath}

    def working_dir(self) -> Path:
        return REPO_ROOT

    @property
    def readiness(self) -> str:
        return "serving"

    def ready(self) -> bool:
        return self._ready_path.exists()

    def _before_start(self) -> None:
        self._ready_path.unlink(missing_ok=True)  # the slave creates it again once it serves

    def requests(self) -> list[tuple[int, int]]:
        """(unit id, function code) of every request received so far, in order."""
        lines = self.record_path.read_text().splitlines()
        return [(entry["unit"], entry["function_code"]) for entry in map(json.loads, lines)]

    def function_codes(self) -> list[int]:
        """Function code of every request received so far, in order."""
        return [code for _, code in self.requests()]


# ---- the slave process ---------------------------------------------------------------------


def _recorder(record_path: Path, transport: str) -> Callable[[tuple[object, bytes]], None]:
    # Server.before_handle_request sees every frame, including ones for unknown unit ids,
    # before any reply is sent: a client that has its answer will find the request recorded.
    unit_at, code_at = (6, 7) if transport == "tcp" else (0, 1)

    def record(args: tuple[object, bytes]) -> None:
        _server, frame = args
        if len(frame) > code_at:
            entry = {"unit": frame[unit_at], "function_code": frame[code_at]}
            with record_path.open("a") as record_file:
                record_file.write(json.dumps(entry) + "\n")
        return None  # a non-None return would replace the request

    return record


def _build_server(spec: dict[str, Any]) -> Any:
    from modbus_tk import modbus_rtu, modbus_tcp

    if spec["transport"] == "tcp":
        server = modbus_tcp.TcpServer(port=int(spec["port"]), address=spec["host"])
    else:
        import serial

        port = serial.Serial(port=spec["device"], baudrate=int(spec.get("baudrate", 19200)))
        server = modbus_rtu.RtuServer(port)
    for unit_id, blocks in spec["units"].items():
        slave = server.add_slave(int(unit_id), unsigned=spec.get("unsigned", True))
        for kind, by_address in blocks.items():
            if kind not in BLOCK_KINDS:
                raise ValueError(f"unit {unit_id}: unknown block kind {kind!r}; use one of {list(BLOCK_KINDS)}")
            for address, values in by_address.items():
                name = f"{kind}@{address}"
                slave.add_block(name, BLOCK_KINDS[kind], int(address), len(values))
                slave.set_values(name, int(address), list(values))
    return server


def serve(spec: dict[str, Any]) -> None:
    from modbus_tk import hooks

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    hooks.install_hook("modbus.Server.before_handle_request", _recorder(Path(spec["record"]), spec["transport"]))
    server = _build_server(spec)
    server.start()
    try:
        if spec["transport"] == "tcp":
            # The server thread binds asynchronously; announce readiness only once it accepts.
            while not tcp_accepts(spec["host"], int(spec["port"])):
                if stop.wait(0.02):
                    return
        Path(spec["ready"]).touch()
        logging.info("serving units %s over %s", sorted(spec["units"], key=int), spec["transport"])
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
        logging.info("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True, help="JSON spec file (see module docstring)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve(json.loads(args.spec.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
