"""A week of the simulated works with faults on a schedule: does anything grow, is every minute there once?

The demo plant (config/examples/demo-plant.toml) is served over Modbus TCP by this process on a
scaled clock anchored on CLOCK_MONOTONIC (tests/support/gateway_child.AnchoredClock), so plant time
runs on across the gateway's deaths. The gateway is a child process (`python -m bench.soak
--child ...`: the demo's gateway with its status page and /metrics, and the memory settings of
`emgate run`) writing its ledger, a real influxd (tests/services/influxd.py) and its alerts to a
real Mosquitto (tests/services/mosquitto.py).

Every simulated day, in simulated time from the first start: at 01:00 the device bf-1 goes silent
for 10 minutes (a loopback relay in front of it swallows the requests: connections are accepted,
nothing is answered); 04:00-05:00 the broker is down; 08:00-14:00 influxd is down; at 18:00 the
gateway is killed with SIGKILL and started again on the same ledger at once.

Every simulated hour the child's RSS (/proc/PID/status VmRSS), open file descriptors
(/proc/PID/fd) and asyncio tasks (emgate_tasks on /metrics) are sampled. Growth per simulated day
(`soak_*_growth_per_day`, the figures held against the goal) is the slope of a linear fit over the
samples after the first day with one intercept per hour of the simulated day. Every day has the
same faults at the same hours and, with the kill, a fresh process started at the same hour, so
each hour's level (a process's start-up, its high-water mark during the influxd outage) is the
same every day unless something grows: the slope is the day-over-day change the week shows, all
24 hours of the day pooled. `soak_*_within_process_per_day` is the other fit, one intercept per
gateway process and each process's first 3 simulated hours left out: with a kill a day no process
lives a day, so it mostly measures a fresh process rising to its high-water mark; `--no-kill`
runs one process through every outage, where both fits see the same single process.

Checked at the end: every (minute, stream) from the first whole minute after the first start to
the last minute closed before the stop has exactly one original row in the ledger (SQL on the
minutes table) and exactly one point in InfluxDB, and InfluxDB holds the ledger's current value.
A failed check raises (the bench exits 1); growth is printed against its goal (<= 1 MB and 0 fds
per day).

Defaults: 7 simulated days at x800 (7 x 108 s: about 13 minutes of wall time); `--quick`: 1 day
(about 2 minutes). `python -m bench.soak --days D --speed N` runs it on its own;
EMGATE_SOAK_DAYS / EMGATE_SOAK_SPEED override the defaults under `python -m bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import sqlite3
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

DAY_S = 86_400.0
HOUR_S = 3_600.0
DEFAULT_DAYS = 7.0
QUICK_DAYS = 1.0
DEFAULT_SPEED = 800.0
POLL_S = 20.0  # site seconds: three readings per signal and minute
WARMUP_S = 3 * HOUR_S  # each process's first hours are start-up, not growth
SILENT_DEVICE = "bf-1"
MEASUREMENT = "soak"
# (start hour of each simulated day, duration in simulated seconds)
DEVICE_SILENT = (1.0, 600.0)
BROKER_DOWN = (4.0, HOUR_S)
INFLUX_DOWN = (8.0, 6 * HOUR_S)
KILL_AT_H = 18.0


# -- the gateway process ---------------------------------------------------------------------------
def child_main(args: argparse.Namespace) -> int:
    import logging

    from gateway.commands.common import run_stoppable
    from gateway.core.memory import disable_huge_pages, pin_mmap_threshold
    from gateway.pipeline import Gateway
    from gateway.settings.site import GatewaySettings
    from tests.support.gateway_child import AnchoredClock

    # a bench started in the background (`cmd &`) hands its children SIGINT ignored; Ctrl-C should still work
    signal.signal(signal.SIGINT, signal.default_int_handler)
    disable_huge_pages()  # the memory settings of `emgate run` (gateway/core/memory.py): this is the long-running gateway
    pin_mmap_threshold()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = GatewaySettings(**json.loads(args.settings.read_text()))
    clock = AnchoredClock(args.speed, args.start, args.t0)
    gw = Gateway.build(settings, clock=clock)

    async def main() -> None:
        async with gw.status_page(args.http):
            print(f"started at {clock.now():.1f}", flush=True)
            await gw.run()

    try:
        run_stoppable(main())  # SIGINT/SIGTERM: the final checkpoint and InfluxDB drain, as `emgate demo`
    except KeyboardInterrupt:
        pass
    finally:
        gw.close()
    return 0


# -- the bench's side ------------------------------------------------------------------------------
class SilentRelay:
    """A loopback TCP relay to `target_port`; while `silent`, requests are read and dropped (no answer)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.silent = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> SilentRelay:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._writers:  # ends the relaying tasks
            w.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_w}

        async def forward(src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    if upstream and self.silent:
                        continue  # swallowed: the device does not answer
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(forward(reader, up_w, True), forward(up_r, writer, False), return_exceptions=True)
        self._writers -= {writer, up_w}


@dataclass
class Sample:
    t: float  # site time
    pid: int
    rss_kb: int
    fds: int
    tasks: float | None


@dataclass
class Run:
    speed: float
    days: float
    samples: list[Sample] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    stop_at: float = 0.0


def proc_sample(pid: int, t: float, metrics_url: str) -> Sample | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration):
        return None
    tasks: float | None = None
    try:
        with urllib.request.urlopen(metrics_url, timeout=3) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("emgate_tasks "):
                    tasks = float(line.split()[1])
    except OSError:
        pass
    return Sample(t, pid, rss_kb, fds, tasks)


