"""How the export writes instants: a minute in the site's time zone, with its UTC offset
(2026-11-01T00:25+08:00), and in UTC (2026-10-31T16:25Z).

A month's flagged minutes can be tens of thousands, each written in both forms; `local_times`
and `utc_times` write a column of them at once, exactly as `local_time` and `utc_time` write one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

MAX_SPAN_DAYS = 400  # local_times reads the zone's offset once an hour over the rows' span


def local_time(ts: float, tz: ZoneInfo) -> str:
    """The minute of epoch second `ts` in zone `tz`, with its offset: 2026-11-01T00:25+08:00."""
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="minutes")


def local_times(ts: NDArray[np.float64], tz: ZoneInfo) -> list[str]:
    """`local_time` of each epoch second, at once: a month's flagged minutes can be tens of thousands.

    The zone's offset is a step function of time: it is read at every hour of the rows' span,
    and where it differs between two hours the change is found to the second; each row then
    takes the offset in force at its instant. Times that are not whole seconds, before 1970,
    spanning more than MAX_SPAN_DAYS, or in an offset that is not whole minutes (local mean
    time before 1900) take `local_time` one by one.
    """
    ts = np.asarray(ts, np.float64)
    if len(ts) == 0:
        return []
    lo, hi = float(ts.min()), float(ts.max())
    if not (0.0 <= lo and hi - lo <= MAX_SPAN_DAYS * 86400.0 and bool(np.all(ts == np.floor(ts)))):
        return [local_time(t, tz) for t in ts.tolist()]
    starts, offsets = _offset_steps(int(lo), int(hi), tz)
    if any(off % 60 for off in offsets):
        return [local_time(t, tz) for t in ts.tolist()]
    secs = ts.astype(np.int64)
    step = np.searchsorted(np.asarray(starts, np.int64), secs, side="right") - 1
    local_s = secs + np.asarray(offsets, np.int64)[step]
    minutes = np.datetime_as_string((local_s // 60).astype("datetime64[m]"), unit="m").tolist()
    suffixes = [_offset_text(off) for off in offsets]
    return [f"{m}{suffixes[k]}" for m, k in zip(minutes, step.tolist(), strict=True)]


def _offset_steps(lo: int, hi: int, tz: ZoneInfo) -> tuple[list[int], list[int]]:
    """(starts, offsets): from starts[k] on (the first: `lo`) the zone is offsets[k] seconds ahead of UTC, up to `hi`."""

    def offset(t: int) -> int:
        delta = datetime.fromtimestamp(t, tz).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    starts, offsets = [lo], [offset(lo)]
    t = lo
    while t < hi:
        nxt = min(t - t % 3600 + 3600, hi)
        off = offset(nxt)
        if off != offsets[-1]:
            a, b = t, nxt  # the offset is offsets[-1] at a and off at b: find the first second of off
            while b - a > 1:
                mid = (a + b) // 2
                if offset(mid) == offsets[-1]:
                    a = mid
                else:
                    b = mid
            starts.append(b)
            offsets.append(off)
        t = nxt
    return starts, offsets


def _offset_text(offset_s: int) -> str:
    """+08:00, as datetime.isoformat writes a UTC offset of whole minutes."""
    sign = "-" if offset_s < 0 else "+"
    hours, minutes = divmod(abs(offset_s) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def utc_time(ts: float) -> str:
    """The minute of epoch second `ts` in UTC: 2026-10-31T16:25Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%MZ")


def utc_times(ts: NDArray[np.float64]) -> list[str]:
    """`utc_time` of each epoch second, at once: a month's flagged minutes can be tens of thousands."""
    minutes = np.floor(np.asarray(ts, np.float64) / 60.0).astype(np.int64).astype("datetime64[m]")
    return [f"{s}Z" for s in np.datetime_as_string(minutes, unit="m").tolist()]
