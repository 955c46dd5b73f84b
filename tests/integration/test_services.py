"""The real peers of tests/services work, checked with clients independent of the gateway."""

import os
import socket
import struct
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.services.binaries import require_binary
from tests.services.flux_csv import FluxError, parse_annotated_csv
from tests.services.influxd import InfluxService
from tests.services.modbus_tk_slave import ModbusTkSlave
from tests.services.mosquitto import MosquittoService
from tests.services.ports import tcp_accepts
from tests.services.process import ServiceError, ServiceProcess
from tests.services.socat import SocatPtyPair

pytestmark = pytest.mark.integration

TIMEOUT_S = 10


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ---- mosquitto -----------------------------------------------------------------------------


def _mqtt_sub(broker: MosquittoService, topic: str) -> subprocess.Popen[str]:
    """mosquitto_sub for one message; returns once the broker has the subscription."""
    argv = [require_binary("mosquitto_sub"), "-h", broker.host, "-p", str(broker.port)]
    argv += ["-t", topic, "-q", "1", "-C", "1", "-W", str(TIMEOUT_S)]
    sub = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        broker.wait_for_subscription(topic)
    except BaseException:
        sub.kill()
        sub.communicate()
        raise
    return sub


def _mqtt_pub(broker: MosquittoService, topic: str, payload: str, *extra: str) -> None:
    argv = [require_binary("mosquitto_pub"), "-h", broker.host, "-p", str(broker.port)]
    argv += ["-t", topic, "-q", "1", "-m", payload, *extra]
    subprocess.run(argv, check=True, timeout=TIMEOUT_S, capture_output=True)


def _received(sub: subprocess.Popen[str]) -> list[str]:
    out, _ = sub.communicate(timeout=TIMEOUT_S + 5)
    assert sub.returncode == 0, f"mosquitto_sub exited {sub.returncode}:\n{out}"
    return out.splitlines()


def test_mosquitto_delivers_a_published_message(mosquitto: MosquittoService, unique_topic: str) -> None:
    topic = f"{unique_topic}/stack-1/co2"
    sub = _mqtt_sub(mosquitto, topic)
    _mqtt_pub(mosquitto, topic, '{"co2_kg": 12.5}')
    assert '{"co2_kg": 12.5}' in _received(sub)


def test_mosquitto_restart_keeps_port_and_retained_messages(
    mosquitto_factory: Callable[..., MosquittoService], unique_topic: str
) -> None:
    broker = mosquitto_factory()
    port, first_pid = broker.port, broker.pid
    assert first_pid is not None
    _mqtt_pub(broker, unique_topic, "before-restart", "-r")

    broker.restart()

    assert broker.port == port
    assert not _alive(first_pid)
    assert tcp_accepts(broker.host, port)
    assert "before-restart" in _received(_mqtt_sub(broker, unique_topic))


def test_mosquitto_stop_leaves_nothing_running(mosquitto_factory: Callable[..., MosquittoService]) -> None:
    broker = mosquitto_factory()
    pid = broker.pid
    assert pid is not None and _alive(pid)

    broker.stop()

    assert not _alive(pid)
    assert not tcp_accepts(broker.host, broker.port)


def test_mosquitto_accepts_extra_config(
    mosquitto_factory: Callable[..., MosquittoService], unique_topic: str
) -> None:
    # The hook later tests use for TLS and password files: raw lines appended to the config.
    broker = mosquitto_factory("max_keepalive 30\n")
    assert "max_keepalive 30" in broker.conf_path.read_text()
    sub = _mqtt_sub(broker, unique_topic)
    _mqtt_pub(broker, unique_topic, "ok")
    assert "ok" in _received(sub)


# ---- influxd -------------------------------------------------------------------------------