def growth_per_day(samples: list[Sample], group: Callable[[Sample], object], value: str) -> float | None:
    """Slope per simulated day of `value` over `samples`: a linear fit with one intercept per `group(sample)`."""
    groups: dict[object, list[tuple[float, float]]] = {}
    for s in samples:
        v = getattr(s, value)
        if v is not None:
            groups.setdefault(group(s), []).append((s.t / DAY_S, float(v)))
    sxy = sxx = 0.0
    for pts in groups.values():
        if len(pts) < 2:
            continue
        mx = sum(x for x, _ in pts) / len(pts)
        my = sum(y for _, y in pts) / len(pts)
        sxy += sum((x - mx) * (y - my) for x, y in pts)
        sxx += sum((x - mx) ** 2 for x, _ in pts)
    return sxy / sxx if sxx > 0 else None


def growth(samples: list[Sample], starts: dict[int, float], begin: float, after: float) -> dict[str, float | None]:
    """The growth figures of the samples taken at `after` or later (see the module's docstring)."""
    measured = [s for s in samples if s.t >= after]
    settled = [s for s in measured if s.t >= starts[s.pid] + WARMUP_S]

    def hour_of_day(s: Sample) -> int:
        return round((s.t - begin) % DAY_S / HOUR_S) % 24

    figures: dict[str, float | None] = {}
    for value, name, scale in (("rss_kb", "rss_mb", 1 / 1024), ("fds", "fds", 1.0), ("tasks", "tasks", 1.0)):
        for figure, slope in (
            (f"soak_{name}_growth_per_day", growth_per_day(measured, hour_of_day, value)),
            (f"soak_{name}_within_process_per_day", growth_per_day(settled, lambda s: s.pid, value)),
        ):
            figures[figure] = None if slope is None else round(slope * scale, 3)
    return figures


