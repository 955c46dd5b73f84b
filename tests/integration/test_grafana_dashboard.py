"""The Grafana dashboard's Flux queries, run against a real InfluxDB 1.8 holding the gateway's rows.

Minute results go in the way a site writes them (Ledger -> InfluxSink); each panel's query is
then run with Grafana's variables filled in as Grafana would (v.timeRangeStart from the panel's
relative time, ${site}, ...) and must find the numbers that were written, for its site only.
"""

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.core.model import MinuteResult
from gateway.ledger.store import Ledger
from gateway.settings.site import InfluxConfig, RetryConfig
from gateway.sinks.influx import InfluxSink
from tests.factories import influx_section, minute_result, results_of

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "emgate-site.json"
MINUTES = 90


def site_results(site: str, scale: float, end_minute: float) -> list[MinuteResult]:
    """MINUTES minutes ending at end_minute: bf (coke, pci; every 10th coke minute substituted), lf."""
    out = []
    for i in range(MINUTES):
        t = end_minute - 60.0 * (MINUTES - 1 - i)
        substituted = i % 10 == 0
        out += [
            minute_result(
                minute_start=t,
                site=site,
                process="blast_furnace",
                stream="coke",
                co2_kg=50.0 * scale,
                ef_kg_per_unit=100.0,
                coverage=0.5 if substituted else 1.0,
                quality="substituted" if substituted else "measured",
                flags="last_good" if substituted else "",
            ),
            minute_result(
                minute_start=t,
                site=site,
                process="blast_furnace",
                stream="pci",
                activity=0.1,
                co2_kg=10.0 * scale,
                factor_id="cn.pci",
                ef_kg_per_unit=100.0,
            ),
            minute_result(
                minute_start=t,
                site=site,
                process="ladle_furnace",
                stream="electricity",
                scope="indirect",
                method="electricity",
                activity=8.0,
                activity_unit="kWh",
                co2_kg=5.0 * scale,
                factor_id="cn.grid",
                ef_kg_per_unit=0.6,
            ),
        ]
    return out


async def deliver(influxdb: Any, ledger_path: Path, results: list[MinuteResult]) -> int:
    ledger = Ledger(ledger_path)
    try:
        ledger.append(results_of(results))
        cfg = InfluxConfig(**influx_section(influxdb))
        written = 0
        async with InfluxSink(cfg, ledger, RetryConfig()) as sink:
            while n := await sink.drain_once():
                written += n
        return written
    finally:
        ledger.close()


def panel_start(panel: dict[str, Any], now: datetime) -> datetime:
    """Where Grafana starts a panel's range: its relative time (timeFrom) or the dashboard's 6 h."""
    return {
        "now/d": now.replace(hour=0, minute=0, second=0, microsecond=0),
        "now/M": now.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
        "now/y": now.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0),
        None: now - timedelta(hours=6),
    }[panel.get("timeFrom")]


def render(query: str, panel: dict[str, Any], site: str, now: datetime) -> str:
    start = panel_start(panel, now).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        query.replace("v.timeRangeStart", start)
        .replace("v.timeRangeStop", "now()")
        .replace("v.windowPeriod", "5m")
        .replace("${site}", site)
        .replace("${allowance_t}", "1000")
    )


def by_title(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in dashboard["panels"]}


