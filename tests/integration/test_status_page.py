"""The status page in a real headless Chromium, served by a real `emgate demo --http`.

The demo runs 20x faster (a minute closes every 3 s), so the page must show the
demo's processes and then update without a reload. A screenshot is kept under .test-logs/.
"""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.commands.demo import DEMO_CONFIG, DEMO_PLANT_CONFIG

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LOGS = REPO / ".test-logs"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# the text of every cell of the rows matching arguments[0], read in one go (the page redraws often)
CELLS = (
    "return [...document.querySelectorAll(arguments[0])]"
    ".map((tr) => [...tr.children].map((c) => c.textContent));"
)


def demo_processes(config: Path) -> set[str]:
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    return {s["process"] for s in data["streams"]}


BUDGET = """
[budget]
name = "compliance"
carbon_price_cny_per_t = 82.8
projection_min_days = 0

[[budget.years]]
year = {year}
allowance_t = 1000.0        # far below the demo works' pace: the projection overshoots at once

[alerts]
enabled = true

[alerts.budget]
raise_at = {{ warning = 0.0, critical = 0.2 }}
clear_at = -0.05
min_duration_s = 0
"""


@pytest.fixture
def demo_page(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`emgate demo --speed 20 --http 127.0.0.1:0` on the demo plant; yields the page URL once it is served."""
    yield from running_demo(tmp_path, DEMO_PLANT_CONFIG)


@pytest.fixture
def budget_demo_page(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The demo plant with a [budget] for this year and [alerts] on."""
    config = tmp_path / "demo-budget.toml"
    config.write_text(DEMO_PLANT_CONFIG.read_text() + BUDGET.format(year=time.gmtime().tm_year))
    yield from running_demo(tmp_path, config)


def running_demo(tmp_path: Path, config: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log_path = tmp_path / "demo.log"
    with log_path.open("w") as log:  # a file, not a pipe: a pipe nobody drains would block the demo
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "demo",
                "--speed",
                "20",
                "--http",
                "127.0.0.1:0",
                "--ledger",
                str(tmp_path / "ledger.sqlite"),
                "--config",
                str(config),
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r"status page (http://127\.0\.0\.1:\d+/)", log_path.read_text())
            url = m.group(1) if m else time.sleep(0.1)
        if url is None:
            pytest.fail("emgate demo did not announce its status page:\n" + log_path.read_text())
        yield url, proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[object]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            "needs /usr/bin/chromium and /usr/bin/chromedriver (Debian packages chromium, chromium-driver)"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (test extra)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1500",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # to check the page logs no errors
    driver = webdriver.Chrome(
        options=opts, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    )
    try:
        yield driver
    finally:
        driver.quit()


def test_page_shows_the_demo_processes_and_updates_live(demo_page, chromium) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, proc = demo_page
    driver = chromium
    # the page replaces its rows on every update: waits retry on stale elements, and tables are
    # read in one script call so a row set is never half old, half new
    wait = WebDriverWait(driver, 40, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException])
    expected = demo_processes(DEMO_PLANT_CONFIG)

    driver.get(url)
    assert driver.title == "emgate status"
    wait.until(lambda d: d.find_element(By.ID, "conn").text == "live")

    def rows(selector: str, attr: str) -> dict[str, list[str]]:
        return driver.execute_script(
            "return Object.fromEntries([...document.querySelectorAll(arguments[0])].map("
            "(el) => [el.dataset[arguments[1]], [...el.children].map((c) => c.textContent)]));",
            selector,
            attr,
        )

    def shown_processes(_d) -> set[str]:
        return set(rows("#processes tbody tr", "process"))

    wait.until(lambda d: shown_processes(d) == expected)
    # one chart line per process
    assert set(rows("#chart path", "process")) == expected
    # live: minutes keep closing and the page follows without a reload
    first = int(driver.find_element(By.ID, "minutes-closed").text.replace(",", ""))
    wait.until(lambda d: int(d.find_element(By.ID, "minutes-closed").text.replace(",", "")) >= first + 2)
    # numbers carry units
    assert re.fullmatch(r"-?[\d,]+\.\d (kg|t)", driver.find_element(By.ID, "total-today").text)
    assert driver.find_element(By.ID, "influx-backlog").text == "InfluxDB disabled"
    assert driver.find_element(By.ID, "ledger-rows").text.endswith(" rows")
    devices = rows("#devices tbody tr", "device")
    assert set(devices) == {
        "modbus[sinter-1]",
        "modbus[bf-1]",
        "modbus[bof-1]",
        "modbus[lf-1]",
        "modbus[main-meter]",
    }
    for cells in devices.values():
        assert cells[1] == "OK", cells
        assert cells[5].endswith(" ms"), cells
    for cells in rows("#processes tbody tr", "process").values():
        assert all(re.fullmatch(r"(-?[\d,]+\.\d (kg|t))|–", c) for c in cells[1:]), cells
    assert driver.find_element(By.ID, "site").text == "demo-works"
    # the alert section stays hidden while the gateway has no alert engine
    if urllib.request.urlopen(url + "api/status", timeout=5).read().find(b'"alerts":null') >= 0:
        assert not driver.find_element(By.ID, "alerts-section").is_displayed()

    LOGS.mkdir(exist_ok=True)
    shot = LOGS / "status-page.png"
    assert driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    assert proc.poll() is None, "the demo stopped while the page was open"
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors  # script errors, CSP violations, failed requests