async def soak(days: float, speed: float, work: Path, kills: bool = True) -> tuple[Run, dict[str, Any]]:
    from gateway.sim.plant import UNITS, SimulatedPlant
    from gateway.sources.pymodbus_client import RegisterServer
    from tests.factories import REPO, demo_plant, influx_section
    from tests.services.influxd import InfluxService
    from tests.services.mosquitto import MosquittoService
    from tests.services.ports import free_port
    from tests.support.gateway_child import AnchoredClock

    run = Run(speed, days)
    delay_s = max(2.0, 0.5 * speed)  # as `emgate demo`: at least half a real second of window delay
    with InfluxService(flux=False) as influx, MosquittoService() as broker:
        plant_port, http_port = free_port(), free_port()
        ledger = work / "ledger.sqlite"
        log = work / "gateway.log"
        clock = AnchoredClock(speed, time.time() - days * DAY_S, time.monotonic())  # the week ends about now
        plant = SimulatedPlant(clock)
        async with (
            RegisterServer(port=plant_port, fills={u: plant.fill(u) for u in UNITS.values()}, n_registers=16),
            SilentRelay(plant_port) as relay,
        ):
            site = demo_plant(
                plant_port,
                ledger,
                influx=influx_section(influx, measurement=MEASUREMENT),
                device={"poll_s": POLL_S, "timeout_s": 0.5},
                ledger={"checkpoint_s": 60.0},
                retry={"base_s": 0.5, "cap_s": 5.0},
                window={"delay_s": delay_s, "grace_s": 30.0, "coverage_threshold": 0.75},
                alerts={"enabled": True, "mqtt": {"host": broker.host, "port": broker.port}},
            )
            for dev in site["modbus"]["devices"]:
                if dev["name"] == SILENT_DEVICE:
                    dev["port"] = relay.port
            settings_file = work / "settings.json"
            settings_file.write_text(json.dumps(site))
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            metrics_url = f"http://127.0.0.1:{http_port}/metrics"

            async def spawn() -> asyncio.subprocess.Process:
                cmd = [sys.executable, "-m", "bench.soak", "--child", "--settings", str(settings_file),
                       "--start", repr(clock._start), "--t0", repr(clock._t0), "--speed", repr(speed),
                       "--http", f"127.0.0.1:{http_port}"]  # fmt: skip
                with log.open("ab") as err:
                    proc = await asyncio.create_subprocess_exec(
                        *cmd, stdout=asyncio.subprocess.PIPE, stderr=err, env=env, cwd=str(REPO)
                    )
                assert proc.stdout is not None
                line = await asyncio.wait_for(proc.stdout.readline(), 60)
                if not line.startswith(b"started at"):
                    await proc.wait()
                    raise RuntimeError(f"the gateway did not start (exit {proc.returncode}); see {log}")
                run.starts.append(float(line.split()[-1]))
                return proc

            proc = await spawn()
            begin = run.starts[0]
            run.stop_at = begin + days * DAY_S
            starts = {proc.pid: begin}
            # the schedule: (site time, action)
            plan: list[tuple[float, str]] = []
            for d in range(math.ceil(days)):
                day = begin + d * DAY_S
                plan += [
                    (day + DEVICE_SILENT[0] * HOUR_S, "device_silent"),
                    (day + DEVICE_SILENT[0] * HOUR_S + DEVICE_SILENT[1], "device_back"),
                    (day + BROKER_DOWN[0] * HOUR_S, "broker_down"),
                    (day + BROKER_DOWN[0] * HOUR_S + BROKER_DOWN[1], "broker_up"),
                    (day + INFLUX_DOWN[0] * HOUR_S, "influx_down"),
                    (day + INFLUX_DOWN[0] * HOUR_S + INFLUX_DOWN[1], "influx_up"),
                    (day + KILL_AT_H * HOUR_S, "kill"),
                ]
            plan += [(begin + h * HOUR_S, "sample") for h in range(int(days * 24) + 1)]
            plan = sorted(p for p in plan if p[0] < run.stop_at and (kills or p[1] != "kill"))
            for at, action in plan:
                await clock.sleep_until(at)
                if proc.returncode is not None:
                    raise RuntimeError(f"the gateway exited by itself ({proc.returncode}); see {log}")
                now = clock.now()
                if action == "sample":
                    s = await asyncio.to_thread(proc_sample, proc.pid, now, metrics_url)
                    if s is not None:
                        run.samples.append(s)
                    continue
                run.events.append(f"{(now - begin) / HOUR_S:7.2f} h {action}")
                if action == "device_silent":
                    relay.silent = True
                elif action == "device_back":
                    relay.silent = False
                elif action == "broker_down":
                    await asyncio.to_thread(broker.stop)
                elif action == "broker_up":
                    await asyncio.to_thread(broker.start)
                elif action == "influx_down":
                    await asyncio.to_thread(influx.stop)
                elif action == "influx_up":
                    await asyncio.to_thread(influx.start)
                elif action == "kill":
                    proc.send_signal(signal.SIGKILL)
                    run.kills.append(now)
                    await proc.wait()
                    proc = await spawn()
                    starts[proc.pid] = run.starts[-1]
            await clock.sleep_until(run.stop_at)
            stopped = clock.now()
            proc.send_signal(signal.SIGTERM)  # a clean stop (as systemd's): the final checkpoint and InfluxDB drain
            try:
                code = await asyncio.wait_for(proc.wait(), 120)
            except TimeoutError:
                proc.kill()
                raise RuntimeError(f"the gateway did not stop within 120 s of SIGTERM; see {log}") from None
            if code != 0:
                raise RuntimeError(f"the gateway exited {code} on SIGTERM; see {log}")
        result = check(
            run, starts, ledger, influx, begin, stopped, delay_s, [(s["process"], s["stream"]) for s in site["streams"]]
        )
    return run, result


