"""The readings a minute window holds between closes: four columns that grow in place.

Why columns rather than the batches themselves: at 10,000 signals polled every second a minute
is 6,000 batches of 100 readings, each with its own small arrays, and a close had to concatenate
them all (a second full copy) and sort that (a third) while the batches were still held: +30 MB
over the batches at that step (tracemalloc, 620,000 readings). Here a batch is copied into the
columns as it comes (a few microseconds), the close sorts the columns in place (+7.5 MB: the
permutation and one column's temporary), and the columns keep their capacity from one minute to
the next, so a live gateway's buffer is allocated once.

A reading costs 15 bytes, not 21: the signal id is a uint16 while the signal table fits one,
and a reading holds the index (int32) of its timestamp in a table of stamps instead of the
timestamp (float64), because the readings of one poll share one stamp. At 10,000 signals polled
every second that is 9.3 MB of buffer for a minute instead of 13 MB (bench.load_10k). The close
builds timestamps a block of signals at a time, never the whole column. A batch with a stamp of
its own per reading (one MQTT message per reading, each with its own time) costs 8 bytes more
per reading in the stamp table than it saves; polled sources are the bulk of a plant's readings.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike, NDArray

Columns = tuple[NDArray[np.int32], NDArray[np.float64], NDArray[np.float64], NDArray[np.uint8]]
# signal ids, stamp indexes, values, qualities, stamps: a reading's time is stamps[stamp[j]]
Stamped = tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.float64], NDArray[np.uint8], NDArray[np.float64]]
_MIN_CAPACITY = 1024
_KEY_CHUNK = 65536  # readings per step when building and splitting sort keys


def empty_columns() -> Columns:
    return (np.empty(0, np.int32), np.empty(0), np.empty(0), np.empty(0, np.uint8))


class ReadingBuffer:
    """Readings (signal id, ts, value, quality) in arrival order until `sort` is called.

    Args:
        n_signals: size of the signal table, if known: ids are then stored in 16 bits when
            they fit. Ids must be below it.
    """

    def __init__(self, n_signals: int | None = None) -> None:
        sig_dtype: DTypeLike = np.uint16 if n_signals is not None and n_signals < 2**16 else np.int32
        self._dtypes = (np.dtype(sig_dtype), np.dtype(np.int32), np.dtype(np.float64), np.dtype(np.uint8))
        # signal id, index into _stamps, value, quality
        self._cols = tuple(np.empty(0, dtype=d) for d in self._dtypes)
        self._n = 0
        self._stamps = np.empty(0)  # the readings' timestamps, [0, _n_stamps) in use
        self._n_stamps = 0
        self.saved = 0  # readings [0, saved) are in a checkpoint already (MinuteWindow.export_new_readings)

    def __len__(self) -> int:
        return self._n

    def columns(self, start: int = 0) -> Columns:
        """Readings [start, len) in arrival order: views of the columns (valid until the next
        append), but the timestamps are a new array built from the stamp table."""
        n = self._n
        sig, stamp, val, qual = self._cols
        return sig[start:n], self._stamps[stamp[start:n]], val[start:n], qual[start:n]

    def append(self, sig: NDArray[np.int32], ts: NDArray[np.float64], val: NDArray[np.float64], qual: NDArray[np.uint8]) -> None:
        n, k = self._n, len(ts)
        if k == 0:
            return
        if n + k > len(self._cols[1]):
            self._resize(max(n + k, 2 * len(self._cols[1]), _MIN_CAPACITY))
        for col, new in zip(self._cols, (sig, self._stamp_ids(ts), val, qual), strict=True):
            col[n : n + k] = new
        self._n = n + k

    def _stamp_ids(self, ts: NDArray[np.float64]) -> int | NDArray[np.int32]:
        """Indexes of `ts` in the stamp table, adding the stamps it does not hold yet."""
        t0 = ts[0]
        if len(ts) == 1 or bool((ts == t0).all()):  # one poll: one stamp for the whole batch
            last = self._n_stamps - 1
            if last >= 0 and self._stamps[last] == t0:
                return last
            return self._add_stamps(ts[:1])
        if bool(np.all(ts[1:] >= ts[:-1])):  # in time order (a replay's feed): runs of one stamp, no sort
            new = np.empty(len(ts), dtype=bool)
            new[0] = True
            np.not_equal(ts[1:], ts[:-1], out=new[1:])
            first = self._add_stamps(ts[new])
            ids = np.cumsum(new, dtype=np.int32)  # 1 + the index of each reading's stamp among those added
            ids += np.int32(first - 1)
            return ids
        distinct, inverse = np.unique(ts, return_inverse=True)  # readings of one message share a stamp
        return (self._add_stamps(distinct) + inverse).astype(np.int32)

    def _add_stamps(self, stamps: NDArray[np.float64]) -> int:
        first, k = self._n_stamps, len(stamps)
        if first + k > len(self._stamps):
            if first + k >= 2**31:
                raise OverflowError("more than 2**31 distinct timestamps in one minute window's buffer")
            grown = np.empty(max(first + k, 2 * len(self._stamps), 64))
            grown[:first] = self._stamps[:first]
            self._stamps = grown
        self._stamps[first : first + k] = stamps
        self._n_stamps = first + k
        return first

    def replace(self, readings: Columns) -> None:
        """The buffer becomes `readings` (what a close keeps), keeping its capacity for the next
        minute unless that is more than four times what it held (after a replay's day, say)."""
        held, k = self._n, len(readings[1])
        self._n = 0
        self._n_stamps = 0
        if len(self._cols[1]) > 4 * max(held, k, _MIN_CAPACITY):
            self._resize(max(k, _MIN_CAPACITY))
        if len(self._stamps) > 4 * max(k, 64):
            self._stamps = np.empty(0)
        self.saved = 0
        self.append(*readings)

    def sort(self) -> Columns:
        """Sort in place by (signal, ts), drop repeated (signal, ts) pairs; the sorted readings.

        The timestamps returned are a new array; the other columns are views of the buffer.
        """
        sig, stamp, val, qual, stamps = self.sort_stamped()
        return sig, stamps[stamp], val, qual

    def sort_stamped(self) -> Stamped:
        """`sort`, with each reading's timestamp as an index into the stamps returned last:
        (signal ids, stamp indexes, values, qualities, stamps), views valid until the next append.

        One column is permuted at a time, so the close needs the permutation and one column's
        temporary beside the buffer, not a sorted copy of it, and the timestamps are compared a
        block at a time: a close never holds them all (MinuteWindow.close reads them per block).
        """
        n = self._n
        sig, stamp, val, qual = (c[:n] for c in self._cols)
        order = _order_by_signal(sig)  # and sig sorted in place
        for col in (stamp, val, qual):
            col[:] = col[order]
        del order
        stamps = self._stamps[: self._n_stamps]
        # Batches arrive in time order per source, so sorting by signal (stably) is usually
        # enough; a second stable sort by (signal, time) fixes a signal whose readings are out
        # of order. Both are stable, so the order is lexsort((ts, sig))'s.
        backwards, repeated = _neighbours(sig, stamp, stamps)
        if backwards:
            fix = np.lexsort((stamps[stamp], sig))
            for col in (sig, stamp, val, qual):
                col[:] = col[fix]
            del fix
            _, repeated = _neighbours(sig, stamp, stamps)
        # a repeated (signal, ts) pair (a re-delivered MQTT message) counts once
        if repeated.any():
            keep = np.flatnonzero(~repeated)
            for col in (sig, stamp, val, qual):
                col[: len(keep)] = col[keep]
            self._n = n = len(keep)
        self.saved = 0  # the order changed: an incremental checkpoint saves everything again
        return sig[:n], stamp[:n], val[:n], qual[:n], stamps

    def _resize(self, capacity: int) -> None:
        n, cols = self._n, list(self._cols)
        for i, dtype in enumerate(self._dtypes):  # one column at a time: the old one goes before the next grows
            col = np.empty(capacity, dtype=dtype)
            col[:n] = cols[i][:n]
            cols[i] = col
            self._cols = tuple(cols)


def _neighbours(sig: NDArray[np.int32], stamp: NDArray[np.int32], stamps: NDArray[np.float64]) -> tuple[bool, NDArray[np.bool_]]:
    """For readings sorted by signal: whether a signal's time ever goes backwards, and which
    readings repeat their predecessor's (signal, ts). Timestamps are built a block at a time."""
    n = len(sig)
    same = np.zeros(n, dtype=bool)
    same[1:] = sig[1:] == sig[:-1]
    backwards = False
    repeated = np.zeros(n, dtype=bool)
    for lo in range(1, n, _KEY_CHUNK):
        hi = min(lo + _KEY_CHUNK, n)
        ts = stamps[stamp[lo - 1 : hi]]  # readings lo-1 .. hi-1
        backwards = backwards or bool(np.any(same[lo:hi] & (ts[1:] < ts[:-1])))
        repeated[lo:hi] = same[lo:hi] & (ts[1:] == ts[:-1])
    return backwards, repeated


def _order_by_signal(sig: NDArray[np.int32]) -> NDArray[np.int32]:
    """The permutation that sorts `sig` stably, as int32; `sig` is sorted in place.

    np.argsort gives the permutation as int64 and its stable sort takes a buffer of half that:
    7.5 bytes a reading beside the buffer, the peak of a close (+10 MB at 620,000 readings).
    Sorting keys (signal << 32 | arrival index) instead gives the same order, since the keys are
    unique, in one int64 array sorted in place; the permutation is then kept as int32, half the
    size, while the columns are permuted.
    """
    n = len(sig)
    if n >= 2**31:  # arrival indexes would not fit the key's low half
        order64 = np.argsort(sig, kind="stable")
        sig[:] = sig[order64]
        return order64  # type: ignore[return-value]  # int64 only where an int32 permutation cannot index the buffer
    key = np.arange(n, dtype=np.int64)
    for lo in range(0, n, _KEY_CHUNK):  # in chunks: no full-size temporary
        key[lo : lo + _KEY_CHUNK] |= sig[lo : lo + _KEY_CHUNK].astype(np.int64) << 32
    key.sort(kind="stable")  # timsort: batches are runs of ascending keys
    order = np.empty(n, dtype=np.int32)
    for lo in range(0, n, _KEY_CHUNK):
        chunk = key[lo : lo + _KEY_CHUNK]
        sig[lo : lo + _KEY_CHUNK] = chunk >> 32
        order[lo : lo + _KEY_CHUNK] = chunk & 0xFFFFFFFF
    return order
