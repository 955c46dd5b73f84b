"""The 40-day clock of the monthly deposit: what a watched month still lacks, read from the ledger.

Every covered works deposits its month on the national platform within 40 days after the month
ends (docs/deposit.md). From `[alerts.deposit] warn_days_before_due` days before that date the
gateway checks, every `check_interval_s`, each watched month (analytics.deposit_calendar) that
has minutes in the ledger, and the alert stage keeps one alert of kind `deposit` per month
while it is not complete (docs/alerts.md, "The deposit alert"). A month is complete when:

1. no fuel stream that needs a lab result (method fuel_combustion, not in `lab_not_required`)
   burnt anything in a minute computed with a default factor: such rows are tagged `default`
   in deposit.xlsx, and the lab result for them is due;
2. at most `max_low_coverage_minutes` minute rows are substituted or missing: each one is an
   estimate the verifier asks about, to be restated with the plant's records or explained;
3. an export was recorded (gateway/ledger/exports.py) as of a ledger row at or after the month's
   last change: a late lab result restates minutes, and the deposit must be exported again.

`DepositChecker` runs the ledger queries in a worker thread: a GROUP BY over the month's rows
when the month changed (seconds for a 10,000-signal month), an index range scan when it did not; `MonthDeposit` turns its findings into the
alert's measure, headline figure, message and details.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from analytics import deposit_calendar
from analytics.substitution import MinuteQuality
from gateway.core.clock import Clock
from gateway.ledger.errors import LedgerError
from gateway.ledger.reader import LedgerReader
from gateway.settings.alerts import DepositAlertConfig

log = logging.getLogger(__name__)

LOW_COVERAGE = frozenset((MinuteQuality.SUBSTITUTED.label, MinuteQuality.MISSING.label))
LAB_METHODS = frozenset(("fuel_combustion",))
LISTED = 5  # streams named in a message; details list them all


@dataclass(frozen=True, slots=True)
class StreamMinutes:
    """Minutes of one stream that keep its month open."""

    process: str
    stream: str
    minutes: int
    factor_ids: tuple[str, ...] = ()  # the default factors used (fuel rows awaiting a lab result)
    activity: float = 0.0  # in the stream's unit

    @property
    def key(self) -> str:
        return f"{self.process}/{self.stream}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"stream": self.key, "minutes": self.minutes}
        if self.factor_ids:
            d["factor_ids"] = list(self.factor_ids)
            d["activity"] = self.activity
        return d


@dataclass(frozen=True, slots=True)
class MonthDeposit:
    """What one watched month still lacks for its deposit, as of a check."""

    month: str
    due_date: str  # ISO date
    days_left: int  # due date - today (site dates); negative once overdue
    minute_rows: int  # current rows in the month
    default_fuel: tuple[StreamMinutes, ...] = ()
    low_coverage: tuple[StreamMinutes, ...] = ()
    exported: bool = False  # any export recorded
    export_current: bool = False  # the latest export is as of the month's last change or later
    last_export_at: float | None = None

    @property
    def default_fuel_minutes(self) -> int:
        return sum(s.minutes for s in self.default_fuel)

    @property
    def low_coverage_minutes(self) -> int:
        return sum(s.minutes for s in self.low_coverage)

    def open_items(self, cfg: DepositAlertConfig) -> list[str]:
        """What keeps the month from being complete; empty when it is."""
        items = []
        if self.default_fuel:
            items.append("lab results")
        if self.low_coverage_minutes > cfg.max_low_coverage_minutes:
            items.append("low-coverage minutes")
        if not self.export_current:
            items.append("export")
        return items

    def measure(self, cfg: DepositAlertConfig) -> float:
        """0 complete, 1 open (warning), 2 open within critical_days_before_due of the due date or after it."""
        if not self.open_items(cfg):
            return 0.0
        return 2.0 if self.days_left <= cfg.critical_days_before_due else 1.0

    def figure(self, cfg: DepositAlertConfig) -> float:
        """The headline number an update compares: minutes still open, plus one for a missing export."""
        low = self.low_coverage_minutes if self.low_coverage_minutes > cfg.max_low_coverage_minutes else 0
        return float(self.default_fuel_minutes + low + (0 if self.export_current else 1))

    def message(self, cfg: DepositAlertConfig) -> str:
        when = (
            f"due {self.due_date} ({self.days_left} d left)"
            if self.days_left >= 0
            else f"was due {self.due_date} ({-self.days_left} d overdue)"
        )
        open_items = self.open_items(cfg)
        if not open_items:
            return f"Deposit {self.month} {when}: complete (lab results in, coverage accepted, exported)"
        parts = []
        if self.default_fuel:
            names = ", ".join(f"{s.key} {s.minutes:,} min" for s in self.default_fuel[:LISTED])
            more = f" and {len(self.default_fuel) - LISTED} more" if len(self.default_fuel) > LISTED else ""
            parts.append(f"{len(self.default_fuel)} fuel stream(s) on default factors awaiting lab results ({names}{more})")
        if "low-coverage minutes" in open_items:
            parts.append(
                f"{self.low_coverage_minutes:,} substituted or missing minute row(s) (accepted: {cfg.max_low_coverage_minutes:,})"
            )
        if not self.export_current:
            parts.append("exported before its last change" if self.exported else "not exported")
        return f"Deposit {self.month} {when}: " + "; ".join(parts)

    def details(self, cfg: DepositAlertConfig) -> dict[str, Any]:
        return {
            "month": self.month,
            "due_date": self.due_date,
            "days_left": self.days_left,
            "open": self.open_items(cfg),
            "minute_rows": self.minute_rows,
            "default_fuel_minutes": self.default_fuel_minutes,
            "default_fuel": [s.to_dict() for s in self.default_fuel],
            "low_coverage_minutes": self.low_coverage_minutes,
            "max_low_coverage_minutes": cfg.max_low_coverage_minutes,
            "low_coverage": [s.to_dict() for s in self.low_coverage],
            "exported": self.exported,
            "export_current": self.export_current,
            "last_export_at": self.last_export_at,
        }


class DepositListener(Protocol):
    """What takes a check's findings: the alert stage (gateway/alerts/budget_stage.py)."""

    def observe_deposit(self, months: list[MonthDeposit], at_s: float) -> None: ...