def check(
    run: Run, starts: dict[int, float], ledger: Path, influx: Any, begin: float, stopped: float, delay_s: float,
    streams: list[tuple[str, str]],
) -> dict[str, Any]:  # fmt: skip
    first = math.ceil(begin / 60) * 60 + 60  # the first whole minute after the first start
    last = math.floor((stopped - delay_s - 60) / 60) * 60 - 60  # closed before the SIGTERM, with a minute to spare
    minutes = range(int(first), int(last) + 1, 60)
    expected = {(float(m), p, s) for m in minutes for p, s in streams}
    db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        originals = Counter(
            {
                (float(m), p, s): n
                for m, p, s, n in db.execute(
                    "SELECT minute_start, process, stream, count(*) FROM minutes WHERE supersedes IS NULL "
                    "AND minute_start BETWEEN ? AND ? GROUP BY minute_start, process, stream",
                    (first, last),
                )
            }
        )
        current = {
            (float(m), p, s): kg
            for m, p, s, kg in db.execute(
                "SELECT minute_start, process, stream, co2_kg FROM minutes m WHERE minute_start BETWEEN ? AND ? "
                "AND NOT EXISTS (SELECT 1 FROM minutes c WHERE c.supersedes = m.seq)",
                (first, last),
            )
        }
        flagged = db.execute(
            "SELECT count(*) FROM minutes WHERE supersedes IS NULL AND minute_start BETWEEN ? AND ? AND quality NOT IN ('measured', 'estimated')",
            (first, last),
        ).fetchone()[0]
    finally:
        db.close()
    lo_ns, hi_ns = int(first) * 10**9, int(last) * 10**9
    res = influx.influxql(f'SELECT co2_kg, process, stream FROM "{MEASUREMENT}" WHERE time >= {lo_ns} AND time <= {hi_ns}')
    points: Counter[tuple[float, str, str]] = Counter()
    values: dict[tuple[float, str, str], float] = {}
    for series in res["results"][0].get("series", []):
        cols = series["columns"]
        for v in series["values"]:
            row = dict(zip(cols, v, strict=True))
            key = (datetime.fromisoformat(row["time"].replace("Z", "+00:00")).timestamp(), row["process"], row["stream"])
            points[key] += 1
            values[key] = float(row["co2_kg"])
    for name, have in (("ledger", originals), ("InfluxDB", points)):
        gone = sorted(expected - set(have))
        if gone:
            shown = ", ".join(f"{datetime.fromtimestamp(m).astimezone().isoformat()} {p}/{s}" for m, p, s in gone[:6])
            print(f"  {name} misses {len(gone)} stream-minute(s) of the period checked: {shown}")
    ledger_missing = len(expected - set(originals))
    ledger_twice = sum(1 for n in originals.values() if n > 1)
    influx_missing = len(expected - set(points))
    influx_twice = sum(1 for n in points.values() if n > 1)
    influx_extra = len(set(points) - expected)
    influx_differs = sum(
        1 for k, kg in current.items() if k in values and not math.isclose(values[k], kg, rel_tol=1e-12, abs_tol=1e-12)
    )
    after = begin + DAY_S if run.days > 1 else begin
    figures: dict[str, Any] = {
        "soak_days": run.days,
        "soak_speed": run.speed,
        "soak_minutes_checked": len(minutes),
        "soak_streams": len(streams),
        "soak_kills": len(run.kills),
        "soak_stream_minutes_not_measured": flagged,
        "soak_ledger_missing": ledger_missing,
        "soak_ledger_twice": ledger_twice,
        "soak_influx_missing": influx_missing,
        "soak_influx_twice": influx_twice,
        "soak_influx_extra": influx_extra,
        "soak_influx_differs_from_ledger": influx_differs,
    }
    figures.update(growth(run.samples, starts, begin, after))
    return figures


