"""Many signals' rates integrated in one pass, as one `integrate_rate` call each would.

A gateway closing a minute for thousands of signals cannot afford a numpy call per signal.
`integrate_rate_many` lays the signals end to end on one virtual time axis: signal k's readings
and minute edges are shifted to (t - edges[0]) + k * B, with B a power of two longer than the
span any segment can reach, so no segment joins two signals (it would be longer than
max_gap_s; a step signal's last level, held for max_gap_s, ends before the next block) and one
`integrate_rate` call does them all.

Why the results agree to the last bit or so: t - edges[0] is exact (both are epoch seconds of
the same magnitude: Sterbenz's lemma), and adding k * B is exact while the sum needs no more than
53 significant bits, which the chunk size below guarantees. Every difference the integrator
takes (segment lengths, offsets of edges into segments) is then the same float as in the
per-signal call. Only after a signal's last reading can the order of two additions differ (the
next segment is the join to another signal instead of none), which moves a result by one ulp.
The gateway's live closes and replays both go through this function, so they stay identical.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from analytics.aggregate import integrate_rate

F64 = NDArray[np.float64]

# Readings are epoch seconds below 2**31, so their spacing (ulp) is at least 2**-22; a shifted
# value stays exact while it is below 2**31 as well.
_EXACT_LIMIT = 2.0**31


def integrate_rate_many(
    ts: F64,
    values: F64,
    bounds: NDArray[np.int64],
    edges: F64,
    *,
    time_unit_s: float,
    max_gap_s: float,
    method: str = "trapezoid",
    close_lag_s: float | None = None,
) -> tuple[F64, F64]:
    """Integrate K signals at once.

    Args:
        ts, values: the signals' readings concatenated, signal by signal, each sorted by time.
        bounds: K + 1 offsets: signal k's readings are ts[bounds[k]:bounds[k+1]].
        edges: n + 1 minute boundaries shared by all signals.
        time_unit_s, max_gap_s, method, close_lag_s: as for `integrate_rate`.

    Returns:
        (amount, covered_s), float64 arrays of shape (K, n), equal to integrate_rate per signal.
    """
    k_signals, n = len(bounds) - 1, len(edges) - 1
    amount = np.zeros((k_signals, n))
    covered = np.zeros((k_signals, n))
    if k_signals == 0 or n == 0:
        return amount, covered
    e0 = float(edges[0])
    # Keep what integrate_rate keeps: from each signal's last reading before edges[0] on. That
    # reading only matters as the start of a segment; if it is older than max_gap_s its segment
    # is not integrated, so moving it to just beyond max_gap_s changes nothing but the layout.
    running = np.zeros(len(ts) + 1, dtype=np.int64)
    np.cumsum(ts < e0, out=running[1:])
    before = running[bounds[1:]] - running[bounds[:-1]]
    first = bounds[:-1] + np.maximum(before - 1, 0)
    counts = bounds[1:] - first
    starts = np.concatenate(([0], np.cumsum(counts)))
    if starts[-1] == len(ts):  # nothing to drop (a live close keeps only that reading): a copy will do
        ts, values = ts.copy(), values
    else:
        idx = concat_ranges(first, counts)
        ts, values = ts[idx], values[idx]
    heads = starts[:-1][counts > 0]
    ts[heads] = np.maximum(ts[heads], e0 - max_gap_s - 1.0)
    reach = float(edges[-1] - e0) + max_gap_s
    if len(ts):
        reach = max(reach, float(ts.max() - e0))
    # block k spans [k*span - max_gap_s, k*span + reach]; the join to block k+1 must exceed max_gap_s
    span = 2.0 ** math.ceil(math.log2(reach + 2.0 * max_gap_s + 120.0))
    per_chunk = max(1, int(_EXACT_LIMIT // (2 * span)))
    rel_edges = edges - e0
    for c0 in range(0, k_signals, per_chunk):
        c1 = min(k_signals, c0 + per_chunk)
        lo, hi = int(starts[c0]), int(starts[c1])
        t_v = ts[lo:hi] - e0
        t_v += np.repeat(np.arange(c1 - c0, dtype=np.float64) * span, counts[c0:c1])
        e_v = (rel_edges[None, :] + (np.arange(c1 - c0, dtype=np.float64) * span)[:, None]).ravel()
        a, cov = integrate_rate(
            t_v, values[lo:hi], e_v, time_unit_s=time_unit_s, max_gap_s=max_gap_s, method=method, close_lag_s=close_lag_s
        )
        # e_v has (n + 1) edges per signal; interval n of each block joins two signals: drop it
        a = np.append(a, 0.0).reshape(c1 - c0, n + 1)[:, :n]
        cov = np.append(cov, 0.0).reshape(c1 - c0, n + 1)[:, :n]
        amount[c0:c1], covered[c0:c1] = a, cov
    return amount, covered


def concat_ranges(first: NDArray[np.int64], lengths: NDArray[np.int64]) -> NDArray[np.int64]:
    """The indices first[k], first[k] + 1, ..., first[k] + lengths[k] - 1 for every k, in order."""
    out_starts = np.cumsum(lengths) - lengths
    index: NDArray[np.int64] = np.arange(int(lengths.sum())) + np.repeat(first - out_starts, lengths)
    return index
