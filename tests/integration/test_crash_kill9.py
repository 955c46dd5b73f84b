"""kill -9 the gateway under load, restart it each time, then check ledger == InfluxDB minute by minute.

The simulated plant is served over Modbus TCP by this test process; the gateway runs as a real
subprocess (this file run as a script, see `main`) polling it and writing to a real influxd.
Both share one scaled clock anchored on CLOCK_MONOTONIC, so plant time runs on continuously
across the gateway's deaths, 60 site seconds per real second.

Checked afterwards: the chain verifies; every minute from the first to the last has exactly one
current row per stream (0 lost, 0 duplicated); the minute each kill interrupted is flagged
gateway_restart and flags appear only near kills; InfluxDB holds exactly the ledger's current
view; the token given in the environment appears in no log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
import tomllib
import uuid
from collections import Counter
from pathlib import Path

import pytest

from gateway.core.clock import ScaledClock
from gateway.ledger.audit import verify_ledger
from gateway.ledger.store import Ledger

THIS_FILE = Path(__file__).resolve()
REPO = THIS_FILE.parents[2]
DEMO_CONFIG = REPO / "config" / "examples" / "demo-plant.toml"
SPEED = 60.0
POLL_S = 5.0  # site seconds; 12 polls a real second per device at SPEED


class AnchoredClock(ScaledClock):
    """A ScaledClock whose origin is shared between processes (CLOCK_MONOTONIC is system-wide)."""

    def __init__(self, speed: float, start: float, t0_monotonic: float) -> None:
        super().__init__(speed, start)
        self._t0 = t0_monotonic


def site_settings(port: int, ledger: Path, influx: dict[str, object]) -> dict[str, object]:
    data = tomllib.loads(DEMO_CONFIG.read_text(encoding="utf-8"))
    for dev in data["modbus"]["devices"]:
        dev.update(host="127.0.0.1", port=port, poll_s=POLL_S, timeout_s=2.0)
    data["ledger"] = {"path": str(ledger), "checkpoint_s": 10.0}
    data["influx"] = {"enabled": True, **influx}
    data["retry"] = {"base_s": 0.5, "cap_s": 5.0}
    return data


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
    logging.basicConfig(
        level=logging.DEBUG, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = GatewaySettings(**json.loads(args.settings.read_text()))
    clock = AnchoredClock(SPEED, args.start, args.t0)
    gw = Gateway.build(settings, clock=clock)
    print(f"started at {clock.now():.1f}", flush=True)
    try:
        asyncio.run(gw.run(stop_after_minutes=args.minutes))
    finally:
        gw.close()
    return 0


# -- the test ----------------------------------------------------------------------------------------
pytestmark = pytest.mark.integration


async def _spawn(
    settings_file: Path, clock: AnchoredClock, log: Path, env: dict[str, str], minutes: int | None = None
) -> asyncio.subprocess.Process:
    cmd = [
        sys.executable,
        str(THIS_FILE),
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
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=err, env=env, cwd=str(REPO)
    )
    err.close()
    return proc


async def _started(proc: asyncio.subprocess.Process, log: Path) -> float:
    """Wait for the gateway's "started at T" line (imports alone take seconds on a busy box); T."""
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if not line.startswith(b"started at"):
        await proc.wait()
        tail = log.read_bytes()[-4000:].decode(errors="replace")  # noqa: ASYNC240 - test diagnostics
        raise AssertionError(f"gateway did not start (exit {proc.returncode}, said {line!r}); log tail:\n{tail}")
    return float(line.split()[-1])


def _influx_rows(influxdb, measurement: str) -> dict[tuple[float, str, str], dict[str, object]]:  # type: ignore[no-untyped-def]
    res = influxdb.influxql(f'SELECT * FROM "{measurement}"')
    series = res["results"][0].get("series", [])
    out: dict[tuple[float, str, str], dict[str, object]] = {}
    from datetime import datetime

    for s in series:
        cols = s["columns"]
        for v in s["values"]:
            row = dict(zip(cols, v, strict=True))
            t = datetime.fromisoformat(row["time"].replace("Z", "+00:00")).timestamp()
            key = (t, row["process"], row["stream"])
            assert key not in out, f"InfluxDB holds {key} twice"
            out[key] = row
    return out


