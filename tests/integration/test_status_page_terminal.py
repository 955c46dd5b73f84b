"""`emgate run` draws the live table on a terminal only, and serves the page with --http.

The site is the demo plant's file with nothing listening on its Modbus port: the devices show
as LOST, which is all the table needs to prove it is drawn from the running gateway.
"""

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gateway.commands.demo import DEMO_PLANT_CONFIG, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def site_file(tmp_path: Path) -> Path:
    """The demo plant's site pointed at a port nobody listens on, with its ledger in tmp_path."""
    text = DEMO_PLANT_CONFIG.read_text().replace("port = 5020", f"port = {free_port()}")
    text = re.sub(r'(?m)^path = ".*"$', f'path = "{tmp_path / "ledger.sqlite"}"', text, count=1)
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def read_until(fd: int, pattern: str, timeout_s: float) -> str:
    out, deadline = b"", time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
        if re.search(pattern, ANSI.sub("", out.decode(errors="replace"))):
            break
    return ANSI.sub("", out.decode(errors="replace"))


def test_run_on_a_terminal_shows_the_live_table_and_the_page(tmp_path) -> None:
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "140", "LINES": "40"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "run",
            "--config",
            str(site_file(tmp_path)),
            "--http",
            "127.0.0.1:0",
        ],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    try:
        text = read_until(master, r"modbus\[sinter-1\]\s+│ LOST", 30)
        assert "demo-works: CO2 per process" in text, text[-3000:]
        assert re.search(r"modbus\[bf-1\]\s+│ LOST", text), text[-3000:]
        url = re.search(r"status page (http://127\.0\.0\.1:\d+/)", text).group(1)
        assert urllib.request.urlopen(url + "healthz", timeout=5).read() == b"ok\n"
    finally:
        rc = stop(proc)
        os.close(master)
    assert rc in (0, 130)


def test_run_into_a_pipe_prints_lines_not_a_table(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "--log-format",
            "json",
            "run",
            "--config",
            str(site_file(tmp_path)),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(4)
    stop(proc)
    out, err = proc.communicate(timeout=10)
    assert b"CO2 per process" not in out and b"\x1b[" not in out
    # JSON lines on stderr: one "lost" per device, not one per failed poll
    lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    lost = [r["msg"] for r in lines if ": lost:" in r["msg"]]
    assert len(lost) == 5 and len(set(lost)) == 5, lost