@pytest.fixture(scope="module")
def two_sites(influxdb, tmp_path_factory) -> tuple[str, str, float]:
    import asyncio

    tag = uuid.uuid4().hex[:6]
    a, b = f"plant-a-{tag}", f"plant-b-{tag}"
    end_minute = (time.time() // 60 - 1) * 60
    d = tmp_path_factory.mktemp("grafana")
    for site, scale in ((a, 1.0), (b, 2.0)):
        assert (
            asyncio.run(deliver(influxdb, d / f"{site}.sqlite", site_results(site, scale, end_minute)))
            == MINUTES * 3
        )
    return a, b, end_minute


def viewed_at(end_minute: float) -> datetime:
    """The dashboard looked at during the first minute written: every panel's range (the last 6 h,
    today, this month, this year, up to now()) then holds all MINUTES minutes, also when the test
    runs just after midnight or New Year's, when the written minutes lie before today or this year."""
    return datetime.fromtimestamp(end_minute - 60.0 * (MINUTES - 1), UTC)


def test_every_panel_query_finds_data(influxdb, two_sites) -> None:
    site, _, end_minute = two_sites
    dashboard = json.loads(DASHBOARD.read_text())
    now = viewed_at(end_minute)
    queried = 0
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            rows = influxdb.flux(render(target["query"], panel, site, now))
            assert rows, f"panel {panel['title']!r} query {target['refId']} found nothing"
            queried += 1
    assert queried >= 10


def test_panels_show_the_written_numbers_for_their_site_only(influxdb, two_sites) -> None:
    a, b, end_minute = two_sites
    panels = by_title(json.loads(DASHBOARD.read_text()))
    now = viewed_at(end_minute)

    def run(title: str, site: str, ref: int = 0) -> list[dict[str, Any]]:
        panel = panels[title]
        return influxdb.flux(render(panel["targets"][ref]["query"], panel, site, now))

    total_a_t = MINUTES * (50.0 + 10.0 + 5.0) / 1000.0
    assert run("CO2 this year", a)[0]["_value"] == pytest.approx(total_a_t)
    assert run("CO2 this year", b)[0]["_value"] == pytest.approx(2 * total_a_t)
    per_process = {r["process"]: r["_value"] for r in run("CO2 per process in range (t)", a)}
    assert per_process == pytest.approx(
        {"blast_furnace": MINUTES * 60.0 / 1000, "ladle_furnace": MINUTES * 5.0 / 1000}
    )
    series = run("CO2 per process (kg per interval)", a)
    assert {r["process"] for r in series} == {"blast_furnace", "ladle_furnace"}
    assert sum(r["_value"] for r in series) == pytest.approx(MINUTES * 65.0)
    substituted = MINUTES // 10
    assert run("Substituted or missing", a)[0]["_value"] == substituted
    assert run("Stream-minutes not fully measured", a)[0]["_value"] == substituted
    quality = run("Alerts: stream-minutes not fully measured, by process and quality", a)
    assert [(r["process"], r["quality"], r["_value"]) for r in quality] == [
        ("blast_furnace", "substituted", substituted)
    ]
    budget = run("Budget: year to date vs allowance (t)", a)
    assert max(r["_value"] for r in budget) == pytest.approx(total_a_t)
    assert {r["_value"] for r in run("Budget: year to date vs allowance (t)", a, 1)} == {1000.0}
    coverage = run("Data quality: coverage per process (%)", a)
    assert min(r["_value"] for r in coverage) < 100.0 <= max(r["_value"] for r in coverage)
    assert run("CO2 today", a)[0]["_value"] == pytest.approx(total_a_t)


def test_site_variable_lists_every_site(influxdb, two_sites) -> None:
    a, b, _ = two_sites
    dashboard = json.loads(DASHBOARD.read_text())
    var = next(v for v in dashboard["templating"]["list"] if v["name"] == "site")
    sites = {r["_value"] for r in influxdb.flux(var["query"])}
    assert {a, b} <= sites


def test_dashboard_and_provisioning_reference_one_datasource() -> None:
    yaml = pytest.importorskip("yaml", reason="needs PyYAML (test extra)")
    dashboard = json.loads(DASHBOARD.read_text())
    ds = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/emgate-influxdb.yaml").read_text())
    source = ds["datasources"][0]
    assert source["type"] == "influxdb" and source["jsonData"]["version"] == "Flux"
    assert source["jsonData"]["defaultBucket"] == "emgate/autogen"
    uids = {p["datasource"]["uid"] for p in dashboard["panels"]}
    assert uids == {source["uid"]}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}  # panels tile the 24-column grid without overlapping
    for p in dashboard["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]
    provider = yaml.safe_load((REPO / "deploy/grafana/provisioning/dashboards/emgate.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/emgate"
