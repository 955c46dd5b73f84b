"""100,000 signals at 1 s through minutes, the ledger and a real influxd; Telegraf on the same devices.

    python -m bench --only load_100k       # 10 minutes measured each (issue 20's run), about 25 minutes
    python -m bench.load_100k --quick      # 130 s measured each: a smoke run, not the goal's length

The device set: 375 simulated Modbus TCP devices of 240 FLOAT32 points (90,000 signals, four
reads of 120 registers each a second) behind two ports of bench/modbus_farm.py, and 10,000
signals over MQTT: 100 topics on a real Mosquitto, each a JSON object of 100 fields published
every second by a publisher process. emgate (`emgate run`: 375 devices, one MQTT broker with 100
subscriptions, one emission stream per device and per topic, the ledger and InfluxDB delivery
on) runs first, then Telegraf (scripts/build-telegraf.sh: inputs.modbus and inputs.mqtt_consumer
into influxdb_v2) on the same devices and topics.

Each is measured from /proc after a warm-up: CPU seconds over the window, peak resident memory
(sampled every 0.2 s from its start), samples (emgate's /metrics; Telegraf's points in InfluxDB).
For emgate, while it runs, InfluxDB is asked every 0.25 s how many stream results each minute
holds: a minute is queryable when all 475 are there, and its latency is that moment less its
close (minute end + window delay_s). Also checked: no sample dropped (emgate's dropped counters
0, and good samples at least signals x (whole seconds of the window - 1): the counters are read
between two ticks), and every stream-minute the window covers in the ledger, measured (the
others are printed). The simulated devices' and publisher's CPU is measured over the same window.
"""

from __future__ import annotations

import argparse
import calendar
import json
import math
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.load_10k import TELEGRAF, good_samples, measure, metric_sum, telegraf_head, telegraf_modbus
from tests.services.influxd import InfluxService
from tests.services.mosquitto import MosquittoService
from tests.services.ports import free_port, tcp_accepts

DEVICES, POINTS, REGISTERS_PER_READ = 375, 240, 120
TOPICS, FIELDS = 100, 100
FARMS = 2  # ports of simulated devices (unit ids 1..247 each)
SIGNALS = DEVICES * POINTS + TOPICS * FIELDS
STREAMS = DEVICES + TOPICS
DELAY_S = 2.0  # the window's delay_s (the default): minute M closes at M + 60 + 2 s

PUBLISHER = """
import json, sys, time
import paho.mqtt.client as mqtt
port, topics, fields = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher")
c.connect("127.0.0.1", port)
c.loop_start()
tick = int(time.time()) + 1
while True:
    time.sleep(max(0.0, tick - time.time()))
    for t in range(topics):
        body = {"ts": tick, **{f"f{k:03d}": 30.0 + k / 10 for k in range(fields)}}
        c.publish(f"bench/m{t:03d}", json.dumps(body), qos=0)
    tick += 1
"""


def units_of(farm: int) -> list[int]:
    """The devices (0-based) behind farm port `farm`: unit id = index within the farm + 1."""
    return [d for d in range(DEVICES) if d % FARMS == farm]


