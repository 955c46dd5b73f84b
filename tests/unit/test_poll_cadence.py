"""The shared poll cadence (gateway/sources/cadence.py): late polls, and ticks passed over and counted."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from gateway.core.model import SampleBatch
from gateway.sources.cadence import poll_every
from gateway.sources.modbus import ModbusCounters
from tests.support.clocks import ManualClock


class Done(Exception):
    pass


def batch(tick: float) -> SampleBatch:
    return SampleBatch("dev", np.zeros(1, np.int32), np.full(1, tick), np.zeros(1), np.zeros(1, np.uint8))


async def polled_ticks(stall_s: float) -> tuple[list[float], ModbusCounters]:
    """Poll at 1 s; the poll of tick 1 takes `stall_s` of site time (the gateway's loop was busy).
    The site clock moves only by the cadence's sleeps and by that stall."""
    clock, counters, ticks = ManualClock(), ModbusCounters(), []
    out: asyncio.Queue[SampleBatch] = asyncio.Queue()

    async def poll(tick: float) -> SampleBatch:
        ticks.append(tick)
        if tick == 1.0:
            clock.t += stall_s
        if len(ticks) == 5:
            raise Done
        return batch(tick)

    with pytest.raises(Done):
        await poll_every(1.0, clock, poll, batch, lambda: 0.0, out, counters)
    assert out.qsize() == 4
    return ticks, counters


async def test_a_poll_less_than_a_period_late_keeps_its_tick() -> None:
    ticks, counters = await polled_ticks(1.4)
    assert ticks == [0.0, 1.0, 2.0, 3.0, 4.0]  # tick 2 polled at 2.4 s, at once
    assert counters.missed_polls == 0


async def test_ticks_passed_over_are_counted_as_missed() -> None:
    ticks, counters = await polled_ticks(2.5)  # tick 1's poll ends at 3.5 s: ticks 2 and 3 are gone
    assert ticks == [0.0, 1.0, 4.0, 5.0, 6.0]
    assert counters.missed_polls == 2
    assert counters.skipped_polls == 0  # not a backoff: the device answered
