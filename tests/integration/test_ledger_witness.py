"""The ledger's daily seals leave the box: a replay of three days seals two of them; a gateway on
that ledger publishes them over MQTT (each on .../seals, the latest retained on .../seal) and writes
them to InfluxDB (measurement emgate_seals). An independent subscriber (mosquitto_sub) keeps them
as a witness; after someone rewrites the ledger with the project's own chain functions, `emgate
ledger verify` still passes but `--witness` names the first day that no longer matches."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.cli import main
from gateway.pipeline import Gateway, supervise
from gateway.settings.load import load_settings
from tests.factories import influx_section
from tests.services.mosquitto import MosquittoService
from tests.support.mqtt_alerts import FixedClock, Subscriber, retained, wait_until
from tests.support.tamper import rewrite_halving_co2

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="mosquitto_sub (Debian mosquitto-clients) not installed"),
]

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 3, 0, 0, tzinfo=TZ)

SITE = """
[site]
name = "witnessed-works"
timezone = "Asia/Shanghai"

[signals.coke_t]
kind = "interval_total"
unit = "t"
interval_s = 60

[[streams]]
process = "blast_furnace"
stream = "coke"
signal = "coke_t"
method = "fuel_combustion"
factor = "cn.coke"

[ledger]
path = "{ledger}"

[influx]
{influx}

[alerts]
enabled = true
spike = {{ enabled = false }}

[alerts.mqtt]
port = {port}
topic_prefix = "{prefix}"

[[replay.csv]]
match = "days*.csv"
timestamp_column = "ts"
columns = {{ coke = "coke_t" }}
"""


async def test_seals_are_witnessed_over_mqtt_and_in_influxdb(
    mosquitto_factory: Callable[..., MosquittoService], unique_topic: str, tmp_path: Path, subscribers: list[Subscriber], influxdb  # type: ignore[no-untyped-def]
) -> None:
    broker = mosquitto_factory()
    run = tmp_path / "run"
    ledger = run / "ledger.sqlite"
    influx = "\n".join(f"{k} = {json.dumps(v)}" for k, v in influx_section(influxdb).items())
    site = tmp_path / "site.toml"
    site.write_text(SITE.format(port=broker.port, prefix=unique_topic, ledger=ledger, influx=influx))
    lines = ["ts,coke"] + [f"{(START + timedelta(minutes=m)).isoformat()},2.0" for m in range(1, 3 * 1440 + 1)]
    (tmp_path / "days.csv").write_text("\n".join(lines) + "\n")
    assert await asyncio.to_thread(main, ["replay", "--config", str(site), "--input", str(tmp_path / "days.csv"), "--out", str(run)]) == 0

    topic = f"{unique_topic}/witnessed-works/seals"
    witness = Subscriber(broker, topic, tmp_path / "witness.txt")
    subscribers.append(witness)
    broker.wait_for_subscription(topic)
    settings = load_settings(site)
    gw = Gateway.build(settings, clock=FixedClock((START + timedelta(days=3, hours=1)).timestamp()))
    assert gw.alert_publisher is not None and gw.influx is not None
    tasks = [asyncio.create_task(supervise(lambda: gw.alert_publisher, settings.retry, gw.health.get("alerts-mqtt"), gw.clock))]
    try:
        await wait_until(lambda: len(witness.messages()) == 2, what="two seals on the witness's topic")
        async with gw.influx as sink:
            while await sink.drain_once():
                pass
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        gw.close()
    seals = [payload for _, _, payload in witness.messages()]
    assert [s["day"] for s in seals] == ["2026-11-03", "2026-11-04"]
    latest = retained(broker, f"{unique_topic}/witnessed-works/seal")
    assert latest == seals[-1]
    result = influxdb.influxql("SELECT head_seq, head_hash FROM emgate_seals GROUP BY day")
    in_influx = {s["tags"]["day"]: (s["values"][0][1], s["values"][0][2]) for s in result["results"][0]["series"]}
    assert in_influx == {s["day"]: (float(s["head_seq"]), s["head_hash"]) for s in seals}
    db = sqlite3.connect(ledger)
    for s in seals:
        assert db.execute("SELECT hash FROM minutes WHERE seq = ?", (s["head_seq"],)).fetchone()[0] == s["head_hash"]
    db.close()

    shutil.copy(ledger, run / "ledger-untouched.sqlite")
    witness_file = tmp_path / "seals.jsonl"
    witness_file.write_text("".join(json.dumps(s) + "\n" for s in seals))
    assert main(["ledger", "verify", str(ledger), "--witness", str(witness_file)]) == 0
    rewrite_halving_co2(ledger)
    assert main(["ledger", "verify", str(ledger)]) == 0  # the chain alone cannot tell
    assert main(["ledger", "verify", str(ledger), "--witness", str(witness_file)]) == 1

    # the monthly export records the seal it is under
    out = tmp_path / "export"
    assert main(["export", "--config", str(site), "--ledger", str(run / "ledger-untouched.sqlite"), "--month", "2026-11", "--out", str(out)]) == 0
    ledger_doc = json.loads((out / "manifest.json").read_text())["ledger"]
    # the latest seal made before the export: strictly below its head (the last seal is at the head itself)
    assert seals[-1]["head_seq"] == ledger_doc["head_seq"]
    sealed = ledger_doc["seal"]
    assert (sealed["day"], sealed["head_seq"], sealed["head_hash"]) == (seals[0]["day"], seals[0]["head_seq"], seals[0]["head_hash"])
