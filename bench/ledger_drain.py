"""Benchmark: ledger appends/s, and backlog drain points/s into a real influxd after an outage.

    python -m bench.ledger_drain            # 10,000 signals x 24 h outage = 14.4 M minute results
    python -m bench.ledger_drain --quick    # 1,000 signals x 2 h: a smoke run (120,000 results)
    python -m bench.ledger_drain --influx-url http://127.0.0.1:8086   # an influxd you started

Phase 1 appends the outage's minute results the way the live gateway does: one transaction per
closed minute (all signals of that minute), synchronous=FULL, hash-chained. Phase 2 starts the
InfluxSink on that backlog (InfluxDB "returns") and times it until the cursor reaches the head;
then the points in InfluxDB are counted, so a fast but lossy drain cannot pass. Phase 3 POSTs
the same points pre-encoded from two plain threads into the same influxd: the server's ceiling
on this machine, side by side with the drain, to tell a slow gateway from a slow (or CPU-starved)
influxd. Goal: drain >= 100,000 points/s.

The influxd is the one the tests use (tests/services/influxd.py, InfluxService): OSS 1.8.10 with
its defaults (inmem index, 25 MB cache snapshots, WAL fsync per write) plus SERVER_TUNING there
(the Go collector at GOGC=400; the comment there says why, what it costs and what else was
tried). A run with --influx-url measures whatever that server is configured with.

Besides points/s, the figures include CPU microseconds per point for our process and (when the
bench started influxd) for influxd: two engineers' runs on a shared 2-core machine differ in
throughput, much less in CPU per point, and the sum says how far two cores can go at best.
`run(quick)` returns the figures as a dict for `python -m bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from gateway.codec.lineproto import MinutePointEncoder
from gateway.core.model import MinuteResult, MinuteResults
from gateway.ledger.store import Ledger
from gateway.settings.site import InfluxConfig, RetryConfig
from gateway.sinks.influx import CURSOR, InfluxSink

GOAL_POINTS_PER_S = 100_000
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) another process has used so far; None where /proc is missing."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def peak_rss_mb(pid: int | None) -> float | None:
    """A process's peak resident memory (VmHWM) in MB; None where /proc is missing."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


START = 1_795_000_000.0 - 1_795_000_000.0 % 86400


def minute_results(minute: int, signals: int) -> list[MinuteResult]:
    t = START + 60.0 * minute
    return [
        MinuteResult(
            t,
            "bench-works",
            f"p{i % 16}",
            f"s{i:05d}",
            "direct",
            "fuel_combustion",
            0.4 + (i % 97) * 1e-3 + minute * 1e-6,
            "t",
            (0.4 + (i % 97) * 1e-3) * 3040.0,
            "cn.coke",
            3040.0,
            1.0,
            "measured" if (i + minute) % 101 else "substituted",
            "" if (i + minute) % 101 else "rule=last_good",
        )
        for i in range(signals)
    ]


def build_backlog(path: Path, signals: int, minutes: int) -> dict[str, float]:
    ledger = Ledger(path)
    # each minute as the emission stage hands it over: columns, built before the clock starts
    closes = [MinuteResults.from_rows(minute_results(m, signals)) for m in range(minutes)]
    t0 = time.perf_counter()
    rows = 0
    for results in closes:
        rows += ledger.append(results)
    elapsed = time.perf_counter() - t0
    ledger.close()
    return {
        "rows": rows,
        "append_s": elapsed,
        "appends_per_s": rows / elapsed,
        "minute_commits_per_s": minutes / elapsed,
    }


async def drain(path: Path, cfg: InfluxConfig, server_pid: int | None = None) -> dict[str, float]:
    ledger = Ledger(path)
    sink = InfluxSink(cfg, ledger, RetryConfig(base_s=0.2, cap_s=2.0))
    # The clock starts once the sink is open, as in a gateway that has run all along and sees
    # InfluxDB come back: opening it imports the client library (about 0.6 s of CPU, once).
    async with sink:
        server0 = process_cpu_s(server_pid)
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        task = asyncio.create_task(sink.run(), name="influx-bench")
        while ledger.outbox.cursor(CURSOR) < ledger.head_seq:
            await asyncio.sleep(0.05)
            if task.done():
                task.result()
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        server = process_cpu_s(server_pid)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    points = sink.counters.points_written
    ledger.close()
    out = {
        "drain_s": elapsed,
        "points_written": points,
        "drain_points_per_s": points / elapsed,
        "failed_attempts": sink.counters.batches_failed,
        "quarantined": sink.counters.quarantined_rows,
        "drain_client_cpu_us_per_point": cpu / max(points, 1) * 1e6,
    }
    if server is not None and server0 is not None:
        out["drain_influxd_cpu_us_per_point"] = (server - server0) / max(points, 1) * 1e6
    return out


