"""The MQTT side of the alert tests: an independent subscriber (Debian's mosquitto_sub) writing
what it receives to a file, the retained message of a topic, waiting for a condition, and a site
clock that stands still while the test moves it."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.services.mosquitto import MosquittoService
from tests.support.clocks import ManualClock


class Subscriber:
    """mosquitto_sub in its own process, writing '<retain> <topic> <payload>' lines to a file."""

    def __init__(
        self, broker: MosquittoService, topic: str, out: Path, *, session: str | None = None
    ) -> None:
        self.out = out
        cmd = [
            shutil.which("mosquitto_sub") or "mosquitto_sub",
            "-h",
            broker.host,
            "-p",
            str(broker.port),
            "-q",
            "1",
            "-t",
            topic,
            "-F",
            "%r %t %p",
        ]
        if session:  # a persistent session: QoS 1 messages wait for us across our reconnects
            cmd += ["-c", "-i", session]
        self._fh = out.open("w")
        self.proc = subprocess.Popen(cmd, stdout=self._fh, stderr=subprocess.STDOUT)

    def messages(self) -> list[tuple[bool, str, Any]]:
        out = []
        for line in self.out.read_text().splitlines():
            retain, topic, payload = line.split(" ", 2)
            out.append((retain == "1", topic, json.loads(payload)))
        return out

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        self._fh.close()


def retained(broker: MosquittoService, topic: str) -> Any:
    """The retained message on `topic`, read by a fresh mosquitto_sub (None if there is none)."""
    run = subprocess.run(
        [
            shutil.which("mosquitto_sub") or "mosquitto_sub",
            "-h",
            broker.host,
            "-p",
            str(broker.port),
            "-t",
            topic,
            "-C",
            "1",
            "-W",
            "3",
            "-F",
            "%r %p",
        ],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if not run.stdout.strip():
        return None
    flag, payload = run.stdout.strip().split(" ", 1)
    assert flag == "1", "expected a retained message"
    return json.loads(payload)


async def wait_until(check: Callable[[], Any], timeout_s: float = 15.0, what: str = "condition") -> None:
    """Poll `check` (a function, or one returning an awaitable) until it is true."""
    deadline = time.monotonic() + timeout_s
    while True:
        ok = check()
        if asyncio.iscoroutine(ok):
            ok = await ok
        if ok:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.05)


async def retained_is(broker: MosquittoService, topic: str, check: Callable[[Any], bool]) -> bool:
    # in a thread: mosquitto_sub blocks, and the sink must keep running meanwhile
    value = await asyncio.to_thread(retained, broker, topic)
    return value is not None and check(value)


class FixedClock(ManualClock):
    """The site clock stands still (the test feeds minutes itself); sleeps are real."""

    async def sleep_until(self, t: float) -> None:
        await asyncio.sleep(max(0.0, t - self.t))
