"""10,000 signals polled over Modbus at 1 s: emgate's RSS and CPU share, and Telegraf's, same run.

One pymodbus server (its own process, so its CPU is not counted) serves 100 unit ids with 100
FLOAT32 points each. emgate (`emgate run`, 100 devices, 10,000 signals, one emission stream per
device, ledger and InfluxDB delivery on) polls it first, then Telegraf (built from its Go module
with only the modbus input and influxdb_v2 output, see scripts/build-telegraf.sh) polls the same
registers into the same InfluxDB. Each is measured from /proc after a warm-up: CPU seconds over
the window, peak resident memory (sampled every 0.2 s from its start: a minute close lifts RSS
for well under a second, and sampling once a second caught that peak by luck), and samples read
(emgate's own counter; Telegraf: points x polls).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.services.influxd import InfluxService
from tests.services.ports import free_port, tcp_accepts

DEVICES, POINTS = 100, 100
TELEGRAF = Path(os.environ.get("EMGATE_TELEGRAF", Path.home() / ".cache/emgate/telegraf-1.32.3-modbus-mqtt/telegraf"))
CLK_TCK = os.sysconf("SC_CLK_TCK")

SERVER = """
import asyncio, sys
from gateway.codec import encode_value
from gateway.sources.pymodbus_client import RegisterServer
port, devices, points = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
words = [w for k in range(points) for w in encode_value(20.0 + k / 10, "FLOAT32", "ABCD")]
def fill(fc, address, count, registers):
    registers[: len(words)] = words
async def main():
    async with RegisterServer(port=port, fills={u: fill for u in range(1, devices + 1)}, n_registers=2 * points):
        await asyncio.Event().wait()
asyncio.run(main())
"""


def emgate_site(path: Path, modbus_port: int, influx: InfluxService, ledger: Path) -> None:
    out = [
        '[site]\nname = "bench-10k"\ntimezone = "UTC"\n',
        f'[ledger]\npath = "{ledger}"\n',
        f'[influx]\nenabled = true\nurl = "{influx.url}"\nbucket = "{influx.bucket}"\norg = "-"\ntoken = "{influx.token}"\n',
    ]
    for d in range(DEVICES):
        for k in range(POINTS):
            out.append(f'[signals."d{d:03d}.p{k:03d}"]\nunit = "t/h"\n')
    for d in range(DEVICES):
        out.append(
            f'[[modbus.devices]]\nname = "dev{d:03d}"\nport = {modbus_port}\nunit_id = {d + 1}\npoll_s = 1.0\ntimeout_s = 0.8\n'
        )
        for k in range(POINTS):
            out.append(f'[[modbus.devices.points]]\nsignal = "d{d:03d}.p{k:03d}"\naddress = {2 * k}\ntype = "FLOAT32"\n')
    for d in range(DEVICES):
        out.append(
            f'[[streams]]\nprocess = "unit{d:03d}"\nstream = "fuel"\nsignal = "d{d:03d}.p000"\nmethod = "fuel_combustion"\nfactor = "cn.coke"\n'
        )
    path.write_text("\n".join(out))


def telegraf_head(influx: InfluxService, buffer_limit: int) -> list[str]:
    """Telegraf's agent (1 s interval and flush) and its InfluxDB output, database telegraf."""
    return [
        '[agent]\n  interval = "1s"\n  flush_interval = "1s"\n  metric_batch_size = 10000\n'
        f"  metric_buffer_limit = {buffer_limit}\n  omit_hostname = true\n",
        f'[[outputs.influxdb_v2]]\n  urls = ["{influx.url}"]\n  token = "{influx.token}"\n  organization = "-"\n'
        '  bucket = "telegraf/autogen"\n',
    ]


