"""`emgate probe` and `emgate poll --once` against modbus-tk slaves (TCP and RTU on a pty)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.codec import encode_value
from tests.services.ports import free_port

pytestmark = pytest.mark.integration

FLOAT_WORDS = encode_value(123.456, "FLOAT32", "CDAB")


@pytest.fixture
def tk(modbus_tk_slave: Any) -> Any:
    return modbus_tk_slave(
        {
            "units": {
                "3": {
                    "holding": {"100": [*FLOAT_WORDS, 7, 65535]},
                    "input": {"0": [0x4142, 0x4300]},
                    "coils": {"0": [1, 0, 1]},
                }
            }
        }
    )


def test_probe_reads_and_decodes(tk: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "probe",
            "--host",
            "127.0.0.1",
            "--port",
            str(tk.port),
            "--unit",
            "3",
            "--address",
            "100",
            "--type",
            "FLOAT32",
            "--byte-order",
            "CDAB",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"0x{FLOAT_WORDS[0]:04X}" in out and f"0x{FLOAT_WORDS[1]:04X}" in out
    assert "FLOAT32 CDAB: 123.456" in out
    assert "function code 3" in out
    assert tk.function_codes() == [3]


def test_probe_coils_strings_and_errors(tk: Any, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["probe", "--host", "127.0.0.1", "--port", str(tk.port), "--unit", "3"]
    assert main([*base, "--address", "0", "--count", "3", "--register", "coil"]) == 0
    assert "function code 1" in capsys.readouterr().out
    assert main([*base, "--address", "0", "--count", "2", "--register", "input", "--type", "STRING"]) == 0
    assert "'ABC'" in capsys.readouterr().out
    assert main([*base, "--address", "500"]) == 1  # not on the slave
    err = capsys.readouterr().err
    assert "exception code 2" in err and "illegal data address" in err and "register map" in err
    assert main([*base, "--address", "0", "--type", "FLOAT32", "--count", "3"]) == 2
    assert "multiple of 2" in capsys.readouterr().err
    assert main(["probe", "--address", "0"]) == 2
    assert (
        main(
            ["probe", "--host", "127.0.0.1", "--port", str(free_port()), "--address", "0", "--timeout", "0.3"]
        )
        == 1
    )
    assert "connect failed" in capsys.readouterr().err
    assert set(tk.function_codes()) <= {1, 2, 3, 4}


def test_probe_over_a_serial_line(
    socat_pair: Any, modbus_tk_slave: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    pair = socat_pair()
    slave = modbus_tk_slave(
        {
            "transport": "rtu",
            "device": pair.b,
            "baudrate": 38400,
            "units": {"2": {"input": {"10": [1, 2, 3]}}},
        }
    )
    code = main(
        [
            "probe",
            "--serial-port",
            pair.a,
            "--baudrate",
            "38400",
            "--unit",
            "2",
            "--address",
            "10",
            "--count",
            "3",
            "--register",
            "input",
            "--type",
            "INT16",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "INT16 ABCD: 3" in out and slave.function_codes() == [4]


def site(path: Path, devices: str) -> Path:
    path.write_text(f"""
[site]
name = "t"

[signals]
flow = {{ unit = "t/h" }}
level = {{ unit = "%", kind = "instant" }}
missing = {{ unit = "t/h" }}
dead = {{ unit = "t/h" }}

{devices}
""")
    return path


def test_poll_once_prints_a_table(tk: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = f"""
[[modbus.devices]]
name = "boiler"
port = {tk.port}
unit_id = 3
timeout_s = 0.5
points = [
  {{ signal = "flow", address = 100, type = "FLOAT32", byte_order = "CDAB" }},
  {{ signal = "level", address = 102, scale = 0.5, unit = "%" }},
  {{ signal = "missing", address = 103, sentinel = 65535 }},
]
"""
    path = site(tmp_path / "site.toml", good)
    assert main(["poll", "--config", str(path), "--once"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["device", "point", "address", "raw", "value", "unit", "quality"]
    flow = next(line for line in lines if " flow " in line)
    assert "123.456" in flow and "t/h" in flow and "good" in flow and f"0x{FLOAT_WORDS[0]:04X}" in flow
    level = next(line for line in lines if " level " in line)
    assert "3.5" in level and "0x0007" in level and "good" in level
    assert "no_reading" in next(line for line in lines if " missing " in line)

    dead = (
        good
        + f"""
[[modbus.devices]]
name = "gone"
port = {free_port()}
timeout_s = 0.3
points = [{{ signal = "dead", address = 0 }}]
"""
    )
    path = site(tmp_path / "site2.toml", dead)
    assert main(["poll", "--config", str(path), "--once"]) == 1
    captured = capsys.readouterr()
    gone = next(line for line in captured.out.splitlines() if line.startswith("gone"))
    assert "comm_error" in gone
    assert "gone" in captured.err and "connect" in captured.err
    assert set(tk.function_codes()) == {3}
