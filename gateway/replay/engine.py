"""Replay: recorded series through exactly the stages of a live run.

The gateway is built as for a live site (Gateway.build) with a clock that the replay moves
forward itself. Each step plays what a live gateway would have seen by clock time E + delay:
every reading stamped before that, then the window closes the minutes that are due, and the
frame goes through Gateway.on_frame, as a live close does. Steps are a day long, so numpy sees
1,440 minutes per call instead of one: the window, the emission stage and the alert stage
(AlertStage evaluates a whole frame in numpy) each take the day in one call, and the ledger
gets its 1,440 x streams rows in one append. Longer steps measured no faster.
"""

from __future__ import annotations

import csv
import fcntl
import io
import itertools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from gateway.core.model import RESULT_FIELDS, MinuteResults, SampleBatch, SampleQuality
from gateway.pipeline import Gateway, MinuteListener
from gateway.replay.inputs import Series
from gateway.settings.site import GatewaySettings

#: minutes.csv: a minute result's fields but its site (one site per replay), minute_start in local time
MINUTES_CSV_COLUMNS = tuple(f for f in RESULT_FIELDS if f != "site")


class ReplayClock:
    """A clock that only the replay moves."""

    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def real_delay(self, t: float) -> float:
        return 0.0

    async def sleep_until(self, t: float) -> None:
        self.t = max(self.t, t)


@dataclass
class ReplaySummary:
    minutes: int
    rows: int
    first_minute: float
    last_minute: float
    co2_kg_direct: float
    co2_kg_indirect: float
    ledger_head: str


def span(settings: GatewaySettings, series: dict[str, Series]) -> tuple[float, float]:
    """First and last minute boundary covered by any recorded signal."""
    starts, ends = [], []
    for name, s in series.items():
        if not len(s.ts):
            continue
        cfg = settings.signals[name]
        lead = cfg.interval_s if cfg.kind == "interval_total" and cfg.interval_label == "end" else 0.0
        trail = cfg.interval_s if cfg.kind == "interval_total" and cfg.interval_label == "start" else 0.0
        starts.append(float(s.ts[0]) - lead)
        ends.append(float(s.ts[-1]) + trail)
    if not starts:
        raise ValueError("no readings in the input files")
    return math.floor(min(starts) / 60.0) * 60.0, math.ceil(max(ends) / 60.0) * 60.0


class MinutesCsv:
    """Writes minutes.csv: one row per minute per (process, stream), no totals.

    The bytes are those csv.writer writes for [local ISO time, the fields as str, the floats as
    repr()], built as one string per frame: text fields are quoted once per distinct value, a
    float that repeats (coverage 1.0, a factor) is formatted once, and the local times of a
    frame come from numpy with the zone's offset looked up once an hour (see local_iso_minutes).
    """

    def __init__(self, fh: IO[str], timezone: str) -> None:
        self._fh = fh
        self._tz = ZoneInfo(timezone)
        self._text = _CsvText()
        self._repeated = _FloatText()
        fh.write(",".join(self._text[c] for c in MINUTES_CSV_COLUMNS) + "\n")

    def __call__(self, results: MinuteResults) -> None:
        if not len(results):
            return
        t, f = self._text, self._repeated
        # the text of a stream's columns before and after activity, once per stream
        streams = results.streams
        head = [
            f"{t[p]},{t[st]},{t[sc]},{t[m]},"
            for p, st, sc, m in zip(*(streams.column(c).tolist() for c in ("process", "stream", "scope", "method")), strict=True)
        ]
        unit = [f",{t[u]}," for u in streams.column("activity_unit").tolist()]
        starts = results.minute_start
        iso = local_iso_minutes(np.unique(starts), self._tz)
        ids = results.stream_ids.tolist()
        self._fh.write(
            "".join(
                [
                    f"{iso[m]},{head[k]}{a!r}{unit[k]}{c!r},{t[fid]},{f[ef]},{f[cov]},{t[q]},{t[fl]}\n"
                    for m, k, a, c, fid, ef, cov, q, fl in zip(
                        starts.tolist(),
                        ids,
                        results.activity.tolist(),
                        results.co2_kg.tolist(),
                        results.factor_id.tolist(),
                        results.ef_kg_per_unit.tolist(),
                        results.coverage.tolist(),
                        results.text("quality").tolist(),
                        results.flags.tolist(),
                        strict=True,
                    )
                ]
            )
        )


class _CsvText(dict[str, str]):
    """A text field as csv.writer writes it (quoted when it holds a comma, quote or line end)."""

    def __missing__(self, text: str) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(["", text])
        self[text] = out = buf.getvalue()[1:-1]
        return out


