"""The mixed plant: a site with every kind of trouble, second by second over 24 minutes.

Rate signals with gaps (last_good, hour_average, none), a step signal, a 16-bit counter that
wraps and is reset, interval totals, an instant signal, bad and late readings, a re-delivered
batch, estimated streams, a carbon balance that goes negative, and a lab factor that takes over
mid-run. Readings come from integer arithmetic only, so they are the same on every platform.

tests/unit/test_minute_frame.py pins the minute results it gives (tests/cases/minutes/mixed_plant.json);
tests/unit/test_ledger_checkpoint.py restarts a window on it. Change a reading here and the pinned
file changes with it.
"""

from __future__ import annotations

import numpy as np

from gateway.core.model import SampleBatch, SampleQuality
from gateway.core.signals import SignalTable
from gateway.settings.site import GatewaySettings
from tests.factories import site_settings

T0 = 1_767_225_600.0  # 2026-01-01T00:00Z
MINUTES = 24


def settings() -> GatewaySettings:
    """The plant's site: nine signals, ten streams, a lab factor valid from 00:17."""
    return site_settings(
        "mixed",
        window={"delay_s": 2.0},
        signals={
            "coke": {"unit": "t/h", "substitution": "last_good"},
            "gas": {"unit": "Nm3/h", "integration": "left", "substitution": "hour_average", "max_gap_s": 5.0},
            "power": {
                "kind": "counter",
                "unit": "kWh",
                "counter_bits": 16,
                "substitution": "hour_average",
                "max_rate_per_s": 50.0,
            },
            "steam": {"kind": "interval_total", "unit": "GJ", "interval_s": 300.0},
            "temp": {"kind": "instant", "unit": "degC"},
            "ore": {"unit": "t/h"},
            "bof_in": {"unit": "t/h"},
            "bof_out": {"unit": "t/h", "substitution": "none"},
            "lime": {"unit": "t/h", "substitution": "hour_average"},
        },
        streams=[  # not in signal order, and one signal feeding two streams
            {
                "process": "bof",
                "stream": "out",
                "signal": "bof_out",
                "method": "carbon_balance",
                "factor": "cn.crude_steel",
                "sign": -1,
            },
            {"process": "sinter", "stream": "coke", "signal": "coke", "method": "fuel_combustion", "factor": "cn.coke"},
            {
                "process": "bf",
                "stream": "coke",
                "signal": "coke",
                "method": "fuel_combustion",
                "factor": "cn.coke",
                "estimated": True,
            },
            {"process": "coke", "stream": "gas", "signal": "gas", "method": "fuel_combustion", "factor": "cn.cog"},
            {
                "process": "site",
                "stream": "power",
                "signal": "power",
                "method": "electricity",
                "factor": "cn.grid.2022.national_avg",
            },
            {"process": "site", "stream": "steam", "signal": "steam", "method": "heat", "factor": "cn.heat.default"},
            {"process": "bf", "stream": "ore", "signal": "ore", "method": "material", "factor": "cn.pig_iron", "estimated": True},
            {"process": "bof", "stream": "in", "signal": "bof_in", "method": "carbon_balance", "factor": "cn.pig_iron"},
            {"process": "lime", "stream": "kiln", "signal": "lime", "method": "carbonate", "factor": "cn.limestone"},
        ],
        factors={
            "overrides": [
                {
                    "id": "site.coke.lab",
                    "overrides": "cn.coke",
                    "ncv_gj_per_unit": 29.1,
                    "source": "lab report",
                    "year": 2026,
                    "status": "confirmed",
                    "valid_from": "2026-01-01T00:17:00+00:00",
                }
            ]
        },
    )


def _noise(k: int, i: int) -> float:
    """A deterministic wobble in [-0.5, 0.5)."""
    return ((k * 7919 + i * 104729) % 1000) / 1000.0 - 0.5


def _reading(name: str, k: int, i: int) -> tuple[float, int] | None:
    """Signal `name`'s reading at second k (value, quality), or None when it sends nothing."""
    m = k // 60
    good = SampleQuality.GOOD
    if name == "coke":
        if 5 <= m < 8 or k % 53 == 0:  # an outage, and a reading now and then that never came
            return None
        if k % 41 == 0:
            return np.nan, SampleQuality.COMM_ERROR
        return 30.0 + 2.0 * _noise(k, i), (SampleQuality.OUT_OF_RANGE if k % 67 == 0 else good)
    if name == "gas":
        if k % 3 or 12 <= m < 15 or (20 <= m < 21 and k % 60 > 20):
            return None
        return 500.0 + 10.0 * (k // 90), good
    if name == "power":
        if k % 2 or 22 <= m < 24:
            return None
        if k >= 900:  # meter swapped at second 900: counts from 0 again
            return float((5 * (k - 900)) % 65536), good
        return float((65000 + 25 * k) % 65536), good  # wraps at 2**16
    if name == "steam":
        return (100.0 + m, good) if k % 300 == 0 else None
    if name == "temp":
        return 1500.0 + _noise(k, i), good
    if name == "ore":
        return None if m == 10 else (200.0 + 5.0 * _noise(k, i), good)
    if name == "bof_in":
        # negative while it blows out, within the zero drift a t/h meter may show (analytics/units.py)
        return 50.0 + 3.0 * _noise(k, i) - (52.0 if 16 <= m < 18 else 0.0), good
    if name == "bof_out":
        return None if 19 <= m < 21 else (40.0 + 2.0 * _noise(k, i), good)
    if name == "lime":
        if m in (9, 20):
            return None
        return (np.nan, SampleQuality.STALE) if m == 21 and k % 2 else (10.0 + 0.1 * _noise(k, i), good)
    raise AssertionError(name)


def batches() -> list[SampleBatch]:
    """One batch per second (signals in reverse id order), a late reading and a re-delivered batch."""
    table = SignalTable.from_settings(settings())
    out = []
    for k in range(MINUTES * 60 + 5):
        t = T0 + k + (0.0 if k % 300 == 0 else (k * 37 % 10) / 100.0)
        rows = [(i, r) for i in reversed(range(len(table))) if (r := _reading(table.names[i], k, i)) is not None]
        batch = SampleBatch(
            "dev",
            np.array([i for i, _ in rows], np.int32),
            np.full(len(rows), t),
            np.array([r[0] for _, r in rows]),
            np.array([r[1] for _, r in rows], np.uint8),
        )
        out.append(batch)
        if k % 97 == 5 and k > 200:
            late = SampleBatch(
                "mqtt", np.array([table.id("coke")], np.int32), np.array([t - 150.0]), np.array([31.0]), np.zeros(1, np.uint8)
            )
            out += [late, batch]
    return out
