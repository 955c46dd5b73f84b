"""Time is a parameter: every component asks a Clock, never time.time() directly.

`ScaledClock` runs the site's clock N times faster than real time for `emgate demo --speed N`
and for tests: sleeps shrink by N, readings of now() advance N times as fast.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep_until(self, t: float) -> None: ...

    def real_delay(self, t: float) -> float:
        """Real seconds until the clock reads `t` (negative when past)."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        return time.time()

    def real_delay(self, t: float) -> float:
        return t - time.time()

    async def sleep_until(self, t: float) -> None:
        delay = self.real_delay(t)
        if delay > 0:
            await asyncio.sleep(delay)


class ScaledClock:
    """A wall clock starting at `start` (epoch s) that runs `speed` times faster than real time."""

    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.speed = speed
        self._start = time.time() if start is None else start
        self._t0 = time.monotonic()

    def now(self) -> float:
        return self._start + (time.monotonic() - self._t0) * self.speed

    def real_delay(self, t: float) -> float:
        return (t - self.now()) / self.speed

    async def sleep_until(self, t: float) -> None:
        delay = self.real_delay(t)
        if delay > 0:
            await asyncio.sleep(delay)
