"""The [budget] and [alerts] sections of the site file (see docs/alerts.md for examples).

Kept apart from gateway/settings/site.py, which imports these models; this module must not import
gateway.settings.site. Every model forbids unknown keys and is frozen, like the other sections.
"""

from __future__ import annotations

from functools import cached_property
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from gateway.settings.tls import TlsConfig, read_secret_file

Severity = Literal["info", "warning", "critical"]
SEVERITY_ORDER: tuple[Severity, ...] = ("info", "warning", "critical")
ProcessName = Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.\-]+$")]
MonthlyValues = Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=12, max_length=12)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProductionSourceConfig(_Section):
    """The production signal: the `activity` (t of product) of one configured stream."""

    process: ProcessName
    stream: ProcessName


class ProcessBudgetConfig(_Section):
    """A sub-budget of one process: an absolute allowance, or its share of the site's."""

    process: ProcessName
    allowance_t: float | None = Field(None, gt=0, description="Absolute sub-allowance in tCO2 for the year.")
    share: float | None = Field(None, gt=0, le=1, description="Fraction of the site allowance.")

    @model_validator(mode="after")
    def _one_of(self) -> ProcessBudgetConfig:
        if (self.allowance_t is None) == (self.share is None):
            raise ValueError(f"process budget {self.process!r}: give exactly one of allowance_t or share")
        return self


class BudgetYearConfig(_Section):
    """The allowance of one compliance year (calendar year in the site's time zone)."""

    year: int = Field(ge=2000, le=2100)
    allowance_t: float | None = Field(None, gt=0, description="Absolute allowance in tCO2.")
    benchmark_t_per_t: float | None = Field(
        None, gt=0, description="Intensity allowance: tCO2 per t of product."
    )
    production_plan_t: MonthlyValues | None = Field(
        None, description="Planned production per month (t), January first."
    )
    trajectory: Literal["calendar_linear", "production_weighted", "monthly_profile"] = "calendar_linear"
    monthly_profile: MonthlyValues | None = Field(
        None, description="Relative weight of each month for trajectory monthly_profile."
    )
    processes: list[ProcessBudgetConfig] = Field(default_factory=list)
    opening_t: float = Field(
        0.0,
        ge=0,
        description="Emissions of the year before the ledger's first minute (t, from the plant's records), "
        "for a gateway that starts mid-year.",
    )

    @model_validator(mode="after")
    def _rules(self) -> BudgetYearConfig:
        where = f"budget year {self.year}"
        if (self.allowance_t is None) == (self.benchmark_t_per_t is None):
            raise ValueError(
                f"{where}: give exactly one of allowance_t (absolute) or benchmark_t_per_t (intensity)"
            )
        if self.trajectory == "monthly_profile" and (
            self.monthly_profile is None or sum(self.monthly_profile) <= 0
        ):
            raise ValueError(
                f"{where}: trajectory 'monthly_profile' needs monthly_profile (12 weights, not all 0)"
            )
        if self.production_plan_t is not None and sum(self.production_plan_t) <= 0:
            raise ValueError(f"{where}: production_plan_t sums to 0")
        names = [p.process for p in self.processes]
        if len(set(names)) != len(names):
            raise ValueError(f"{where}: a process has two sub-budgets")
        if sum(p.share or 0.0 for p in self.processes) > 1.0 + 1e-9:
            raise ValueError(f"{where}: process shares add up to more than 1")
        if self.allowance_t is not None and sum(
            p.allowance_t or 0.0 for p in self.processes
        ) > self.allowance_t * (1 + 1e-9):
            raise ValueError(f"{where}: process sub-allowances exceed allowance_t {self.allowance_t}")
        return self


