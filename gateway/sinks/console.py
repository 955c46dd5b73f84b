"""A console listener: one line per closed minute with CO2 per process, for the demo and `run`."""

from __future__ import annotations

import sys
from collections import defaultdict
from datetime import datetime
from typing import TextIO
from zoneinfo import ZoneInfo

from gateway.core.model import MinuteResult


class ConsoleListener:
    """Prints each minute's CO2 per process (kg), direct and indirect totals, and flagged streams."""

    def __init__(self, timezone: str, out: TextIO = sys.stdout) -> None:
        self._tz = ZoneInfo(timezone)
        self._out = out

    def __call__(self, results: list[MinuteResult]) -> None:
        by_minute: dict[float, list[MinuteResult]] = defaultdict(list)
        for r in results:
            by_minute[r.minute_start].append(r)
        for minute in sorted(by_minute):
            rows = by_minute[minute]
            per_process: dict[str, float] = defaultdict(float)
            scope: dict[str, float] = defaultdict(float)
            flagged = 0
            for r in rows:
                per_process[r.process] += r.co2_kg
                scope[r.scope] += r.co2_kg
                flagged += r.quality != "measured"
            when = datetime.fromtimestamp(minute, self._tz).strftime("%Y-%m-%d %H:%M %Z")
            parts = "  ".join(f"{p} {v:,.1f}" for p, v in sorted(per_process.items()))
            self._out.write(
                f"{when}  CO2 kg: {parts}  | direct {scope['direct']:,.1f} kg, indirect {scope['indirect']:,.1f} kg"
                f"{f'  ({flagged} stream(s) flagged)' if flagged else ''}\n"
            )
        self._out.flush()