def emgate_site(path: Path, farm_ports: list[int], broker: MosquittoService, influx: InfluxService, ledger: Path) -> None:
    out = [
        '[site]\nname = "bench-100k"\ntimezone = "UTC"\n',
        f'[ledger]\npath = "{ledger}"\n',
        f'[influx]\nenabled = true\nurl = "{influx.url}"\nbucket = "{influx.bucket}"\norg = "-"\ntoken = "{influx.token}"\n',
        f"[window]\ndelay_s = {DELAY_S}\n",
    ]
    for d in range(DEVICES):
        out.extend(f'[signals."d{d:03d}.p{k:03d}"]\nunit = "t/h"\n' for k in range(POINTS))
    for t in range(TOPICS):
        out.extend(f'[signals."m{t:03d}.f{k:03d}"]\nunit = "t/h"\n' for k in range(FIELDS))
    for d in range(DEVICES):
        farm = d % FARMS
        out.append(
            f'[[modbus.devices]]\nname = "dev{d:03d}"\nport = {farm_ports[farm]}\nunit_id = {units_of(farm).index(d) + 1}\n'
            f"poll_s = 1.0\ntimeout_s = 0.8\nmax_registers_per_read = {REGISTERS_PER_READ}\n"
        )
        out.extend(
            f'[[modbus.devices.points]]\nsignal = "d{d:03d}.p{k:03d}"\naddress = {2 * k}\ntype = "FLOAT32"\n'
            for k in range(POINTS)
        )
    out.append(f'[[mqtt.brokers]]\nname = "plant"\nport = {broker.port}\nqos = 0\nqueue_size = 100000\n')
    for t in range(TOPICS):
        fields = ", ".join(f'f{k:03d} = "m{t:03d}.f{k:03d}"' for k in range(FIELDS))
        out.append(
            f'[[mqtt.brokers.subscriptions]]\ntopic = "bench/m{t:03d}"\nformat = "json"\ntimestamp_field = "ts"\n'
            f"fields = {{ {fields} }}\n"
        )
    for d in range(DEVICES):
        out.append(
            f'[[streams]]\nprocess = "unit{d:03d}"\nstream = "fuel"\nsignal = "d{d:03d}.p000"\n'
            'method = "fuel_combustion"\nfactor = "cn.coke"\n'
        )
    for t in range(TOPICS):
        out.append(
            f'[[streams]]\nprocess = "mqtt{t:03d}"\nstream = "fuel"\nsignal = "m{t:03d}.f000"\n'
            'method = "fuel_combustion"\nfactor = "cn.coke"\n'
        )
    path.write_text("\n".join(out))


def telegraf_conf(path: Path, farm_ports: list[int], broker: MosquittoService, influx: InfluxService) -> None:
    out = telegraf_head(influx, 1_000_000)
    out.append(
        f'[[inputs.mqtt_consumer]]\n  servers = ["tcp://127.0.0.1:{broker.port}"]\n  topics = ["bench/#"]\n  qos = 0\n'
        '  client_id = "bench-telegraf"\n  data_format = "json"\n  json_time_key = "ts"\n  json_time_format = "unix"\n'
    )
    for d in range(DEVICES):
        farm = d % FARMS
        out.append(telegraf_modbus(f"dev{d:03d}", units_of(farm).index(d) + 1, farm_ports[farm], POINTS))
    path.write_text("\n".join(out))


def emgate_counts(metrics_url: str, keep: Path | None = None) -> dict[str, float]:
    text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
    if keep is not None:
        keep.write_text(text)  # the last one read: the window's end
    return {
        "good": good_samples(text),
        "dropped": metric_sum(text, "emgate_samples_dropped_total{") + metric_sum(text, "emgate_mqtt_messages_dropped_total{"),
        "late": metric_sum(text, "emgate_samples_late_total{"),
        "missed_polls": metric_sum(text, "emgate_polls_missed_total{"),
    }


def minute_counts(influx: InfluxService) -> dict[int, int]:
    """Stream results per minute (epoch s) of the last 5 minutes in emgate's measurement."""
    res = influx.influxql("SELECT count(co2_kg) FROM emissions WHERE time > now() - 5m GROUP BY time(1m)")
    series = res["results"][0].get("series", [])
    out: dict[int, int] = {}
    for s in series:
        for stamp, n in s["values"]:
            if n:
                out[calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))] = int(n)
    return out


def telegraf_samples(influx: InfluxService, t0_ns: int, t1_ns: int) -> float:
    """Telegraf's points in InfluxDB stamped between t0 and t1, field by field."""
    total = 0.0
    for measurement, field, width in (("modbus", "p000", POINTS), ("mqtt_consumer", "f000", FIELDS)):
        q = f'SELECT count("{field}") FROM "telegraf"."autogen"."{measurement}" WHERE time >= {t0_ns} AND time < {t1_ns}'
        series = influx.influxql(q)["results"][0].get("series", [])
        total += float(sum(row[1] for s in series for row in s["values"])) * width
    return total