def server_ceiling(path: Path, cfg: InfluxConfig, max_rows: int = 300_000, server_pid: int | None = None) -> dict[str, float]:
    """The same points, pre-encoded, POSTed by plain threads: what influxd takes on this machine.

    It tells whether the drain is limited by the gateway or by the server (and the CPU the two share).
    """
    ledger = Ledger(path)
    rows, _ = ledger.outbox.rows(0, max_rows)
    ledger.close()
    enc, n = MinutePointEncoder(cfg.measurement), cfg.batch_size
    bodies = [enc.lines(rows[i : i + n]).encode() for i in range(0, len(rows), n)]
    query = urllib.parse.urlencode({"org": cfg.org, "bucket": cfg.bucket, "precision": "s"})

    def post(body: bytes) -> None:
        req = urllib.request.Request(
            f"{cfg.url}/api/v2/write?{query}",
            data=body,
            method="POST",
            headers={"Authorization": f"Token {cfg.token_value()}"},
        )
        with urllib.request.urlopen(req, timeout=120) as resp:
            resp.read()

    server0 = process_cpu_s(server_pid)
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(post, bodies))
    elapsed = time.perf_counter() - t0
    server = process_cpu_s(server_pid)
    out = {"server_ceiling_points_per_s": len(rows) / elapsed, "server_ceiling_rows": len(rows)}
    if server is not None and server0 is not None:
        out["ceiling_influxd_cpu_us_per_point"] = (server - server0) / max(len(rows), 1) * 1e6
    return out


def run(
    quick: bool,
    influx_url: str | None = None,
    signals: int | None = None,
    minutes: int | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Run the benchmark; returns its figures (rates per second, sizes, whether the goal was met).

    `signals` and `minutes` override the size (default 10,000 x 1440, quick 1,000 x 120).
    """
    default_signals, default_minutes = (1_000, 120) if quick else (10_000, 1440)
    signals, minutes = signals or default_signals, minutes or default_minutes
    with tempfile.TemporaryDirectory(prefix="emgate-bench-") as tmp:
        path = Path(tmp) / "ledger.sqlite"
        batch_size = batch_size or InfluxConfig().batch_size  # the gateway's default unless told
        out: dict[str, Any] = {"signals": signals, "outage_minutes": minutes, "batch_size": batch_size}
        out.update(build_backlog(path, signals, minutes))
        service = None
        out["load_avg_before"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        if influx_url is None:
            from tests.services.influxd import InfluxService  # the same managed influxd the tests use

            service = InfluxService()
            service.start()
            url, org, bucket, token = service.url, service.org, service.bucket, service.token
        else:
            url, org, bucket, token = (
                influx_url,
                "-",
                "emgate/autogen",
                os.environ.get("EMGATE__INFLUX__TOKEN", ""),
            )
        measurement = f"bench_{int(time.time())}"
        cfg = InfluxConfig(
            enabled=True, url=url, org=org, bucket=bucket, token=token, measurement=measurement, batch_size=batch_size
        )
        pid = service.pid if service is not None else None
        try:
            out.update(asyncio.run(drain(path, cfg, pid)))
            raw = cfg.model_copy(update={"measurement": measurement + "_raw"})
            out.update(server_ceiling(path, raw, server_pid=pid))
            if service is not None:
                res = service.influxql(f'SELECT count("co2_kg") FROM "{measurement}"')
                out["points_in_influx"] = int(res["results"][0]["series"][0]["values"][0][1])
                out["influxd_peak_rss_mb"] = peak_rss_mb(service.pid)
        finally:
            if service is not None:
                service.close()
        out["ledger_mb"] = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
    out["load_avg_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    out["backlog_drain_points_per_s"] = out["drain_points_per_s"]  # the name bench/__main__.py's GOALS use
    out["goal_drain_points_per_s"] = GOAL_POINTS_PER_S
    out["goal_met"] = out["drain_points_per_s"] >= GOAL_POINTS_PER_S and out.get("points_in_influx", out["rows"]) == out["rows"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1,000 signals x 2 h instead of 10,000 x 24 h")
    p.add_argument("--influx-url", default=None, help="use this influxd (database emgate) instead of starting one")
    p.add_argument("--signals", type=int, default=None, help="signals (streams) per minute")
    p.add_argument("--minutes", type=int, default=None, help="minutes of outage")
    p.add_argument("--batch-size", type=int, default=None, help="points per write request (default: influx.batch_size's)")
    args = p.parse_args()
    result = run(args.quick, args.influx_url, args.signals, args.minutes, args.batch_size)
    print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in result.items()}, indent=2))


if __name__ == "__main__":
    main()
