"""A site clock for tests that moves only when told: by a sleep, or by the test setting `t`."""

from __future__ import annotations


class ManualClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def real_delay(self, t: float) -> float:
        return t - self.t

    async def sleep_until(self, t: float) -> None:
        self.t = max(self.t, t)