class BudgetConfig(_Section):
    """An allowance budget evaluated every closed minute."""

    name: str = Field("compliance", min_length=1, max_length=60)
    scope: Literal["direct", "direct+indirect"] = Field(
        "direct", description="direct = the compliance figure; direct+indirect for internal targets."
    )
    years: list[BudgetYearConfig] = Field(min_length=1)
    production: ProductionSourceConfig | None = Field(
        None, description="Stream whose activity is the production (t)."
    )
    projection: Literal["recent_rate", "plan_ratio"] = Field(
        "recent_rate",
        description="recent_rate: to date + recent t/s x time left; plan_ratio: to date + "
        "(recent actual / recent trajectory) x allowance left on the trajectory.",
    )
    projection_window_days: float = Field(
        30.0,
        gt=0,
        le=366,
        description="Recent-rate window; 30 d rides out weekly and holiday swings, 7 d reacts faster.",
    )
    projection_min_days: float = Field(
        1.0, ge=0, le=366, description="No budget or intensity alert before this much of the year has data."
    )
    carbon_price_cny_per_t: float | None = Field(None, ge=0)
    price_file: Path | None = Field(
        None,
        description="CSV 'date,price_cny_per_t' (ISO date); the latest row not after the minute applies.",
    )

    @model_validator(mode="after")
    def _rules(self) -> BudgetConfig:
        years = [y.year for y in self.years]
        if len(set(years)) != len(years):
            raise ValueError("budget.years: a year is listed twice")
        if self.carbon_price_cny_per_t is None and self.price_file is None:
            raise ValueError("budget: give carbon_price_cny_per_t or price_file")
        for y in self.years:
            needs_production = y.benchmark_t_per_t is not None or y.trajectory == "production_weighted"
            if needs_production and self.production is None and y.production_plan_t is None:
                raise ValueError(
                    f"budget year {y.year}: an intensity allowance or a production-weighted "
                    "trajectory needs [budget.production] or production_plan_t"
                )
            if (
                y.trajectory == "production_weighted"
                and y.allowance_t is not None
                and y.production_plan_t is None
            ):
                raise ValueError(
                    f"budget year {y.year}: a production-weighted absolute allowance needs "
                    "production_plan_t (the year's planned production)"
                )
        return self

    def year(self, year: int) -> BudgetYearConfig | None:
        return next((y for y in self.years if y.year == year), None)


class ThresholdConfig(_Section):
    """Raise at one level, clear at a lower one; both only after holding for a while.

    The measure rises with trouble (fraction over allowance, robust z-score, missing fraction,
    backlog rows). Severity s is raised at raise_at[s]; an active alert steps down from s only
    below raise_at[s] - (lowest raise_at - clear_at), and clears below clear_at.
    """

    enabled: bool = True
    raise_at: dict[Severity, float]
    clear_at: float
    min_duration_s: float = Field(
        0.0, ge=0, description="The measure must stay at or above a raise level this long."
    )
    clear_duration_s: float = Field(0.0, ge=0, description="The measure must stay below clear_at this long.")
    material_change: float = Field(
        0.1, ge=0, description="Relative change of the headline figure that makes an update."
    )
    min_update_interval_s: float = Field(
        900.0, ge=0, description="At most one update per alert per this interval."
    )
    max_events_per_hour: int = Field(
        6, ge=1, description="Per alert; raises and clears always pass, updates wait."
    )
    reraise_after_s: float = Field(0.0, ge=0, description="A cleared alert is not raised again before this.")

    @cached_property
    def lowest_raise(self) -> float:
        return min(self.raise_at.values())

    @model_validator(mode="after")
    def _levels(self) -> ThresholdConfig:
        if not self.raise_at:
            raise ValueError("raise_at needs at least one severity level")
        levels = [self.raise_at[s] for s in SEVERITY_ORDER if s in self.raise_at]
        if any(b <= a for a, b in pairwise(levels)):
            raise ValueError(
                f"raise_at levels must increase with severity (info < warning < critical), "
                f"got {self.raise_at}"
            )
        if self.clear_at >= levels[0]:
            raise ValueError(
                f"clear_at {self.clear_at} must be below the lowest raise_at {levels[0]} (hysteresis)"
            )
        return self


def _spike_levels() -> dict[Severity, float]:
    return {"warning": 5.0, "critical": 10.0}


