"""Time on a plant network: the gateway's clock steps (NTP correcting a box that ran without it).

A gateway on a clock the test steps back and forward by an hour and by a day while its minute
stage runs (`MinuteStage.run`, the pipeline's own wiring): no minute is closed twice, the ledger
holds each minute once in the order of the minutes, the minutes a step forward jumps over are
there and flagged `clock_step`, and each step is logged once, alerted once (data_quality
`clock_step`) and counted on /metrics. Then the bounds: a jump of years closes at most
MAX_STEP_MINUTES, a fresh start stepped back starts again, and [window] future_tolerance_s.
"""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path

import numpy as np
import pytest

from gateway.core.clock import ClockStep, ClockStepDetector, ScaledClock
from gateway.core.model import MinuteResults, SampleBatch, SampleQuality
from gateway.http.metrics import GatewayCollector
from gateway.pipeline import Gateway
from gateway.settings.site import GatewaySettings
from gateway.stages.minute import CLOCK_STEP_FLAG, MAX_STEP_MINUTES, MinuteFrame, MinuteStage, MinuteWindow
from tests.factories import site_settings

T0 = 1_700_000_040.0  # a minute boundary
HOUR_S, DAY_S = 3600.0, 86400.0
STEP_LOG = "the gateway clock stepped"


class SteppingClock:
    """A clock the test moves: `advance` lets time pass (wall and steady), `step` moves the wall
    clock alone, as NTP does. The stage waits for the next batch until a close is due."""

    def __init__(self, start: float) -> None:
        self.wall_offset_s, self.steady_s = start, 0.0

    def now(self) -> float:
        return self.wall_offset_s + self.steady_s

    def monotonic(self) -> float:
        return self.steady_s

    def advance(self, s: float) -> None:
        self.steady_s += s

    def step(self, s: float) -> None:
        self.wall_offset_s += s

    def real_delay(self, t: float) -> float:
        return 0.0 if t <= self.now() else 3600.0

    async def sleep_until(self, t: float) -> None:
        await asyncio.sleep(3600.0)


def _settings(ledger: Path) -> GatewaySettings:
    return site_settings(
        "t",
        ledger={"path": str(ledger)},
        signals={"p": {"kind": "rate", "unit": "kW", "max_gap_s": 130.0}},  # readings every 10 s, or 60 s
        streams=[
            {"process": "eaf", "stream": "power", "signal": "p", "method": "electricity", "factor": "cn.grid.2023.national_avg"}
        ],
        alerts={"enabled": True},
    )


def _reading(sid: int, ts: float, kw: float = 600.0) -> SampleBatch:
    return SampleBatch("dev", np.array([sid], np.int32), np.array([ts]), np.array([kw]), np.array([SampleQuality.GOOD], np.uint8))


def _span(expected_s: float, observed_s: float) -> set[float]:
    """The minutes a step forward from `expected_s` to `observed_s` flags: from the one it leaves
    to the one it lands in."""
    lo = math.floor(expected_s / 60) * 60
    hi = math.floor(observed_s / 60) * 60 + 60
    return {float(m) for m in range(int(lo), int(hi), 60)}


