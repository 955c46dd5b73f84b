"""Window checkpoints in the ledger file: full at each close, deltas between, recovery on start."""

import io
import json
from pathlib import Path

import numpy as np
import pytest

from gateway.core.clock import ScaledClock
from gateway.core.model import MinuteResult
from gateway.core.signals import SignalTable
from gateway.ledger.checkpoint import (
    RESTART_FLAG,
    checkpoint_loop,
    decode_window_state,
    encode_window_state,
    recover_window,
    window_checkpoint,
)
from gateway.ledger.store import Ledger
from gateway.settings.factors import factor_table_of
from gateway.stages.emissions import EmissionCalculator
from gateway.stages.minute import MinuteWindow, WindowState
from gateway.stages.minute_history import HistoryColumns
from tests.factories import T0, results_of
from tests.factories import minute_result as result
from tests.support.mixed_plant import T0 as T_PLANT
from tests.support.mixed_plant import batches as plant_batches
from tests.support.mixed_plant import settings as plant_settings
from tests.support.windows import batch, window

READINGS = (np.array([0, 1, 1], np.int32), np.array([T0 + 1, T0 + 2, T0 + 3]), np.array([1.0, 2.0, 3.0]), np.zeros(3, np.uint8))


def _check_remapped(back: WindowState) -> None:
    # b is now 0, a is 2, c is new; a's history (7.0 at slot 0) and b's (1.0, 2.0 at 3, 5) follow
    assert back.next_minute == T0
    assert sorted(zip(back.signal_ids.tolist(), back.values.tolist(), strict=True)) == [(0, 2.0), (0, 3.0), (2, 1.0)]
    histories = back.history.histories()
    assert sorted(histories) == [0, 2] and histories[0].next_slot == 6 and histories[2].next_slot == 4
    np.testing.assert_array_equal(histories[0].amounts, [1.0, 2.0])
    np.testing.assert_array_equal(histories[0].slots, [3, 5])
    np.testing.assert_array_equal(histories[2].amounts, [7.0])


def test_state_round_trips_and_remaps_signals_by_name() -> None:
    hist = HistoryColumns(
        np.array([0, 1], np.int32), np.array([4, 6]), np.array([1, 2]), np.array([7.0, 1.0, 2.0]), np.array([0, 3, 5])
    )
    data = encode_window_state(WindowState(T0, *READINGS, hist), ["a", "b"])
    _check_remapped(decode_window_state(data, ["b", "c", "a"]))
    with pytest.raises(ValueError, match="not a window checkpoint"):
        decode_window_state(b"garbage", ["a"])
    broken = HistoryColumns(hist.ids, hist.next_slot, np.array([1, 3]), hist.amounts, hist.slots)
    with pytest.raises(ValueError, match="different lengths"):
        decode_window_state(encode_window_state(WindowState(T0, *READINGS, broken), ["a", "b"]), ["a", "b"])


def test_a_checkpoint_of_the_first_format_is_refused() -> None:
    """emgate-window-1 (two arrays per signal's history) is no longer read: recovery treats it as
    any unreadable checkpoint and resumes after the ledger's last minute."""
    header = {
        "format": "emgate-window-1",
        "next_minute": T0,
        "signals": ["a", "b"],
        "history": {"0": {"next_slot": 4, "capacity": 1440}, "1": {"next_slot": 6, "capacity": 1440}},
    }
    arrays = dict(zip(("signal_ids", "ts", "values", "quality"), READINGS, strict=True))
    arrays |= {"h0_amounts": np.array([7.0]), "h0_slots": np.array([0]), "h1_amounts": np.array([1.0, 2.0])}
    arrays |= {"h1_slots": np.array([3, 5]), "header": np.frombuffer(json.dumps(header).encode(), np.uint8)}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with pytest.raises(ValueError, match="'emgate-window-1', expected 'emgate-window-2'"):
        decode_window_state(buf.getvalue(), ["b", "c", "a"])