def telegraf_modbus(name: str, slave_id: int, port: int, points: int) -> str:
    """A Telegraf modbus input reading `points` FLOAT32 (ABCD) holding registers from 0, fields p000..."""
    regs = ",\n    ".join(
        f'{{ name = "p{k:03d}", byte_order = "ABCD", data_type = "FLOAT32-IEEE", scale = 1.0, address = [{2 * k}, {2 * k + 1}] }}'
        for k in range(points)
    )
    return (
        f'[[inputs.modbus]]\n  name = "{name}"\n  slave_id = {slave_id}\n  timeout = "800ms"\n'
        f'  controller = "tcp://127.0.0.1:{port}"\n  holding_registers = [\n    {regs}\n  ]\n'
    )


def telegraf_conf(path: Path, modbus_port: int, influx: InfluxService) -> None:
    out = telegraf_head(influx, 100_000)
    out += [telegraf_modbus(f"dev{d:03d}", d + 1, modbus_port, POINTS) for d in range(DEVICES)]
    path.write_text("\n".join(out))


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def metric_sum(text: str, prefix: str) -> float:
    """The sum of the samples in a /metrics text whose lines start with `prefix`."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def good_samples(text: str) -> float:
    """Readings emgate received minus those that were not GOOD, from its /metrics text."""
    return metric_sum(text, "emgate_samples_read_total{") - metric_sum(text, "emgate_samples_bad_total")


def emgate_good_samples(metrics_url: str) -> float:
    return good_samples(urllib.request.urlopen(metrics_url, timeout=10).read().decode())


def telegraf_samples(influx: InfluxService, t0_ns: int, t1_ns: int) -> float:
    """Telegraf's points that reached InfluxDB between t0 and t1 (all 100 fields of each row)."""
    result = influx.influxql(f'SELECT count("p000") FROM "telegraf"."autogen"."modbus" WHERE time >= {t0_ns} AND time < {t1_ns}')
    series = result["results"][0].get("series", [])
    return float(sum(row[1] for s in series for row in s["values"])) * POINTS


