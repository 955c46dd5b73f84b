"""Live closes and `emgate replay` give the same minutes for every kind of signal.

The issue promises that a replay runs exactly the code path of a live run. The window closes one
minute per call live and many per call in a replay, so this feeds the same readings both ways and
compares every signal's minutes (amount, coverage, quality, substitution rule, bad readings,
resets) and every emission row, to the last bit: rates (linear, polled slower than the window's
delay, and a step signal), a 16-bit counter that wraps, is reset and falls silent, interval totals
labelled at their end and at their start, with a missing and a failed row, and an instant signal,
through gaps long enough to be substituted. With delay_s 2 s the end-labelled totals arrive after
most of their minutes closed (those are substituted, live and replayed); with 300 s they are in time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from gateway.core.clock import ScaledClock
from gateway.core.model import MinuteResult, SampleBatch, SampleQuality
from gateway.pipeline import Gateway
from gateway.replay.engine import replay
from gateway.replay.inputs import read_inputs
from gateway.settings.site import GatewaySettings
from gateway.stages.minute import MinuteFrame
from tests.factories import site_settings

pytestmark = pytest.mark.integration

T0 = 1_767_225_600.0  # 2026-01-01T00:00Z
SECONDS = 32 * 60
FIELDS = ("amount", "coverage", "quality", "rule", "bad_samples", "resets")


def site(tmp_path: Path, delay_s: float) -> GatewaySettings:
    return site_settings(
        "kinds",
        window={"delay_s": delay_s},
        ledger={"path": str(tmp_path / "live.sqlite")},
        signals={
            "coke": {"unit": "t/h", "substitution": "last_good"},
            "ore": {"unit": "t/h", "max_gap_s": 21.0, "substitution": "hour_average"},
            "gas": {"unit": "Nm3/h", "integration": "left", "max_gap_s": 5.0, "substitution": "hour_average"},
            "power": {
                "kind": "counter",
                "unit": "kWh",
                "counter_bits": 16,
                "max_rate_per_s": 50.0,
                "substitution": "hour_average",
            },
            "steam": {"kind": "interval_total", "unit": "GJ", "interval_s": 300.0, "interval_label": "end"},
            "heat": {"kind": "interval_total", "unit": "GJ", "interval_s": 300.0, "interval_label": "start"},
            "temp": {"kind": "instant", "unit": "degC"},
        },
        streams=[
            {"process": "sinter", "stream": "coke", "signal": "coke", "method": "fuel_combustion", "factor": "cn.coke"},
            {"process": "bf", "stream": "ore", "signal": "ore", "method": "material", "factor": "cn.pig_iron"},
            {"process": "coke", "stream": "gas", "signal": "gas", "method": "fuel_combustion", "factor": "cn.cog"},
            {
                "process": "site",
                "stream": "power",
                "signal": "power",
                "method": "electricity",
                "factor": "cn.grid.2023.national_avg",
            },
            {"process": "site", "stream": "steam", "signal": "steam", "method": "heat", "factor": "cn.heat.default"},
            {"process": "site", "stream": "heat", "signal": "heat", "method": "heat", "factor": "cn.heat.default"},
        ],
    )


def reading(name: str, k: int) -> float | None:
    """Signal `name`'s reading at second k: a value, NaN for a failed read, None for no reading."""
    m = k // 60
    if name == "coke":  # every second; a few failed reads; silent in minutes 5-7
        return None if 5 <= m < 8 else (np.nan if k % 41 == 0 else 30.0 + (k * 7919 % 1000) / 500.0)
    if name == "ore":  # every 7 s: the reading after a minute's end often comes after its close
        return 200.0 + (k % 13) if k % 7 == 0 and not 16 <= m < 18 else None
    if name == "gas":  # a step signal every 3 s; silent from 12:57 to 15:00
        return 500.0 + 10.0 * (k // 90) if k % 3 == 0 and not (12 * 60 + 58 <= k < 15 * 60) else None
    if name == "power":  # every 2 s; wraps at 2**16; swapped at 900 s; silent from 20:30 to 22:10
        if k % 2 or 20 * 60 + 30 <= k < 22 * 60 + 10:
            return None
        return float((5 * (k - 900)) % 65536) if k >= 900 else float((65000 + 25 * k) % 65536)
    if name in ("steam", "heat"):  # one row per 5 minutes; a failed row, and steam's 15:00 row missing
        if k % 300 or (name == "steam" and (k == 0 or k == 900)):
            return None
        return np.nan if k == 1500 else 100.0 + m
    if name == "temp":
        return 1500.0 + (k % 17) / 10.0
    raise AssertionError(name)


def stamp(name: str, k: int) -> float:
    # interval rows carry their label time; polled readings a little jitter
    return T0 + k if name in ("steam", "heat") else T0 + k + (k * 37 % 10) / 100.0


def recording(frames: list[MinuteFrame], on_frame: Callable) -> Callable:
    async def record(self: Gateway, frame: MinuteFrame) -> None:
        frames.append(frame)
        await on_frame(self, frame)

    return record


def by_minute(frames: list[MinuteFrame]) -> dict[tuple[float, str], tuple[object, ...]]:
    out = {}
    for f in frames:
        for name, row in f.signals.items():
            columns = [getattr(row, field).tolist() for field in FIELDS]
            for i, start in enumerate(f.starts.tolist()):
                out[(start, name)] = tuple(c[i] for c in columns)
    return out


@pytest.mark.parametrize("delay_s", [2.0, 300.0])
@pytest.mark.parametrize("step_minutes", [1440, 7])
def test_live_and_replay_give_the_same_minutes_for_every_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, delay_s: float, step_minutes: int
) -> None:
    settings = site(tmp_path, delay_s)
    names = sorted(settings.signals)
    frames: dict[str, list[MinuteFrame]] = {"live": [], "replay": []}

    on_frame = Gateway.on_frame
    monkeypatch.setattr(Gateway, "on_frame", recording(frames["live"], on_frame))
    live = Gateway.build(settings, clock=ScaledClock(start=T0))
    live.window.next_minute = T0
    live_rows: list[MinuteResult] = []
    live.listeners.append(lambda results: live_rows.extend(results.rows()))

    async def run_live() -> None:
        for k in range(SECONDS):
            got = [(live.signals.id(n), stamp(n, k), v) for n in names if (v := reading(n, k)) is not None]
            values = np.array([v for *_, v in got])
            quality = np.where(np.isnan(values), SampleQuality.COMM_ERROR, SampleQuality.GOOD).astype(np.uint8)
            live.window.ingest(
                SampleBatch("dev", np.array([i for i, *_ in got], np.int32), np.array([t for _, t, _ in got]), values, quality)
            )
            frame = live.window.close_due(T0 + k + 0.5)
            if frame is not None:
                await live.on_frame(frame)

    asyncio.run(run_live())
    live.close()

    recorded = tmp_path / "recorded.csv"
    with recorded.open("w") as fh:
        fh.write("ts,signal,value\n")
        for k in range(SECONDS):
            for n in names:
                if (v := reading(n, k)) is not None:
                    fh.write(f"{stamp(n, k)!r},{n},{'' if np.isnan(v) else repr(v)}\n")
    replay_rows: list[MinuteResult] = []
    monkeypatch.setattr(Gateway, "on_frame", recording(frames["replay"], on_frame))
    series = read_inputs([recorded], settings)
    asyncio.run(replay(settings, series, tmp_path / "replayed", step_minutes=step_minutes, listeners=[lambda results: replay_rows.extend(results.rows())]))

    assert max(len(f.starts) for f in frames["live"]) == 1
    assert max(len(f.starts) for f in frames["replay"]) >= min(step_minutes, 32)
    closed, again = by_minute(frames["live"]), by_minute(frames["replay"])
    common = sorted(closed.keys() & again.keys())
    assert len(common) >= len(names) * (SECONDS // 60 - 6)
    for key in common:
        assert closed[key] == again[key], key
    live_by_key = {r.key(): r for r in live_rows}
    replay_by_key = {r.key(): r for r in replay_rows}
    both = live_by_key.keys() & replay_by_key.keys()
    assert len(both) >= len(settings.streams) * (SECONDS // 60 - 6)
    for key in sorted(both):
        assert live_by_key[key] == replay_by_key[key], key

    # the scenario reaches what it is meant to, in both runs
    minutes = [v for (_, name), v in closed.items() if name in ("coke", "gas", "power", "steam", "heat")]
    assert {"last_good", "hour_average"} <= {v[3] for v in minutes}
    assert sum(v[5] for (_, name), v in closed.items() if name == "power") == 1  # the meter swap
    # steam's 10:00 row covers minutes 5-9: with delay_s 2 s it comes after 5-8 closed
    steam = [closed[(T0 + 60.0 * m, "steam")][1] for m in range(5, 10)]
    assert steam == ([1.0] * 5 if delay_s >= 240 else [0.0] * 4 + [1.0])
