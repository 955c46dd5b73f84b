"""A fresh start begins at the next whole minute: the readings taken before it are not late (no
minute of theirs was closed) and give the first minute its left edge. After a restart on a
ledger that holds minutes, a reading for one of them is late as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analytics.substitution import MinuteQuality
from gateway.core.model import SampleBatch, SampleQuality
from gateway.pipeline import Gateway
from gateway.settings.site import GatewaySettings
from tests.factories import site_settings
from tests.support.clocks import ManualClock

T0 = 1_700_000_040.0  # a minute boundary


def _settings(ledger: Path) -> GatewaySettings:
    return site_settings(
        "t",
        ledger={"path": str(ledger)},
        signals={"p": {"kind": "rate", "unit": "kW"}},
        streams=[
            {"process": "eaf", "stream": "power", "signal": "p", "method": "electricity", "factor": "cn.grid.2023.national_avg"}
        ],
    )


def _reading(gw: Gateway, ts: float, kw: float = 600.0) -> SampleBatch:
    sid = gw.signals.id("p")
    return SampleBatch("dev", np.array([sid], np.int32), np.array([ts]), np.array([kw]), np.array([SampleQuality.GOOD], np.uint8))


async def test_the_first_readings_of_a_fresh_start_are_not_late(tmp_path: Path) -> None:
    clock = ManualClock(T0 + 37.0)  # started in the middle of a minute
    gw = Gateway.build(_settings(tmp_path / "l.sqlite"), clock=clock)
    assert gw.window.next_minute == T0 + 60.0 and gw.recovery is None
    for k in range(37, 125):  # one reading a second from the start
        clock.t = T0 + k
        gw.window.ingest(_reading(gw, T0 + k), now=clock.t)
    assert gw.window.counters.late == 0 and gw.window.counters.sources["dev"].late == 0
    frame = gw.window.close_due(clock.now())
    assert frame is not None and frame.starts.tolist() == [T0 + 60.0]
    p = frame.signals["p"]
    # the reading at T0 + 59 is the first minute's left edge: measured in full, 600 kW x 1 min
    assert p.quality.tolist() == [MinuteQuality.MEASURED] and p.coverage.tolist() == [1.0]
    np.testing.assert_allclose(p.amount, [10.0])
    await gw.on_frame(frame)
    gw.ledger.close()

    # a restart: the ledger holds T0 + 60, so a reading for it is late
    clock.t = T0 + 200.0
    again = Gateway.build(_settings(tmp_path / "l.sqlite"), clock=clock)
    assert again.window.next_minute == T0 + 120.0
    again.window.ingest(_reading(again, T0 + 90.0), now=clock.t)
    again.window.ingest(_reading(again, T0 + 130.0), now=clock.t)
    assert again.window.counters.late == 1
    again.ledger.close()
