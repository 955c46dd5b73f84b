"""A benchmark's device peer in a process of its own: `python -c SCRIPT PORT`, which prints
"ready" once serving and stops when its stdin closes (bench/opcua.py, bench/s7.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.services.ports import tcp_accepts


@contextmanager
def peer_process(script: str, port: int, *, timeout_s: float = 10.0) -> Iterator[subprocess.Popen[bytes]]:
    """Start the peer, wait until it accepts on 127.0.0.1:port, stop it on exit (kill after timeout_s)."""
    server = subprocess.Popen([sys.executable, "-c", script, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == b"ready", "the peer did not start"
        deadline = time.monotonic() + timeout_s
        while not tcp_accepts("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield server
    finally:
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
