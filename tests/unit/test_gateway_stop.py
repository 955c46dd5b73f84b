"""An orderly stop (Ctrl-C, SIGTERM, the minute limit) saves the window marked as a stop, and the
next start resumes from it without reporting a crash; a failure or a kill leaves no mark. The
signals themselves, on real processes: tests/integration/test_gateway_stop.py."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import pytest
from rich.console import Console

from gateway.commands.demo import DEMO_CONFIG, demo_settings
from gateway.ledger.checkpoint import RESTART_FLAG, encode_window_state, recover_window, window_checkpoint
from gateway.ledger.store import Ledger
from gateway.pipeline import Gateway
from gateway.settings.site import GatewaySettings
from tests.factories import T0, results_of
from tests.support.windows import batch, window


def test_a_stop_mark_is_resumed_from_without_a_crash_report(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite", clock=lambda: T0 + 50.0)
    w = window()
    w.ingest(batch(w, "a", [T0 + 1.0, T0 + 40.0]))
    assert ledger.checkpoints.mark_stopped(window_checkpoint(w))
    assert ledger.checkpoints.stopped_at() == T0 + 50.0
    rec = recover_window(ledger, window(), now=T0 + 200.0)
    assert rec is not None and rec.stopped_at == T0 + 50.0 and rec.buffered_readings == 2
    assert rec.describe().startswith("resumed after the stop of ") and "recovered" not in rec.describe()
    assert rec.flagged_until == T0 + 240.0  # the minutes it was down are still flagged
    assert RESTART_FLAG in rec.describe()

    # running again writes checkpoints, and the first one takes the mark away: a crash after it is a crash
    w.ingest(batch(w, "b", [T0 + 45.0]))
    assert ledger.checkpoints.save(encode_window_state(w.export_new_readings(), w.signals.names), delta=True)
    assert ledger.checkpoints.stopped_at() is None
    assert ledger.checkpoints.mark_stopped(window_checkpoint(w))
    ledger.append(results_of([]), checkpoint=window_checkpoint(w))  # what a minute's close stores
    assert ledger.checkpoints.stopped_at() is None
    rec = recover_window(ledger, window(), now=T0 + 200.0)
    assert rec is not None and rec.stopped_at is None and rec.describe().startswith("recovered: ")
    ledger.close()


def _settings(tmp_path: Path) -> GatewaySettings:
    data = demo_settings(DEMO_CONFIG, 9, tmp_path / "ledger.sqlite").model_dump()
    data["modbus"] = {"devices": []}  # nothing to poll: the pipeline's tasks only
    data["ledger"]["checkpoint_s"] = 60.0  # no periodic save during the test
    return GatewaySettings(**data)


async def test_a_cancelled_gateway_saves_its_stop(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = _settings(tmp_path)
    gw = Gateway.build(settings)
    task = asyncio.create_task(gw.run())
    await asyncio.sleep(0.2)
    task.cancel()  # what Ctrl-C and SIGTERM do to the main task (gateway/commands/common.py)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gw.ledger.checkpoints.stopped_at() is not None
    gw.close()
    with caplog.at_level(logging.INFO, logger="gateway.ledger.checkpoint"):
        again = Gateway.build(settings)
    again.close()
    assert again.recovery is not None and again.recovery.stopped_at is not None
    text = caplog.text
    assert "resumed after the stop of" in text and "recovered:" not in text


async def test_a_failed_gateway_leaves_no_stop_mark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = Gateway.build(_settings(tmp_path))

    async def bug() -> None:
        await asyncio.sleep(0.1)
        raise RuntimeError("a bug in a task")

    table = gw.show_live_table(console=Console(file=io.StringIO()))
    monkeypatch.setattr(table, "run", bug)  # a view's task, one of the pipeline's group
    with pytest.raises(ExceptionGroup):
        await gw.run()
    assert gw.ledger.checkpoints.stopped_at() is None  # the next start recovers as after a crash
    gw.close()
