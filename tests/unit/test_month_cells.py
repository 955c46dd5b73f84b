"""The day starts the archive's stored cells are counted in: local days, 23 or 25 hours long
across a daylight-saving change, and the same floats as the CBAM period's days."""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

from gateway.export.cbam import period_of
from gateway.ledger.month_cells import day_starts


def test_days_of_months_across_daylight_saving_changes() -> None:
    starts = day_starts("2026-03", "2026-04", "Europe/Berlin")
    assert len(starts) == 31 + 30 + 1
    assert starts[0] == datetime(2026, 3, 1, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
    assert starts[-1] == datetime(2026, 5, 1, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
    lengths = {b - a for a, b in pairwise(starts)}
    assert lengths == {86400.0, 82800.0}  # 29 March has 23 hours
    assert starts[29] - starts[28] == 82800.0


def test_a_year_ends_at_the_next_january_and_matches_the_period_days() -> None:
    starts = day_starts("2026-12", "2026-12", "Asia/Shanghai")
    assert starts[-1] == datetime(2027, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    assert starts == period_of("2026-12-01", "2026-12-31", "Asia/Shanghai").day_starts_s
