"""The 40-day clock of the deposit: due dates, the watched months, what keeps a month open (read
from a real ledger file), and the alert stage's raise, escalation and clear of kind `deposit`."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from analytics import deposit_calendar as cal
from gateway.alerts.budget_stage import AlertStage
from gateway.alerts.deposit import DepositChecker, MonthDeposit, StreamMinutes, check_months
from gateway.ledger.alerts_table import AlertStore
from gateway.ledger.exports import ExportRecord, record_export
from gateway.ledger.reader import LedgerReader
from gateway.ledger.store import Ledger
from gateway.settings.alerts import AlertsConfig, DepositAlertConfig
from tests import factories

TZ = "Asia/Shanghai"


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(TZ)).timestamp()


@pytest.mark.parametrize(
    ("month", "due"),
    [
        ("2026-10", "2026-12-10"),  # 31 days
        ("2026-11", "2027-01-09"),  # 30 days
        ("2026-12", "2027-02-09"),  # across the year
        ("2027-02", "2027-04-09"),  # 28 days
        ("2028-02", "2028-04-09"),  # 29 days (leap year): Feb 29 + 40 days
    ],
)
def test_due_date_is_the_month_end_plus_40_days(month: str, due: str) -> None:
    assert cal.due_date(month).isoformat() == due


def test_month_bounds_are_local_midnights_and_follow_dst() -> None:
    start, end = cal.month_bounds_s("2026-11", TZ)
    assert datetime.fromtimestamp(start, ZoneInfo(TZ)).isoformat() == "2026-11-01T00:00:00+08:00"
    assert (end - start) / 3600 == 30 * 24
    start, end = cal.month_bounds_s("2026-03", "Europe/Berlin")
    assert (end - start) / 3600 == 31 * 24 - 1  # the spring-forward hour


def test_bad_month_text_is_named() -> None:
    with pytest.raises(ValueError, match="'2026-13' is not a month"):
        cal.due_date("2026-13")


def test_watched_months_start_and_end_on_the_configured_days() -> None:
    # October 2026 is due 2026-12-10: watched from 10 days before to 60 days after
    assert "2026-10" not in cal.watched_months(date(2026, 11, 29), 10, 60)
    assert "2026-10" in cal.watched_months(date(2026, 11, 30), 10, 60)
    assert "2026-10" in cal.watched_months(date(2027, 2, 8), 10, 60)
    assert "2026-10" not in cal.watched_months(date(2027, 2, 9), 10, 60)
    assert cal.watched_months(date(2026, 12, 7), 10, 0) == ["2026-10"]
    assert cal.watched_months(date(2026, 12, 7), 40, 0) == ["2026-10", "2026-11"]  # November due 2027-01-09


def _rows(month_start: float, n: int, **fields: object) -> list:
    return factories.minute_results(n, [{"process": "blast_furnace", "stream": "coke", **fields}], start=month_start, site="w")


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """October 2026: 30 coke minutes on the default factor, 10 with a lab result, 2 substituted
    minutes of an exempt natural gas stream, 5 minutes of purchased electricity."""
    path = tmp_path / "ledger.sqlite"
    t = at("2026-10-20T08:00:00")
    rows = _rows(t, 30) + _rows(t + 1800 * 60, 10, factor_id="lab:COKE-1")
    rows += factories.minute_results(
        2,
        [{"process": "rolling", "stream": "natural_gas", "factor_id": "cn.natural_gas", "quality": "substituted", "coverage": 0.2}],
        start=t,
        site="w",
    )
    rows += factories.minute_results(
        5, [{"process": "site", "stream": "power", "method": "electricity", "factor_id": "cn.grid.2022", "scope": "indirect"}], start=t, site="w"
    )
    lg = Ledger(path, site="w", exclusive=False)
    lg.append(factories.results_of(sorted(rows, key=lambda r: r.minute_start)))
    lg.close()
    return path


def test_a_month_lists_default_fuel_low_coverage_and_no_export(ledger: Path) -> None:
    cfg = DepositAlertConfig(lab_not_required=["rolling/natural_gas"])
    [oct_] = check_months(ledger, TZ, at("2026-12-05T12:00:00"), cfg)
    assert (oct_.month, oct_.due_date, oct_.days_left, oct_.minute_rows) == ("2026-10", "2026-12-10", 5, 47)
    assert oct_.default_fuel == (StreamMinutes("blast_furnace", "coke", 30, ("cn.coke",), 15.0),)  # 30 x 0.5 t
    assert oct_.low_coverage == (StreamMinutes("rolling", "natural_gas", 2),)
    assert not oct_.exported and not oct_.export_current
    assert oct_.open_items(cfg) == ["lab results", "low-coverage minutes", "export"]
    assert oct_.measure(cfg) == 1.0  # 5 days left: warning
    assert "1 fuel stream(s) on default factors awaiting lab results (blast_furnace/coke 30 min)" in oct_.message(cfg)
    assert "2 substituted or missing minute row(s) (accepted: 0)" in oct_.message(cfg)
    tolerant = DepositAlertConfig(lab_not_required=["rolling/natural_gas"], max_low_coverage_minutes=2)
    assert oct_.open_items(tolerant) == ["lab results", "export"]
    # electricity and a lab-result minute never count as awaiting a lab result; an exempt stream neither
    strict = DepositAlertConfig()
    [again] = check_months(ledger, TZ, at("2026-12-05T12:00:00"), strict)
    assert [s.key for s in again.default_fuel] == ["blast_furnace/coke", "rolling/natural_gas"]


def test_an_export_counts_until_the_month_changes(ledger: Path) -> None:
    cfg = DepositAlertConfig(lab_not_required=["rolling/natural_gas"], max_low_coverage_minutes=5)
    lg = Ledger(ledger, site="w", exclusive=False)
    head = lg.head_seq
    record_export(ledger, ExportRecord("2026-10", head, "0" * 64, "/tmp/out", at("2026-12-01T09:00:00")))
    [oct_] = check_months(ledger, TZ, at("2026-12-05T12:00:00"), cfg)
    assert oct_.exported and oct_.export_current and oct_.open_items(cfg) == ["lab results"]
    # a correction row (a restated minute) after the export makes it stale
    seq = lg.reader.current_seq(at("2026-10-20T08:00:00"), "blast_furnace", "coke")
    assert seq is not None
    fixed = _rows(at("2026-10-20T08:00:00"), 1, factor_id="lab:COKE-0")[0]
    lg.correct([(seq, fixed)], reason="lab result COKE-0")
    lg.close()
    [oct_] = check_months(ledger, TZ, at("2026-12-05T12:00:00"), cfg)
    assert oct_.exported and not oct_.export_current
    assert oct_.default_fuel[0].minutes == 29
    assert "exported before its last change" in oct_.message(cfg)


def test_an_unchanged_month_is_not_read_again(ledger: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[float] = []
    original = LedgerReader.factors_and_quality_between

    def counted(self: LedgerReader, since_s: float, until_s: float) -> list:
        reads.append(since_s)
        return original(self, since_s, until_s)

    monkeypatch.setattr(LedgerReader, "factors_and_quality_between", counted)
    checker = DepositChecker(ledger, TZ, DepositAlertConfig())
    first = checker.check(at("2026-12-05T12:00:00"))
    second = checker.check(at("2026-12-06T12:00:00"))
    assert len(reads) == 1  # the second check kept the month's findings
    assert (first[0].days_left, second[0].days_left) == (5, 4)
    assert second[0].default_fuel == first[0].default_fuel
    lg = Ledger(ledger, site="w", exclusive=False)
    lg.append(factories.results_of(_rows(at("2026-10-25T00:00:00"), 1)))  # a late minute changes the month
    lg.close()
    third = checker.check(at("2026-12-06T13:00:00"))
    assert len(reads) == 2 and third[0].default_fuel[0].minutes == first[0].default_fuel[0].minutes + 1


def test_a_month_without_minutes_is_not_watched(tmp_path: Path, ledger: Path) -> None:
    # November has no minute in this ledger: only October is reported, even with November watched
    assert [m.month for m in check_months(ledger, TZ, at("2026-12-05T12:00:00"), DepositAlertConfig(warn_days_before_due=40))] == ["2026-10"]


def _month(days_left: int, *, fuel: int = 0, exported: bool = False) -> MonthDeposit:
    return MonthDeposit(
        month="2026-10",
        due_date="2026-12-10",
        days_left=days_left,
        minute_rows=100,
        default_fuel=(StreamMinutes("bf", "coke", fuel, ("cn.coke",), 1.0),) if fuel else (),
        exported=exported,
        export_current=exported,
    )


def test_the_stage_raises_escalates_and_clears_one_alert_per_month(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "ledger.sqlite")
    stage = AlertStage("w", TZ, None, AlertsConfig(enabled=True), store)
    t = at("2026-12-05T12:00:00")
    stage.observe_deposit([_month(5, fuel=30)], t)
    [raised] = stage.active()
    assert (raised.kind, raised.subject, raised.severity, raised.state) == ("deposit", "2026-10", "warning", "raised")
    assert raised.details["open"] == ["lab results", "export"] and raised.details["figure"] == 31.0
    stage.observe_deposit([_month(5, fuel=30)], t + 3600)  # nothing changed: no event
    stage.observe_deposit([_month(2, fuel=30)], t + 3 * 86400)  # 2 days left: critical at once
    [critical] = stage.active()
    assert (critical.id, critical.state, critical.severity) == (raised.id, "updated", "critical")
    stage.observe_deposit([_month(1, exported=True)], t + 4 * 86400)
    assert stage.active() == []
    events = store.events()
    assert [(e.state, e.severity) for e in events] == [("raised", "warning"), ("updated", "critical"), ("cleared", "critical")]
    assert "complete" in events[-1].message
    assert stage.deposits[0]["open"] == []
    store.close()


def test_a_month_no_longer_watched_clears_with_its_reason(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "ledger.sqlite")
    stage = AlertStage("w", TZ, None, AlertsConfig(enabled=True), store)
    t = at("2026-12-05T12:00:00")
    stage.observe_deposit([_month(5, fuel=1)], t)
    stage.observe_deposit([], t + 61 * 86400)
    events = store.events()
    assert [e.state for e in events] == ["raised", "cleared"]
    assert events[-1].details["reason"] == "unwatched"
    store.close()


def test_critical_days_cannot_exceed_warning_days() -> None:
    with pytest.raises(ValueError, match="critical_days_before_due 12 is more than warn_days_before_due 10"):
        DepositAlertConfig(critical_days_before_due=12)
