"""Spike detection: a process's CO2 per minute against its own rolling robust baseline.

The baseline of minute i is the median and the scaled MAD (1.4826 x median absolute deviation,
which equals the standard deviation for normal noise) of the previous `window` operating
minutes, so a spike does not raise its own baseline and up to half the window can be spikes
before the baseline moves. The score is the robust z-score (x - median) / max(MAD, mad_floor);
the floor keeps a flat baseline (a constant feed) from turning noise into huge scores.
Minutes below `off_below` are "not operating": not scored (NaN) and kept out of the baseline,
so a stop does not drag the baseline to zero and every restart look like a spike.

Pure numpy: float64 arrays in, float64 arrays out, NaN in the input = no data (not scored, not
in the baseline). A spike counts only after `min_duration` consecutive minutes at or above k.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

MAD_TO_SIGMA = 1.4826


def robust_baseline(values: NDArray[np.float64]) -> tuple[float, float]:
    """(median, scaled MAD) of the finite values; (nan, nan) when there are none."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    med = float(np.median(v))
    return med, float(MAD_TO_SIGMA * np.median(np.abs(v - med)))


def spike_scores(
    values: NDArray[np.float64], window: int, *, min_history: int, mad_floor: float, off_below: float = 0.0
) -> NDArray[np.float64]:
    """Robust z-score of each value against the previous `window` operating values.

    NaN where the value is missing or below `off_below`, or fewer than `min_history` operating
    values precede it. O(n x window): for tables and replays; live use RollingBaseline.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {x.shape}")
    if window < 1 or min_history < 1 or mad_floor <= 0:
        raise ValueError(f"window {window} and min_history {min_history} must be >= 1, mad_floor {mad_floor} > 0")
    operating = np.isfinite(x) & (x >= off_below)
    hist = x[operating]
    idx = np.flatnonzero(operating)
    out = np.full(x.shape, np.nan)
    for j, i in enumerate(idx):
        past = hist[max(0, j - window) : j]
        if past.size < min_history:
            continue
        med, mad = robust_baseline(past)
        out[i] = (x[i] - med) / max(mad, mad_floor)
    return out


def sustained(mask: NDArray[np.bool_], min_duration: int) -> NDArray[np.bool_]:
    """True where `mask` has been True for at least `min_duration` consecutive entries."""
    m = np.asarray(mask, dtype=bool)
    if min_duration < 1:
        raise ValueError(f"min_duration must be >= 1, got {min_duration}")
    run = np.zeros(m.shape, dtype=np.int64)
    count = 0
    for i, flag in enumerate(m):
        count = count + 1 if flag else 0
        run[i] = count
    return run >= min_duration


def detect_spikes(
    values: NDArray[np.float64],
    window: int,
    k: float,
    min_duration: int,
    *,
    min_history: int,
    mad_floor: float,
    off_below: float = 0.0,
) -> NDArray[np.bool_]:
    """Minutes that are part of a spike: score >= k for at least `min_duration` minutes in a row."""
    scores = spike_scores(values, window, min_history=min_history, mad_floor=mad_floor, off_below=off_below)
    return sustained(np.nan_to_num(scores, nan=-np.inf) >= k, min_duration)


class RollingBaseline:
    """The incremental form of spike_scores for one process: a ring of the last `window` values.

    `refresh` > 1 recomputes the median and MAD only every `refresh` operating minutes (a day's
    baseline barely moves in a few minutes, and a year's replay then costs 1/refresh the time).
    `update_many` takes a run of minutes at once (a replay's day, a live gateway's one minute):
    the medians of all refreshes in the run are taken in one numpy pass over sliding windows,
    with exactly the numbers minute-by-minute updates would give (a median and a MAD do not
    depend on the order of the window's values).
    """

    def __init__(self, window: int, *, min_history: int, mad_floor: float, off_below: float = 0.0, refresh: int = 1) -> None:
        if window < 1 or min_history < 1 or mad_floor <= 0 or refresh < 1:
            raise ValueError(
                f"bad baseline parameters: window {window}, min_history {min_history}, mad_floor {mad_floor}, refresh {refresh}"
            )
        self.window, self.min_history, self.mad_floor = window, min_history, mad_floor
        self.off_below, self.refresh = off_below, refresh
        self._ring = np.full(window, np.nan)
        self._n = 0  # operating values seen
        self._since_refresh = refresh
        self.median = float("nan")
        self.mad = float("nan")

    def update(self, value: float) -> float:
        """Score `value` against the baseline so far, then add it. NaN when not scored."""
        return float(self.update_many(np.array([value], dtype=np.float64))[0][0])

    def update_many(self, values: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Score consecutive minutes' values, each against the baseline before it, and add them.

        Returns (score, median, mad) per value: the median and scaled MAD the score used (NaN
        where the value was not scored: missing, below off_below, or history too short).
        """
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"values must be 1-D, got shape {x.shape}")
        n_values = len(x)
        score = np.full(n_values, np.nan)
        med_out = np.full(n_values, np.nan)
        mad_out = np.full(n_values, np.nan)
        with np.errstate(invalid="ignore"):
            operating = np.isfinite(x) & (x >= self.off_below)
        idx = np.flatnonzero(operating)
        new = x[idx]
        k_new = len(new)
        if k_new == 0:
            return score, med_out, mad_out
        w, n0 = self.window, self._n
        held = min(n0, w)
        # the ring in time order, then the new operating values: history[held + k] is new[k]
        history = np.concatenate((np.roll(self._ring, -(n0 % w))[w - held :] if held else np.empty(0), new))
        counts = n0 + np.arange(k_new)  # operating values before each new one
        scored = np.minimum(counts, w) >= self.min_history
        # refreshes: at the first scored value whose since-refresh count reached `refresh`, then
        # every `refresh` operating values (every later value is scored too)
        first_scored = int(np.argmax(scored)) if scored.any() else k_new
        first_refresh = max(first_scored, self.refresh - self._since_refresh)
        refresh_at = np.arange(first_refresh, k_new, self.refresh)
        medians, mads = self._baselines_at(history, held, counts, refresh_at)
        # each value uses the latest refresh at or before it (or the one held from before)
        which = np.searchsorted(refresh_at, np.arange(k_new), side="right") - 1
        med_k = np.where(which >= 0, medians[np.maximum(which, 0)] if len(refresh_at) else np.nan, self.median)
        mad_k = np.where(which >= 0, mads[np.maximum(which, 0)] if len(refresh_at) else np.nan, self.mad)
        s = (new - med_k) / np.maximum(mad_k, self.mad_floor)
        score[idx] = np.where(scored, s, np.nan)
        med_out[idx] = np.where(scored, med_k, np.nan)
        mad_out[idx] = np.where(scored, mad_k, np.nan)
        if len(refresh_at):
            self.median, self.mad = float(medians[-1]), float(mads[-1])
            self._since_refresh = k_new - int(refresh_at[-1])
        else:
            self._since_refresh += k_new
        tail = new[-w:]
        self._ring[(n0 + k_new - len(tail) + np.arange(len(tail))) % w] = tail
        self._n = n0 + k_new
        return score, med_out, mad_out

    def _baselines_at(
        self, history: NDArray[np.float64], held: int, counts: NDArray[np.int64], refresh_at: NDArray[np.int64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(median, scaled MAD) of the window before each refresh point (new-value index)."""
        w = self.window
        medians = np.empty(len(refresh_at))
        mads = np.empty(len(refresh_at))
        full = np.minimum(counts[refresh_at], w) == w
        for j in np.flatnonzero(~full):  # warm-up: fewer than `window` values so far
            end = held + int(refresh_at[j])
            medians[j], mads[j] = robust_baseline(history[end - int(counts[refresh_at[j]]) : end])
        full_idx = np.flatnonzero(full)
        if len(full_idx):
            views = np.lib.stride_tricks.sliding_window_view(history, w)
            for lo in range(0, len(full_idx), _ROWS_PER_PASS):
                part = full_idx[lo : lo + _ROWS_PER_PASS]
                block = views[held + refresh_at[part] - w]
                med = np.median(block, axis=1)
                medians[part] = med
                mads[part] = MAD_TO_SIGMA * np.median(np.abs(block - med[:, None]), axis=1)
        return medians, mads


_ROWS_PER_PASS = 256  # windows per numpy median call: bounds the temporary matrix
