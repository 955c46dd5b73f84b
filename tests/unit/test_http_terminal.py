"""What an operator sees without a browser: log lines (text / JSON) and the live table."""

import asyncio
import io
import json
import logging
from pathlib import Path

import pytest
from rich.console import Console

from gateway.cli import build_parser, main
from gateway.core.health import ComponentHealth
from gateway.http.terminal_table import LiveTable, render_snapshot
from gateway.logging_setup import JsonLineFormatter, setup_logging
from tests.support.status_gateway import T0, FakeGateway, history, minute


@pytest.fixture
def restore_root_logging():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved[0]:
        root.addHandler(h)
    root.setLevel(saved[1])


def test_json_lines_carry_time_level_logger_message_and_extras(restore_root_logging) -> None:
    out = io.StringIO()
    setup_logging("INFO", "json", stream=out)
    log = logging.getLogger("gateway.test")
    log.info("modbus[%s]: lost", "bf-1", extra={"device": "bf-1", "attempt": 3})
    log.debug("not shown at INFO")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "INFO" and first["logger"] == "gateway.test"
    assert first["msg"] == "modbus[bf-1]: lost"
    assert first["device"] == "bf-1" and first["attempt"] == 3
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exc"]


def test_text_lines_are_for_humans(restore_root_logging) -> None:
    out = io.StringIO()
    setup_logging("INFO", "text", stream=out)
    logging.getLogger("gateway.core.health").error("modbus[bf-1]: lost: no reply")
    assert out.getvalue().rstrip().endswith("ERROR gateway.core.health: modbus[bf-1]: lost: no reply")


def test_health_logs_state_changes_only(restore_root_logging) -> None:
    out = io.StringIO()
    setup_logging("INFO", "json", stream=out)
    h = ComponentHealth("modbus[bf-1]")
    h.succeeded(1.0, 0.01)
    for _ in range(50):
        h.failed("no reply within 1.0s")
    for t in range(50):
        h.succeeded(2.0 + t, 0.01)
    msgs = [json.loads(line)["msg"] for line in out.getvalue().splitlines()]
    assert msgs == [
        "modbus[bf-1]: lost: no reply within 1.0s",
        "modbus[bf-1]: recovered after 50 failed attempt(s)",
    ]


def test_cli_log_format_option(restore_root_logging, capsys) -> None:
    args = build_parser().parse_args(["--log-format", "json", "config-schema"])
    assert args.log_format == "json"
    assert main(["--log-format", "json", "config-schema"]) == 0
    assert isinstance(logging.getLogger().handlers[0].formatter, JsonLineFormatter)
    assert json.loads(capsys.readouterr().out)["title"] == "GatewaySettings"


def snapshot() -> dict:
    return {
        "site": "works-1",
        "processes": ["blast_furnace", "sinter"],
        "latest": {"minute_start": 0.0, "co2_kg": {"blast_furnace": 3747.2, "sinter": 1342.6}},
        "totals": {
            "last_hour_kg": {"blast_furnace": 11_200.0, "sinter": 4014.7},
            "today_kg": {"blast_furnace": 11_200.0, "sinter": 4014.7},
            "year_kg": {"blast_furnace": 11_200.0, "sinter": 4014.7},
            "today_by_scope_kg": {},
        },
        "devices": [
            {
                "name": "modbus[bf-1]",
                "ok": True,
                "age_s": 1.0,
                "errors": 0,
                "latency_ms": 2.3,
                "last_error": "",
            },
            {
                "name": "modbus[lf-1]",
                "ok": False,
                "age_s": 300.0,
                "errors": 12,
                "latency_ms": None,
                "last_error": "no reply within 1.0s",
            },
        ],
        "influx": {"backlog_rows": 1234, "points_written": 5, "batches_failed": 1},
        "window": {"minutes_closed": 7},
        "ledger_rows": 42,
        "alerts": [],
    }


def test_live_table_shows_processes_devices_and_units() -> None:
    console = Console(record=True, width=140, file=io.StringIO(), color_system=None)
    console.print(render_snapshot(snapshot()))
    text = console.export_text()
    assert "works-1: CO2 per process" in text
    assert "blast_furnace" in text and "3,747.2 kg" in text and "11.2 t" in text
    assert "15.2 t" in text  # total of last hour / today
    assert "modbus[bf-1]" in text and "modbus[lf-1]" in text  # names are data, not rich markup
    assert "LOST" in text and "no reply within 1.0s" in text and "5 min ago" in text and "2.3 ms" in text
    assert "InfluxDB backlog 1,234 rows" in text and "alerts 0" in text


async def test_live_table_task_redraws_from_the_gateway(tmp_path: Path) -> None:
    gw = FakeGateway(tmp_path / "ledger.sqlite")
    out = io.StringIO()
    table = LiveTable(
        gw, history(gw), console=Console(file=out, width=140, force_terminal=True, color_system=None), interval_s=0.02
    )
    task = asyncio.create_task(table.run())
    await asyncio.sleep(0.1)
    table.history(minute(T0, "blast_furnace", 3747.2))  # what the pipeline does with each closed minute
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    text = out.getvalue()
    assert "modbus[bf-1]" in text and "LOST" in text
    assert "blast_furnace" in text and "3,747.2 kg" in text
