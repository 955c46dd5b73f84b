"""A small MinuteWindow over rate signals, and batches of readings for it, for the checkpoint tests.

Shared by tests/unit/test_ledger_checkpoint.py (checkpoints and recovery) and
tests/unit/test_gateway_stop.py (the stop mark).
"""

from __future__ import annotations

import numpy as np

from gateway.core.model import SampleBatch, SampleQuality
from gateway.core.signals import SignalTable
from gateway.stages.minute import MinuteWindow
from tests.factories import T0, site_settings


def window(names: tuple[str, ...] = ("a", "b"), next_minute: float = T0) -> MinuteWindow:
    """A window of site "w" over rate signals `names` (t/h), its next minute to close `next_minute`."""
    settings = site_settings("w", signals={n: {"kind": "rate", "unit": "t/h"} for n in names})
    return MinuteWindow(SignalTable.from_settings(settings), settings.window, next_minute=next_minute)


def batch(w: MinuteWindow, name: str, ts: list[float], value: float = 6.0) -> SampleBatch:
    """Good readings of signal `name` at times `ts`, all of `value`."""
    n = len(ts)
    return SampleBatch(
        "dev",
        np.full(n, w.signals.id(name), np.int32),
        np.array(ts),
        np.full(n, value),
        np.full(n, SampleQuality.GOOD, np.uint8),
    )
