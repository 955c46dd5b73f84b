"""MinuteHistory: the rolling hour, day/year totals in the site's zone, and seeding from a ledger."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.core.model import MinuteResult
from gateway.http.history import MinuteHistory
from gateway.ledger.store import Ledger
from tests.factories import minute_result, results_of

TZ = "Asia/Shanghai"


class FixedClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def real_delay(self, t: float) -> float:
        return t - self.t

    async def sleep_until(self, t: float) -> None:  # pragma: no cover - unused here
        self.t = max(self.t, t)


def local(y: int, mo: int, d: int, h: int, mi: int) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(TZ)).timestamp()


def result(
    start: float,
    process: str,
    co2_kg: float,
    *,
    stream: str = "s",
    scope: str = "direct",
    quality: str = "measured",
) -> MinuteResult:
    return minute_result(
        minute_start=start,
        process=process,
        stream=stream,
        scope=scope,
        activity=1.0,
        co2_kg=co2_kg,
        factor_id="f",
        ef_kg_per_unit=co2_kg,
        quality=quality,
    )


def test_minutes_sum_streams_per_process_and_keep_one_hour() -> None:
    t0 = local(2026, 11, 23, 10, 0)
    clock = FixedClock(t0)
    h = MinuteHistory(TZ, clock)
    for i in range(75):
        start = t0 + 60 * i
        clock.t = start + 62.5
        h(
            results_of(
                [
                    result(start, "bf", 10.0, stream="coke"),
                    result(start, "bf", 5.0, stream="pci"),
                    result(start, "lf", 2.0, scope="indirect", quality="partial"),
                ]
            )
        )
    assert len(h.minutes) == 60
    assert next(iter(h.minutes)) == t0 + 60 * 15
    series = h.series()
    assert series["co2_kg"]["bf"] == [15.0] * 60
    assert h.last_hour_kg() == {"bf": 900.0, "lf": 120.0}
    assert h.day_kg["bf"] == pytest.approx(75 * 15.0)
    assert h.scope_day_kg == {"direct": 75 * 15.0, "indirect": 150.0}
    assert h.last_quality == {"measured": 2, "partial": 1}
    assert h.close_lag.last_s == pytest.approx(2.5)
    assert h.close_lag.count == 75


def test_day_total_resets_at_local_midnight_and_year_total_at_new_year() -> None:
    # 23:59 and 00:00 in Shanghai are 15:59 and 16:00 UTC: the reset follows the site's zone
    before = local(2026, 12, 31, 23, 59)
    clock = FixedClock(before + 61)
    h = MinuteHistory(TZ, clock)
    h(results_of([result(before, "bf", 7.0)]))
    h(results_of([result(before + 60, "bf", 3.0)]))
    assert dict(h.day_kg) == {"bf": 3.0}
    assert dict(h.year_kg) == {"bf": 3.0}
    h(results_of([result(before + 120, "bf", 4.0)]))
    assert dict(h.day_kg) == {"bf": 7.0}
    assert h.series()["co2_kg"]["bf"] == [7.0, 3.0, 4.0]


def test_non_finite_co2_is_not_summed() -> None:
    t0 = local(2026, 11, 23, 10, 0)
    h = MinuteHistory(TZ, FixedClock(t0 + 70))
    h(results_of([result(t0, "bf", float("nan")), result(t0, "lf", 1.0)]))
    assert dict(h.day_kg) == {"lf": 1.0}


def test_seed_from_ledger_reads_current_rows_only(tmp_path) -> None:
    now = local(2026, 11, 23, 10, 30)
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    rows = [
        result(local(2026, 3, 1, 8, 0), "bf", 1000.0),  # this year, not today
        result(local(2026, 11, 23, 1, 0), "bf", 100.0),  # today, not last hour
        result(local(2026, 11, 23, 10, 0), "bf", 10.0),  # last hour
        result(local(2026, 11, 23, 10, 1), "lf", 2.0, scope="indirect"),
        result(local(2025, 12, 31, 23, 0), "bf", 99999.0),
    ]  # last year
    ledger.append(results_of(rows))
    old = ledger.reader.current_seq(local(2026, 11, 23, 10, 0), "bf", "s")
    assert old is not None
    ledger.correct([(old, result(local(2026, 11, 23, 10, 0), "bf", 12.0))], "lab NCV arrived")
    ledger.close()

    h = MinuteHistory(TZ, FixedClock(now))
    assert h.seed_from_ledger(path) == 2
    assert dict(h.year_kg) == {"bf": 1112.0, "lf": 2.0}
    assert dict(h.day_kg) == {"bf": 112.0, "lf": 2.0}
    assert dict(h.scope_day_kg) == {"direct": 112.0, "indirect": 2.0}
    assert h.series()["co2_kg"] == {"bf": [12.0, None], "lf": [None, 2.0]}
    # live minutes then add on top of the seed
    h(results_of([result(local(2026, 11, 23, 10, 2), "bf", 1.0)]))
    assert h.day_kg["bf"] == 113.0


def test_seed_from_missing_ledger_is_empty(tmp_path) -> None:
    h = MinuteHistory(TZ, FixedClock(0.0))
    assert h.seed_from_ledger(tmp_path / "none.sqlite") == 0
    assert h.series() == {"minute_start": [], "co2_kg": {}}
