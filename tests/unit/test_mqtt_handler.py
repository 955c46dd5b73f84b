"""MqttSource's message path without a broker: routing by wildcard, the three formats, quality,
per-topic bad-payload counts logged once, and a fuzz of thousands of random payloads."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import string

import numpy as np
import pytest

from gateway.core.clock import ScaledClock
from gateway.core.health import ComponentHealth
from gateway.core.model import SampleBatch, SampleQuality
from gateway.core.signals import SignalTable
from gateway.sources.mqtt import MqttSource
from tests.factories import site_settings


def make_source(queue_size: int = 100) -> tuple[MqttSource, asyncio.Queue[SampleBatch], SignalTable]:
    settings = site_settings(
        "t",
        signals={
            "flow": {"unit": "t/h"},
            "temp": {"unit": "t/h"},
            "power": {"unit": "kW"},
            "gas.flow": {"unit": "t/h"},
        },
        mqtt={
            "brokers": [
                {
                    "name": "b",
                    "subscriptions": [
                        {
                            "topic": "plant/+/flow",
                            "format": "json",
                            "fields": {"data.flow": "flow", "t": "temp"},
                        },
                        {"topic": "plant/meter/#", "format": "number", "signal": "power"},
                        {"topic": "lp/#", "format": "line_protocol"},
                    ],
                }
            ]
        },
    )
    signals = SignalTable.from_settings(settings)
    queue: asyncio.Queue[SampleBatch] = asyncio.Queue(maxsize=queue_size)
    src = MqttSource(
        settings.mqtt.brokers[0],
        signals,
        queue,
        ScaledClock(start=1000.0, speed=1e-9),
        ComponentHealth("mqtt[b]"),
        site=settings.site.name,
    )
    return src, queue, signals


def test_routes_by_wildcard_and_parses_each_format() -> None:
    src, queue, signals = make_source()
    assert src.handle("plant/bf1/flow", b'{"data": {"flow": 12.5}, "t": 80}') == 2
    assert src.handle("plant/meter/a/b", b" 42.0 ") == 1
    assert src.handle("lp/x", b'gas flow=3.5 1700000000000000000\ngas,host=a note="s"') == 1
    assert src.handle("other/topic", b"1") == 0
    batch = src.flush()
    assert batch is not None and queue.get_nowait() is batch
    names = [signals.names[i] for i in batch.signal_ids]
    assert names == ["flow", "temp", "power", "gas.flow"]
    assert batch.values.tolist() == [12.5, 80.0, 42.0, 3.5]
    assert batch.ts[-1] == 1_700_000_000.0 and batch.ts[0] == pytest.approx(1000.0)
    assert batch.quality.tolist() == [SampleQuality.GOOD] * 4
    assert src.counters.unmatched == 1 and src.counters.samples == 4


def test_retained_messages_are_stale() -> None:
    src, _, _ = make_source()
    src.handle("plant/meter/x", b"7", retained=True)
    batch = src.flush()
    assert batch is not None and batch.quality.tolist() == [SampleQuality.STALE]


def test_bad_payloads_are_counted_per_topic_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    src, _, _ = make_source()
    with caplog.at_level(logging.WARNING, logger="gateway.sources.mqtt"):
        for _ in range(50):
            src.handle("plant/a/flow", b"{not json")
            src.handle("plant/meter/m", b"NaN")
        src.handle("plant/a/flow", b'{"data": {"flow": 1}}')
    assert src.counters.bad_payloads == {"plant/a/flow": 50, "plant/meter/m": 50}
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 2
    assert "plant/a/flow" in logged[0] and "invalid JSON" in logged[0] and "json" in logged[0]
    assert src.counters.samples == 1


def test_a_full_pipeline_queue_drops_and_counts_batches() -> None:
    src, queue, _ = make_source(queue_size=1)
    for _ in range(3):
        src.handle("plant/meter/x", b"1")
        src.flush()
    assert queue.qsize() == 1 and src.counters.dropped_batches == 2


def _random_json(rng: random.Random, depth: int = 0) -> object:
    choice = rng.randrange(8 if depth < 4 else 5)
    if choice == 0:
        return rng.uniform(-1e308, 1e308)
    if choice == 1:
        return rng.randint(-(2**70), 2**70)
    if choice == 2:
        return "".join(rng.choices(string.printable, k=rng.randrange(6)))
    if choice == 3:
        return rng.choice([None, True, False])
    if choice == 4:
        return rng.choice([float("nan"), float("inf"), 1e400])
    if choice == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["data", "flow", "t", "x", ""]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def test_fuzz_thousands_of_random_payloads_never_raise() -> None:
    rng = random.Random(20261123)
    src, queue, _ = make_source(queue_size=100_000)
    topics = ["plant/a/flow", "plant/meter/q", "lp/z", "nowhere"]
    lp_bits = [
        "gas",
        " ",
        "flow=",
        "1",
        "2.5",
        "i",
        "u",
        ",",
        "=",
        '"',
        "\\",
        "\n",
        "true",
        "1e999",
        "-",
        "#",
        "x=y",
    ]
    n = 6000
    for i in range(n):
        kind = i % 4
        if kind == 0:
            payload = rng.randbytes(rng.randrange(40))
        elif kind == 1:
            payload = json.dumps(_random_json(rng), allow_nan=True).encode()
        elif kind == 2:
            payload = "".join(rng.choices(lp_bits, k=rng.randrange(12))).encode()
        else:
            payload = rng.choice([b"", b" ", b"1e5", b"-0", b"\xff\xfe", b"12abc", b"{}", b"[]", b"nan"])
        src.handle(rng.choice(topics), payload, retained=rng.random() < 0.1)
        if i % 100 == 0:
            src.flush()
    src.flush()
    c = src.counters
    assert c.messages == n
    assert c.bad_total > n / 4  # most random payloads are unusable ...
    assert c.samples > 0  # ... and some are fine
    got = 0
    while not queue.empty():
        batch = queue.get_nowait()
        assert np.isfinite(batch.values).all() and np.isfinite(batch.ts).all()
        assert set(batch.quality.tolist()) <= {SampleQuality.GOOD, SampleQuality.STALE}
        got += len(batch.values)
    assert got == c.samples
