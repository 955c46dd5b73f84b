"""RequestDeadline: asyncio.timeout's semantics for back-to-back requests, on one timer."""

from __future__ import annotations

import asyncio

import pytest

from gateway.sources.pymodbus_client import RequestDeadline


async def reply_after(delay_s: float, value: int = 1) -> int:
    await asyncio.sleep(delay_s)
    return value


async def test_a_request_within_its_limit_returns_its_result() -> None:
    assert await RequestDeadline().bound(reply_after(0.0, 7), 1.0) == 7


async def test_a_request_past_its_limit_raises_timeout_and_leaves_the_task_uncancelled() -> None:
    deadline = RequestDeadline()
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await deadline.bound(reply_after(5.0), 0.05)
    assert 0.04 <= asyncio.get_running_loop().time() - started < 1.0
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    assert await deadline.bound(reply_after(0.0, 3), 1.0) == 3  # usable again


async def test_back_to_back_requests_share_one_timer() -> None:
    deadline = RequestDeadline()
    await deadline.bound(reply_after(0.0), 10.0)
    timer = deadline._handle
    for _ in range(50):
        await deadline.bound(reply_after(0.0), 10.0)
    assert deadline._handle is timer and timer is not None and not timer.cancelled()


async def test_a_late_timer_from_an_earlier_request_does_not_cut_the_current_one_short() -> None:
    deadline = RequestDeadline()
    await deadline.bound(reply_after(0.0), 0.05)  # leaves a timer due in 0.05 s
    await asyncio.sleep(0.03)
    # due at +0.05 s, this request runs to +0.09 s within its own 0.1 s limit
    assert await deadline.bound(reply_after(0.06, 5), 0.1) == 5


async def test_a_shorter_limit_rearms_the_timer_earlier() -> None:
    deadline = RequestDeadline()
    await deadline.bound(reply_after(0.0), 30.0)  # a timer 30 s out
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(deadline.bound(reply_after(5.0), 0.05), 2.0)


async def test_an_outside_cancel_is_a_cancel_not_a_timeout() -> None:
    deadline = RequestDeadline()
    task = asyncio.create_task(deadline.bound(reply_after(5.0), 10.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not deadline.busy


async def test_an_outside_cancel_at_the_moment_of_expiry_is_not_swallowed() -> None:
    deadline = RequestDeadline()
    task = asyncio.create_task(deadline.bound(reply_after(5.0), 0.05))
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, task.cancel)  # due in the same loop iteration as the deadline, or next to it
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