class _FloatText(dict[float, str]):
    """repr() of floats that repeat. Only finite non-zero floats are kept: 0.0 == -0.0 and NaN
    != NaN would make a dict answer for the wrong one."""

    def __missing__(self, value: float) -> str:
        text = repr(value)
        if type(value) is float and value == value and value != 0.0 and len(self) < 65536 and abs(value) != math.inf:
            self[value] = text
        return text


def local_iso_minutes(starts: NDArray[np.float64], tz: ZoneInfo) -> dict[float, str]:
    """{minute start: datetime.fromtimestamp(start, tz).isoformat()} for sorted unique starts.

    The zone's offset is read with datetime at every hour of the span (and bisected to the
    minute where it changes); between two readings it is taken as constant, as no zone changes
    its offset twice within an hour. The local times are formatted by numpy.
    """
    if not len(starts):
        return {}
    if np.any(starts % 60.0):  # not whole minutes: let datetime format the seconds
        return {m: datetime.fromtimestamp(m, tz).isoformat() for m in starts.tolist()}
    n = len(starts)
    probe = sorted({*range(0, n, 60), n - 1})
    suffix = {i: _offset_of(float(starts[i]), tz) for i in probe}
    changes = []
    for lo, hi in itertools.pairwise(probe):
        while suffix[lo] != suffix[hi] and hi - lo > 1:  # bisect to the first minute of the new offset
            mid = (lo + hi) // 2
            suffix[mid] = _offset_of(float(starts[mid]), tz)
            if suffix[mid] == suffix[lo]:
                lo = mid
            else:
                hi = mid
        if suffix[lo] != suffix[hi]:
            changes.append(hi)
    bounds = [0, *changes, n]
    out: dict[float, str] = {}
    for lo, hi in itertools.pairwise(bounds):
        text, offset_s = suffix[lo]
        local = (starts[lo:hi] + offset_s).astype("datetime64[s]")
        out.update(zip(starts[lo:hi].tolist(), [x + text for x in np.datetime_as_string(local, unit="s").tolist()], strict=True))
    return out


def _offset_of(minute_s: float, tz: ZoneInfo) -> tuple[str, float]:
    """(the ISO offset text, e.g. '+09:00', and the offset in seconds) at an instant."""
    dt = datetime.fromtimestamp(minute_s, tz)
    offset = dt.utcoffset()
    return dt.isoformat()[19:], offset.total_seconds() if offset is not None else 0.0


#: Readings a replay closes at a time at most (one step of minutes): a close holds a few times its
#: readings' bytes in sorted columns and temporaries, so a day of 100,000 signals at one minute
#: (144 million readings) closed at once needed over 10 GB.
READINGS_PER_STEP = 10_000_000