def ledger_check(ledger: Path, t0_ns: int, t1_ns: int) -> tuple[int, int, int, list[str]]:
    """Of the stream-minutes starting in the window and closed 5 s before its end: (how many,
    how many in the ledger, how many measured, the others as text): original rows."""
    first, last = -(-t0_ns // 60_000_000_000) * 60, int((t1_ns / 1e9 - 5 - 60 - DELAY_S) // 60 * 60)
    db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT minute_start, process, quality, coverage, flags FROM minutes "
            "WHERE supersedes IS NULL AND minute_start BETWEEN ? AND ?",
            (first, last),
        ).fetchall()
    finally:
        db.close()
    others = [
        f"{time.strftime('%H:%M', time.gmtime(m))} UTC {p}: {q}, coverage {c:.4f}{f' ({f})' if f else ''}"
        for m, p, q, c, f in rows
        if q != "measured"
    ]
    return STREAMS * ((last - first) // 60 + 1), len(rows), len(rows) - len(others), others


def run(quick: bool = False, keep: Path | None = None) -> dict[str, Any]:
    warmup, window = (20.0, 130.0) if quick else (60.0, 600.0)  # at least one whole minute for the ledger check
    figures: dict[str, Any] = {"signals": SIGNALS, "window_s": window}
    helpers: list[subprocess.Popen[bytes]] = []
    with (
        tempfile.TemporaryDirectory(prefix="emgate-bench-100k-") as tmp,
        InfluxService(flux=False) as influx,
        MosquittoService() as broker,
    ):
        d = keep or Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        influx.influxql("CREATE DATABASE telegraf")
        ports = [free_port() for _ in range(FARMS)]
        try:
            for farm, port in enumerate(ports):
                cmd = [sys.executable, "-m", "bench.modbus_farm", str(port), str(len(units_of(farm))), str(POINTS)]
                helpers.append(subprocess.Popen(cmd))
            deadline = time.monotonic() + 20
            while not all(tcp_accepts("127.0.0.1", p) for p in ports) and time.monotonic() < deadline:
                time.sleep(0.1)
            helpers.append(subprocess.Popen([sys.executable, "-c", PUBLISHER, str(broker.port), str(TOPICS), str(FIELDS)]))
            helper_pids = [h.pid for h in helpers]
            figures.update(run_emgate(d, ports, broker, influx, helper_pids, warmup, window))
            if TELEGRAF.is_file():
                figures.update(run_telegraf(d, ports, broker, influx, helper_pids, warmup, window))
                figures["cpu_ratio_emgate_vs_telegraf_100k"] = (
                    figures["emgate_cpu_s_per_1000_samples_100k"] / figures["telegraf_cpu_s_per_1000_samples_100k"]
                )
                figures["rss_ratio_emgate_vs_telegraf_100k"] = (
                    figures["rss_mb_100k_signals"] / figures["telegraf_rss_mb_100k_signals"]
                )
            else:
                print(f"telegraf: not built ({TELEGRAF} missing; run scripts/build-telegraf.sh)")
        finally:
            for h in helpers:
                h.terminate()
            for h in helpers:
                h.wait(timeout=10)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))
    return figures


