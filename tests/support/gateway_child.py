"""A real gateway in a child process, on a clock it shares with the test: for kill -9 and power cuts.

The test serves the simulated plant over Modbus TCP and starts the gateway with `spawn()`: this
module run as `python -m tests.support.gateway_child --settings FILE --start S --t0 T`. Both
sides read one `AnchoredClock`, a scaled clock whose origin is a CLOCK_MONOTONIC instant (the
same in every process), so plant time runs on continuously across the gateway's deaths, SPEED
site seconds per real second. Used by tests/integration/test_crash_kill9.py and test_power_cut.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.core.clock import ScaledClock
from tests.factories import REPO, demo_plant

SPEED = 60.0
POLL_S = 5.0  # site seconds; 12 polls a real second per device at SPEED


class AnchoredClock(ScaledClock):
    """A ScaledClock whose origin is shared between processes (CLOCK_MONOTONIC is system-wide)."""

    def __init__(self, speed: float, start: float, t0_monotonic: float) -> None:
        super().__init__(speed, start)
        self._t0 = t0_monotonic


def child_site(port: int, ledger: Path, influx: Mapping[str, Any]) -> dict[str, Any]:
    """The demo plant's site for the child, as a dict to write to its --settings file: devices
    polled every POLL_S on `port`, checkpoints every 10 s, InfluxDB enabled with `influx`'s keys."""
    return demo_plant(
        port,
        ledger,
        influx={"enabled": True, **influx},
        device={"poll_s": POLL_S, "timeout_s": 2.0},
        ledger={"checkpoint_s": 10.0},
        retry={"base_s": 0.5, "cap_s": 5.0},
    )


# -- the gateway process ---------------------------------------------------------------------------
def main() -> int:
    import logging

    from gateway.pipeline import Gateway
    from gateway.settings.site import GatewaySettings

    p = argparse.ArgumentParser()
    p.add_argument("--settings", type=Path, required=True)
    p.add_argument("--start", type=float, required=True)
    p.add_argument("--t0", type=float, required=True)
    p.add_argument("--minutes", type=int, default=None)
    args = p.parse_args()
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = GatewaySettings(**json.loads(args.settings.read_text()))
    clock = AnchoredClock(SPEED, args.start, args.t0)
    gw = Gateway.build(settings, clock=clock)
    print(f"started at {clock.now():.1f}", flush=True)
    try:
        asyncio.run(gw.run(stop_after_minutes=args.minutes))
    finally:
        gw.close()
    return 0


# -- the test's side -------------------------------------------------------------------------------
async def spawn(
    settings_file: Path, clock: AnchoredClock, log: Path, env: dict[str, str], minutes: int | None = None
) -> asyncio.subprocess.Process:
    """Start the gateway child on `clock`; its stderr is appended to `log`. Wait with `started()`."""
    cmd = [
        sys.executable,
        "-m",
        "tests.support.gateway_child",
        "--settings",
        str(settings_file),
        "--start",
        repr(clock._start),
        "--t0",
        repr(clock._t0),
    ]
    if minutes is not None:
        cmd += ["--minutes", str(minutes)]
    err = log.open("ab")
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=err, env=env, cwd=str(REPO))
    err.close()
    return proc


async def started(proc: asyncio.subprocess.Process, log: Path) -> float:
    """Wait for the gateway's "started at T" line (imports alone take seconds on a busy box); T."""
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if not line.startswith(b"started at"):
        await proc.wait()
        tail = log.read_bytes()[-4000:].decode(errors="replace")  # noqa: ASYNC240 - test diagnostics
        raise AssertionError(f"gateway did not start (exit {proc.returncode}, said {line!r}); log tail:\n{tail}")
    return float(line.split()[-1])


if __name__ == "__main__":
    sys.exit(main())
