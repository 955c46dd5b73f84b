"""Time is a parameter: every component asks a Clock, never time.time() directly.

`ScaledClock` runs the site's clock N times faster than real time for `emgate demo --speed N`
and for tests: sleeps shrink by N, readings of now() advance N times as fast.

Clock steps. The wall clock of a plant box may step: NTP correcting a box that ran without it,
an operator setting the date. A clock that also keeps steady time (`SteadyClock.monotonic`: never
stepped, in the clock's own seconds) lets `ClockStepDetector` tell a step from the passing of
time: between two observations the wall clock should move as the steady one does; a difference
beyond the tolerance is a step. Slow corrections (NTP slewing, at most 0.5 ms a second) stay
within it and are followed. The minute stage (gateway/stages/minute.py) observes its clock this
way; a clock without `monotonic` (a replay's, a test's) is not watched.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep_until(self, t: float) -> None: ...

    def real_delay(self, t: float) -> float:
        """Real seconds until the clock reads `t` (negative when past)."""
        ...


@runtime_checkable
class SteadyClock(Protocol):
    """A Clock that also keeps steady time, for `ClockStepDetector`."""

    def now(self) -> float: ...

    def monotonic(self) -> float:
        """Seconds of this clock's time from an arbitrary origin, never stepped."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

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
        return self._start + self.monotonic()

    def monotonic(self) -> float:
        return (time.monotonic() - self._t0) * self.speed

    def step(self, delta_s: float) -> None:
        """Step the wall clock by `delta_s` (negative: back), as NTP or an operator would; the
        steady time runs on."""
        self._start += delta_s

    def real_delay(self, t: float) -> float:
        return (t - self.now()) / self.speed

    async def sleep_until(self, t: float) -> None:
        delay = self.real_delay(t)
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass(frozen=True)
class ClockStep:
    """A step of the wall clock seen between two observations."""

    expected_s: float  # where the wall clock should have been: the last reading plus the steady time since
    observed_s: float  # where it was

    @property
    def size_s(self) -> float:
        """Positive: forward, negative: back."""
        return self.observed_s - self.expected_s


class ClockStepDetector:
    """Compares a clock's wall time with its steady time at each `observe()`; see the module docstring."""

    def __init__(self, clock: SteadyClock, tolerance_s: float = 30.0) -> None:
        if not tolerance_s > 0:
            raise ValueError(f"clock step tolerance must be positive, got {tolerance_s}")
        self._clock, self.tolerance_s = clock, tolerance_s
        self._offset_s: float | None = None  # wall - steady at the last observation
        self.steps = 0

    def observe(self) -> tuple[float, ClockStep | None]:
        """The wall clock's time, and the step since the last observation (None: no step)."""
        wall, steady = self._clock.now(), self._clock.monotonic()
        offset, last = wall - steady, self._offset_s
        self._offset_s = offset  # a slow drift within the tolerance is followed, never accumulated
        if last is None or abs(offset - last) <= self.tolerance_s:
            return wall, None
        self.steps += 1
        return wall, ClockStep(steady + last, wall)