def step_for(signals: int) -> int:
    """Minutes a replay closes at a time: a day, or fewer so that a step of one-minute readings of
    every signal stays within READINGS_PER_STEP (a day for up to 6,944 signals). It depends only
    on the site and the input, so a replay of the same files writes the same ledger rows."""
    return max(1, min(1440, READINGS_PER_STEP // max(1, signals)))


async def replay(
    settings: GatewaySettings,
    series: dict[str, Series],
    out_dir: Path,
    *,
    step_minutes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    listeners: Sequence[MinuteListener] = (),
    notice: Callable[[str], None] | None = None,
) -> ReplaySummary:
    """Replay `series` into out_dir: ledger.sqlite, minutes.csv and alerts.jsonl (empty without a budget).

    `step_minutes`: minutes closed at a time (default `step_for(len(series))`). `notice` is told
    what the replay did besides (a partial ledger of an interrupted replay removed).
    """
    step_minutes = step_for(len(series)) if step_minutes is None else step_minutes
    first, last = span(settings, series)
    ledger_path = out_dir / "ledger.sqlite"
    if ledger_path.exists():
        raise FileExistsError(f"{ledger_path} exists; replay writes a new ledger: choose an empty --out directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    # The ledger is bulk loaded (commits without fsync, see Ledger.bulk_load) under another name
    # and gets its own only once complete and on disk: after a crash or power cut midway there is
    # no ledger.sqlite, so `emgate ledger verify` refuses (no such file) instead of reading a
    # partial or corrupt one as the replay's result. A replay holds an flock on out_dir while it
    # runs: a partial ledger found without it is an interrupted replay's, removed (with a notice)
    # and written again; one that a running replay holds is left alone.
    partial_path = out_dir / "ledger.sqlite.partial"
    dir_fd = _lock_dir(out_dir, partial_path)
    try:
        return await _replay_locked(settings, series, out_dir, first, last, step_minutes, progress, listeners, notice)
    except BaseException:
        _remove_partial(partial_path)  # a failed replay leaves nothing that blocks the next
        raise
    finally:
        os.close(dir_fd)  # releases the flock


def _lock_dir(out_dir: Path, partial_path: Path) -> int:
    """An exclusive flock on out_dir (its descriptor), or FileExistsError when a replay holds it."""
    fd = os.open(out_dir, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FileExistsError(
            f"{partial_path}: another replay into {out_dir} is running; wait for it, or choose another --out directory"
        ) from None
    return fd


def _remove_partial(partial_path: Path) -> list[Path]:
    """Delete a partial ledger with its -wal and -shm files; the paths deleted."""
    removed = []
    for path in (partial_path, Path(f"{partial_path}-wal"), Path(f"{partial_path}-shm"), Path(f"{partial_path}-journal")):
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed


async def _replay_locked(
    settings: GatewaySettings,
    series: dict[str, Series],
    out_dir: Path,
    first: float,
    last: float,
    step_minutes: int,
    progress: Callable[[int, int], None] | None,
    listeners: Sequence[MinuteListener],
    notice: Callable[[str], None] | None,
) -> ReplaySummary:
    ledger_path = out_dir / "ledger.sqlite"
    partial_path = out_dir / "ledger.sqlite.partial"
    if _remove_partial(partial_path) and notice is not None:
        notice(f"removed {partial_path}, the partial ledger of an interrupted replay; replaying again from the start")
    data = settings.model_dump()
    data["ledger"] = {**data["ledger"], "path": partial_path}
    data["influx"] = {**data["influx"], "enabled": False}
    settings = GatewaySettings(**data)
    clock = ReplayClock(first)
    gw = Gateway.build(settings, clock=clock, exclusive=False)  # a new file nobody else knows yet: no lock file beside it
    gw.ledger.bulk_load()
    gw.window.next_minute = first
    ids, ts, values = _merge(gw, series)
    quality = np.where(np.isnan(values), SampleQuality.NO_READING, SampleQuality.GOOD).astype(np.uint8)
    totals = {"direct": 0.0, "indirect": 0.0}

    def tally(results: MinuteResults) -> None:
        # row by row, as the summary has always added them (a sum per frame would round differently)
        for scope, co2_kg in zip(results.text("scope").tolist(), results.co2_kg.tolist(), strict=True):
            if scope in totals:  # production minutes (scope production) carry no CO2
                totals[scope] += co2_kg

    with (out_dir / "minutes.csv").open("w", encoding="utf-8", newline="") as fh:
        gw.listeners.extend([MinutesCsv(fh, settings.site.timezone), tally, *listeners])
        delay = settings.window.delay_s
        fed = 0
        total_minutes = int((last - first) // 60)
        while gw.window.next_minute < last:
            end = min(gw.window.next_minute + step_minutes * 60.0, last)
            clock.t = end + delay
            upto = int(np.searchsorted(ts, clock.t, side="left"))
            if upto > fed:
                gw.window.ingest(SampleBatch("replay", ids[fed:upto], ts[fed:upto], values[fed:upto], quality[fed:upto]))
                fed = upto
            frame = gw.window.close_due(clock.t)
            if frame is not None:
                await gw.on_frame(frame)
            if progress is not None:
                progress(int((gw.window.next_minute - first) // 60), total_minutes)
    summary = ReplaySummary(
        gw.minutes_closed, gw.ledger.head_seq, first, last - 60.0, totals["direct"], totals["indirect"], gw.ledger.head_hash
    )
    _write_alerts(gw, out_dir / "alerts.jsonl")
    gw.close()  # the ledger's close makes it durable
    os.replace(partial_path, ledger_path)
    _fsync_dir(out_dir)
    return summary


def _fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_alerts(gw: Gateway, path: Path) -> None:
    """The alert events the replay raised, in order, as the live stream publishes them."""
    with path.open("w", encoding="utf-8") as fh:
        for event in gw.alerts.store.events() if gw.alerts is not None else []:
            fh.write(event.to_json() + "\n")


def _merge(gw: Gateway, series: dict[str, Series]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All series as one time-ordered column set, the way sources would have delivered them:
    by time, and at the same time in the order of the signals' names."""
    names = sorted(series)
    if not names:
        return np.empty(0, np.int32), np.empty(0), np.empty(0)
    signal_ids = np.array([gw.signals.id(n) for n in names], dtype=np.int32)
    first = series[names[0]].ts
    if all(series[n].ts is first or np.array_equal(series[n].ts, first) for n in names) and bool(np.all(first[1:] > first[:-1])):
        # The columns of one file (a historian export): row after row, its signals in turn; the
        # order of the stable sort below, without sorting every reading (0.3 s a month of 100 signals).
        values = np.column_stack([series[n].values for n in names]).ravel()
        return np.tile(signal_ids, len(first)), np.repeat(first, len(names)), values
    ids = np.repeat(signal_ids, [len(series[n].ts) for n in names])
    ts = np.concatenate([series[n].ts for n in names])
    values = np.concatenate([series[n].values for n in names])
    order = np.argsort(ts, kind="stable")
    return ids[order], ts[order], values[order]
