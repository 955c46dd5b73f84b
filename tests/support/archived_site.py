"""The archive tests' site: two streams (coke into the blast furnace, purchased electricity) over
three months, a minute every four hours, and in October a correction of an October minute."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.core.model import MinuteResult
from gateway.ledger.store import Ledger
from tests.factories import minute_result, results_of

TZ = ZoneInfo("Asia/Shanghai")
SITE = "test-works"
SITE_TOML = """
[site]
name = "test-works"
timezone = "Asia/Shanghai"

[ledger]
path = "{ledger}"

[signals."bf.coke_tph"]
kind = "rate"
unit = "t/h"

[signals."meter.energy_kwh"]
kind = "counter"
unit = "kWh"

[[streams]]
process = "blast_furnace"
stream = "coke"
signal = "bf.coke_tph"
method = "fuel_combustion"
factor = "cn.coke"

[[streams]]
process = "utilities"
stream = "purchased_electricity"
signal = "meter.energy_kwh"
method = "electricity"
factor = "cn.grid.2023.national_avg"
"""
MONTHS = ("2026-09", "2026-10", "2026-11")
STEP_MIN = 240  # six minutes a day per stream: three months stay small


def start_of(month: str) -> float:
    return datetime(int(month[:4]), int(month[5:]), 1, tzinfo=TZ).timestamp()


def minute(ts: float, process: str, **kw: Any) -> MinuteResult:
    if process == "utilities":
        base: dict[str, Any] = dict(
            stream="purchased_electricity", scope="indirect", method="electricity", activity=0.2, activity_unit="MWh",
            co2_kg=106.12, factor_id="cn.grid.2023.national_avg", ef_kg_per_unit=530.6,
        )  # fmt: skip
    else:
        base = dict(
            stream="coke", scope="direct", method="fuel_combustion", activity=0.5, activity_unit="t",
            co2_kg=1426.5, factor_id="cn.coke", ef_kg_per_unit=2853.0,
        )  # fmt: skip
    base.update(coverage=1.0, quality="measured", flags="")
    base.update(kw)
    return minute_result(minute_start=ts, site=SITE, process=process, **base)


def month_minutes(month: str) -> list[MinuteResult]:
    start, end = start_of(month), start_of({"2026-09": "2026-10", "2026-10": "2026-11", "2026-11": "2026-12"}[month])
    out: list[MinuteResult] = []
    for m in range(0, round((end - start) / 60), STEP_MIN):
        # a little variety in the amounts, so that the totals check more than a count
        out += [minute(start + 60 * m, "blast_furnace", co2_kg=1426.5 + (m % 7) * 0.1), minute(start + 60 * m, "utilities")]
    return out


def write_ledger(ledger: Path) -> None:
    """Three months of two streams, and in October a correction of an October minute."""
    lg = Ledger(ledger, site=SITE, clock=lambda: 1_800_000_000.0)
    try:
        for month in MONTHS[:2]:
            lg.append(results_of(month_minutes(month)))
        seq = lg.reader.current(from_s=start_of("2026-10"), to_s=start_of("2026-10") + 60)
        first_oct = next(iter(seq))[0]
        lg.correct([(first_oct, minute(start_of("2026-10"), "blast_furnace", co2_kg=1500.0))], "lab NCV")
        lg.append(results_of(month_minutes(MONTHS[2])))
    finally:
        lg.close()
