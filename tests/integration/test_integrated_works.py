"""The integrated works (config/examples/integrated-works.toml) end to end, as a newcomer runs it:
`emgate examples integrated-works --month --out` -> replay -> lab import -> export, and the
deposit.json checked; and `emgate demo` on it, its status API showing every process and the
budget position."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.settings.load import load_settings
from gateway.settings.shipped import example_site

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MONTH = "2026-11"
DAYS = 3  # the lab samples of days 1-3: coke, coking coal and PCI from day 1, the COG from day 3
SITE = example_site("integrated-works")
PROCESSES = {"coking", "sintering", "blast_furnace", "bof", "power_plant", "rolling"}
# the lab-covered (stream, process) pairs of the first three days (gateway/sim/record.py SAMPLES)
LAB_COVERED = {
    ("coke_out", "coking"),
    ("coke", "blast_furnace"),
    ("coking_coal", "coking"),
    ("pci_coal", "blast_furnace"),
    ("cog_out", "coking"),
}


@pytest.fixture(scope="module")
def deposit_doc(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """The documented commands, run from another working directory; (out dir, deposit.json, summary.json)."""
    tmp = tmp_path_factory.mktemp("works")
    cwd = os.getcwd()
    os.chdir(tmp)  # relative paths as a user types them, away from the checkout
    try:
        assert main(["examples", "integrated-works", "--month", MONTH, "--out", "works", "--days", str(DAYS)]) == 0
        csv_path = Path("works") / f"integrated-works-{MONTH}.csv"
        assert main(["replay", "--config", str(SITE), "--input", str(csv_path), "--out", "works/run"]) == 0
        ledger = "works/run/ledger.sqlite"
        assert main(["lab", "import", "--config", str(SITE), "--ledger", ledger, f"works/lab-{MONTH}.csv"]) == 0
        assert main(["export", "--config", str(SITE), "--ledger", ledger, "--month", MONTH, "--out", f"works/{MONTH}"]) == 0
    finally:
        os.chdir(cwd)
    out = tmp / "works" / MONTH
    return out, json.loads((out / "deposit.json").read_text()), json.loads((out / "summary.json").read_text())


def test_recording_is_byte_deterministic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        assert main(["examples", "integrated-works", "--month", "2026-02", "--days", "1", "--out", str(tmp_path / name)]) == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert {str(p) for p in files} >= {"integrated-works-2026-02.csv", "lab-2026-02.csv", "reports/coke-2602-a.pdf"}
    for p in files:
        assert (tmp_path / "a" / p).read_bytes() == (tmp_path / "b" / p).read_bytes(), p
    rows = (tmp_path / "a" / "integrated-works-2026-02.csv").read_text().splitlines()
    assert len(rows) == 1 + 1441  # the header, 00:00 .. 24:00 of the day
    assert rows[1].startswith("2026-02-01T00:00:00+08:00,") and rows[-1].startswith("2026-02-02T00:00:00+08:00,")
    capsys.readouterr()
    assert main(["examples", "uci-steel", "--month", "2026-02", "--out", str(tmp_path / "c")]) == 2
    assert "--month goes with the example integrated-works" in capsys.readouterr().err


def test_measured_rows_for_the_lab_covered_fuels_default_for_the_rest(deposit_doc) -> None:
    out, doc, _ = deposit_doc
    rows = [(p["process"], r) for p in doc["processes"] for r in p["rows"] if r["tag"] != "calculated"]
    measured = {(r["item"], process) for process, r in rows if r["tag"] == "measured"}
    assert measured == LAB_COVERED
    for _, r in rows:
        if r["tag"] == "measured":
            assert r["factor_id"].startswith("lab:") and "evidence lab:" in r["source"], r
        else:
            assert r["tag"] == "default" and not r["factor_id"].startswith("lab:"), r
    # the COG is on its lab result from day 3 only: a default row and a measured row
    cog = [r for process, r in rows if (r["item"], process) == ("cog_out", "coking")]
    assert sorted(r["tag"] for r in cog) == ["default", "measured"]
    assert {r["item"] for _, r in rows if r["tag"] == "default"} >= {
        "bfg_out",
        "stoves_bfg",
        "ldg_out",
        "hot_metal_out",
        "limestone",
    }
    lab = [e for e in doc["evidence"] if e["kind"] == "lab"]
    assert len(lab) == 5 and all((out / e["file"]).is_file() for e in lab)


def test_production_per_process(deposit_doc) -> None:
    _, doc, _ = deposit_doc
    production = {p["process"]: p["production"] for p in doc["processes"]}
    expected = {
        "coking": "coke",
        "sintering": "sinter",
        "blast_furnace": "hot_metal",
        "bof": "crude_steel",
        "rolling": "rolled_steel",
    }
    hours = DAYS * 24
    per_hour = {"coke": 155.0, "sinter": 460.0, "hot_metal": 380.0, "crude_steel": 420.0, "rolled_steel": 400.0}
    for process, product in expected.items():
        (item,) = production[process]
        assert item["item"] == product and item["unit"] == "t" and item["tag"] == "measured", item
        assert item["amount"] == pytest.approx(per_hour[product] * hours, rel=0.03), (
            item
        )  # batch weighing: a car or heat either side
    assert production["power_plant"] == []
    assert {p["process"] for p in doc["processes"]} == PROCESSES
    assert next(p for p in doc["processes"] if p["process"] == "power_plant")["captive_power"] is True


def test_enterprise_and_processes_differ_by_the_transfers(deposit_doc) -> None:
    _, doc, summary = deposit_doc
    s, balance = doc["summary"], summary["balance"]
    assert s["enterprise_t"] == pytest.approx(balance["enterprise_t"]) == pytest.approx(doc["enterprise"]["co2_t"])
    assert s["processes_t"] == pytest.approx(math.fsum(p["co2_t"] for p in doc["processes"]))
    assert s["difference_t"] == pytest.approx(s["processes_t"] - s["enterprise_t"])
    transfers = {t["name"]: t for t in balance["transfers"]}
    assert set(transfers) == {"BFG", "COG", "LDG", "coke", "hot_metal"}
    assert s["difference_t"] == pytest.approx(math.fsum(t["co2_t"] for t in transfers.values()), abs=1e-6)
    assert balance["unexplained_t"] == pytest.approx(0.0, abs=1e-6)
    assert transfers["hot_metal"]["co2_t"] == pytest.approx(0.0, abs=1e-9)  # one weighbridge, both sides
    # gas flared: produced more than taken in, so the processes' sum is below the enterprise figure
    for name in ("BFG", "COG"):
        assert transfers[name]["unaccounted_carbon_t"] > 0, transfers[name]
    assert s["processes_t"] < s["enterprise_t"]
    captive = next(p for p in doc["processes"] if p["process"] == "power_plant")
    assert s["captive_power_t"] == pytest.approx(captive["co2_t"]) and captive["co2_t"] > 0
    # no gas moved between processes appears at the enterprise level; crude steel and the sold by-products do
    items = {r["item"] for r in doc["enterprise"]["rows"]}
    assert {"crude_steel", "coal_tar_sold", "crude_benzene_sold", "coking_coal", "pci_coal", "limestone"} <= items
    assert not items & {"bfg_out", "cog_out", "ldg_out", "coke_out", "hot_metal_out", "hot_metal_in", "bfg", "cog", "ldg"}
    # each level's rows add up to its calculated row (rounding of rows to 1 g)
    for level in [doc["enterprise"], *doc["processes"]]:
        calc = [r for r in level["rows"] if r["tag"] == "calculated"]
        assert len(calc) == 1
        parts = math.fsum(r["co2_t"] for r in level["rows"] if r["tag"] != "calculated")
        assert parts == pytest.approx(level["co2_t"], abs=1e-3 * len(level["rows"]))
    # purchased electricity: 60 MW on average, indirect, in the auxiliary items
    aux = doc["auxiliary"]
    assert aux["purchased_electricity_mwh"] == pytest.approx(60.0 * DAYS * 24, rel=0.02)
    assert aux["indirect_co2_t"] > 0 and s["other_t"] == 0.0


def test_the_deposit_workbook_is_there(deposit_doc) -> None:
    out, doc, _ = deposit_doc
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.load_workbook(out / "deposit.xlsx", read_only=True)
    assert "工序生产设施信息表" in wb.sheetnames and "排放量汇总表" in wb.sheetnames
    wb.close()
    assert doc["site"] == "integrated-works" and doc["due_date"] == "2027-01-09"


# -- the demo ---------------------------------------------------------------------------------------
def test_demo_runs_the_integrated_works_with_a_budget_position(tmp_path: Path) -> None:
    """`emgate demo --speed 60 --http` (the default config): every process's minutes, the budget."""
    settings = load_settings(SITE)
    log_path = tmp_path / "demo.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "gateway", "demo", "--speed", "60", "--minutes", "30", "--http", "127.0.0.1:0"]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*cmd, "--ledger", str(tmp_path / "ledger.sqlite")], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        status: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        url = None
        while time.monotonic() < deadline and proc.poll() is None:
            if url is None:
                m = re.search(r"status page (http://127\.0\.0\.1:\d+/)", log_path.read_text())
                url = m.group(1) if m else None
            if url is not None:
                status = json.loads(urllib.request.urlopen(url + "api/status", timeout=5).read())
                if PROCESSES <= set(status["processes"]) and status["budgets"]:
                    break
            time.sleep(0.3)
        assert status, log_path.read_text()
        assert status["site"] == "integrated-works"
        assert set(status["processes"]) == PROCESSES | {"utilities"}, status["processes"]
        (budget,) = status["budgets"]
        year = time.gmtime(status["now"] + 8 * 3600).tm_year
        assert budget["year"] == year and budget["scope"] == "direct"
        assert budget["allowance_t"] == next(y.allowance_t for y in settings.budget.years if y.year == year)
        # the year to date opens at the works's pace, so the projection is of the works's size
        assert budget["actual_t"] > 0 and 4.0e6 < budget["projected_year_end_t"] < 6.0e6, budget
        assert status["alerts"] is not None  # the alert stage runs: the page shows its section
        assert "budget" in log_path.read_text() and "opens with" in log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
