"""MinuteHistory: what the status page and the live table show, kept as a result listener.

The gateway hands every closed minute to its listeners; this one keeps CO2 per process per
minute for the last hour (the chart), today's and this year's totals per process in the site's
time zone, the data quality of the latest minute and how late minutes close. It is seeded from
the ledger at startup so a restart does not blank the page or reset today's total.

Memory is bounded: 60 minutes x processes floats, whatever the uptime.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from gateway.core.clock import Clock
from gateway.core.model import MinuteResults
from gateway.ledger.errors import LedgerError
from gateway.ledger.reader import LedgerReader

MINUTE_S = 60.0


@dataclass
class CloseLag:
    """How long after its end (minute_start + 60 s) each minute reached the listeners, in s."""

    last_s: float | None = None
    max_s: float = 0.0
    sum_s: float = 0.0
    count: int = 0

    def add(self, lag_s: float) -> None:
        self.last_s = lag_s
        self.max_s = max(self.max_s, lag_s)
        self.sum_s += lag_s
        self.count += 1


@dataclass
class MinuteHistory:
    """Result listener: rolling per-process per-minute CO2 (kg) and day/year totals (kg).

    Args:
        timezone: IANA zone of the site; "today" and "this year" follow its wall clock.
        clock: the gateway's clock (minute close lag is measured on it).
        keep_s: how much history the chart keeps, in seconds of minute starts.
    """

    timezone: str
    clock: Clock
    keep_s: float = 3600.0
    minutes: OrderedDict[float, dict[str, float]] = field(default_factory=OrderedDict)
    processes: set[str] = field(default_factory=set)
    day_kg: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    year_kg: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    scope_day_kg: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    last_quality: dict[str, int] = field(default_factory=dict)
    close_lag: CloseLag = field(default_factory=CloseLag)
    results_seen: int = 0
    version: int = 0  # bumped on every update; the page publisher sends only when it moved

    def __post_init__(self) -> None:
        self._tz = ZoneInfo(self.timezone)
        self._day: tuple[int, int, int] | None = None
        self._year: int | None = None

    # -- listener ------------------------------------------------------------------------------
    def __call__(self, results: MinuteResults) -> None:
        if not len(results):
            return
        now = self.clock.now()
        process, scope, quality = (results.text(f) for f in ("process", "scope", "quality"))
        for start in np.unique(results.minute_start).tolist():
            rows = np.flatnonzero(results.minute_start == start)
            self._roll_calendar(start)
            slot = self.minutes.setdefault(start, {})
            # row by row: the day's and the year's totals run on from the minutes before
            for p, sc, kg in zip(process[rows].tolist(), scope[rows].tolist(), results.co2_kg[rows].tolist(), strict=True):
                if not math.isfinite(kg):
                    continue
                self.processes.add(p)
                slot[p] = slot.get(p, 0.0) + kg
                self.day_kg[p] += kg
                self.year_kg[p] += kg
                self.scope_day_kg[sc] += kg
            self.last_quality = dict(Counter(quality[rows].tolist()))
            self.close_lag.add(max(0.0, now - (start + MINUTE_S)))
        self.results_seen += len(results)
        self._trim()
        self.version += 1

    def _roll_calendar(self, minute_start: float) -> None:
        local = datetime.fromtimestamp(minute_start, self._tz)
        day = (local.year, local.month, local.day)
        if self._day is not None and day != self._day:
            self.day_kg.clear()
            self.scope_day_kg.clear()
        if self._year is not None and local.year != self._year:
            self.year_kg.clear()
        self._day, self._year = day, local.year

    def _trim(self) -> None:
        if not self.minutes:
            return
        newest = next(reversed(self.minutes))
        while self.minutes and next(iter(self.minutes)) <= newest - self.keep_s:
            self.minutes.popitem(last=False)

    # -- startup ---------------------------------------------------------------------------------
    def seed_from_ledger(self, path: Path, now: float | None = None) -> int:
        """Load the last hour and today's/this year's totals from a ledger file; returns rows read.

        Reads the ledger's current view (a row a correction replaced is left out: the correction
        carries the value) on a read-only connection of its own, so the gateway's writer
        connection is left alone; a missing, empty or unreadable ledger seeds nothing.
        """
        if not path.exists():
            return 0
        now = self.clock.now() if now is None else now
        local = datetime.fromtimestamp(now, self._tz)
        day0 = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        year0 = local.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
        hour0 = math.floor(now / MINUTE_S) * MINUTE_S - self.keep_s
        try:
            with LedgerReader.open(path) as reader:
                year = reader.co2_by_process_since(year0)
                day = reader.co2_by_process_scope_since(day0)
                recent = reader.co2_by_minute_process_after(hour0)
        except LedgerError:  # not a ledger (yet): one the gateway has not written to
            return 0
        for process, kg in year.items():
            self.year_kg[process] += kg
            self.processes.add(process)
        for process, scope, kg in day:
            self.day_kg[process] += kg
            self.scope_day_kg[scope] += kg
        for start, process, kg in recent:
            self.minutes.setdefault(start, {})[process] = kg
            self.processes.add(process)
        self._day, self._year = (local.year, local.month, local.day), local.year
        self._trim()
        self.version += 1
        return len(recent)

    # -- reading -----------------------------------------------------------------------------------
    def series(self) -> dict[str, object]:
        """Chart data: minute starts (epoch s) and, per process, CO2 kg per minute (None = no row)."""
        starts = list(self.minutes)
        procs = sorted(self.processes)
        return {
            "minute_start": starts,
            "co2_kg": {p: [self.minutes[s].get(p) for s in starts] for p in procs},
        }

    def last_hour_kg(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for slot in self.minutes.values():
            for p, kg in slot.items():
                out[p] += kg
        return dict(out)

    def latest_minute(self) -> tuple[float, dict[str, float]] | None:
        if not self.minutes:
            return None
        start = next(reversed(self.minutes))
        return start, self.minutes[start]

