"""A cancelled read stays cancelled, even when its reply lands in the same loop iteration.

Regression for a pty test that stalled once inside pymodbus' transport: Python 3.11's
asyncio.wait_for returns the result instead of raising when the cancellation arrives after the
awaited future completed (bpo-42130), and pymodbus awaited every reply through
wait_for(timeout=...). A task cancelled at that moment went on as if nothing happened (a source
being shut down would keep polling). The adapter now gives pymodbus no timeout of its own (its
one timer is asyncio.timeout, which does not swallow), so the reply is awaited directly.

The race is made deterministic by blocking the event loop in the server's fill callback: when
the loop runs again, the reply bytes and the due cancel timer are handled in one iteration,
the reply first (I/O callbacks precede timers in asyncio's _run_once).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.sources.pymodbus_client import ModbusClient, RegisterServer
from tests.services.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

BLOCK_S = 0.2


def blocking_fill(function_code: int, address: int, count: int, registers: list[int]) -> None:
    time.sleep(BLOCK_S)  # holds the whole loop: reply and cancel become due together
    registers[:count] = range(1, count + 1)


async def test_a_cancel_that_meets_the_reply_is_not_swallowed() -> None:
    port = free_port()
    async with RegisterServer(port=port, fills={1: blocking_fill}, n_registers=8):
        client = ModbusClient(transport="tcp", port=port, timeout_s=5.0)
        await client.connect()
        try:
            swallowed = 0
            for _ in range(3):
                task = asyncio.create_task(client.read("holding", 0, 4, unit_id=1))
                loop = asyncio.get_running_loop()
                loop.call_later(BLOCK_S / 4, task.cancel)  # due while the loop is blocked
                try:
                    await task
                    swallowed += 1
                except asyncio.CancelledError:
                    pass
                assert task.cancelled() or swallowed
            assert swallowed == 0, f"{swallowed} of 3 cancelled reads returned as if not cancelled"
            # the link is still usable after the cancelled reads
            assert await client.read("holding", 0, 4, unit_id=1, timeout_s=2.0) == [1, 2, 3, 4]
        finally:
            client.close()