def report(run: Run, figures: dict[str, Any], wall_s: float) -> list[str]:
    """Print the table; the failed checks."""
    print(f"soak: {run.days:g} simulated day(s) at x{run.speed:g} in {wall_s:.0f} s of wall time; faults:")
    for e in run.events:
        print(f"  {e}")
    print("  day   RSS MB (min..max)   fds (min..max)   tasks (min..max)")
    begin = run.starts[0]
    for d in range(math.ceil(run.days)):
        day = [s for s in run.samples if begin + d * DAY_S <= s.t < begin + (d + 1) * DAY_S]
        if not day:
            continue
        tasks = [s.tasks for s in day if s.tasks is not None]
        print(
            f"  {d + 1:>3}   {min(s.rss_kb for s in day) / 1024:6.1f}..{max(s.rss_kb for s in day) / 1024:6.1f}"
            f"     {min(s.fds for s in day):4d}..{max(s.fds for s in day):4d}"
            f"       {(f'{min(tasks):4.0f}..{max(tasks):4.0f}') if tasks else '   -'}"
        )
    print(
        "  growth per simulated day (fit after day 1, one intercept per hour of the day; goal <= 1 MB, 0 fds): "
        f"RSS {figures['soak_rss_mb_growth_per_day']} MB, fds {figures['soak_fds_growth_per_day']}, "
        f"tasks {figures['soak_tasks_growth_per_day']}"
    )
    print(
        f"  within each process (one intercept per process, its first {WARMUP_S / HOUR_S:g} h left out): "
        f"RSS {figures['soak_rss_mb_within_process_per_day']} MB, fds {figures['soak_fds_within_process_per_day']}, "
        f"tasks {figures['soak_tasks_within_process_per_day']}"
    )
    print(
        f"  exactness over {figures['soak_minutes_checked']} minutes x {figures['soak_streams']} streams: "
        f"ledger {figures['soak_ledger_missing']} missing, {figures['soak_ledger_twice']} twice; InfluxDB "
        f"{figures['soak_influx_missing']} missing, {figures['soak_influx_twice']} twice, "
        f"{figures['soak_influx_extra']} extra, {figures['soak_influx_differs_from_ledger']} differing from the ledger; "
        f"{figures['soak_stream_minutes_not_measured']} stream-minutes not fully measured (faults)"
    )
    failed = [
        k for k in ("soak_ledger_missing", "soak_ledger_twice", "soak_influx_missing", "soak_influx_twice",
                    "soak_influx_extra", "soak_influx_differs_from_ledger") if figures[k]
    ]  # fmt: skip
    if figures["soak_minutes_checked"] <= 0:
        failed.append("soak_minutes_checked")
    return failed


def soak_run(days: float, speed: float, keep: Path | None = None, kills: bool = True) -> dict[str, Any]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="emgate-bench-soak-") as tmp:
        work = keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        run, figures = asyncio.run(soak(days, speed, work, kills))
        wall_s = time.perf_counter() - started
        figures["soak_wall_s"] = round(wall_s, 1)
        figures["soak_load_avg_1m"] = os.getloadavg()[0]
        failed = report(run, figures, wall_s)
        (work / "samples.json").write_text(json.dumps([vars(x) for x in run.samples]))  # kept with --keep
        print(json.dumps(figures))
        if failed:
            tail = (work / "gateway.log").read_bytes()[-3000:].decode(errors="replace")
            raise RuntimeError(f"soak checks failed: {', '.join(failed)}; gateway log tail:\n{tail}")
    return figures


def run(quick: bool = False) -> dict[str, Any]:
    days = float(os.environ.get("EMGATE_SOAK_DAYS", QUICK_DAYS if quick else DEFAULT_DAYS))
    speed = float(os.environ.get("EMGATE_SOAK_SPEED", DEFAULT_SPEED))
    return soak_run(days, speed)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    p.add_argument("--days", type=float, default=DEFAULT_DAYS, help=f"simulated days (default {DEFAULT_DAYS:g})")
    p.add_argument("--speed", type=float, default=DEFAULT_SPEED, help=f"clock speed (default x{DEFAULT_SPEED:g})")
    p.add_argument("--keep", type=Path, help="keep the ledger, settings and gateway log in this directory")
    p.add_argument(
        "--no-kill", action="store_true", help="no kill -9: one gateway process for the whole run (growth across outages)"
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--settings", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--start", type=float, help=argparse.SUPPRESS)
    p.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    p.add_argument("--http", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child_main(args)
    if not (math.isfinite(args.days) and args.days > 0 and math.isfinite(args.speed) and args.speed > 0):
        print("python -m bench.soak: --days and --speed take positive numbers", file=sys.stderr)
        return 2
    try:
        soak_run(args.days, args.speed, args.keep, not args.no_kill)
    except RuntimeError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
