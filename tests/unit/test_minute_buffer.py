"""The minute window's reading buffer and the run command's memory setting."""

from __future__ import annotations

import platform
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.settings.site import GatewaySettings
from gateway.stages.minute_buffer import ReadingBuffer


def reference_sort(sig, ts, val, qual):  # type: ignore[no-untyped-def]
    """What the window did before the buffer existed: lexsort by (signal, ts), then drop repeated
    (signal, ts) pairs keeping the first in arrival order."""
    order = np.lexsort((ts, sig))
    sig, ts, val, qual = sig[order], ts[order], val[order], qual[order]
    keep = np.ones(len(ts), dtype=bool)
    keep[1:] = ~((sig[1:] == sig[:-1]) & (ts[1:] == ts[:-1]))
    return sig[keep], ts[keep], val[keep], qual[keep]


@settings(max_examples=200, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.integers(0, 5), st.integers(0, 20), st.floats(-1e6, 1e6), st.integers(0, 3)), max_size=40),
        max_size=12,
    )
)
@pytest.mark.parametrize("n_signals", [None, 6], ids=["int32-ids", "uint16-ids"])
def test_sort_matches_the_reference_for_any_arrival_order(
    batches: list[list[tuple[int, int, float, int]]], n_signals: int | None
) -> None:
    buf = ReadingBuffer(n_signals)
    all_rows = [r for b in batches for r in b]
    for b in batches:
        if b:
            sig, ts, val, qual = (np.array(c) for c in zip(*b, strict=True))
            buf.append(sig.astype(np.int32), ts.astype(np.float64), val.astype(np.float64), qual.astype(np.uint8))
    got = buf.sort()
    if all_rows:
        cols = (np.array(c) for c in zip(*all_rows, strict=True))
        sig, ts, val, qual = cols
        want = reference_sort(sig.astype(np.int32), ts.astype(np.float64), val.astype(np.float64), qual.astype(np.uint8))
    else:
        want = (np.empty(0, np.int32), np.empty(0), np.empty(0), np.empty(0, np.uint8))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    assert len(buf) == len(want[1])


def test_the_devices_of_one_poll_share_one_stamp_and_ids_fit_16_bits() -> None:
    buf = ReadingBuffer(n_signals=300)
    for tick in (100.0, 101.0):
        for device in range(3):  # three devices polled at the same tick, 100 points each
            ids = np.arange(100 * device, 100 * device + 100, dtype=np.int32)
            buf.append(ids, np.full(100, tick), ids * 1.5, np.zeros(100, np.uint8))
    assert buf._n_stamps == 2 and buf._cols[0].dtype == np.uint16
    sig, ts, val, _ = buf.sort()
    np.testing.assert_array_equal(sig, np.repeat(np.arange(300), 2))
    np.testing.assert_array_equal(ts, np.tile([100.0, 101.0], 300))
    np.testing.assert_array_equal(val, sig * 1.5)
    mixed = np.array([7.0, 5.0, 7.0])  # one message with readings of two times: two stamps
    buf.replace((np.array([1, 2, 3], np.int32), mixed, np.ones(3), np.zeros(3, np.uint8)))
    assert buf._n_stamps == 2
    np.testing.assert_array_equal(buf.columns()[1], mixed)
    np.testing.assert_array_equal(buf.columns(1)[1], mixed[1:])


def test_capacity_is_kept_between_minutes_and_given_back_after_a_burst() -> None:
    buf = ReadingBuffer()
    one = (np.zeros(1000, np.int32), np.arange(1000.0), np.ones(1000), np.zeros(1000, np.uint8))
    for _ in range(10):
        buf.append(*one)
    capacity = len(buf._cols[1])
    assert capacity >= 10_000
    buf.replace(tuple(c[:10] for c in one))  # a close keeps a few readings
    assert len(buf) == 10 and len(buf._cols[1]) == capacity  # held 10,000: capacity stays
    buf.replace(tuple(c[:10] for c in one))  # now it held 10: more than 4x that is given back
    assert len(buf._cols[1]) < capacity
    np.testing.assert_array_equal(buf.columns()[1], np.arange(10.0))


def test_saved_marks_what_an_incremental_checkpoint_has() -> None:
    buf = ReadingBuffer()
    buf.append(np.array([1], np.int32), np.array([5.0]), np.array([1.0]), np.array([0], np.uint8))
    buf.saved = len(buf)
    buf.append(np.array([0], np.int32), np.array([6.0]), np.array([2.0]), np.array([0], np.uint8))
    assert buf.saved == 1
    buf.sort()
    assert buf.saved == 0  # the order changed: everything is new to the next checkpoint


def test_equal_signal_configs_are_one_object() -> None:
    s = GatewaySettings(
        site={"name": "x"},
        signals={"a": {"unit": "t/h"}, "b": {"unit": "t/h"}, "c": {"unit": "kW"}},
    )
    assert s.signals["a"] is s.signals["b"]
    assert s.signals["c"] is not s.signals["a"] and s.signals["c"].unit == "kW"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux")
def test_run_sets_its_memory_options() -> None:
    code = (
        "from gateway.core.memory import disable_huge_pages, pin_mmap_threshold\n"
        "ok = disable_huge_pages()\n"
        "line = [l for l in open('/proc/self/status') if l.startswith('THP_enabled')]\n"
        "print(ok, line[0].split()[1] if line else 'absent', pin_mmap_threshold())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    ok, thp, pinned = out
    assert ok == "True"
    assert thp in ("0", "absent")  # kernels before 6.0 have no THP_enabled line
    if platform.libc_ver()[0] == "glibc":  # musl has no mallopt threshold to fix
        assert pinned == "True"


def test_a_batch_in_time_order_gets_the_stamps_np_unique_gives() -> None:
    ts = np.repeat([60.0, 120.0, 180.0, 240.0], 5)  # a replay's feed: each time's readings together
    sig = np.tile(np.arange(5, dtype=np.int32), 4)
    sorted_buf, shuffled_buf = ReadingBuffer(), ReadingBuffer()
    sorted_buf.append(sig[:1], np.array([30.0]), np.ones(1), np.zeros(1, np.uint8))  # a stamp held before
    sorted_buf.append(sig, ts, ts * 2, np.zeros(len(ts), np.uint8))
    assert sorted_buf._n_stamps == 5
    np.testing.assert_array_equal(sorted_buf._stamps[:5], [30.0, 60.0, 120.0, 180.0, 240.0])
    np.testing.assert_array_equal(sorted_buf.columns(1)[1], ts)
    order = np.random.default_rng(3).permutation(len(ts))  # the same readings out of order: np.unique's way
    shuffled_buf.append(sig[:1], np.array([30.0]), np.ones(1), np.zeros(1, np.uint8))
    shuffled_buf.append(sig[order], ts[order], ts[order] * 2, np.zeros(len(ts), np.uint8))
    for a, b in zip(sorted_buf.sort(), shuffled_buf.sort(), strict=True):
        np.testing.assert_array_equal(a, b)
