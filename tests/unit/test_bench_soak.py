"""bench.soak's own parts: the growth fits across kill -9 restarts and the silent-device relay."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from bench.soak import DAY_S, HOUR_S, WARMUP_S, Sample, SilentRelay, growth, growth_per_day


def _daily_processes(days: int, level_mb: Callable[[int, float], float]) -> tuple[list[Sample], dict[int, float]]:
    """A process a day (a kill at the same hour), sampled hourly; RSS from level_mb(day, hours since start)."""
    starts = {d + 1: d * DAY_S for d in range(days)}
    samples = [
        Sample(starts[d + 1] + h * HOUR_S, d + 1, int(level_mb(d, h) * 1024), 20, 15.0) for d in range(days) for h in range(24)
    ]
    return samples, starts


def test_a_fresh_process_rising_to_its_high_water_mark_each_day_is_no_growth() -> None:
    # each day's process starts at 70 MB and rises to 90 MB: the same every day
    samples, starts = _daily_processes(7, lambda d, h: 70 + 20 * min(h, 12) / 12)
    g = growth(samples, starts, 0.0, DAY_S)
    assert g["soak_rss_mb_growth_per_day"] == pytest.approx(0.0, abs=1e-6)
    assert g["soak_fds_growth_per_day"] == 0.0
    assert g["soak_rss_mb_within_process_per_day"] > 10  # the other fit sees the rise inside each process


def test_what_survives_the_restarts_is_growth() -> None:
    # the same daily shape, each day's process 1.5 MB above the day before's (say a cache loaded from the ledger)
    samples, starts = _daily_processes(7, lambda d, h: 70 + 1.5 * d + 20 * min(h, 12) / 12)
    g = growth(samples, starts, 0.0, DAY_S)
    assert g["soak_rss_mb_growth_per_day"] == pytest.approx(1.5, rel=1e-3)


def test_a_leak_inside_one_process_is_growth_in_both_fits() -> None:
    # --no-kill: one process gaining 2 MB a day, 30 MB of start-up in its first hour
    samples = [Sample(h * HOUR_S, 1, int(((40 if h == 0 else 70) + 2 * h / 24) * 1024), 20, None) for h in range(7 * 24)]
    g = growth(samples, {1: 0.0}, 0.0, DAY_S)
    assert g["soak_rss_mb_growth_per_day"] == pytest.approx(2.0, rel=1e-2)
    assert g["soak_rss_mb_within_process_per_day"] == pytest.approx(2.0, rel=1e-2)
    assert g["soak_tasks_growth_per_day"] is None  # never scraped


def test_one_fit_per_process_so_a_restart_is_not_a_drop() -> None:
    starts = {1: 0.0, 2: 2 * DAY_S}
    samples = [
        Sample(t, pid, int((70 + 2 * (t - starts[pid]) / DAY_S) * 1024), 20, 15.0)
        for pid, (a, b) in ((1, (0, 2 * DAY_S)), (2, (2 * DAY_S, 4 * DAY_S)))
        for t in [a + h * HOUR_S for h in range(int((b - a) / HOUR_S))]
    ]
    assert growth_per_day(samples, lambda s: s.pid, "rss_kb") == pytest.approx(2 * 1024, rel=1e-3)
    # one group for all samples would count the restart's fall against the growth: a quarter of it
    assert growth_per_day(samples, lambda s: 0, "rss_kb") == pytest.approx(0.5 * 1024, rel=1e-2)
    assert WARMUP_S >= HOUR_S


async def test_relay_forwards_until_silent_then_answers_nothing() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(100):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, SilentRelay(port) as relay:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.read(100), 2) == b"ping"
        relay.silent = True
        writer.write(b"lost")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(100), 0.3)
        relay.silent = False
        writer.write(b"back")
        assert await asyncio.wait_for(reader.read(100), 2) == b"back"
        writer.close()
