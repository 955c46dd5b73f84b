"""The deposit alert end to end, as an independent subscriber (Debian's mosquitto_sub) sees it.

A works replays six hours of October 2026 with coke on its default factor. With the site's
clock at 2026-12-05 (October is due 2026-12-10) the gateway's deposit clock raises a `deposit`
warning: lab results awaited and no export. `emgate lab import` restates the minutes (coke now
measured); at 2026-12-08 the alert turns critical for the one item left, the export; after
`emgate export` it clears. /metrics and the status snapshot show the month all along.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import generate_latest

from gateway.alerts.deposit import deposit_loop
from gateway.cli import main
from gateway.http.metrics import gateway_registry
from gateway.pipeline import Gateway, supervise
from gateway.settings.load import load_settings
from tests.services.mosquitto import MosquittoService
from tests.support.mqtt_alerts import FixedClock, Subscriber, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="mosquitto_sub (Debian mosquitto-clients) not installed"),
]

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 10, 20, 6, 0, tzinfo=TZ)
MINUTES = 360

SITE = """
[site]
name = "deposit-works"
timezone = "Asia/Shanghai"

[signals.coke_t]
kind = "interval_total"
unit = "t"
interval_s = 60

[signals.power_kwh]
kind = "interval_total"
unit = "kWh"
interval_s = 60

[[streams]]
process = "blast_furnace"
stream = "coke"
signal = "coke_t"
method = "fuel_combustion"
factor = "cn.coke"

[[streams]]
process = "site"
stream = "purchased_electricity"
signal = "power_kwh"
method = "electricity"
factor = "cn.grid.2022.national_avg"

[ledger]
path = "{ledger}"

[alerts]
enabled = true
spike = {{ enabled = false }}

[alerts.mqtt]
port = {port}
topic_prefix = "{prefix}"

[alerts.deposit]
warn_days_before_due = 10
critical_days_before_due = 3
check_interval_s = 0.2

[[replay.csv]]
match = "october*.csv"
timestamp_column = "ts"
columns = {{ coke = "coke_t", power = "power_kwh" }}
"""

LAB = (
    "sample_id,stream,sampled_from,sampled_to,lab,accreditation,ncv_gj_per_unit,carbon_tc_per_gj,"
    "carbon_fraction,hydrogen_pct,total_sulfur_pct,moisture_pct,report_file,supersedes\n"
    "COKE-1020,blast_furnace/coke,2026-10-20T00:00,2026-10-21T00:00,Works QC lab,CNAS L0123,29.1,0.0300,,0.5,0.7,4.2,"
    "coke-1020.pdf,\n"
)


async def test_deposit_alert_raised_escalated_and_cleared(
    mosquitto_factory: Callable[..., MosquittoService], unique_topic: str, tmp_path: Path, subscribers: list[Subscriber]
) -> None:
    broker = mosquitto_factory()
    site = tmp_path / "site.toml"
    run = tmp_path / "run"
    ledger = run / "ledger.sqlite"  # where the replay writes it
    site.write_text(SITE.format(port=broker.port, prefix=unique_topic, ledger=ledger))
    lines = ["ts,coke,power"] + [f"{(START + timedelta(minutes=m)).isoformat()},2.0,500.0" for m in range(1, MINUTES + 1)]
    (tmp_path / "october.csv").write_text("\n".join(lines) + "\n")
    assert await asyncio.to_thread(main, ["replay", "--config", str(site), "--input", str(tmp_path / "october.csv"), "--out", str(run)]) == 0

    topic = f"{unique_topic}/deposit-works/alerts"
    sub = Subscriber(broker, topic, tmp_path / "events.txt")
    subscribers.append(sub)
    broker.wait_for_subscription(topic)

    settings = load_settings(site)
    clock = FixedClock(datetime(2026, 12, 5, 12, 0, tzinfo=TZ).timestamp())
    gw = Gateway.build(settings, clock=clock)
    stage = gw.alerts
    assert stage is not None and gw.alert_publisher is not None
    tasks = [
        asyncio.create_task(supervise(lambda: gw.alert_publisher, settings.retry, gw.health.get("alerts-mqtt"), clock)),
        asyncio.create_task(deposit_loop(stage, ledger, settings.site.timezone, settings.alerts.deposit, clock)),
    ]
    try:
        await wait_until(lambda: len(sub.messages()) == 1, what="the deposit raise")
        raised = sub.messages()[0][2]
        assert (raised["kind"], raised["subject"], raised["state"], raised["severity"]) == ("deposit", "2026-10", "raised", "warning")
        assert raised["details"]["open"] == ["lab results", "export"]
        assert raised["details"]["default_fuel"] == [
            {"stream": "blast_furnace/coke", "minutes": MINUTES, "factor_ids": ["cn.coke"], "activity": 2.0 * MINUTES}
        ]
        assert raised["details"]["due_date"] == "2026-12-10" and raised["details"]["days_left"] == 5
        metrics = generate_latest(gateway_registry(gw)).decode()
        assert 'emgate_deposit_open{month="2026-10"} 1.0' in metrics
        assert f'emgate_deposit_default_fuel_minutes{{month="2026-10"}} {float(MINUTES)}' in metrics

        # the lab result for the whole day arrives: its minutes are restated to measured
        (tmp_path / "coke-1020.pdf").write_bytes(b"%PDF stamped report COKE-1020\n")
        (tmp_path / "lab.csv").write_text(LAB)
        assert await asyncio.to_thread(main, ["lab", "import", "--config", str(site), "--ledger", str(ledger), str(tmp_path / "lab.csv")]) == 0
        await wait_until(lambda: stage.deposits and stage.deposits[0]["default_fuel_minutes"] == 0, what="the restated month")
        assert stage.deposits[0]["open"] == ["export"]

        # three days later: two days left, critical, with the one item left
        clock.t = datetime(2026, 12, 8, 12, 0, tzinfo=TZ).timestamp()
        await wait_until(lambda: len(sub.messages()) == 2, what="the escalation")
        updated = sub.messages()[1][2]
        assert (updated["id"], updated["state"], updated["severity"]) == (raised["id"], "updated", "critical")
        assert updated["details"]["open"] == ["export"] and "not exported" in updated["message"]

        # the export is recorded in the ledger: the month is complete, the alert clears
        out = tmp_path / "2026-10"
        assert await asyncio.to_thread(main, ["export", "--config", str(site), "--ledger", str(ledger), "--month", "2026-10", "--out", str(out)]) == 0
        await wait_until(lambda: len(sub.messages()) == 3, what="the clear")
        cleared = sub.messages()[2][2]
        assert (cleared["id"], cleared["state"]) == (raised["id"], "cleared")
        assert cleared["details"]["open"] == [] and "complete" in cleared["message"]
        assert stage.active() == []
        metrics = generate_latest(gateway_registry(gw)).decode()
        assert 'emgate_deposit_open{month="2026-10"} 0.0' in metrics
        assert 'emgate_deposit_exported{month="2026-10"} 1.0' in metrics
        await asyncio.sleep(0.5)  # a duplicate would arrive now
        assert len(sub.messages()) == 3
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        gw.close()
