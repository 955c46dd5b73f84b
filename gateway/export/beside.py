"""Run one pure, CPU-bound step of the export in a forked child while this process goes on.

The export's last steps hold the GIL (matplotlib draws in Python and C++ without releasing it),
so threads cannot overlap them, and the machine's other CPUs sit idle. A forked child starts in
a millisecond with everything already imported and the step's inputs already in memory: the
chart renders there (0.4 s for a month of 100 streams) while the tables and the workbook are
built here.

Fork is only taken when it is safe: on a platform that has it, and when this process runs one
thread (a thread holding a lock at the fork would leave it held in the child; the export's
walk threads have ended by then, but a progress bar's refresh thread may not have). Otherwise,
or when the child fails in any way, the step runs here, in this process, so its errors surface
as they would without the child. The step must be a pure function of its inputs returning
bytes: it must write nothing and change no state the parent relies on.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection


def start(step: Callable[[], bytes]) -> Callable[[], bytes]:
    """Start `step` beside this process if it can be; returns a function giving its bytes."""
    if not hasattr(os, "fork") or threading.active_count() != 1:
        return step
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    # The child flushes the standard streams when it ends: what this process had buffered
    # would be written twice.
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    child = ctx.Process(target=_run, args=(step, send), daemon=True, name="export-beside")
    try:
        child.start()
    except OSError:  # no fork now (process limits, memory): the step runs here
        receive.close()
        send.close()
        return step
    send.close()

    def result() -> bytes:
        try:
            data = receive.recv_bytes()
        except (EOFError, OSError):  # the child failed: run the step here, where its error shows
            data = None
        finally:
            receive.close()
            child.join()
        return step() if data is None or child.exitcode != 0 else data

    return result


def _run(step: Callable[[], bytes], send: Connection) -> None:
    try:
        data = step()
    except BaseException:
        send.close()
        os._exit(1)  # the parent runs the step itself and reports the error
    send.send_bytes(data)
    send.close()
