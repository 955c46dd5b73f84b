"""Crash safety for the minute in progress: checkpoints of the window and recovery at startup.

Theory of operation. The window's state (buffered readings, substitution history, first
unclosed minute) is written to the ledger file in two ways:

- with every close, in the same SQLite transaction as the minutes it closed (Ledger.append), so
  "minute M is in the ledger" and "the window has moved past M" are one fact on disk. It holds
  the readings the next close needs and, of each signal's substitution history, only what its
  rule reads (gateway/stages/minute_history.py): with 10,000 signals 1.2 MB under last_good,
  5.9 MB under hour_average, but 116 MB under lookback_max, whose rule reads a day of minutes;
- between closes, every `checkpoint_s` of the gateway's clock (`checkpoint_loop`), as a delta:
  only the readings buffered since the last save, so the cost follows the poll rate rather than
  the buffer's size (10,000 signals polled every second: ~13 MB of readings by the end of a
  minute, ~1 MB in a 5 s delta). A crash loses at most `checkpoint_s` of the minute in progress.

An orderly stop (Ctrl-C, SIGTERM, the `--minutes` limit) saves the whole state once more,
marked as a stop (CheckpointTable.mark_stopped), so nothing buffered since the last save is lost and the
next start says it resumes after a stop instead of reporting a crash recovery ("recovered:").
The minutes it was down are completed and flagged as below either way.

At startup `recover_window` restores the last checkpoint. Minutes from its first unclosed minute
up to now are then closed by the ordinary window from what was buffered: the minute that was in
progress gets the readings it had (its coverage shows the gap; quality partial, substituted or
missing accordingly) and minutes the gateway was down for get none (substituted by the signal's
rule, or missing). Every one of them is flagged `gateway_restart`, and so is the minute the
restart lands in. Nothing is counted twice: the checkpoint never runs ahead of the ledger, and
the ledger stores a (minute, process, stream) once. A ledger without a checkpoint (written by an
older version) resumes after its last minute the same way, without buffered readings.

The encoding is numpy's .npz (no pickle) with a JSON header naming the signals, so a checkpoint
from a site file with different signals is remapped by name; a signal that is gone is dropped.
The histories are a few flat arrays for all signals (emgate-window-2): the first format's two
arrays per signal cost a zip entry each, 0.6 s a minute at 10,000 signals. A checkpoint of that
first format (emgate-window-1) is no longer read: a restart after an upgrade from it resumes
after the ledger's last minute, as for any unreadable checkpoint.

Where the bytes are stored: the ledger file's checkpoint tables (gateway/ledger/checkpoint_table.py).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from analytics.batch import concat_ranges
from gateway.core.clock import Clock
from gateway.core.model import MinuteResults
from gateway.ledger.store import Ledger
from gateway.stages.minute import MINUTE_S, MinuteWindow, WindowState
from gateway.stages.minute_history import HistoryColumns

log = logging.getLogger(__name__)

FORMAT = "emgate-window-2"
RESTART_FLAG = "gateway_restart"
#: Past this many minutes of downtime the gap is reported, not filled minute by minute.
MAX_RECOVER_MINUTES = 7 * 1440


def encode_window_state(state: WindowState, signal_names: Iterable[str]) -> bytes:
    """A WindowState as bytes (npz, no pickle): a few flat arrays, whatever the number of signals."""
    h = state.history
    run_at, run_slot = _slot_runs(np.asarray(h.slots, dtype=np.int64), np.asarray(h.counts, dtype=np.int64))
    arrays: dict[str, np.ndarray] = {
        "signal_ids": np.asarray(state.signal_ids, dtype=np.int32),
        "ts": np.asarray(state.ts, dtype=np.float64),
        "values": np.asarray(state.values, dtype=np.float64),
        "quality": np.asarray(state.quality, dtype=np.uint8),
        "history_ids": np.asarray(h.ids, dtype=np.int32),
        "history_next_slot": np.asarray(h.next_slot, dtype=np.int64),
        "history_counts": np.asarray(h.counts, dtype=np.int64),
        "history_amounts": np.asarray(h.amounts, dtype=np.float64),
        "history_run_at": run_at,
        "history_run_slot": run_slot,
    }
    header = {"format": FORMAT, "next_minute": state.next_minute, "signals": list(signal_names)}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


def decode_window_state(data: bytes, signal_names: list[str]) -> WindowState:
    """Bytes from `encode_window_state` -> WindowState for a window with `signal_names`.

    Raises ValueError when the bytes are not a window checkpoint.
    """
    # A checkpoint cut short or with garbage at its tail makes numpy's zip reader raise
    # BadZipFile, EOFError or RuntimeError (a flipped bit reads as an unknown compression), and
    # a damaged header KeyError or IndexError: all mean "not a checkpoint", which recovery
    # handles; anything else escaping here would stop every restart of the gateway.
    try:
        return _decode_window_state(data, signal_names)
    except (EOFError, zipfile.BadZipFile, KeyError, IndexError, TypeError, RuntimeError) as exc:
        raise ValueError(f"not a window checkpoint: {type(exc).__name__}: {exc}") from exc


def _decode_window_state(data: bytes, signal_names: list[str]) -> WindowState:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        header = json.loads(arrays.pop("header").tobytes())
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"not a window checkpoint: {exc}") from exc
    if header.get("format") != FORMAT:
        raise ValueError(f"checkpoint format {header.get('format')!r}, expected {FORMAT!r}")
    amounts = arrays["history_amounts"]
    slots = _slots_of_runs(arrays["history_run_at"], arrays["history_run_slot"], len(amounts))
    history = HistoryColumns(arrays["history_ids"], arrays["history_next_slot"], arrays["history_counts"], amounts, slots)
    old_names: list[str] = header["signals"]
    index = {name: i for i, name in enumerate(signal_names)}
    remap = np.array([index.get(n, -1) for n in old_names] or [-1], dtype=np.int32)
    sig = arrays["signal_ids"]
    new_sig = remap[sig] if len(sig) else sig
    keep = new_sig >= 0
    order = np.lexsort((arrays["ts"][keep], new_sig[keep]))
    return WindowState(
        float(header["next_minute"]),
        new_sig[keep][order].astype(np.int32),
        arrays["ts"][keep][order],
        arrays["values"][keep][order],
        arrays["quality"][keep][order],
        _remapped(history, remap),
    )


def _slot_runs(slots: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slots as runs of consecutive minutes: (entry where each run starts, its first slot). A
    history's slots are consecutive but where a minute was substituted, so a few runs stand for
    up to 1,440 slots per signal, and the checkpoint of a lookback_max signal halves."""
    starts = np.ones(len(slots), dtype=bool)
    starts[1:] = slots[1:] != slots[:-1] + 1
    starts[(np.cumsum(counts) - counts)[counts > 0]] = True  # each signal's first entry
    run_at = np.flatnonzero(starts)
    return run_at, slots[run_at]


