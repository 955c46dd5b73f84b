"""A console listener: one line per closed minute with CO2 per process, for the demo and `run`."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TextIO
from zoneinfo import ZoneInfo

import numpy as np

from analytics.substitution import MinuteQuality
from gateway.core.model import QUALITY_LABELS, STREAM_FIELDS, MinuteResults


class ConsoleListener:
    """Prints each minute's CO2 per process (kg), direct and indirect totals, and the flagged streams
    (process/stream and quality, the first few by name)."""

    def __init__(self, timezone: str, out: TextIO | None = None) -> None:
        self._tz = ZoneInfo(timezone)
        self._out = out if out is not None else sys.stdout  # looked up now, not when this module was imported

    def __call__(self, results: MinuteResults) -> None:
        for minute in np.unique(results.minute_start).tolist():
            rows = results.take(results.minute_start == minute)
            per_process, scope = rows.totals("process"), rows.totals("scope")
            flagged = _flagged_streams(rows)
            when = datetime.fromtimestamp(minute, self._tz).strftime("%Y-%m-%d %H:%M %Z")
            parts = "  ".join(f"{p} {v:,.1f}" for p, v in sorted(per_process.items()))
            self._out.write(
                f"{when}  CO2 kg: {parts}  | direct {scope.get('direct', 0.0):,.1f} kg, indirect {scope.get('indirect', 0.0):,.1f} kg"
                f"{_flagged_text(flagged)}\n"
            )
        self._out.flush()


#: Flagged streams named on a console line; more are counted ("+N more").
MAX_NAMED_FLAGGED = 3


def _flagged_streams(rows: MinuteResults) -> list[str]:
    """process/stream of each stream whose minute is not measured (quality label), in stream order."""
    flagged = np.flatnonzero(rows.quality != MinuteQuality.MEASURED)
    if not len(flagged):
        return []
    entries = rows.streams.entries
    process, stream = STREAM_FIELDS.index("process"), STREAM_FIELDS.index("stream")
    out: list[str] = []
    for i in flagged.tolist():
        entry = entries[int(rows.stream_ids[i])]
        label = QUALITY_LABELS[int(rows.quality[i])]
        out.append(f"{entry[process]}/{entry[stream]} {label}")
    return out


def _flagged_text(flagged: list[str]) -> str:
    """'  (2 stream(s) flagged: bf/coke substituted, bof/gas partial)', a few named at most."""
    if not flagged:
        return ""
    named = ", ".join(flagged[:MAX_NAMED_FLAGGED])
    more = f", +{len(flagged) - MAX_NAMED_FLAGGED} more" if len(flagged) > MAX_NAMED_FLAGGED else ""
    return f"  ({len(flagged)} stream(s) flagged: {named}{more})"