class DepositChecker:
    """Checks the watched months of one ledger; what a month's minutes say is kept between checks
    and read again only when the month changed (its last row's seq moved: a late row, a
    restatement). A check of an unchanged month is then one index range scan and the export log.
    Used from one thread at a time."""

    def __init__(self, ledger_path: Path, tz: str, cfg: DepositAlertConfig) -> None:
        self.ledger_path, self.tz, self.cfg = ledger_path, tz, cfg
        self._minutes: dict[str, tuple[int, MonthDeposit]] = {}  # month -> (last change seq, findings)

    def check(self, now_s: float) -> list[MonthDeposit]:
        """Every watched month with minutes in the ledger at `now_s`, oldest first (one read-only
        connection). Raises LedgerError when the ledger cannot be read."""
        today = deposit_calendar.site_date(now_s, self.tz)
        months = deposit_calendar.watched_months(today, self.cfg.warn_days_before_due, self.cfg.watch_days_after_due)
        out: list[MonthDeposit] = []
        with LedgerReader.open(self.ledger_path) as reader:
            for month in months:
                found = self._month(reader, month, (deposit_calendar.due_date(month) - today).days)
                if found is not None:
                    out.append(found)
        self._minutes = {m: v for m, v in self._minutes.items() if m in months}
        return out

    def _month(self, reader: LedgerReader, month: str, days_left: int) -> MonthDeposit | None:
        """The month's findings, or None when the ledger has no minute of it (a gateway installed later)."""
        start_s, end_s = deposit_calendar.month_bounds_s(month, self.tz)
        last_change = reader.last_change_between(start_s, end_s)
        if last_change is None:
            return None
        kept = self._minutes.get(month)
        if kept is not None and kept[0] == last_change:
            minutes = kept[1]
        else:
            minutes = self._read_minutes(reader, month, start_s, end_s)
            self._minutes[month] = (last_change, minutes)
        export = reader.latest_export(month)
        return replace(
            minutes,
            days_left=days_left,
            exported=export is not None,
            export_current=export is not None and export.head_seq >= last_change,
            last_export_at=export.exported_at if export is not None else None,
        )

    def _read_minutes(self, reader: LedgerReader, month: str, start_s: float, end_s: float) -> MonthDeposit:
        exempt = set(self.cfg.lab_not_required)
        fuel: dict[tuple[str, str], tuple[int, set[str], float]] = {}
        low: dict[tuple[str, str], int] = {}
        rows = 0
        for process, stream, method, factor_id, quality, n, activity in reader.factors_and_quality_between(start_s, end_s):
            rows += n
            if quality in LOW_COVERAGE:
                low[(process, stream)] = low.get((process, stream), 0) + n
            if (
                method in LAB_METHODS
                and not factor_id.startswith("lab:")
                and f"{process}/{stream}" not in exempt
                and activity != 0.0
            ):
                minutes, ids, total = fuel.get((process, stream), (0, set(), 0.0))
                ids.add(factor_id)
                fuel[(process, stream)] = (minutes + n, ids, total + activity)
        by_minutes = sorted(fuel.items(), key=lambda kv: (-kv[1][0], kv[0]))
        return MonthDeposit(
            month=month,
            due_date=deposit_calendar.due_date(month).isoformat(),
            days_left=0,
            minute_rows=rows,
            default_fuel=tuple(StreamMinutes(p, s, n, tuple(sorted(ids)), a) for (p, s), (n, ids, a) in by_minutes),
            low_coverage=tuple(StreamMinutes(p, s, n) for (p, s), n in sorted(low.items(), key=lambda kv: (-kv[1], kv[0]))),
        )


def check_months(ledger_path: Path, tz: str, now_s: float, cfg: DepositAlertConfig) -> list[MonthDeposit]:
    """One check without a kept state (`emgate` commands, the benchmark): DepositChecker.check."""
    return DepositChecker(ledger_path, tz, cfg).check(now_s)


async def deposit_loop(
    stage: DepositListener, ledger_path: Path, tz: str, cfg: DepositAlertConfig, clock: Clock
) -> None:
    """Check the watched months now and every `check_interval_s` on the gateway's clock, each
    check in a worker thread (the event loop keeps closing minutes), and hand the findings to
    the alert stage. A ledger that cannot be read is logged and tried again at the next check."""
    checker = DepositChecker(ledger_path, tz, cfg)
    failing = False
    while True:
        now = clock.now()
        try:
            months = await asyncio.to_thread(checker.check, now)
        except LedgerError as exc:
            if not failing:
                log.warning("deposit check: %s; trying again in %g s", exc, cfg.check_interval_s)
            failing = True
        else:
            if failing:
                log.info("deposit check: the ledger reads again")
            failing = False
            stage.observe_deposit(months, now)
        await clock.sleep_until(now + cfg.check_interval_s)
