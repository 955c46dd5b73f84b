"""The minute window closes the same minutes whether it closes one at a time (live) or many
at once (replay), and counts late readings instead of folding them in."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.core.model import SampleBatch, SampleQuality
from gateway.core.signals import SignalTable
from gateway.settings.site import GatewaySettings, WindowConfig
from gateway.stages.minute import MinuteWindow
from tests.factories import site_settings

T0 = 1_700_000_040.0  # a minute boundary


def settings() -> GatewaySettings:
    return site_settings(
        "t",
        signals={
            "fuel": {"kind": "rate", "unit": "t/h", "max_gap_s": 3.0},
            "meter": {"kind": "counter", "unit": "kWh", "counter_bits": 16},
        },
    )


def batches(n_minutes: int, seed: int = 1) -> list[SampleBatch]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_minutes * 60 + 5):
        t = T0 + k
        fuel = 60.0 + rng.normal(0, 2)
        meter = (1000 + 2 * k) % 65536
        good = k % 97 != 13  # an occasional comm error
        values = np.array([fuel if good else np.nan, float(meter)])
        quality = np.array([SampleQuality.GOOD if good else SampleQuality.COMM_ERROR, SampleQuality.GOOD], dtype=np.uint8)
        out.append(SampleBatch("dev", np.array([0, 1], np.int32), np.array([t, t]), values, quality))
    return out


def window() -> MinuteWindow:
    s = settings()
    return MinuteWindow(SignalTable.from_settings(s), WindowConfig(delay_s=2.0), next_minute=T0)


def test_live_and_batch_close_identically() -> None:
    data = batches(10)
    live, batch = window(), window()
    live_frames = []
    for b in data:
        live.ingest(b)
        frame = live.close_due(float(b.ts[0]))
        if frame is not None:
            live_frames.append(frame)
    for b in data:
        batch.ingest(b)
    whole = batch.close(batch.due(float(data[-1].ts[0])))
    assert len(whole.starts) == sum(len(f.starts) for f in live_frames) == 10
    for name in ("fuel", "meter"):
        live_amount = np.concatenate([f.signals[name].amount for f in live_frames])
        np.testing.assert_allclose(live_amount, whole.signals[name].amount, rtol=1e-12)
        live_q = np.concatenate([f.signals[name].quality for f in live_frames])
        np.testing.assert_array_equal(live_q, whole.signals[name].quality)


def test_constant_rate_gives_exact_minute_amount() -> None:
    w = window()
    for k in range(0, 130):
        t = T0 + k
        w.ingest(SampleBatch("dev", np.array([0], np.int32), np.array([t]), np.array([60.0]), np.array([0], np.uint8)))
    frame = w.close(2)
    # 60 t/h for 60 s = 1 t, fully covered
    np.testing.assert_allclose(frame.signals["fuel"].amount, [1.0, 1.0])
    np.testing.assert_allclose(frame.signals["fuel"].coverage, [1.0, 1.0])


def test_counter_wrap_across_minutes() -> None:
    w = window()
    for k in range(0, 125):
        value = (65530 + k) % 65536  # wraps at k = 6
        w.ingest(
            SampleBatch("dev", np.array([1], np.int32), np.array([T0 + k]), np.array([float(value)]), np.array([0], np.uint8))
        )
    frame = w.close(2)
    np.testing.assert_allclose(frame.signals["meter"].amount, [60.0, 60.0])
    assert frame.signals["meter"].resets.tolist() == [0, 0]


def test_a_counter_keeps_its_base_when_a_close_ends_on_a_bad_reading() -> None:
    """A counter skips bad readings, so its base is its last GOOD reading: the window keeps that
    one across a close too. Here the reading at 58 s fails and the next one comes at 64 s, after
    minute 0 closed (62 s): minute 1 still gets the 4 of the 8 counts (56 s -> 64 s) that fall
    after 60 s, as a close of both minutes at once gives."""
    good, bad = SampleQuality.GOOD, SampleQuality.COMM_ERROR
    readings = [(k, float(1000 + k), good) for k in range(0, 57, 2)] + [(58, np.nan, bad)]
    readings += [(k, float(1000 + k), good) for k in range(64, 130, 2)]

    def feed(w: MinuteWindow, since_s: float, until_s: float) -> None:
        for k, value, q in readings:
            if since_s <= k < until_s:
                w.ingest(
                    SampleBatch("dev", np.array([1], np.int32), np.array([T0 + k]), np.array([value]), np.array([q], np.uint8))
                )

    live, whole = window(), window()
    feed(live, 0, 62.5)
    first = live.close_due(T0 + 62.5)
    feed(live, 62.5, 200)
    second = live.close(1)
    feed(whole, 0, 200)
    both = whole.close(2)
    assert first is not None
    for field in ("amount", "coverage", "quality"):
        got = np.concatenate([getattr(first.signals["meter"], field), getattr(second.signals["meter"], field)])
        np.testing.assert_array_equal(got, getattr(both.signals["meter"], field))
    # minute 0: 56 counts to 56 s; its last 4 s came too late, so it is scaled from 56 s of 60
    np.testing.assert_allclose(both.signals["meter"].amount, [56 * 60 / 56, 60.0])
    np.testing.assert_allclose(both.signals["meter"].coverage, [56 / 60, 1.0])


def test_late_readings_are_counted_not_used() -> None:
    w = window()
    for k in range(0, 65):
        w.ingest(SampleBatch("dev", np.array([0], np.int32), np.array([T0 + k]), np.array([60.0]), np.array([0], np.uint8)))
    first = w.close(1)
    w.ingest(SampleBatch("dev", np.array([0], np.int32), np.array([T0 + 30.5]), np.array([9999.0]), np.array([0], np.uint8)))
    assert w.counters.late == 1
    np.testing.assert_allclose(first.signals["fuel"].amount, [1.0])


@pytest.mark.parametrize("bad_start", [T0 + 1.0, T0 + 30.0])
def test_window_must_start_on_a_minute(bad_start: float) -> None:
    with pytest.raises(ValueError, match="minute boundary"):
        MinuteWindow(SignalTable.from_settings(settings()), WindowConfig(), next_minute=bad_start)