def test_metrics_endpoint_of_a_running_demo(demo_page) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    url, _ = demo_page
    deadline = time.monotonic() + 30
    while True:
        text = urllib.request.urlopen(url + "metrics", timeout=5).read().decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        closed = families["emgate_minutes_closed"].samples[0].value
        if closed >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert closed >= 1
    read = {
        s.labels["source"]: s.value
        for s in families["emgate_samples_read"].samples
        if s.name.endswith("_total")
    }
    assert set(read) == {"sinter-1", "bf-1", "bof-1", "lf-1", "main-meter"} and min(read.values()) > 0
    counts = [s for s in families["emgate_poll_latency_seconds"].samples if s.name.endswith("_count")]
    assert len(counts) == 5 and all(s.value > 0 for s in counts)
    assert families["emgate_ledger_rows"].samples[0].value > 0
    assert families["emgate_minute_close_lag_seconds"].samples
    assert "emgate_outbox_backlog_rows" in families and "emgate_alerts_active" in families


def test_budget_and_alerts_sections_show_when_the_site_has_a_budget(budget_demo_page, chromium) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = budget_demo_page
    driver = chromium
    wait = WebDriverWait(driver, 40, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException])
    driver.get(url)
    wait.until(lambda d: d.find_element(By.ID, "budget-section").is_displayed())
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#alerts tbody tr"))
    budget = driver.execute_script(CELLS, "#budgets tbody tr")
    assert len(budget) == 1
    name, year, actual, _trajectory, allowance, projected, shortfall, _bar = budget[0]
    assert name == "compliance · direct" and year == str(time.gmtime().tm_year)
    assert allowance == "1,000.0 t"
    assert re.fullmatch(r"[\d,]+\.\d (kg|t)", actual) and re.fullmatch(r"[\d,]+\.\d t", projected)
    assert shortfall.endswith(" CNY)") and " over " in shortfall
    alerts = driver.execute_script(CELLS, "#alerts tbody tr")
    severity, kind, _process, since, message = alerts[0]
    assert (severity, kind) == ("critical", "budget")
    assert re.fullmatch(r"\d\d:\d\d", since) and "allowance 1,000.0 t" in message
    assert not driver.find_element(By.ID, "alerts-none").is_displayed()
    LOGS.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(LOGS / "status-page-budget.png"))