def _http_write(server: InfluxService, line: str) -> int:
    query = urllib.parse.urlencode({"db": server.database, "precision": "s"})
    request = urllib.request.Request(f"{server.url}/write?{query}", data=line.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        return response.status


def test_influxd_write_then_read_with_influxql_and_flux(influxdb: InfluxService) -> None:
    tag = uuid.uuid4().hex[:8]
    ts = int(time.time())
    assert _http_write(influxdb, f"selftest,run={tag} co2_kg=42.5,ok=true {ts}") == 204

    result = influxdb.influxql(f"SELECT co2_kg, ok FROM selftest WHERE run = '{tag}'")
    series = result["results"][0]["series"][0]
    assert series["columns"] == ["time", "co2_kg", "ok"]
    assert series["values"][0][1:] == [42.5, True]

    rows = influxdb.flux(
        f'from(bucket: "{influxdb.bucket}") |> range(start: -1h)'
        f' |> filter(fn: (r) => r._measurement == "selftest" and r.run == "{tag}")'
    )
    by_field = {row["_field"]: row["_value"] for row in rows}
    assert by_field == {"co2_kg": 42.5, "ok": True}
    assert {row["run"] for row in rows} == {tag}


def test_influxd_stop_start_keeps_url_and_data(influxdb_factory: Callable[..., InfluxService]) -> None:
    server = influxdb_factory(flux=False)
    url = server.url
    server.write("outage,site=a energy_kwh=7i 1700000000000000000")

    server.stop()
    with pytest.raises(OSError):
        _http_write(server, "outage,site=a energy_kwh=8i 1700000060000000000")
    server.start()

    assert server.url == url
    result = server.influxql("SELECT energy_kwh FROM outage")
    assert result["results"][0]["series"][0]["values"] == [["2023-11-14T22:13:20Z", 7]]


def test_flux_csv_error_table_raises() -> None:
    text = "#datatype,string,string\n#group,true,true\n#default,,\n,error,reference\n,bad query,897\n"
    with pytest.raises(FluxError, match="bad query"):
        parse_annotated_csv(text)


# ---- modbus-tk slave -----------------------------------------------------------------------

SPEC: dict[str, Any] = {
    "units": {
        1: {"holding": {0: [10, 20, 30]}, "input": {100: [7, 65535]}, "coils": {0: [1, 0, 1]}},
        2: {"holding": {0: [222]}, "discrete": {5: [0, 1]}},
    }
}


def _tcp_exchange(sock: socket.socket, unit: int, pdu: bytes, transaction: int) -> bytes:
    """Send one Modbus TCP request and return the response PDU (MBAP checked)."""
    sock.sendall(struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit) + pdu)
    header = _recv_exactly(sock, 7)
    tid, protocol, length, resp_unit = struct.unpack(">HHHB", header)
    assert (tid, protocol, resp_unit) == (transaction, 0, unit)
    return _recv_exactly(sock, length - 1)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"connection closed after {len(data)} of {size} bytes"
        data += chunk
    return data


def _read_request(function_code: int, address: int, count: int) -> bytes:
    return struct.pack(">BHH", function_code, address, count)


def test_modbus_tk_slave_serves_tcp_and_records_function_codes(
    modbus_tk_slave: Callable[[dict[str, Any]], ModbusTkSlave],
) -> None:
    slave = modbus_tk_slave(SPEC)
    assert slave.port is not None
    with socket.create_connection((slave.host, slave.port), timeout=TIMEOUT_S) as sock:
        holding = _tcp_exchange(sock, 1, _read_request(3, 0, 3), transaction=1)
        assert holding == bytes([3, 6]) + struct.pack(">3H", 10, 20, 30)

        inputs = _tcp_exchange(sock, 1, _read_request(4, 100, 2), transaction=2)
        assert inputs == bytes([4, 4]) + struct.pack(">2H", 7, 65535)

        coils = _tcp_exchange(sock, 1, _read_request(1, 0, 3), transaction=3)
        assert coils == bytes([1, 1, 0b101])

        discrete = _tcp_exchange(sock, 2, _read_request(2, 5, 2), transaction=4)
        assert discrete == bytes([2, 1, 0b10])

        # A write is served like a real device would, and it shows up in the record.
        write = struct.pack(">BHH", 6, 0, 999)
        assert _tcp_exchange(sock, 2, write, transaction=5) == write
        assert _tcp_exchange(sock, 2, _read_request(3, 0, 1), transaction=6) == bytes([3, 2]) + struct.pack(
            ">H", 999
        )

        # Outside the block: exception 2 (illegal data address).
        assert _tcp_exchange(sock, 1, _read_request(3, 50, 1), transaction=7) == bytes([0x83, 2])

    assert slave.function_codes() == [3, 4, 1, 2, 6, 3, 3]
    assert slave.requests()[3:5] == [(2, 2), (2, 6)]


def test_modbus_tk_slave_restart_keeps_port_and_record(
    modbus_tk_slave: Callable[[dict[str, Any]], ModbusTkSlave],
) -> None:
    slave = modbus_tk_slave(SPEC)
    assert slave.port is not None
    with socket.create_connection((slave.host, slave.port), timeout=TIMEOUT_S) as sock:
        _tcp_exchange(sock, 1, _read_request(3, 0, 1), transaction=1)

    slave.stop()
    assert not tcp_accepts(slave.host, slave.port)
    slave.start()

    with socket.create_connection((slave.host, slave.port), timeout=TIMEOUT_S) as sock:
        reply = _tcp_exchange(sock, 1, _read_request(4, 100, 1), transaction=2)
    assert reply == bytes([4, 2]) + struct.pack(">H", 7)
    assert slave.function_codes() == [3, 4]


