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
        raise ValueError(
            f"window {window} and min_history {min_history} must be >= 1, mad_floor {mad_floor} > 0"
        )
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
    """

    def __init__(
        self, window: int, *, min_history: int, mad_floor: float, off_below: float = 0.0, refresh: int = 1
    ) -> None:
        if window < 1 or min_history < 1 or mad_floor <= 0 or refresh < 1:
            raise ValueError(
                f"bad baseline parameters: window {window}, min_history {min_history}, "
                f"mad_floor {mad_floor}, refresh {refresh}"
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
        if not np.isfinite(value) or value < self.off_below:
            return float("nan")
        score = float("nan")
        if min(self._n, self.window) >= self.min_history:
            if self._since_refresh >= self.refresh:
                self.median, self.mad = robust_baseline(self._ring)
                self._since_refresh = 0
            score = (value - self.median) / max(self.mad, self.mad_floor)
        self._ring[self._n % self.window] = value
        self._n += 1
        self._since_refresh += 1
        return score