def run_emgate(
    d: Path, ports: list[int], broker: MosquittoService, influx: InfluxService, helper_pids: list[int],
    warmup: float, window: float,
) -> dict[str, Any]:  # fmt: skip
    ledger = d / "ledger.sqlite"
    emgate_site(d / "site.toml", ports, broker, influx, ledger)
    http_port = free_port()
    metrics = f"http://127.0.0.1:{http_port}/metrics"
    first_seen: dict[int, float] = {}

    def watch() -> None:
        now = time.time()
        for m, n in minute_counts(influx).items():
            if n >= STREAMS and m not in first_seen:
                first_seen[m] = now

    def serving() -> bool:
        try:
            emgate_counts(metrics)
        except OSError:
            return False
        return True

    cmd = [sys.executable, "-m", "gateway", "--log-format", "json", "run", "--config", str(d / "site.toml"),
           "--quiet", "--http", f"127.0.0.1:{http_port}"]  # fmt: skip
    e = measure(
        cmd, warmup, window, d / "emgate.log", helper_pids, serving, lambda: emgate_counts(metrics, d / "metrics.txt"), watch
    )
    f: dict[str, Any] = {
        "emgate_start_s": e["start_s"],
        "cpu_core_fraction_100k_signals": e["cpu_s"] / e["wall_s"],
        "rss_mb_100k_signals": e["rss_mb"],
        "simulators_cpu_core_fraction": e["helpers_cpu_s"] / e["wall_s"],
        "emgate_good_samples_per_s_100k": e["counts"]["good"] / e["wall_s"],
        "emgate_samples_dropped_100k": e["counts"]["dropped"],
        "emgate_samples_late_100k": e["counts"]["late"],
        "emgate_polls_missed_100k": e["counts"]["missed_polls"],  # ticks the gateway was too late for
    }
    f["emgate_cpu_s_per_1000_samples_100k"] = e["cpu_s"] / max(e["counts"]["good"], 1.0) * 1000
    t0_s, t1_s = e["t0_ns"] / 1e9, e["t1_ns"] / 1e9
    lat = sorted(first_seen[m] - (m + 60 + DELAY_S) for m in first_seen if t0_s <= m + 60 + DELAY_S <= t1_s - 5)
    if not lat:
        raise RuntimeError(f"no minute of emgate's reached InfluxDB whole in the window; see {d / 'emgate.log'}")
    f["minutes_timed_100k"] = len(lat)
    f["minute_to_influx_p99_s_100k"] = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    f["minute_to_influx_max_s_100k"] = lat[-1]
    expected, stored, measured, others = ledger_check(ledger, e["t0_ns"], e["t1_ns"])
    f["ledger_stream_minutes_expected_100k"] = expected
    f["ledger_stream_minutes_100k"] = stored
    f["ledger_stream_minutes_measured_100k"] = measured
    print(
        f"emgate: {SIGNALS:,} signals at 1 s for {e['wall_s']:.0f} s (ready in {e['start_s']:.0f} s): "
        f"CPU {e['cpu_s']:.1f} s ({f['cpu_core_fraction_100k_signals']:.3f} of a core), peak RSS {e['rss_mb']:.0f} MB, "
        f"{f['emgate_good_samples_per_s_100k']:,.0f} good samples/s, {e['counts']['dropped']:.0f} dropped, "
        f"{e['counts']['missed_polls']:.0f} device polls missed (the gateway late); "
        f"minute -> InfluxDB p99 {f['minute_to_influx_p99_s_100k']:.2f} s (max {lat[-1]:.2f} s) over {len(lat)} minutes; "
        f"ledger {measured}/{expected} stream-minutes measured ({stored} stored); simulated devices and publisher "
        f"{f['simulators_cpu_core_fraction']:.3f} of a core"
    )
    # every signal is read once a second on the whole second; the window's two counter reads fall
    # between ticks, so it holds floor(wall_s) or one tick fewer: fewer than that is a sample missing
    missing = max(0.0, SIGNALS * (math.floor(e["wall_s"]) - 1) - e["counts"]["good"])
    f["emgate_samples_missing_100k"] = missing
    problems = []
    if e["counts"]["dropped"] or missing:
        problems.append(f"{e['counts']['dropped']:.0f} samples dropped, {missing:.0f} missing")
    if measured != expected or stored != expected:
        problems.append(f"ledger: {stored} stream-minutes stored, {measured} measured, of {expected}: {'; '.join(others[:5])}")
    if problems:
        print(f"emgate: NOT MET: {'; '.join(problems)}; see {d / 'emgate.log'}")
    f["emgate_no_sample_dropped_100k"] = not problems
    return f


def run_telegraf(
    d: Path, ports: list[int], broker: MosquittoService, influx: InfluxService, helper_pids: list[int],
    warmup: float, window: float,
) -> dict[str, Any]:  # fmt: skip
    telegraf_conf(d / "telegraf.conf", ports, broker, influx)
    t = measure([str(TELEGRAF), "--config", str(d / "telegraf.conf")], warmup, window, d / "telegraf.log",
                helper_pids, lambda: True)  # fmt: skip
    time.sleep(3.0)  # its last flush
    samples = telegraf_samples(influx, int(t["t0_ns"]), int(t["t1_ns"]))
    f = {
        "telegraf_cpu_core_fraction_100k_signals": t["cpu_s"] / t["wall_s"],
        "telegraf_rss_mb_100k_signals": t["rss_mb"],
        "telegraf_samples_per_s_100k": samples / t["wall_s"],
        "telegraf_cpu_s_per_1000_samples_100k": t["cpu_s"] / max(samples, 1.0) * 1000,
    }
    print(
        f"telegraf: CPU {t['cpu_s']:.1f} s ({f['telegraf_cpu_core_fraction_100k_signals']:.3f} of a core), "
        f"peak RSS {t['rss_mb']:.0f} MB, {f['telegraf_samples_per_s_100k']:,.0f} samples/s in InfluxDB"
    )
    return f


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--keep", type=Path, help="keep the site files, logs and ledger in this directory")
    a = p.parse_args()
    run(a.quick, a.keep)


if __name__ == "__main__":
    main()