class SpikeConfig(ThresholdConfig):
    """Robust z-score of a process's CO2 per minute against its own rolling baseline."""

    raise_at: dict[Severity, float] = Field(default_factory=_spike_levels)
    clear_at: float = 3.0
    min_duration_s: float = 180.0
    clear_duration_s: float = 120.0
    baseline_minutes: int = Field(1440, ge=10, le=100_000, description="Rolling baseline length (minutes).")
    min_history_minutes: int = Field(60, ge=5, description="No score before this many baseline minutes.")
    refresh_minutes: int = Field(5, ge=1, description="Recompute median and MAD every N minutes (cost).")
    min_mad_kg: float = Field(
        1.0, gt=0, description="Floor of the scaled MAD, so a flat baseline does not alert on noise."
    )
    off_below_kg: float = Field(
        0.0, ge=0, description="Minutes below this are 'not operating': not scored, not in the baseline."
    )


def _budget_default() -> ThresholdConfig:
    # measure: (projected year-end - allowance) / allowance; material_change is relative to the
    # allowance here (an update when the shortfall moves by 5 % of it). A year-end projection
    # moves slowly and is read once a shift: at most one update per 6 h.
    return ThresholdConfig(
        raise_at={"warning": 0.0, "critical": 0.2},
        clear_at=-0.05,
        min_duration_s=3600,
        clear_duration_s=3600,
        material_change=0.05,
        min_update_interval_s=21600,
    )


def _intensity_default() -> ThresholdConfig:
    # measure: recent intensity / benchmark - 1
    return ThresholdConfig(
        raise_at={"warning": 0.05, "critical": 0.15},
        clear_at=0.0,
        min_duration_s=3600,
        clear_duration_s=3600,
        min_update_interval_s=21600,
    )


def _coverage_default() -> ThresholdConfig:
    # measure: 1 - coverage of the process's streams in the minute
    return ThresholdConfig(
        raise_at={"warning": 0.25, "critical": 0.75}, clear_at=0.1, min_duration_s=300, clear_duration_s=300
    )


def _device_default() -> ThresholdConfig:
    # measure: 1 while a device (health component) is lost, else 0
    return ThresholdConfig(raise_at={"warning": 0.5}, clear_at=0.25, min_duration_s=60, clear_duration_s=60)


def _backlog_default() -> ThresholdConfig:
    # measure: ledger rows not yet written to InfluxDB
    return ThresholdConfig(
        raise_at={"warning": 5000, "critical": 100_000},
        clear_at=500,
        min_duration_s=300,
        clear_duration_s=300,
        material_change=0.5,
    )


def _deposit_levels() -> dict[Severity, float]:
    return {"warning": 1.0, "critical": 2.0}


StreamKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$")]


class DepositAlertConfig(ThresholdConfig):
    """The 40-day clock of the monthly deposit (docs/alerts.md, "The deposit alert").

    A month is watched from `warn_days_before_due` days before its due date (the month's end
    + 40 days, site time) until `watch_days_after_due` days after it. While watched and not
    complete it has an alert of kind `deposit`, subject the month: measure 1 (warning), 2 from
    `critical_days_before_due` days before the due date and after it (critical), 0 once the
    month is complete (cleared). Complete: no fuel stream needing a lab result ran on a default
    factor in any minute, at most `max_low_coverage_minutes` minute rows substituted or
    missing, and an export recorded after the month's last change.
    """

    raise_at: dict[Severity, float] = Field(default_factory=_deposit_levels)
    clear_at: float = 0.5
    material_change: float = Field(
        0.1, ge=0, description="Relative change of the month's open items (minutes) that makes an update."
    )
    min_update_interval_s: float = 21600.0
    warn_days_before_due: int = Field(
        10, ge=0, le=40, description="Watch a month from this many days before its due date."
    )
    critical_days_before_due: int = Field(
        3, ge=0, le=40, description="From this many days before the due date (and after it) the alert is critical."
    )
    watch_days_after_due: int = Field(
        60,
        ge=0,
        le=366,
        description="Stop watching a month this many days after its due date (its alert clears, reason 'unwatched').",
    )
    max_low_coverage_minutes: int = Field(
        0, ge=0, description="Minute rows substituted or missing that a month may keep and still be complete."
    )
    lab_not_required: list[StreamKey] = Field(
        default_factory=list,
        description='Fuel streams ("process/stream") whose default factor is accepted: no lab result is awaited.',
    )
    check_interval_s: float = Field(
        3600.0, gt=0, le=86400, description="How often the gateway checks the watched months in the ledger (each check reads the months: seconds for a large works)."
    )

    @model_validator(mode="after")
    def _days(self) -> DepositAlertConfig:
        if self.critical_days_before_due > self.warn_days_before_due:
            raise ValueError(
                f"critical_days_before_due {self.critical_days_before_due} is more than "
                f"warn_days_before_due {self.warn_days_before_due}: the alert turns critical after it warns"
            )
        return self


