"""bench.soak's own parts: the growth fit across kill -9 restarts and the silent-device relay."""

from __future__ import annotations

import asyncio

import pytest

from bench.soak import DAY_S, HOUR_S, WARMUP_S, Sample, SilentRelay, growth_per_day


def test_growth_is_fitted_per_process_so_a_restart_is_not_a_drop() -> None:
    # two processes, each starting at 70 MB and growing 2 MB a day; a restart falls back to 70 MB
    starts = {1: 0.0, 2: 2 * DAY_S}
    samples = [
        Sample(t, pid, int((70 + 2 * (t - starts[pid]) / DAY_S) * 1024), 20, 15.0)
        for pid, (a, b) in ((1, (0, 2 * DAY_S)), (2, (2 * DAY_S, 4 * DAY_S)))
        for t in [a + h * HOUR_S for h in range(int((b - a) / HOUR_S))]
    ]
    assert growth_per_day(samples, starts, DAY_S, "rss_kb") == pytest.approx(2 * 1024, rel=1e-3)
    assert growth_per_day(samples, starts, DAY_S, "fds") == 0.0
    # one fit over all samples would see the restart's fall as shrinking memory
    assert growth_per_day([s for s in samples if s.pid == 1], starts, 0.0, "rss_kb") == pytest.approx(2 * 1024, rel=1e-3)


def test_growth_leaves_out_each_process_warm_up() -> None:
    starts = {1: 0.0}
    # 30 MB of start-up in the first hour, flat afterwards
    samples = [Sample(h * HOUR_S, 1, (40 if h == 0 else 70) * 1024, 20, None) for h in range(48)]
    assert WARMUP_S >= HOUR_S
    assert growth_per_day(samples, starts, 0.0, "rss_kb") == pytest.approx(0.0, abs=1e-9)
    assert growth_per_day(samples, starts, 0.0, "tasks") is None  # never scraped


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