def _slots_of_runs(run_at: np.ndarray, run_slot: np.ndarray, n: int) -> np.ndarray:
    if len(run_at) != len(run_slot) or (n and (len(run_at) == 0 or run_at[0] != 0)) or np.any(np.diff(run_at) <= 0):
        raise ValueError("history slot runs do not fit the amounts")
    entry = np.arange(n)
    run = np.searchsorted(run_at, entry, side="right") - 1
    slots: np.ndarray = run_slot[run] + (entry - run_at[run])
    return slots


def _remapped(history: HistoryColumns, remap: np.ndarray) -> HistoryColumns:
    """Histories under the new signal ids, in id order; those of signals that are gone dropped."""
    history.histories()  # ValueError now, not at import, if the columns do not fit together
    ends = np.cumsum(history.counts)
    new_ids = remap[history.ids] if len(history.ids) else history.ids
    order = np.argsort(new_ids, kind="stable")
    order = order[new_ids[order] >= 0]
    entries = concat_ranges((ends - history.counts)[order], history.counts[order])
    return HistoryColumns(
        new_ids[order].astype(np.int32),
        history.next_slot[order],
        history.counts[order],
        history.amounts[entries],
        history.slots[entries],
    )


def window_checkpoint(window: MinuteWindow) -> bytes:
    """The window's current state, encoded for Ledger.append / CheckpointTable.save."""
    return encode_window_state(window.export_state(), window.signals.names)


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@dataclass(frozen=True)
class Recovery:
    """What startup recovered; `flag` marks the minutes it touched."""

    resume_minute: float  # first minute the restarted window closes
    flagged_until: float  # minutes starting before this are flagged gateway_restart
    buffered_readings: int
    checkpoint_saved_at: float | None
    skipped_minutes: int = 0  # a gap too long to fill minute by minute (reported, not filled)
    stopped_at: float | None = None  # the previous run stopped in order then (no crash)

    def flag(self, results: MinuteResults) -> MinuteResults:
        """Add RESTART_FLAG to results of minutes the restart touched; others pass unchanged."""
        starts = results.minute_start
        return results.with_flag(RESTART_FLAG, (self.resume_minute <= starts) & (starts < self.flagged_until))

    def describe(self) -> str:
        n = int((self.flagged_until - self.resume_minute) // MINUTE_S)
        what = (
            f"checkpoint of {_utc(self.checkpoint_saved_at)} with {self.buffered_readings} buffered reading(s)"
            if self.checkpoint_saved_at is not None
            else "no checkpoint; resuming after the ledger's last minute"
        )
        gap = (
            f"; {self.skipped_minutes} minute(s) of downtime before it are too many to fill and are NOT in the ledger"
            if self.skipped_minutes
            else ""
        )
        head = f"resumed after the stop of {_utc(self.stopped_at)}" if self.stopped_at is not None else "recovered"
        return (
            f"{head}: {what}; closing from minute {_utc(self.resume_minute)}: {n} minute(s) up to the restart "
            f"are completed from what was buffered or marked missing/substituted, flagged {RESTART_FLAG}{gap}"
        )


def recover_window(
    ledger: Ledger, window: MinuteWindow, now: float, *, max_minutes: int = MAX_RECOVER_MINUTES
) -> Recovery | None:
    """Restore the window from the ledger's checkpoint (or its last minute); None on a fresh ledger."""
    saved = ledger.checkpoints.load()
    stopped_at = ledger.checkpoints.stopped_at() if saved is not None else None
    last = ledger.reader.last_minute()
    saved_at: float | None = None
    readings = 0
    if saved is not None:
        saved_at, data = saved
        names = list(window.signals.names)
        try:
            state = decode_window_state(data, names)
            saved_deltas = ledger.checkpoints.load_deltas()
            deltas = [decode_window_state(d, names) for _, d in saved_deltas]
            if deltas:
                saved_at = max(saved_at, *(t for t, _ in saved_deltas))
                state = replace(
                    state,
                    **{  # type: ignore[arg-type]  # the four array fields only; one chunk: the window sorts it and drops repeated readings
                        k: np.concatenate([getattr(state, k), *(getattr(d, k) for d in deltas)])
                        for k in ("signal_ids", "ts", "values", "quality")
                    },
                )
        except ValueError as exc:
            stopped_at = None
            log.error(
                "ledger %s: checkpoint unreadable (%s); resuming after the ledger's last minute",
                ledger.path,
                exc,
            )
            state = None
        if state is not None:
            if last is not None and state.next_minute <= last:  # never behind the ledger: skip what it holds
                state = replace(state, next_minute=last + MINUTE_S)
            window.import_state(state)
            readings = len(state.ts)
        elif last is not None:
            window.next_minute = last + MINUTE_S
        else:
            return None
    elif last is not None:
        window.next_minute = last + MINUTE_S
    else:
        return None
    flagged_until = math.floor(now / MINUTE_S) * MINUTE_S + MINUTE_S
    skipped = 0
    if window.next_minute >= flagged_until:  # a clock behind the checkpoint: nothing to complete
        flagged_until = window.next_minute + MINUTE_S
    elif (flagged_until - window.next_minute) / MINUTE_S > max_minutes:
        skipped = int((flagged_until - window.next_minute) / MINUTE_S) - max_minutes
        window.next_minute = flagged_until - max_minutes * MINUTE_S
    recovery = Recovery(window.next_minute, flagged_until, readings, saved_at, skipped, stopped_at)
    level = log.error if skipped else log.info if stopped_at is not None else log.warning
    level("ledger %s: %s", ledger.path, recovery.describe())
    return recovery


async def checkpoint_loop(
    window: MinuteWindow, ledger: Ledger, clock: Clock, interval_s: float, lock: asyncio.Lock | None = None
) -> None:
    """Save the in-progress window every `interval_s` of the gateway's clock; retry held rows.

    The first save is full, later ones deltas; after a save failed the next one is full again,
    so the deltas on disk always continue the full state on disk. `lock`: the minute stage's,
    held while the window closes in a worker thread (gateway/stages/minute.py); a save waits for it.
    """
    full_needed = True
    names = window.signals.names
    lock = lock or asyncio.Lock()
    while True:
        await clock.sleep_until(clock.now() + interval_s)
        async with lock:
            ledger.retry_pending()
            if full_needed:
                ok = ledger.checkpoints.save(window_checkpoint(window))
            else:
                new = window.export_new_readings()
                ok = ledger.checkpoints.save(encode_window_state(new, names), delta=True) if len(new.ts) else True
        full_needed = not ok
        await asyncio.sleep(0)
