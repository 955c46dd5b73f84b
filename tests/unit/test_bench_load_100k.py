"""bench/load_100k.py's device set: emgate's site file and Telegraf's configuration describe the same devices."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from bench import load_100k as bench
from gateway.settings.load import load_settings
from gateway.sources.modbus_plan import plan_reads


def test_the_site_file_holds_100k_signals_read_120_registers_at_a_time(tmp_path: Path) -> None:
    broker = cast(Any, SimpleNamespace(port=1883))
    influx = cast(Any, SimpleNamespace(url="http://127.0.0.1:8086", bucket="b/autogen", token="t"))
    bench.emgate_site(tmp_path / "site.toml", [5020, 5021], broker, influx, tmp_path / "ledger.sqlite")
    s = load_settings(tmp_path / "site.toml")
    assert len(s.signals) == bench.SIGNALS == 100_000
    assert len(s.streams) == bench.STREAMS
    devices = s.modbus.devices
    assert len(devices) == bench.DEVICES
    for d in (devices[0], devices[-1]):
        blocks = plan_reads(d.points, max_registers=d.max_registers_per_read, max_gap=d.max_gap_registers)
        assert [b.count for b in blocks] == [120] * 4  # 60-125 registers a read
    # each (port, unit id) is one device, and unit ids stay in 1..247
    where = {(d.port, d.unit_id) for d in devices}
    assert len(where) == bench.DEVICES and all(1 <= u <= 247 for _, u in where)
    (broker_cfg,) = s.mqtt.brokers
    assert sum(len(sub.fields) for sub in broker_cfg.subscriptions) == bench.TOPICS * bench.FIELDS

    bench.telegraf_conf(tmp_path / "telegraf.conf", [5020, 5021], broker, influx)
    conf = (tmp_path / "telegraf.conf").read_text()
    inputs = re.findall(r'slave_id = (\d+)\n  timeout = "800ms"\n  controller = "tcp://127.0.0.1:(\d+)"', conf)
    assert {(int(p), int(u)) for u, p in inputs} == where  # Telegraf polls the very same devices
    assert conf.count('name = "p') == bench.DEVICES * bench.POINTS
    assert 'topics = ["bench/#"]' in conf