async def test_steps_back_and_forward_by_an_hour_and_a_day(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = SteppingClock(T0 + 5.0)
    gw = Gateway.build(_settings(tmp_path / "l.sqlite"), clock=clock)
    assert gw.alerts is not None
    delivered: list[MinuteResults] = []
    gw.listeners.append(delivered.append)
    queue: asyncio.Queue[SampleBatch] = asyncio.Queue()
    stage = MinuteStage(gw.window, queue, gw.on_frame, clock, on_clock_step=gw.on_clock_step)
    task = asyncio.create_task(stage.run())
    sid = gw.signals.id("p")
    fed = 0

    async def feed(seconds: float, every_s: float = 10.0) -> None:
        """Let `seconds` pass, a reading every `every_s`, each handled (and any due close) before the next."""
        nonlocal fed
        for _ in range(round(seconds / every_s)):
            clock.advance(every_s)
            queue.put_nowait(_reading(sid, clock.now()))
            fed += 1
            async with asyncio.timeout(5):
                while gw.window.counters.samples < fed or gw.window.due(clock.now()):  # noqa: ASYNC110  (no event to wait on)
                    await asyncio.sleep(0)

    forward: set[float] = set()
    try:
        await feed(600)
        clock.step(-HOUR_S)
        await feed(HOUR_S - 120, every_s=60.0)  # behind the closed minutes: late (faster at a reading a minute)
        await feed(600)  # the clock catches up: minutes close again
        before = clock.now()
        clock.step(+HOUR_S)
        forward |= _span(before, clock.now())
        await feed(300)
        before = clock.now()
        clock.step(+DAY_S)
        forward |= _span(before, clock.now())
        await feed(300)
        clock.step(-DAY_S)
        await feed(DAY_S - 120, every_s=60.0)
        await feed(600)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    # no minute closed twice: every minute handed on once, and once in the ledger
    handed = np.concatenate([r.minute_start for r in delivered])
    assert len(handed) == len(set(handed.tolist()))
    rows = list(gw.ledger.reader.current())
    starts = [r.minute_start for _, r in rows]
    assert len(rows) == len(handed) == len(list(gw.ledger.reader.history()))  # originals only
    assert starts == sorted(set(starts))  # ledger (seq) order is minute order, each minute once
    assert [seq for seq, _ in rows] == sorted(seq for seq, _ in rows)
    # none lost: every minute from the first to the last is there
    assert starts == [starts[0] + 60.0 * k for k in range(len(starts))]
    assert len(forward) == 61 + 1441
    flagged = {r.minute_start for _, r in rows if CLOCK_STEP_FLAG in r.flags.split(";")}
    assert flagged == forward
    for _, r in rows:
        if r.minute_start in forward and r.minute_start - 60.0 in forward and r.minute_start + 60.0 in forward:
            assert r.coverage == 0.0 and r.quality in ("substituted", "missing")  # no time passed in them
        elif r.minute_start not in forward:
            assert r.quality in ("measured", "partial"), r
    # the readings taken while the clock was behind the closed minutes are counted late
    assert gw.window.counters.late >= (HOUR_S + DAY_S - 240) / 60.0
    # each step logged once, counted once, alerted once (raised, then cleared)
    steps = [r for r in caplog.records if r.getMessage().startswith(STEP_LOG)]
    assert [(r.levelno, r.getMessage().split(", from")[0]) for r in steps] == [
        (logging.WARNING, f"{STEP_LOG} back by 3,600 s"),
        (logging.WARNING, f"{STEP_LOG} forward by 3,600 s"),
        (logging.WARNING, f"{STEP_LOG} forward by 86,400 s"),
        (logging.WARNING, f"{STEP_LOG} back by 86,400 s"),
    ]
    assert "not closed again" in steps[0].getMessage() and "flagged clock_step" in steps[2].getMessage()
    assert gw.window.counters.clock_steps == 4
    events = [e for e in gw.alerts.store.events() if (e.kind, e.subject) == ("data_quality", "clock_step")]
    assert [e.state for e in events] == ["raised", "cleared"] * 4
    assert [e.details["step_s"] for e in events if e.state == "raised"] == [-HOUR_S, HOUR_S, DAY_S, -DAY_S]
    assert "stepped back by 86,400 s" in events[-2].message
    metrics = {s.name: s.value for family in GatewayCollector(gw).collect() for s in family.samples}
    assert metrics["emgate_clock_steps_total"] == 4
    gw.close()


def _window(next_minute: float) -> MinuteWindow:
    settings = site_settings("t", signals={"p": {"kind": "rate", "unit": "kW"}}, window={"future_tolerance_s": 60.0})
    from gateway.core.signals import SignalTable

    return MinuteWindow(SignalTable.from_settings(settings), settings.window, next_minute=next_minute)


async def _no_frame(frame: MinuteFrame) -> None:
    raise AssertionError("not expected")


def test_a_jump_of_years_closes_a_bounded_number_of_minutes(caplog: pytest.LogCaptureFixture) -> None:
    clock = SteppingClock(T0 + 5.0)
    window = _window(T0)
    stage = MinuteStage(window, asyncio.Queue(), _no_frame, clock)
    stage.now()
    clock.step(10 * 365 * DAY_S)  # a box that ran ten years behind
    frame = window.close_due(stage.now())
    assert frame is not None and len(frame.starts) == window.counters.minutes_closed <= MAX_STEP_MINUTES
    assert frame.clock_step is not None and frame.clock_step.all()
    assert window.counters.clock_step_minutes == MAX_STEP_MINUTES
    assert window.counters.clock_step_lost_minutes == 10 * 365 * 1440 + 1 - MAX_STEP_MINUTES
    [record] = [r for r in caplog.records if r.getMessage().startswith(STEP_LOG)]
    assert record.levelno == logging.ERROR and "are NOT in the ledger" in record.getMessage()


def test_a_fresh_start_stepped_back_starts_again_at_the_new_time() -> None:
    clock = SteppingClock(T0 + 5.0)
    window = _window(T0 + 60.0)
    stage = MinuteStage(window, asyncio.Queue(), _no_frame, clock)
    window.ingest(_reading(0, T0 + 5.0), now=stage.now())
    clock.step(-DAY_S)
    now = stage.now()
    assert window.next_minute == T0 - DAY_S + 60.0 and window.counters.clock_steps == 1
    window.ingest(_reading(0, now), now=now)
    assert window.counters.late == 0 and len(window.export_state().ts) == 1  # the reading before the step is gone


def test_the_future_tolerance_is_a_setting() -> None:
    window = _window(T0)
    window.ingest(_reading(0, T0 + 100.0 + 59.0), now=T0 + 100.0)
    window.ingest(_reading(0, T0 + 100.0 + 61.0), now=T0 + 100.0)
    assert window.counters.future == 1 and window.counters.sources["dev"].future == 1


def test_the_detector_follows_slow_drift_and_sees_steps() -> None:
    clock = SteppingClock(T0)
    steps = ClockStepDetector(clock, tolerance_s=30.0)
    assert steps.observe() == (T0, None)
    for _ in range(100):  # NTP slewing: 0.5 ms a second, never a step however long it goes on
        clock.advance(60.0)
        clock.step(0.03)
        assert steps.observe()[1] is None
    clock.advance(10.0)
    clock.step(-31.0)
    now, step = steps.observe()
    assert step == ClockStep(now + 31.0, now) and step.size_s == -31.0 and steps.steps == 1
    assert steps.observe()[1] is None  # once


def test_a_scaled_clock_steps_and_its_steady_time_runs_on() -> None:
    clock = ScaledClock(speed=60.0, start=T0)
    steps = ClockStepDetector(clock)
    steps.observe()
    clock.step(HOUR_S)
    now, step = steps.observe()
    assert step is not None and step.size_s == pytest.approx(HOUR_S, abs=1.0) and now >= T0 + HOUR_S


async def test_a_running_gateway_flags_and_alerts_a_step_of_its_clock(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Gateway.run() on a scaled clock (a minute a real second) stepped forward by an hour: the
    pipeline's own minute stage sees it, the ledger gets the hour flagged, the alert is raised."""
    clock = ScaledClock(speed=60.0, start=T0 + 30.0)
    gw = Gateway.build(_settings(tmp_path / "l.sqlite"), clock=clock)
    assert gw.alerts is not None
    run = asyncio.create_task(gw.run())
    await asyncio.sleep(1.0)  # before the first close (at T0 + 122 s): the stage watches from its start
    clock.step(HOUR_S)
    await asyncio.sleep(2.5)
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    starts = [r.minute_start for _, r in gw.ledger.reader.current()]
    assert starts == [starts[0] + 60.0 * k for k in range(len(starts))] and starts[-1] - starts[0] > HOUR_S
    flagged = [r.minute_start for _, r in gw.ledger.reader.current() if CLOCK_STEP_FLAG in r.flags.split(";")]
    assert 61 <= len(flagged) <= 62 and flagged == [flagged[0] + 60.0 * k for k in range(len(flagged))]
    assert [r.levelno for r in caplog.records if r.getMessage().startswith(STEP_LOG)] == [logging.WARNING]
    raised = [e for e in gw.alerts.store.events() if e.subject == "clock_step" and e.state == "raised"]
    assert len(raised) == 1 and raised[0].details["step_s"] == pytest.approx(HOUR_S, abs=1.0)
    gw.close()


async def test_a_clock_step_alert_active_at_a_restart_clears_at_the_first_minute(tmp_path: Path) -> None:
    clock = SteppingClock(T0 + 5.0)
    gw = Gateway.build(_settings(tmp_path / "l.sqlite"), clock=clock)
    assert gw.alerts is not None
    gw.on_clock_step(ClockStep(T0 + 5.0, T0 + 5.0 - DAY_S), "waiting")
    assert [(a.subject, a.state) for a in gw.alerts.active()] == [("clock_step", "raised")]
    gw.close()
    clock.advance(600.0)
    again = Gateway.build(_settings(tmp_path / "l.sqlite"), clock=clock)
    assert again.alerts is not None and [a.subject for a in again.alerts.active()] == ["clock_step"]
    await again.on_frame(again.window.close(1))
    assert again.alerts.active() == []
    assert [e.state for e in again.alerts.store.events() if e.subject == "clock_step"] == ["raised", "cleared"]
    again.close()


async def test_a_step_is_seen_without_readings_while_the_stage_waits() -> None:
    """No readings come, and the stage waits for a close an hour of real time away (SteppingClock):
    it still looks at the clock every max_wait_s, so a step forward closes its minutes at once."""
    clock = SteppingClock(T0 + 5.0)
    window = _window(T0)
    frames: list[MinuteFrame] = []

    async def on_frame(frame: MinuteFrame) -> None:
        frames.append(frame)

    stage = MinuteStage(window, asyncio.Queue(), on_frame, clock)
    stage.max_wait_s = 0.02
    task = asyncio.create_task(stage.run())
    await asyncio.sleep(0.05)
    assert frames == []
    clock.step(HOUR_S)
    async with asyncio.timeout(2):
        while not frames:  # noqa: ASYNC110  (the stage has no event to wait on)
            await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    [frame] = frames
    # the hour up to the minute the clock landed in (closed later, flagged too)
    assert frame.starts.tolist() == [T0 + 60.0 * k for k in range(60)]
    assert frame.clock_step is not None and frame.clock_step.all() and window.counters.clock_steps == 1