def _disk_levels() -> dict[Severity, float]:
    return {"warning": 0.0, "critical": 0.5}


class DiskConfig(ThresholdConfig):
    """Free space on the disk holding the ledger. The measure is the shortfall against the budget,
    (min_free_mb - free MB) / min_free_mb: 0 when free space reaches the budget, 1 when the disk
    is full. Raised while the ledger can still write, so there is time to act."""

    min_free_mb: float = Field(
        1024.0, gt=0, description="Keep at least this much free on the ledger's disk (a year of a 100-stream works is ~9 GB)."
    )
    raise_at: dict[Severity, float] = Field(default_factory=_disk_levels)
    clear_at: float = -0.1
    min_duration_s: float = 60.0
    clear_duration_s: float = 300.0


def _ledger_pending_default() -> ThresholdConfig:
    # measure: minute results held in memory because the disk refuses the ledger's writes
    return ThresholdConfig(raise_at={"critical": 1.0}, clear_at=0.5, material_change=0.5)


def _clock_step_default() -> ThresholdConfig:
    # measure: 1 from a step of the gateway's clock until a minute after it, else 0
    return ThresholdConfig(raise_at={"warning": 1.0}, clear_at=0.5)


class DataQualityConfig(_Section):
    coverage: ThresholdConfig = Field(default_factory=_coverage_default)
    device: ThresholdConfig = Field(default_factory=_device_default)
    influx_backlog: ThresholdConfig = Field(default_factory=_backlog_default)
    disk: DiskConfig = Field(default_factory=DiskConfig)
    ledger_pending: ThresholdConfig = Field(default_factory=_ledger_pending_default)
    clock_step: ThresholdConfig = Field(default_factory=_clock_step_default)


class AlertMqttConfig(_Section):
    """Where alerts are published: <topic_prefix>/<site>/alerts, .../alerts/active, .../budget.

    TLS and credentials as for an ingest broker ([[mqtt.brokers]]): `tls` (CA, client
    certificate and key, server name check) and `username` with `password` or `password_file`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)  # the input may hold a password

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535, description="Broker port; 8883 is the usual one for MQTT over TLS.")
    client_id: str | None = Field(None, description="Default: emgate-alerts-<site>.")
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = Field(
        None, description="File holding the password (its content, whitespace stripped), instead of password."
    )
    tls: TlsConfig | None = Field(None, description="Connect with TLS ([alerts.mqtt.tls]); without it, plain MQTT.")
    keepalive_s: int = Field(30, ge=5, le=3600)
    timeout_s: float = Field(
        10.0, gt=0, le=300, description="Wait for PUBACK before the connection counts as lost."
    )
    topic_prefix: str = Field("emgate", min_length=1)

    @model_validator(mode="after")
    def _one_password(self) -> AlertMqttConfig:
        if self.password is not None and self.password_file is not None:
            raise ValueError("alerts.mqtt: give password or password_file, not both")
        if (self.password is not None or self.password_file is not None) and not self.username:
            raise ValueError("alerts.mqtt: a password needs username")
        return self

    def password_value(self) -> str | None:
        """The password, read from `password_file` when given there.

        Raises:
            ValueError: the file cannot be read (naming it, never its content).
        """
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            return read_secret_file(self.password_file, "alerts.mqtt.password_file")
        return None


class AlertsConfig(_Section):
    """The operator alert stream. The stage runs when enabled or when [budget] is set."""

    enabled: bool = False
    mqtt: AlertMqttConfig | None = None
    budget: ThresholdConfig = Field(default_factory=_budget_default)
    intensity: ThresholdConfig = Field(default_factory=_intensity_default)
    spike: SpikeConfig = Field(default_factory=SpikeConfig)
    data_quality: DataQualityConfig = Field(default_factory=DataQualityConfig)
    deposit: DepositAlertConfig = Field(default_factory=DepositAlertConfig)
