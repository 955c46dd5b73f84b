"""The poll cadence and backoff every polled source shares (Modbus, S7).

`poll_every` polls on a fixed grid of the gateway's clock (ticks at multiples of poll_s, so
devices polled at the same period read together); while a source is backed off it emits gaps
(NaN, COMM_ERROR) at each tick instead of asking the device, so the minute still sees the
missing seconds. A batch the stage cannot take is dropped and counted: the cadence is kept. A
gateway more than a period late (its own load, not the device's) passes over the ticks it missed
and counts them (`missed_polls`): their seconds are gaps in the minute, not readings made up.
`retry_after` is the backoff after a failed poll: equal jitter on an exponential step, so
devices that failed together (one dead network gateway) spread their retries.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from typing import Protocol

from gateway.core.clock import Clock
from gateway.core.model import SampleBatch


class PollCounters(Protocol):
    skipped_polls: int
    missed_polls: int
    dropped_batches: int


async def poll_every(
    poll_s: float,
    clock: Clock,
    poll: Callable[[float], Awaitable[SampleBatch]],
    gap: Callable[[float], SampleBatch],
    backed_off_until: Callable[[], float],
    out: asyncio.Queue[SampleBatch],
    counters: PollCounters,
) -> None:
    """Poll (or emit a gap while backed off) at every tick until cancelled."""
    tick = math.ceil(clock.now() / poll_s) * poll_s
    while True:
        await clock.sleep_until(tick)
        if clock.now() < backed_off_until():
            counters.skipped_polls += 1
            batch = gap(tick)
        else:
            batch = await poll(tick)
        try:
            out.put_nowait(batch)
        except asyncio.QueueFull:
            counters.dropped_batches += 1  # keep the cadence; the stage is behind
        now = clock.now()
        tick += poll_s
        if tick < now - poll_s:  # more than a period behind: skip missed ticks instead of bursting
            resumed = math.ceil(now / poll_s) * poll_s
            counters.missed_polls += round((resumed - tick) / poll_s)  # their seconds are gaps in the minute
            tick = resumed
        # less than a period late (a neighbour's timeout held the line): poll at once, keep the tick


def retry_after(now: float, poll_s: float, cap_s: float, failures: int) -> float:
    """When to ask a device again after `failures` failed polls in a row."""
    delay = min(cap_s, poll_s * 2 ** min(failures, 30))
    return now + delay * random.uniform(0.5, 1.0)