def _crc16(frame: bytes) -> bytes:
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


def test_modbus_tk_slave_serves_rtu_over_a_socat_pty(
    socat_pair: Callable[[], SocatPtyPair],
    modbus_tk_slave: Callable[[dict[str, Any]], ModbusTkSlave],
) -> None:
    serial = pytest.importorskip("serial")
    pair = socat_pair()
    slave = modbus_tk_slave({**SPEC, "transport": "rtu", "device": pair.b, "baudrate": 19200})

    request = bytes([1]) + _read_request(3, 0, 3)
    with serial.Serial(pair.a, baudrate=19200, timeout=TIMEOUT_S) as line:
        line.write(request + _crc16(request))
        reply = line.read(3 + 6 + 2)

    assert reply[:-2] == bytes([1, 3, 6]) + struct.pack(">3H", 10, 20, 30)
    assert reply[-2:] == _crc16(reply[:-2])
    assert slave.requests() == [(1, 3)]


# ---- socat ---------------------------------------------------------------------------------


def test_socat_pair_carries_bytes_both_ways(socat_pair: Callable[[], SocatPtyPair]) -> None:
    pair = socat_pair()
    a = os.open(pair.a, os.O_RDWR | os.O_NOCTTY)
    b = os.open(pair.b, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(a, b"\x01\x03ping")
        assert _read_fd(b, 6) == b"\x01\x03ping"
        os.write(b, b"pong")
        assert _read_fd(a, 4) == b"pong"
    finally:
        os.close(a)
        os.close(b)


def _read_fd(fd: int, size: int) -> bytes:
    deadline = time.monotonic() + TIMEOUT_S
    data = b""
    os.set_blocking(fd, False)
    while len(data) < size and time.monotonic() < deadline:
        try:
            data += os.read(fd, size - len(data))
        except BlockingIOError:
            time.sleep(0.01)
    return data


# ---- the base every peer derives from --------------------------------------------------------


class ShellPeer(ServiceProcess):
    """A peer that is a shell script: ready once it has created the file `ready` in its temp dir."""

    start_timeout_s = 2.0

    def __init__(self, script: str) -> None:
        super().__init__("shell-peer")
        self.script = script

    @property
    def name(self) -> str:
        return f"shell peer in {self.tmp_dir}"

    def command(self) -> list[str]:
        return ["sh", "-c", self.script]

    def working_dir(self) -> Path:
        return self.tmp_dir

    @property
    def readiness(self) -> str:
        return "creating its ready file"

    def ready(self) -> bool:
        return (self.tmp_dir / "ready").exists()

    def _before_start(self) -> None:
        (self.tmp_dir / "ready").unlink(missing_ok=True)


def test_a_peer_that_exits_before_it_is_ready_says_so_with_its_log() -> None:
    peer = ShellPeer("echo 'bind: address in use' >&2; exit 3")
    with pytest.raises(ServiceError, match=r"exited with status 3 before creating its ready file(.|\n)*address in use"):
        peer.__enter__()
    assert not peer.running and not peer.tmp_dir.exists()  # a failed start leaves nothing behind
    assert "address in use" in peer.log_path.read_text()  # the log stays for the post-mortem


def test_a_peer_not_ready_in_time_is_stopped() -> None:
    peer = ShellPeer("echo waiting; exec sleep 30")
    with pytest.raises(ServiceError, match=r"did not get to creating its ready file within 2s(.|\n)*waiting"):
        peer.start()
    assert not peer.running
    peer.close()


def test_a_peer_restarts_with_its_log_since_the_last_start() -> None:
    with ShellPeer("echo start-$$; touch ready; exec sleep 30") as peer:
        first = peer.pid
        assert first is not None and _alive(first) and f"start-{first}" in peer.log_since_start()
        peer.restart()
        assert not _alive(first) and peer.pid != first
        assert f"start-{peer.pid}" in peer.log_since_start() and f"start-{first}" not in peer.log_since_start()
        assert f"start-{first}" in peer.log_path.read_text()  # one log across restarts
    assert not peer.running and not peer.tmp_dir.exists()


# ---- missing binaries ----------------------------------------------------------------------


def test_missing_binary_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"no-such-peer.*make services"):
        require_binary("no-such-peer")


def test_missing_binary_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"no-such-peer.*make services"):
        require_binary("no-such-peer")
