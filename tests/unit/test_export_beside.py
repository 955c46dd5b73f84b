"""gateway/export/beside.py: a step runs in a forked child when that is safe, here otherwise, and
a child's failure surfaces as the step's own error."""

import os
import threading

import pytest

from gateway.export import beside


def pid_bytes() -> bytes:
    return str(os.getpid()).encode()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_runs_in_a_child_when_this_process_has_one_thread() -> None:
    if threading.active_count() != 1:
        pytest.skip("the test runner keeps a thread of its own")
    result = beside.start(pid_bytes)
    assert result() != pid_bytes()  # the bytes came from another process


def test_runs_here_while_another_thread_lives() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert beside.start(pid_bytes)() == pid_bytes()
    finally:
        stop.set()
        other.join()


def test_a_failing_step_raises_its_own_error() -> None:
    calls: list[int] = []

    def step() -> bytes:
        calls.append(os.getpid())
        raise ValueError("cannot draw this month")

    result = beside.start(step)
    with pytest.raises(ValueError, match="cannot draw this month"):
        result()
    assert os.getpid() in calls  # run again here, where the error is raised to the caller
