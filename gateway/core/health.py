"""Health of each component, kept for the status page, metrics and alerts.

State changes are logged once ("lost", "recovered"), never once per poll: the model is Home
Assistant's update coordinator (last_update_success).
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, field

log = logging.getLogger("gateway.core.health")

# Poll latency bucket bounds (s) for the /metrics histogram: one bisect per poll, read at scrape.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class ComponentHealth:
    name: str
    ok: bool = True
    last_good: float | None = None
    consecutive_errors: int = 0
    errors: int = 0
    polls: int = 0
    latency_s: float | None = None
    last_error: str = ""
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    latency_sum_s: float = 0.0

    def succeeded(self, at: float, latency_s: float | None = None) -> None:
        self.polls += 1
        self.last_good = at
        self.latency_s = latency_s
        if latency_s is not None:
            self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS_S, latency_s)] += 1
            self.latency_sum_s += latency_s
        if not self.ok:
            log.info("%s: recovered after %d failed attempt(s)", self.name, self.consecutive_errors)
        self.ok = True
        self.consecutive_errors = 0

    def failed(self, error: str) -> None:
        self.polls += 1
        self.errors += 1
        self.consecutive_errors += 1
        self.last_error = error
        if self.ok:
            log.error("%s: lost: %s", self.name, error)
        self.ok = False


@dataclass
class HealthRegistry:
    components: dict[str, ComponentHealth] = field(default_factory=dict)

    def get(self, name: str) -> ComponentHealth:
        if name not in self.components:
            self.components[name] = ComponentHealth(name)
        return self.components[name]