def measure(
    cmd: list[str], warmup_s: float, window_s: float, log: Path, helpers: list[int], ready: Callable[[], bool],
    count: Callable[[], dict[str, float]] | None = None, tick: Callable[[], None] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Start `cmd`; once `ready()` and `warmup_s` later, measure it (and the helper pids' CPU) for
    `window_s`, calling `tick()` between RSS samples and `count()` at the window's two ends."""
    started = time.monotonic()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    rss = 0.0

    def alive() -> None:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}; see {log}: {log.read_text()[-800:]}")

    try:
        deadline = started + 300
        while not ready():
            alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{cmd[0]} was not ready within 300 s; see {log}")
            rss = max(rss, proc_rss_mb(proc.pid))
            time.sleep(0.2)
        start_s = time.monotonic() - started
        end_warmup = time.monotonic() + warmup_s
        while time.monotonic() < end_warmup:
            rss = max(rss, proc_rss_mb(proc.pid))
            time.sleep(0.2)
        alive()
        counts0 = count() if count else {}
        cpu0, helpers0, t0, t0_ns = proc_cpu_s(proc.pid), sum(map(proc_cpu_s, helpers)), time.monotonic(), time.time_ns()
        while time.monotonic() - t0 < window_s:
            time.sleep(0.2)
            rss = max(rss, proc_rss_mb(proc.pid))
            if tick:
                tick()
        cpu, wall = proc_cpu_s(proc.pid) - cpu0, time.monotonic() - t0
        helper_cpu = sum(map(proc_cpu_s, helpers)) - helpers0
        t1_ns = time.time_ns()
        alive()
        counts1 = count() if count else {}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {
        "cpu_s": cpu, "wall_s": wall, "rss_mb": rss, "helpers_cpu_s": helper_cpu, "start_s": start_s,
        "t0_ns": t0_ns, "t1_ns": t1_ns, "counts": {k: counts1[k] - counts0[k] for k in counts1},
    }  # fmt: skip


def run(quick: bool = False) -> dict[str, Any]:
    warmup, window = (20.0, 30.0) if quick else (30.0, 120.0)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="emgate-bench-10k-") as tmp, InfluxService(flux=False) as influx:
        d = Path(tmp)
        influx.influxql("CREATE DATABASE telegraf")
        port = free_port()
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(DEVICES), str(POINTS)])
        try:
            deadline = time.monotonic() + 20
            while not tcp_accepts("127.0.0.1", port) and time.monotonic() < deadline:
                time.sleep(0.1)
            emgate_site(d / "site.toml", port, influx, d / "ledger.sqlite")
            http_port = free_port()
            metrics = f"http://127.0.0.1:{http_port}/metrics"
            cmd = [sys.executable, "-m", "gateway", "--log-format", "json", "run", "--config", str(d / "site.toml"),
                   "--quiet", "--http", f"127.0.0.1:{http_port}"]  # fmt: skip
            e = measure(
                cmd, warmup, window, d / "emgate.log", [server.pid], lambda: True,
                count=lambda: {"samples": emgate_good_samples(metrics)},
            )  # fmt: skip
            figures["rss_mb_10k_signals"] = e["rss_mb"]
            figures["cpu_core_fraction_10k_signals"] = e["cpu_s"] / e["wall_s"]
            e_samples = e["counts"]["samples"]
            figures["emgate_good_samples_per_s"] = e_samples / e["wall_s"]
            if e_samples < 0.9 * DEVICES * POINTS * e["wall_s"]:
                raise RuntimeError(
                    f"emgate read only {e_samples:.0f} good samples in {e['wall_s']:.0f} s; see {d / 'emgate.log'}"
                )
            figures["emgate_cpu_s_per_1000_samples"] = e["cpu_s"] / e_samples * 1000
            print(
                f"emgate: 10,000 signals at 1 s for {e['wall_s']:.0f} s: CPU {e['cpu_s']:.1f} s "
                f"({figures['cpu_core_fraction_10k_signals']:.3f} of a core), peak RSS {e['rss_mb']:.0f} MB"
            )
            if TELEGRAF.is_file():
                telegraf_conf(d / "telegraf.conf", port, influx)
                t = measure(
                    [str(TELEGRAF), "--config", str(d / "telegraf.conf")], warmup, window, d / "telegraf.log", [server.pid],
                    lambda: True,
                )  # fmt: skip
                time.sleep(3.0)  # its last flush
                t_samples = telegraf_samples(influx, int(t["t0_ns"]), int(t["t1_ns"]))
                figures["telegraf_samples_per_s"] = t_samples / t["wall_s"]
                if t_samples < 0.9 * DEVICES * POINTS * t["wall_s"]:
                    raise RuntimeError(
                        f"telegraf delivered only {t_samples:.0f} samples in {t['wall_s']:.0f} s; see {d / 'telegraf.log'}"
                    )
                figures["telegraf_rss_mb_10k_signals"] = t["rss_mb"]
                figures["telegraf_cpu_core_fraction_10k_signals"] = t["cpu_s"] / t["wall_s"]
                figures["telegraf_cpu_s_per_1000_samples"] = t["cpu_s"] / t_samples * 1000
                figures["cpu_ratio_emgate_vs_telegraf"] = (
                    figures["emgate_cpu_s_per_1000_samples"] / figures["telegraf_cpu_s_per_1000_samples"]
                )
                figures["rss_ratio_emgate_vs_telegraf"] = e["rss_mb"] / t["rss_mb"]
                print(
                    f"telegraf: CPU {t['cpu_s']:.1f} s ({figures['telegraf_cpu_core_fraction_10k_signals']:.3f} of a core), "
                    f"peak RSS {t['rss_mb']:.0f} MB; emgate/telegraf CPU per sample {figures['cpu_ratio_emgate_vs_telegraf']:.2f}, "
                    f"RSS {figures['rss_ratio_emgate_vs_telegraf']:.2f}"
                )
            else:
                print(f"telegraf: not built ({TELEGRAF} missing; run scripts/build-telegraf.sh)")
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(json.dumps({k: round(v, 4) for k, v in figures.items()}))
    return figures