@pytest.mark.flaky(reruns=2, reruns_delay=1)  # wall-clock timing on a shared 2-core machine; a real fault fails every rerun
async def test_random_kill9_loses_and_duplicates_nothing(influxdb, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from gateway.sim.plant import UNITS, SimulatedPlant
    from gateway.sources.pymodbus_client import RegisterServer
    from tests.services.ports import free_port

    rng = random.Random(20261123)
    kills = int(os.environ.get("EMGATE_CRASH_KILLS", "8"))
    secret = f"emgate:tok-{uuid.uuid4().hex}"
    measurement = f"crash_{uuid.uuid4().hex[:8]}"
    clock = AnchoredClock(SPEED, time.time(), time.monotonic())
    port = free_port()
    ledger_path = tmp_path / "var" / "ledger.sqlite"
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(
        json.dumps(
            site_settings(
                port,
                ledger_path,
                {
                    "url": influxdb.url,
                    "org": influxdb.org,
                    "bucket": influxdb.bucket,
                    "measurement": measurement,
                    "batch_size": 500,
                },
            )
        )
    )
    env = {**os.environ, "EMGATE__INFLUX__TOKEN": secret, "PYTHONPATH": str(REPO)}
    log = tmp_path / "gateway.log"
    plant = SimulatedPlant(clock)
    kill_times: list[float] = []  # site time of each kill
    starts: list[float] = []  # site time each gateway process finished its recovery
    t_begin = time.monotonic()
    async with RegisterServer(
        port=port, fills={uid: plant.fill(uid) for uid in UNITS.values()}, n_registers=16
    ):
        for _ in range(kills):
            proc = await _spawn(settings_file, clock, log, env)
            starts.append(await _started(proc, log))
            await asyncio.sleep(rng.uniform(0.2, 3.0))  # 0.2 to 3 site minutes after recovery
            assert proc.returncode is None, f"gateway exited early ({proc.returncode}); see {log}"
            proc.send_signal(signal.SIGKILL)
            kill_times.append(clock.now())
            await proc.wait()
        final = await _spawn(settings_file, clock, log, env, minutes=3)
        starts.append(await _started(final, log))
        assert await asyncio.wait_for(final.wait(), 60) == 0, log.read_text()[-3000:]
    elapsed = time.monotonic() - t_begin
    # most of this is Python importing numpy/pydantic/pymodbus at each restart: ~1.5 s idle, more when busy
    assert elapsed < 150, f"the kill loop took {elapsed:.0f} s"

    report = verify_ledger(ledger_path)
    assert report.ok, report.problem
    ledger = Ledger(ledger_path)
    current = [r for _, r in ledger.current()]
    keys = Counter(r.key() for r in current)
    assert max(keys.values()) == 1, "a minute is stored twice"
    streams = {(r.process, r.stream) for r in current}
    minutes = sorted({r.minute_start for r in current})
    assert minutes == [minutes[0] + 60 * i for i in range(len(minutes))], (
        "a minute is missing from the ledger"
    )
    per_minute = Counter(r.minute_start for r in current)
    assert set(per_minute.values()) == {len(streams)}, "a minute lacks a stream"

    flagged = {r.minute_start for r in current if "gateway_restart" in r.flags.split(";")}
    for killed in kill_times:
        m = killed // 60 * 60
        if minutes[0] <= m <= minutes[-1]:
            assert m in flagged, f"the minute a kill interrupted ({m}) is not flagged"
    # flagged: from the oldest minute still open at the kill (a minute closes at its end + delay_s,
    # plus a few site seconds of scheduling at 60x) to the minute the next process recovered in
    windows = [((k - 75) // 60 * 60, s // 60 * 60) for k, s in zip(kill_times, starts[1:], strict=True)]
    stray = [m for m in flagged if not any(a <= m <= b for a, b in windows)]
    assert not stray, f"minutes flagged gateway_restart far from any kill: {stray}"
    assert any(r.quality != "measured" for r in current if r.minute_start in flagged)

    stored = _influx_rows(influxdb, measurement)
    expected = {r.key(): r for r in current}
    assert set(stored) == set(expected), (
        f"InfluxDB and ledger differ: {len(set(expected) - set(stored))} missing, "
        f"{len(set(stored) - set(expected))} extra"
    )
    for k, r in expected.items():
        assert stored[k]["co2_kg"] == pytest.approx(r.co2_kg, rel=1e-12, abs=1e-12), k
        assert stored[k]["quality"] == r.quality and (stored[k]["flags"] or "") == r.flags, k  # no flags field: none
    ledger.close()
    text = log.read_text(errors="replace")
    assert "recovered:" in text
    assert secret not in text and secret.split(":")[1] not in text, (
        "the InfluxDB token appears in the gateway's log"
    )
    print(
        f"{kills} kills, {len(minutes)} minutes x {len(streams)} streams, {len(flagged)} flagged, {elapsed:.0f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
