"""The readings a minute window holds between closes: four columns that grow in place.

Why columns rather than the batches themselves: at 10,000 signals polled every second a minute
is 6,000 batches of 100 readings, each with its own small arrays, and a close had to concatenate
them all (a second full copy) and sort that (a third) while the batches were still held: +30 MB
over the batches at that step (tracemalloc, 620,000 readings). Here a batch is copied into the
columns as it comes (a few microseconds), the close sorts the columns in place (+10 MB: the
permutation and one column's temporary), and the columns keep their capacity from one minute to
the next, so a live gateway's buffer is allocated once.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Columns = tuple[NDArray[np.int32], NDArray[np.float64], NDArray[np.float64], NDArray[np.uint8]]
_DTYPES = (np.int32, np.float64, np.float64, np.uint8)
_MIN_CAPACITY = 1024


def empty_columns() -> Columns:
    return (np.empty(0, np.int32), np.empty(0), np.empty(0), np.empty(0, np.uint8))


class ReadingBuffer:
    """Readings (signal id, ts, value, quality) in arrival order until `sort` is called."""

    def __init__(self) -> None:
        self._cols: Columns = empty_columns()
        self._n = 0
        self.saved = 0  # readings [0, saved) are in a checkpoint already (MinuteWindow.export_new_readings)

    def __len__(self) -> int:
        return self._n

    def columns(self) -> Columns:
        """The buffered readings, as views of the columns (valid until the next append)."""
        n = self._n
        sig, ts, val, qual = self._cols
        return sig[:n], ts[:n], val[:n], qual[:n]

    def append(self, sig: NDArray[np.int32], ts: NDArray[np.float64], val: NDArray[np.float64], qual: NDArray[np.uint8]) -> None:
        n, k = self._n, len(ts)
        if n + k > len(self._cols[1]):
            self._resize(max(n + k, 2 * len(self._cols[1]), _MIN_CAPACITY))
        for col, new in zip(self._cols, (sig, ts, val, qual), strict=True):
            col[n : n + k] = new
        self._n = n + k

    def replace(self, readings: Columns) -> None:
        """The buffer becomes `readings` (what a close keeps), keeping its capacity for the next
        minute unless that is more than four times what it held (after a replay's day, say)."""
        held, k = self._n, len(readings[1])
        self._n = 0
        if len(self._cols[1]) > 4 * max(held, k, _MIN_CAPACITY):
            self._resize(max(k, _MIN_CAPACITY))
        self.saved = 0
        self.append(*readings)

    def sort(self) -> Columns:
        """Sort in place by (signal, ts), drop repeated (signal, ts) pairs; the sorted readings.

        One column is permuted at a time, so the close needs the permutation and one column's
        temporary beside the buffer, not a sorted copy of it.
        """
        sig, ts, val, qual = self.columns()
        # Batches arrive in time order per source, so a stable sort by signal is usually enough;
        # a second stable sort by (signal, time) fixes a signal whose readings are out of order.
        # Both are stable, so the order is lexsort((ts, sig))'s.
        order = np.argsort(sig, kind="stable")
        sig[:] = sig[order]
        ts[:] = ts[order]
        if np.any((sig[1:] == sig[:-1]) & (ts[1:] < ts[:-1])):
            fix = np.lexsort((ts, sig))
            order = order[fix]
            sig[:] = sig[fix]
            ts[:] = ts[fix]
            del fix
        val[:] = val[order]
        qual[:] = qual[order]
        del order
        # a repeated (signal, ts) pair (a re-delivered MQTT message) counts once
        dup = np.zeros(len(ts), dtype=bool)
        dup[1:] = (sig[1:] == sig[:-1]) & (ts[1:] == ts[:-1])
        if dup.any():
            keep = np.flatnonzero(~dup)
            for col in (sig, ts, val, qual):
                col[: len(keep)] = col[keep]
            self._n = len(keep)
        self.saved = 0  # the order changed: an incremental checkpoint saves everything again
        return self.columns()

    def _resize(self, capacity: int) -> None:
        n, cols = self._n, list(self._cols)
        for i, dtype in enumerate(_DTYPES):  # one column at a time: the old one goes before the next grows
            col = np.empty(capacity, dtype=dtype)
            col[:n] = cols[i][:n]
            cols[i] = col
            self._cols = tuple(cols)  # type: ignore[assignment]
