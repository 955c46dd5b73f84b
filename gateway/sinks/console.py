"""A console listener: one line per closed minute with CO2 per process, for the demo and `run`."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TextIO
from zoneinfo import ZoneInfo

import numpy as np

from analytics.substitution import MinuteQuality
from gateway.core.model import MinuteResults


class ConsoleListener:
    """Prints each minute's CO2 per process (kg), direct and indirect totals, and flagged streams."""

    def __init__(self, timezone: str, out: TextIO | None = None) -> None:
        self._tz = ZoneInfo(timezone)
        self._out = out if out is not None else sys.stdout  # looked up now, not when this module was imported

    def __call__(self, results: MinuteResults) -> None:
        for minute in np.unique(results.minute_start).tolist():
            rows = results.take(results.minute_start == minute)
            per_process, scope = rows.totals("process"), rows.totals("scope")
            flagged = int(np.count_nonzero(rows.quality != MinuteQuality.MEASURED))
            when = datetime.fromtimestamp(minute, self._tz).strftime("%Y-%m-%d %H:%M %Z")
            parts = "  ".join(f"{p} {v:,.1f}" for p, v in sorted(per_process.items()))
            self._out.write(
                f"{when}  CO2 kg: {parts}  | direct {scope.get('direct', 0.0):,.1f} kg, indirect {scope.get('indirect', 0.0):,.1f} kg"
                f"{f'  ({flagged} stream(s) flagged)' if flagged else ''}\n"
            )
        self._out.flush()
