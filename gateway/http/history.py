"""MinuteHistory: what the status page and the live table show, kept as a result listener.

The gateway hands every closed minute to its listeners; this one keeps CO2 per process per
minute for the last hour (the chart), today's and this year's totals per process in the site's
time zone, the data quality of the latest minute and how late minutes close. It is seeded from
the ledger at startup so a restart does not blank the page or reset today's total.

Memory is bounded: 60 minutes x processes floats, whatever the uptime.
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.core.clock import Clock
from gateway.core.model import MinuteResult

MINUTE_S = 60.0

# Rows replaced by a correction are left out of every sum (the correction row carries the value).
_CURRENT = "seq NOT IN (SELECT supersedes FROM minutes WHERE supersedes IS NOT NULL)"


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
    def __call__(self, results: list[MinuteResult]) -> None:
        if not results:
            return
        now = self.clock.now()
        by_minute: dict[float, list[MinuteResult]] = defaultdict(list)
        for r in results:
            by_minute[r.minute_start].append(r)
        for start in sorted(by_minute):
            rows = by_minute[start]
            self._roll_calendar(start)
            slot = self.minutes.setdefault(start, {})
            for r in rows:
                if not math.isfinite(r.co2_kg):
                    continue
                self.processes.add(r.process)
                slot[r.process] = slot.get(r.process, 0.0) + r.co2_kg
                self.day_kg[r.process] += r.co2_kg
                self.year_kg[r.process] += r.co2_kg
                self.scope_day_kg[r.scope] += r.co2_kg
            self.last_quality = dict(Counter(r.quality for r in rows))
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

        Opens the SQLite file read-only (the gateway's writer connection is left alone); a
        missing or empty ledger seeds nothing.
        """
        if not path.exists():
            return 0
        now = self.clock.now() if now is None else now
        local = datetime.fromtimestamp(now, self._tz)
        day0 = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        year0 = local.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
        hour0 = math.floor(now / MINUTE_S) * MINUTE_S - self.keep_s
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.Error:
            return 0
        try:
            year = db.execute(
                f"SELECT process, SUM(co2_kg) FROM minutes WHERE minute_start >= ? AND {_CURRENT} "
                "GROUP BY process",
                (year0,),
            ).fetchall()
            day = db.execute(
                f"SELECT process, scope, SUM(co2_kg) FROM minutes WHERE minute_start >= ? AND {_CURRENT} "
                "GROUP BY process, scope",
                (day0,),
            ).fetchall()
            recent = db.execute(
                f"SELECT minute_start, process, SUM(co2_kg) FROM minutes WHERE minute_start > ? "
                f"AND {_CURRENT} GROUP BY minute_start, process ORDER BY minute_start",
                (hour0,),
            ).fetchall()
        except sqlite3.Error:  # no table yet: a ledger the gateway has not written to
            return 0
        finally:
            db.close()
        for process, kg in year:
            self.year_kg[process] += kg or 0.0
            self.processes.add(process)
        for process, scope, kg in day:
            self.day_kg[process] += kg or 0.0
            self.scope_day_kg[scope] += kg or 0.0
        for start, process, kg in recent:
            self.minutes.setdefault(float(start), {})[process] = kg or 0.0
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


def attach_history(gw: object) -> MinuteHistory:
    """The gateway's MinuteHistory listener, created, seeded from its ledger and added on first use."""
    listeners: list[object] = gw.listeners  # type: ignore[attr-defined]
    for listener in listeners:
        if isinstance(listener, MinuteHistory):
            return listener
    history = MinuteHistory(gw.settings.site.timezone, gw.clock)  # type: ignore[attr-defined]
    history.seed_from_ledger(gw.ledger.path)  # type: ignore[attr-defined]
    listeners.append(history)
    return history