def test_the_integrated_works_demo_shows_its_budget_and_alerts_sections(tmp_path: Path, chromium) -> None:
    """`emgate demo` on its default site (the integrated works, with [budget] and [alerts])."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with contextlib.closing(running_demo(tmp_path, DEMO_CONFIG)) as demo:
        url, proc = next(demo)
        driver = chromium
        wait = WebDriverWait(driver, 40, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException])
        driver.get(url)
        wait.until(lambda d: d.find_element(By.ID, "budget-section").is_displayed())
        wait.until(lambda d: d.execute_script(CELLS, "#budgets tbody tr"))
        (budget,) = driver.execute_script(CELLS, "#budgets tbody tr")
        name, year, actual, _trajectory, allowance, projected, _shortfall, _bar = budget
        assert name == "compliance · direct" and year == str(time.gmtime().tm_year)
        assert re.fullmatch(r"[\d,]+\.\d t", actual)  # the year to date opens at the works's pace
        assert re.fullmatch(r"[\d,]+\.\d t", allowance) and re.fullmatch(r"[\d,]+\.\d t", projected)
        assert driver.find_element(By.ID, "alerts-section").is_displayed()
        assert driver.find_element(By.ID, "site").text == "integrated-works"
        shown = "return [...document.querySelectorAll('#processes tbody tr')].map((el) => el.dataset.process);"
        wait.until(lambda d: set(d.execute_script(shown)) >= demo_processes(DEMO_CONFIG))
        LOGS.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(LOGS / "status-page-integrated-works.png"))
        assert proc.poll() is None


def test_the_deposit_section_lists_the_month_waiting_for_its_deposit(tmp_path: Path, chromium) -> None:
    """Last month of the integrated works, recorded and replayed, then `emgate demo` on that ledger:
    the page's Monthly deposit section shows it open (its lab results and its export missing)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    now = time.gmtime()
    month = f"{now.tm_year - (now.tm_mon == 1)}-{(now.tm_mon - 2) % 12 + 1:02d}"  # last month: due within 40 days
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "gateway"]
    subprocess.run([*cli, "examples", "integrated-works", "--month", month, "--days", "1", "--out", str(tmp_path / "rec")], check=True, cwd=REPO, env=env, capture_output=True)
    config = tmp_path / "works.toml"
    # every month due within 40 days is watched, so last month always is, whatever today's date
    config.write_text(DEMO_CONFIG.read_text() + "\n[alerts.deposit]\nwarn_days_before_due = 40\ncheck_interval_s = 60\n")
    recorded = next((tmp_path / "rec").glob("*.csv"))
    subprocess.run([*cli, "replay", "--config", str(config), "--input", str(recorded), "--out", str(tmp_path / "run")], check=True, cwd=REPO, env=env, capture_output=True)
    (tmp_path / "run" / "ledger.sqlite").rename(tmp_path / "ledger.sqlite")  # where running_demo puts its ledger

    with contextlib.closing(running_demo(tmp_path, config)) as demo:
        url, proc = next(demo)
        driver = chromium
        wait = WebDriverWait(driver, 40, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException])
        driver.get(url)
        wait.until(lambda d: d.find_element(By.ID, "deposit-section").is_displayed())
        (row,) = driver.execute_script(CELLS, "#deposits tbody tr")
        shown_month, due, days_left, fuel_minutes, _low, exported, state = row
        assert shown_month == month and re.fullmatch(r"\d{4}-\d\d-\d\d", due) and 0 <= int(days_left) <= 40
        assert int(fuel_minutes.replace(",", "")) > 0  # coal and coke on defaults where no sample covers them
        assert exported == "no" and state.startswith("open:") and "lab results" in state and "export" in state
        (alert,) = [r for r in driver.execute_script(CELLS, "#alerts tbody tr") if r[1] == "deposit"]
        assert alert[0] in ("warning", "critical") and f"Deposit {month}" in alert[4]
        LOGS.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(LOGS / "status-page-deposit.png"))
        assert proc.poll() is None
