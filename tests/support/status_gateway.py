"""A stand-in for the gateway as the status views read it, for the tests of the page and the terminal table.

`FakeGateway` has the attributes the status server and the live table read
(gateway.http.view.GatewayView: settings, clock, health, window counters, ledger, influx, alerts,
sources) with fixed counters and health, so those tests do not depend on the pipeline's stages.
Shared by tests/unit/test_http_server.py and tests/unit/test_http_terminal.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from gateway.alerts.deposit import MonthDeposit, StreamMinutes
from gateway.alerts.model import Alert
from gateway.core.health import HealthRegistry
from gateway.core.model import MinuteResults
from gateway.http.history import MinuteHistory
from gateway.ledger.store import LedgerCounters
from gateway.settings.alerts import DepositAlertConfig
from gateway.settings.site import HttpConfig
from gateway.sinks.influx import InfluxCounters
from gateway.sources.modbus import ModbusCounters
from gateway.stages.minute import SourceCounts, WindowCounters
from tests.factories import minute_result, results_of

T0 = 1_795_400_000.0  # a minute boundary (2026-11-22 22:13:20 UTC is not; fixed below)
T0 -= T0 % 60


class Clock:
    """A clock that stands still at `t` until a test moves it."""

    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def real_delay(self, t: float) -> float:
        return t - self.t

    async def sleep_until(self, t: float) -> None:  # pragma: no cover
        self.t = max(self.t, t)


class AlertStageStandIn:
    """What the status page reads of gateway.alerts.budget_stage.AlertStage (gateway.alerts.model.AlertsView)."""

    def __init__(self) -> None:
        self.alerts = [
            Alert(
                id="budget:-:year:20261122T2200Z",
                seq=1,
                kind="budget",
                severity="critical",
                state="raised",
                at="2026-11-23T06:00:00+08:00",
                at_s=T0,
                process=None,
                message="projected 1,120 t is 12 % over the 1,000 t allowance",
                site="works-1",
                details={"over_fraction": 0.12},
            )
        ]
        self.budget_position: dict[str, Any] | None = {
            "site": "works-1",
            "budget": "works",
            "scope": "direct",
            "year": 2026,
            "allowance_t": 1000.0,
            "trajectory_t": 900.0,
            "actual_t": 950.0,
            "projected_year_end_t": 1120.0,
            "shortfall_t": 120.0,
            "shortfall_cny": 10200.0,
            "elapsed_fraction": 0.9,
            "processes": [{"process": "bf", "actual_t": 900.0}],
        }

        # one watched month of the deposit clock, open: coke awaits its lab result, not exported
        self.deposits: list[dict[str, Any]] = [
            MonthDeposit(
                month="2026-10",
                due_date="2026-12-10",
                days_left=5,
                minute_rows=44_640,
                default_fuel=(StreamMinutes("bf", "coke", 1_440, ("cn.coke",), 2_880.0),),
            ).details(DepositAlertConfig())
        ]

    def active(self) -> list[Alert]:
        return self.alerts


@dataclass
class FakeGateway:
    """Two Modbus devices (bf-1 polled fine, lf-1 lost), window and sink counters, no alert stage."""

    ledger_path: Path
    clock: Clock = field(default_factory=lambda: Clock(T0 + 125.0))
    health: HealthRegistry = field(default_factory=HealthRegistry)
    alerts: AlertStageStandIn | None = None
    sources: list[Any] = field(default_factory=list)
    mqtt_sources: list[Any] = field(default_factory=list)
    hj212_sources: list[Any] = field(default_factory=list)
    s7_sources: list[Any] = field(default_factory=list)
    opcua_sources: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.settings = SimpleNamespace(
            site=SimpleNamespace(name="works-1", timezone="Asia/Shanghai"),
            http=HttpConfig(bind="127.0.0.1:0"),
        )
        self.window = SimpleNamespace(
            counters=WindowCounters(
                samples=30,
                late=2,
                bad=1,
                out_of_range=1,
                minutes_closed=2,
                sources={"bf-1": SourceCounts(samples=20, late=2), "lf-1": SourceCounts(samples=10)},
            )
        )
        self.ledger = SimpleNamespace(head_seq=4, path=self.ledger_path, counters=LedgerCounters())
        self.influx = SimpleNamespace(counters=InfluxCounters(points_written=3, batches_failed=1, backlog=7))
        self.sources = [
            SimpleNamespace(cfg=SimpleNamespace(name="bf-1", points=[1, 2]), counters=ModbusCounters(dropped_batches=3, missed_polls=4))
        ]
        bf = self.health.get("modbus[bf-1]")
        for latency_s in (0.004, 0.02, 0.02, 0.3):
            bf.succeeded(T0 + 120, latency_s)
        lf = self.health.get("modbus[lf-1]")
        lf.succeeded(T0 + 100, 0.01)
        lf.failed("modbus 'lf-1' 127.0.0.1:5020 unit 4: no reply within 1.0s")


def minute(start: float, process: str, co2_kg: float) -> MinuteResults:
    """One closed minute of one stream of `process` at works-1."""
    return results_of(
        [
            minute_result(
                minute_start=start,
                site="works-1",
                process=process,
                stream="s",
                activity=1.0,
                co2_kg=co2_kg,
                factor_id="f",
                ef_kg_per_unit=1.0,
            )
        ]
    )


def history(gw: FakeGateway) -> MinuteHistory:
    """The views' history, as the pipeline gives it to them (fed by the tests)."""
    return MinuteHistory(gw.settings.site.timezone, gw.clock)