@pytest.mark.parametrize("rule", ["none", "last_good", "hour_average", "lookback_max", "as configured"])
def test_a_window_resumed_from_its_checkpoint_closes_the_same_minutes(rule: str) -> None:
    """The checkpoint carries only the history each rule reads; a window restarted from it after
    any close (through gaps, substitution, a counter reset) closes the same minutes as one that
    never stopped."""
    s = plant_settings()
    if rule != "as configured":
        signals = {name: cfg.model_copy(update={"substitution": rule}) for name, cfg in s.signals.items()}
        s = s.model_copy(update={"signals": signals})
    table = SignalTable.from_settings(s)

    def run(restart_after: set[int]) -> list[MinuteResult]:
        w = MinuteWindow(table, s.window, next_minute=T_PLANT)
        calc = EmissionCalculator(s, factor_table_of(s.factors))
        results: list[MinuteResult] = []
        for b in plant_batches():
            w.ingest(b)
            if w.due(float(b.ts[0])):
                results += calc.compute(w.close(1)).rows()
                if len(results) // len(s.streams) in restart_after:
                    saved = window_checkpoint(w)
                    w = MinuteWindow(table, s.window, next_minute=T_PLANT)
                    w.import_state(decode_window_state(saved, list(table.names)))
        return results

    assert run({4, 9, 11, 15, 19, 21, 22}) == run(set())


def test_recovery_from_full_and_delta_checkpoints(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    w = window()
    w.ingest(batch(w, "a", [T0 + 1.0, T0 + 10.0]))
    ledger.append(results_of([]), checkpoint=window_checkpoint(w))  # what a close stores with its minutes
    assert ledger.checkpoints.load_deltas() == []
    w.ingest(batch(w, "a", [T0 + 20.0, T0 + 30.0]))
    w.ingest(batch(w, "b", [T0 + 25.0]))
    new = w.export_new_readings()
    assert sorted(new.ts.tolist()) == [T0 + 20.0, T0 + 25.0, T0 + 30.0]  # only what came since
    assert ledger.checkpoints.save(encode_window_state(new, w.signals.names), delta=True)
    assert len(w.export_new_readings().ts) == 0

    restarted = window()
    rec = recover_window(ledger, restarted, now=T0 + 200.0)
    assert rec is not None and rec.buffered_readings == 5 and rec.resume_minute == T0
    assert rec.flagged_until == T0 + 240.0  # the minute the restart happened in is flagged too
    frame = restarted.close(3)
    assert frame.starts.tolist() == [T0, T0 + 60, T0 + 120]
    flagged = rec.flag(results_of([result(0), result(3), result(4)])).rows()
    assert [RESTART_FLAG in r.flags for r in flagged] == [True, True, False]
    ledger.close()


def test_recovery_without_checkpoint_resumes_after_the_last_minute(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    assert recover_window(ledger, window(), now=T0) is None  # fresh ledger: nothing to recover
    ledger.append(results_of([result(0), result(1)]))
    w = window(next_minute=T0 + 600)
    rec = recover_window(ledger, w, now=T0 + 330.0)
    assert rec is not None and w.next_minute == T0 + 120 and rec.buffered_readings == 0
    assert "no checkpoint" in rec.describe()
    ledger.close()


def test_a_very_long_outage_is_reported_not_filled(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.append(results_of([result(0)]))
    w = window()
    rec = recover_window(ledger, w, now=T0 + 60 * 1000 + 5, max_minutes=100)
    assert rec is not None and rec.skipped_minutes == 1000 - 100
    assert w.next_minute == T0 + 60 * 901 and "NOT in the ledger" in rec.describe()
    ledger.close()


async def test_checkpoint_loop_writes_full_then_deltas(tmp_path: Path) -> None:
    import asyncio

    ledger = Ledger(tmp_path / "l.sqlite")
    w = window()
    clock = ScaledClock(1000.0, start=T0)
    task = asyncio.create_task(checkpoint_loop(w, ledger, clock, interval_s=5.0))
    await asyncio.sleep(0.02)  # >= 3 rounds at 1000x
    w.ingest(batch(w, "b", [T0 + 40.0]))
    await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert ledger.checkpoints.load() is not None
    deltas = ledger.checkpoints.load_deltas()
    assert len(deltas) == 1  # empty rounds write nothing
    assert decode_window_state(deltas[0][1], ["a", "b"]).ts.tolist() == [T0 + 40.0]
    ledger.close()
