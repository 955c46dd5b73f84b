"""The replay's merge of recorded series: by time, then by signal name, whatever the input's shape."""

from types import SimpleNamespace

import numpy as np
import pytest

from gateway.replay.engine import _merge
from gateway.replay.inputs import Series

NAMES = ("b.flow", "a.flow", "c.meter")  # not in name order: the merge orders them
IDS = {"a.flow": 7, "b.flow": 3, "c.meter": 11}
GW = SimpleNamespace(signals=SimpleNamespace(id=IDS.__getitem__))


def _by_definition(series: dict[str, Series]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    names = sorted(series)
    if not names:
        return np.empty(0, np.int32), np.empty(0), np.empty(0)
    ids = np.concatenate([np.full(len(series[n].ts), IDS[n], np.int32) for n in names])
    ts = np.concatenate([series[n].ts for n in names])
    values = np.concatenate([series[n].values for n in names])
    order = np.argsort(ts, kind="stable")
    return ids[order], ts[order], values[order]


def _series(ts_of: dict[str, list[float]]) -> dict[str, Series]:
    rng = np.random.default_rng(2)
    return {n: Series(np.array(ts, dtype=np.float64), rng.uniform(0, 9, len(ts))) for n, ts in ts_of.items()}


@pytest.mark.parametrize(
    "ts_of",
    [
        {n: [0.0, 60.0, 120.0, 180.0] for n in NAMES},  # the columns of one file
        {n: [0.0, 60.0, 60.0, 120.0] for n in NAMES},  # the same, with a repeated time
        {"b.flow": [0.0, 60.0], "a.flow": [30.0, 60.0, 90.0], "c.meter": [60.0]},  # files of their own
        {"a.flow": [0.0, 60.0]},
        {},
    ],
)
def test_merge_orders_by_time_then_name(ts_of: dict[str, list[float]]) -> None:
    series = _series(ts_of)
    got = _merge(GW, series)  # type: ignore[arg-type]
    for have, want in zip(got, _by_definition(series), strict=True):
        assert have.dtype == want.dtype
        np.testing.assert_array_equal(have, want)
