"""The minute stage closes the window in a worker thread: the event loop (the sources' polls) runs
on meanwhile, readings that arrive wait in the inbox for the next minute, the checkpoint loop
waits for the close, and a stop that comes during a close waits for it and still hands its
frame on."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from gateway.core.model import SampleBatch, SampleQuality
from gateway.core.signals import SignalTable
from gateway.stages.minute import MinuteFrame, MinuteStage, MinuteWindow
from tests.factories import site_settings
from tests.support.clocks import ManualClock

T0 = 1_800_000_000.0  # a minute boundary
HELD_S = 5.0  # the longest the test holds a close in its thread


def _window() -> MinuteWindow:
    settings = site_settings("t", signals={"p": {"kind": "rate", "unit": "kW", "max_gap_s": 130.0}})
    return MinuteWindow(SignalTable.from_settings(settings), settings.window, next_minute=T0)


def _reading(ts: float) -> SampleBatch:
    return SampleBatch(
        "dev", np.array([0], np.int32), np.array([ts]), np.array([600.0]), np.array([SampleQuality.GOOD], np.uint8)
    )


class HeldClose:
    """Wraps the window's close_due: it starts, then waits (in the worker thread) until released."""

    def __init__(self, window: MinuteWindow) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.thread: str | None = None
        self._close_due = window.close_due
        window.close_due = self  # type: ignore[method-assign]

    def __call__(self, now: float) -> MinuteFrame | None:
        self.thread = threading.current_thread().name
        self.started.set()
        self.release.wait(HELD_S)
        return self._close_due(now)


async def _started(held: HeldClose) -> None:
    assert await asyncio.to_thread(held.started.wait, HELD_S)


async def test_the_loop_runs_on_while_a_minute_closes() -> None:
    clock = ManualClock(T0 + 59.0)
    window = _window()
    inbox: asyncio.Queue[SampleBatch] = asyncio.Queue()
    frames: list[MinuteFrame] = []
    handed_on = asyncio.Event()

    async def on_frame(frame: MinuteFrame) -> None:
        frames.append(frame)
        handed_on.set()

    stage = MinuteStage(window, inbox, on_frame, clock)
    held = HeldClose(window)
    for s in (0.0, 20.0, 40.0):
        inbox.put_nowait(_reading(T0 + s))
    task = asyncio.create_task(stage.run())
    await asyncio.sleep(0.01)
    assert not held.started.is_set()  # the minute is not due yet
    clock.t = T0 + 60.0 + window.window.delay_s + 1.0
    inbox.put_nowait(_reading(T0 + 60.0))  # wakes the stage, which then finds the close due
    t0 = time.monotonic()
    await _started(held)
    # the close waits in its thread; this loop still runs, and the window is the close's alone
    ticks = 0
    for _ in range(20):
        await asyncio.sleep(0.001)
        ticks += 1
    assert time.monotonic() - t0 < HELD_S / 2 and ticks == 20
    assert held.thread != threading.current_thread().name and stage.lock.locked()
    inbox.put_nowait(_reading(T0 + 80.0))  # a poll during the close: kept for the next minute
    assert frames == []
    held.release.set()
    await asyncio.wait_for(handed_on.wait(), HELD_S)
    assert not stage.lock.locked()
    [frame] = frames
    assert frame.starts.tolist() == [T0] and frame.coverage[0, 0] == pytest.approx(1.0)
    await asyncio.sleep(0.01)
    assert inbox.empty() and window.next_minute == T0 + 60.0
    # kept for the next minute: the last reading before it (the integration's start), and both after
    assert window.export_state().ts.tolist() == [T0 + 40.0, T0 + 60.0, T0 + 80.0]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_stop_during_a_close_waits_for_it_and_hands_its_frame_on() -> None:
    clock = ManualClock(T0 + 59.0)
    window = _window()
    inbox: asyncio.Queue[SampleBatch] = asyncio.Queue()
    frames: list[MinuteFrame] = []

    async def on_frame(frame: MinuteFrame) -> None:
        frames.append(frame)

    stage = MinuteStage(window, inbox, on_frame, clock)
    held = HeldClose(window)
    inbox.put_nowait(_reading(T0 + 30.0))
    clock.t = T0 + 60.0 + window.window.delay_s + 1.0
    task = asyncio.create_task(stage.run())
    await _started(held)
    task.cancel()
    await asyncio.sleep(0.01)
    task.cancel()  # a second cancel: still waits
    await asyncio.sleep(0.01)
    assert not task.done() and frames == []
    held.release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the closed minute reached on_frame before the stop took effect: a stop saves no window past it
    assert [f.starts.tolist() for f in frames] == [[T0]] and window.next_minute == T0 + 60.0
