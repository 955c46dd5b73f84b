"""The site configuration: one TOML file, validated by pydantic models.

Precedence, highest first: environment variables `EMGATE__<SECTION>__<KEY>` (for example
`EMGATE__INFLUX__TOKEN`), then the TOML file, then the defaults below. Secrets (the InfluxDB
token, MQTT passwords) are `SecretStr`: they print as `**********` and can also be read from a
file (`token_file`, `password_file`) so they never have to sit in the site file.

Every section forbids unknown keys, so a misspelt key is an error that names it. Rules that
span fields (unique names, register counts, units that fit the factor) are `model_validator`s.
Validation errors never carry the input values (`hide_input_in_errors`): a rejected table may
hold a secret, and `str()` of a pydantic error would print it.
"""

from __future__ import annotations

import ipaddress
import math
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from analytics.units import amount_bounds_per_s, integrated_unit, rate_bounds
from gateway.codec.registers import register_count
from gateway.settings.alerts import AlertsConfig, BudgetConfig
from gateway.settings.cbam import CbamConfig
from gateway.settings.hj212 import Hj212Config
from gateway.settings.opcua import OpcUaConfig
from gateway.settings.s7 import S7Config
from gateway.settings.tls import TlsConfig, read_secret_file

Name = Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.\-]+$")]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteConfig(Section):
    name: Name = Field(description="Site name; tags every record and topic (emgate/<site>/...).")
    timezone: str = Field("UTC", description="IANA time zone of the site's wall clock, e.g. Asia/Shanghai.")
    legal_name: str | None = Field(
        None, description="The enterprise's registered name (企业名称), for the deposit workbook's 企业基本信息表."
    )
    credit_code: str | None = Field(
        None, description="Unified social credit code (统一社会信用代码) of the enterprise, for the deposit workbook."
    )
    address: str | None = Field(None, description="The site's address (生产经营场所地址), for the deposit workbook.")
    contact: str | None = Field(
        None, description="Who answers for the deposit (填报联系人: name, phone), for the deposit workbook."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'Asia/Shanghai'") from None
        return value


class WindowConfig(Section):
    """How samples become minutes (Telegraf's period/delay/grace)."""

    delay_s: float = Field(
        2.0,
        ge=0,
        le=3600,
        description="Minute M closes at M + 60 s + delay_s and uses the readings stamped before then, live and in replay "
        "alike. For an end-labelled interval total set at least interval_s - 60, or the minutes it covers close without "
        "it and are substituted.",
    )
    grace_s: float = Field(
        30.0, ge=0, le=3600, description="Samples older than this past their minute's close are dropped and counted as late."
    )
    coverage_threshold: float = Field(0.75, ge=0, le=1, description="Below this covered fraction a minute is substituted.")
    future_tolerance_s: float = Field(
        300.0,
        gt=0,
        le=86400,
        description="A reading stamped more than this ahead of the gateway's clock (a device or publisher with a wrong "
        "clock) is refused and counted (emgate_samples_future_total).",
    )
    clock_step_tolerance_s: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="The gateway's clock moving this much more or less than its steady (monotonic) time between two "
        "looks is a clock step: logged, alerted (data_quality clock_step) and counted (emgate_clock_steps_total); "
        "the minutes a step forward skips are closed flagged clock_step.",
    )


class RetryConfig(Section):
    """Full-jitter exponential backoff: delay = uniform(0, min(cap_s, base_s * 2**attempt))."""

    base_s: float = Field(0.5, gt=0, le=60)
    cap_s: float = Field(30.0, gt=0, le=3600)


RegisterKind = Literal["holding", "input", "coil", "discrete"]
# ModbusPointConfig._share_fields_set: one set object per combination of keys given
_POINT_FIELDS_SETS: dict[frozenset[str], set[str]] = {}


class ModbusPointConfig(Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    signal: Name = Field(description="Signal name this point feeds (a key of [signals]).")
    address: int = Field(ge=0, le=65535, description="Zero-based register or bit address.")
    # `register` would shadow a BaseModel attribute, so the TOML key is an alias.
    kind: RegisterKind = Field("holding", alias="register", description="Register table: holding, input, coil or discrete.")
    type: str = Field("UINT16", description="INT16/UINT16/INT32/UINT32/INT64/UINT64/FLOAT16/FLOAT32/FLOAT64/BIT/STRING.")
    byte_order: Literal["ABCD", "DCBA", "BADC", "CDAB"] = "ABCD"
    bit: int | None = Field(None, ge=0, le=15, description="Bit index for type BIT (0 = least significant).")
    length: int | None = Field(None, ge=1, le=120, description="Registers for type STRING.")
    scale: float = Field(
        1.0, allow_inf_nan=False, description="Engineering value = raw x scale + offset; finite and not zero."
    )
    offset: float = Field(0.0, allow_inf_nan=False)
    unit: str = ""
    sentinel: float | None = Field(None, description="Raw value that means 'no reading'.")
    min: float | None = Field(
        None, allow_inf_nan=False, description="Plausible minimum (engineering units); outside is flagged, not clamped."
    )
    max: float | None = Field(None, allow_inf_nan=False, description="Plausible maximum (engineering units).")

    @field_validator("type")
    @classmethod
    def _upper_type(cls, value: str) -> str:
        allowed = {"INT16", "UINT16", "INT32", "UINT32", "INT64", "UINT64", "FLOAT16", "FLOAT32", "FLOAT64", "BIT", "STRING"}
        up = value.upper()
        if up not in allowed:
            raise ValueError(f"unknown data type {value!r}; use one of {', '.join(sorted(allowed))}")
        return sys.intern(up)  # one string per type, not one per point (10,000 points: 0.5 MB)

    @field_validator("signal")
    @classmethod
    def _shared_signal_name(cls, value: str) -> str:
        # the same string object as the [signals] key (GatewaySettings._share_equal_signal_configs)
        return sys.intern(value)

    @model_validator(mode="after")
    def _share_fields_set(self) -> ModbusPointConfig:
        # pydantic gives every instance its own set of the keys given (216 bytes); points written
        # alike share one, as a frozen model never changes it and copies copy it. 10,000 points:
        # 2 MB of the settings (bench.load_10k, tracemalloc).
        shared = _POINT_FIELDS_SETS.setdefault(frozenset(self.__pydantic_fields_set__), self.__pydantic_fields_set__)
        object.__setattr__(self, "__pydantic_fields_set__", shared)
        return self

    @model_validator(mode="after")
    def _type_rules(self) -> ModbusPointConfig:
        if self.type == "BIT" and self.bit is None and self.kind in ("holding", "input"):
            raise ValueError("type BIT on a register needs 'bit' (0-15)")
        if self.type == "STRING" and self.length is None:
            raise ValueError("type STRING needs 'length' (registers)")
        if self.type != "STRING" and self.length is not None:
            raise ValueError(f"'length' applies to type STRING only, not {self.type}")
        if self.type != "BIT" and self.bit is not None:
            raise ValueError(f"'bit' applies to type BIT only, not {self.type}")
        if self.kind in ("coil", "discrete") and self.type not in ("BIT", "UINT16"):
            raise ValueError(f"a {self.kind} is one bit; use type BIT, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if self.scale == 0:
            raise ValueError("scale 0 makes every reading equal to offset; give the register's scale (1 when raw)")
        if self.kind in ("holding", "input"):
            last = self.address + register_count(self.type, self.length) - 1
            if last > 65535:
                raise ValueError(
                    f"a {self.type} at address {self.address} spans registers {self.address}..{last}, past the last "
                    "register 65535; check the address (zero-based) and type"
                )
        return self


class ModbusDeviceConfig(Section):
    name: Name
    transport: Literal["tcp", "rtu", "rtu_over_tcp"] = "tcp"
    host: str = "127.0.0.1"
    port: int = Field(502, ge=1, le=65535)
    serial_port: str | None = Field(None, description="Serial device for transport rtu, e.g. /dev/ttyUSB0.")
    baudrate: int = Field(9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    unit_id: int = Field(1, ge=0, le=247)
    poll_s: float = Field(1.0, gt=0, le=3600)
    timeout_s: float = Field(1.0, gt=0, le=60)
    retries: int = Field(1, ge=0, le=10)
    max_registers_per_read: int = Field(125, ge=1, le=125)
    max_gap_registers: int = Field(8, ge=0, le=120, description="Unused registers a read may bridge to save a request.")
    points: list[ModbusPointConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _device_rules(self) -> ModbusDeviceConfig:
        if self.timeout_s >= self.poll_s * 10:
            raise ValueError(
                f"timeout_s {self.timeout_s} is far beyond poll_s {self.poll_s}; a dead device would stall its own polls"
            )
        if self.transport == "rtu" and not self.serial_port:
            raise ValueError("transport 'rtu' needs serial_port (e.g. /dev/ttyUSB0)")
        return self

    @property
    def endpoint(self) -> str:
        where = self.serial_port if self.transport == "rtu" else f"{self.host}:{self.port}"
        return f"modbus '{self.name}' {where} unit {self.unit_id}"


class ModbusConfig(Section):
    devices: list[ModbusDeviceConfig] = Field(default_factory=list)


def topic_filter_problem(topic: str) -> str | None:
    """Why `topic` is not an MQTT topic filter (MQTT 3.1.1 section 4.7), or None: a broker refuses
    such a SUBSCRIBE, and a gateway started with it would reconnect for ever."""
    if "\x00" in topic:
        return "contains a NUL character"
    if len(topic.encode("utf-8", "surrogatepass")) > 65535:
        return "is longer than 65535 bytes"
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be a whole level and the last one (a/b/#)"
        if "+" in level and level != "+":
            return "'+' must be a whole level (a/+/c)"
    return None


class MqttSubscriptionConfig(Section):
    topic: str = Field(min_length=1, description="Topic filter; + and # wildcards allowed.")
    format: Literal["json", "number", "line_protocol"] = "json"
    fields: dict[str, Name] = Field(
        default_factory=dict, description="JSON field path (or line-protocol measurement.field) -> signal."
    )
    signal: Name | None = Field(None, description="Signal for a bare-number payload.")
    timestamp_field: str | None = None
    timestamp_format: str = "epoch_s"

    @field_validator("topic")
    @classmethod
    def _topic_filter(cls, topic: str) -> str:
        problem = topic_filter_problem(topic)
        if problem:
            raise ValueError(f"topic filter {topic!r}: {problem}")
        return topic

    @model_validator(mode="after")
    def _mapping(self) -> MqttSubscriptionConfig:
        if self.format == "number" and not self.signal:
            raise ValueError("format 'number' needs 'signal'")
        if self.format == "json" and not self.fields:
            raise ValueError("format 'json' needs 'fields' (JSON path -> signal)")
        return self


class MqttBrokerConfig(Section):
    name: Name
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str | None = Field(
        None,
        description="Default: emgate-<site>-<name>. Unique per broker: a second connection with the same id "
        "disconnects the first (check-config refuses two on one broker).",
    )
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    tls: TlsConfig | None = None
    qos: Literal[0, 1, 2] = 1
    clean_session: bool = True
    keepalive_s: int = Field(30, ge=5, le=3600)
    queue_size: int = Field(10000, ge=10, le=1_000_000, description="Bounded inbound queue; overflow is dropped and counted.")
    subscriptions: list[MqttSubscriptionConfig] = Field(default_factory=list)

    def password_value(self) -> str | None:
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            return read_secret_file(self.password_file, f"mqtt broker '{self.name}' password_file")
        return None

    def client_id_for(self, site: str) -> str:
        """The MQTT client id: `client_id`, by default emgate-<site>-<broker name>.

        The broker keys a persistent session by it and disconnects the older of two clients
        with the same id, so it must be stable (no random part) and differ between the plants
        sharing a broker (hence the site).
        """
        return self.client_id or f"emgate-{site}-{self.name}"


class MqttConfig(Section):
    brokers: list[MqttBrokerConfig] = Field(default_factory=list)


SignalKind = Literal["rate", "counter", "interval_total", "instant"]


class SignalConfig(Section):
    """How one signal becomes a minute amount (domain reference 5.1-5.4)."""

    kind: SignalKind = "rate"
    unit: str = Field(description="Unit of the signal, e.g. t/h, Nm3/h, kW, kWh, Nm3, t.")
    max_gap_s: float | None = Field(
        None, gt=0, description="Longest segment integrated; default 3 x the fastest poll feeding it."
    )
    substitution: Literal["none", "last_good", "hour_average", "lookback_max"] = "last_good"
    integration: Literal["trapezoid", "left"] = "trapezoid"
    counter_bits: Literal[16, 32, 64] = 32
    counter_scale: float = Field(1.0, gt=0, allow_inf_nan=False, description="Engineering units per count.")
    max_rate_per_s: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="A counter's highest plausible rate (units per second): a drop that would need more to be a wrap is a "
        "reset, and an increase above 1.5 x this over its interval is implausible (flagged, not counted). At most the "
        "physical bound of the unit (analytics/units.py), which applies without it.",
    )
    interval_s: float = Field(900.0, gt=0, allow_inf_nan=False, description="Interval length for kind interval_total.")
    interval_label: Literal["start", "end"] = "end"
    # `min`/`max`, as for Modbus points: the site's words for a plausible range
    min: float | None = Field(
        None,
        allow_inf_nan=False,
        description="Lowest plausible reading: a rate in its unit, an interval total per row, an instant value. A reading "
        "outside [min, max] is flagged out_of_range and never counted as measured. Tightens the physical bound of the unit "
        "and kind (analytics/units.py), never widens it. Counters: see max_rate_per_s.",
    )
    max: float | None = Field(None, allow_inf_nan=False, description="Highest plausible reading; see min.")

    @model_validator(mode="after")
    def _rate_unit(self) -> SignalConfig:
        if self.kind == "rate":
            integrated_unit(self.unit)  # ValueError naming the known rate units
        return self

    @model_validator(mode="after")
    def _site_bounds(self) -> SignalConfig:
        # A site bound wider than the physical one is refused, not clamped: it says something
        # untrue about the meter, most often a wrong unit (kg/h meant where t/h is written), and
        # clamping it would hide that mistake while the readings it lets through are still refused.
        if self.kind == "counter":
            if self.min is not None or self.max is not None:
                raise ValueError(
                    "min and max bound a reading; a counter's readings are bounded by counter_bits and its rate by "
                    "max_rate_per_s (units per second): use that"
                )
            phys = amount_bounds_per_s(self.unit)
            if self.max_rate_per_s is not None and phys is not None and self.max_rate_per_s > phys[1]:
                raise ValueError(
                    f"max_rate_per_s {self.max_rate_per_s:g} {self.unit}/s is above the physical bound {phys[1]:g} "
                    f"{self.unit}/s of a {self.unit} counter (analytics/units.py); a site bound can only tighten it: "
                    "check the unit and counter_scale"
                )
            return self
        if self.min is not None and self.max is not None and not self.min < self.max:
            raise ValueError(f"min {self.min:g} is not below max {self.max:g}")
        lo, hi = self.physical_bounds()
        what = (
            f"an interval total in {self.unit} over {self.interval_s:g} s"
            if self.kind == "interval_total"
            else f"a {self.kind} in {self.unit}"
        )
        if self.min is not None and self.min < lo:
            raise ValueError(
                f"min {self.min:g} is below the physical bound {lo:g} of {what} (analytics/units.py); a site bound can "
                "only tighten it: check the unit"
            )
        if self.max is not None and self.max > hi:
            raise ValueError(
                f"max {self.max:g} is above the physical bound {hi:g} of {what} (analytics/units.py); a site bound can "
                "only tighten it: check the unit"
            )
        return self

    def physical_bounds(self) -> tuple[float, float]:
        """(lowest, highest) physically plausible reading of a rate, interval total or instant
        signal, from its unit and kind (analytics/units.py); infinite where the unit has none."""
        if self.kind == "rate":
            return rate_bounds(self.unit)
        per_s = amount_bounds_per_s(self.unit) if self.kind == "interval_total" else None
        if per_s is None:  # an instant value, or an interval total in a unit no rate integrates to
            return -math.inf, math.inf
        return per_s[0] * self.interval_s, per_s[1] * self.interval_s

    def reading_bounds(self) -> tuple[float, float]:
        """(lowest, highest) reading the minute window accepts as GOOD, both finite, so that a
        reading outside them, infinite or NaN is flagged: the physical bounds tightened by the
        site's min and max; a counter's readings in counts, [0, 2**counter_bits)."""
        if self.kind == "counter":
            return 0.0, math.nextafter(2.0**self.counter_bits, 0.0)
        lo, hi = self.physical_bounds()
        lo = lo if self.min is None else max(lo, self.min)
        hi = hi if self.max is None else min(hi, self.max)
        return max(lo, -sys.float_info.max), min(hi, sys.float_info.max)

    def max_increase_per_s(self) -> float | None:
        """A counter's highest plausible increase per second in its unit: the physical bound of
        the unit, tightened by max_rate_per_s; None when neither applies (or not a counter)."""
        if self.kind != "counter":
            return None
        phys = amount_bounds_per_s(self.unit)
        bounds = [b for b in (phys[1] if phys else None, self.max_rate_per_s) if b is not None]
        return min(bounds) if bounds else None

    @property
    def amount_unit(self) -> str:
        """Unit of the per-minute amount this signal yields."""
        return integrated_unit(self.unit) if self.kind == "rate" else self.unit


Method = Literal[
    "fuel_combustion", "carbon_content", "carbonate", "electrode", "material", "carbon_balance", "electricity", "heat",
    "cems",
]


class StreamConfig(Section):
    """One emission stream: a signal, a process, a method and a factor."""

    process: Name
    stream: Name
    signal: Name
    method: Method
    factor: str = Field(min_length=1, description="Factor id in the factor library (or a site override's id).")
    scope: Literal["direct", "indirect"] | None = Field(
        None, description="Default: indirect for electricity and heat, else direct."
    )
    sign: Literal[1, -1] = Field(1, description="-1 for a carbon-balance output (carbon leaving the process).")
    estimated: bool = Field(
        False,
        description="The method is a proxy (e.g. converter oxygen for decarburisation): measured minutes are flagged 'estimated'.",
    )
    balance: Literal["input", "output", "none"] | None = Field(
        None,
        description="Role in the monthly carbon balance (docs/export.md): input (carbon in), output (carbon out: crude steel, "
        "sold by-products, gas sent out) or none (left out). Default: none for electricity and heat, output for sign = -1, "
        "else input.",
    )
    transfer: Name | None = Field(
        None,
        description="Names a by-product gas moved between the works' own processes (e.g. BFG): the producer's output and "
        "the consumers' inputs with the same name cancel in the enterprise balance and are reconciled per name.",
    )

    @property
    def balance_role(self) -> str:
        if self.balance is not None:
            return self.balance
        if self.method in ("electricity", "heat") or self.effective_scope != "direct":
            return "none"
        return "output" if self.sign < 0 else "input"

    @property
    def effective_scope(self) -> str:
        if self.scope is not None:
            return self.scope
        return "indirect" if self.method in ("electricity", "heat") else "direct"


ProductName = Literal["coke", "sinter", "hot_metal", "crude_steel", "rolled_steel"]


class ProductionConfig(Section):
    """Production of one product by one process (domain reference 7): from a weighing signal,
    stored per minute in the ledger (method and scope `production`, CO2 0), or monthly entries
    measured outside the gateway with an evidence file."""

    process: Name
    product: ProductName
    signal: Name | None = Field(
        None,
        description="A [signals.X] of kind counter or interval_total in t, or a rate in t/h: its minutes go to the ledger.",
    )
    source: str | None = Field(None, max_length=200, description="What weighs it, e.g. the weighbridge id.")
    monthly_t: dict[str, float] | None = Field(
        None,
        description='Production measured outside the gateway, t per month: { "2026-11" = 123456.0 }; needs evidence.',
    )
    evidence: Path | None = Field(
        None, description="The file behind monthly_t (a stamped ledger or report), hashed into the export's evidence."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ProductionConfig:
        if (self.signal is None) == (self.monthly_t is None):
            raise ValueError("give either signal (weighed by the gateway) or monthly_t with evidence, not both or neither")
        if self.monthly_t is not None:
            if self.evidence is None:
                raise ValueError("monthly_t needs evidence = \"path/to/file\" (the document the figures come from)")
            for month, t in self.monthly_t.items():
                if not (len(month) == 7 and month[4] == "-" and month[:4].isdigit() and month[5:].isdigit() and 1 <= int(month[5:]) <= 12):
                    raise ValueError(f"monthly_t key {month!r} is not a month YYYY-MM")
                if not (math.isfinite(t) and t >= 0):
                    raise ValueError(f"monthly_t[{month!r}] = {t!r} is not a finite, non-negative tonnage")
        elif self.evidence is not None:
            raise ValueError("evidence goes with monthly_t; a weighed signal's evidence is its ledger minutes")
        return self


class ProcessConfig(Section):
    """Per-process settings (`[processes.<name>]`)."""

    captive_power: bool = Field(
        False,
        description="The works' captive power plant (burning by-product gas): shown on its own line in the balance.",
    )


class FactorOverrideConfig(BaseModel):
    """A site factor, or a site value (lab NCV, carbon content, ...) replacing a library factor
    for a period (`overrides = "<library id>"`). Its other keys are those of a library entry."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str
    overrides: str | None = None
    source: str
    valid_from: str | None = None
    valid_to: str | None = None


class FactorsConfig(Section):
    library: list[Path] = Field(
        default_factory=list, description="Factor TOML files or folders; default: the shipped config/factors."
    )
    overrides: list[FactorOverrideConfig] = Field(default_factory=list)


class CsvInputConfig(Section):
    """How `emgate replay` reads one kind of column-mapped CSV file (one mapping per file pattern)."""

    match: str = Field(min_length=1, description="File-name pattern this mapping applies to, e.g. 'steel_industry_energy*.csv'.")
    layout: Literal["columns", "periods"] = Field(
        "columns",
        description="columns: a timestamp column and value columns; periods: start, end and a constant value per row (energy = power x duration).",
    )
    timestamp_column: str = "ts"
    timestamp_format: str = Field(
        "iso8601", description="iso8601, epoch_s, epoch_ms or a strftime pattern such as %d/%m/%Y %H:%M."
    )
    start_column: str | None = Field(None, description="For layout periods: the period's start column.")
    end_column: str | None = Field(None, description="For layout periods: the period's end column.")
    timezone: str | None = Field(None, description="Zone of naive timestamps; default the site's.")
    midnight_is_end_of_day: bool = Field(
        False,
        description="A row stamped 00:00 belongs to the END of its date (24:00), as in files that write 24:00 as 00:00 of the same date.",
    )
    zero_rows: Literal["keep", "missing"] = Field(
        "keep",
        description="Rows whose mapped values are all zero: keep them as zero readings, or treat them as missing (the signal's substitution rule applies).",
    )
    columns: dict[str, Name] = Field(description="Column -> signal.")
    encoding: str = "utf-8-sig"
    delimiter: str = ","
    ambiguous: Literal["error", "earlier", "later", "infer"] = Field(
        "error",
        description="A naive local time that occurs twice (clocks going back): error, earlier (first occurrence), "
        "later (second), or infer from the order of the rows (a time going back means the second occurrence).",
    )
    max_gap_days: float = Field(
        31.0,
        gt=0,
        allow_inf_nan=False,
        description="The longest gap between consecutive timestamps of a file; a longer one is refused as a wrong date.",
    )

    @model_validator(mode="after")
    def _layout(self) -> CsvInputConfig:
        if self.layout == "periods" and not (self.start_column and self.end_column):
            raise ValueError("layout 'periods' needs start_column and end_column")
        if not self.columns:
            raise ValueError("columns must map at least one column to a signal")
        return self


class ReplayConfig(Section):
    csv: list[CsvInputConfig] = Field(default_factory=list)


class LedgerConfig(Section):
    path: Path = Path("var/ledger.sqlite")
    checkpoint_s: float = Field(
        5.0,
        gt=0,
        le=60,
        description="Save the minute in progress this often (gateway clock s); a crash loses at most this much of it.",
    )


class InfluxConfig(Section):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)  # the input may hold credentials

    enabled: bool = False
    url: str = Field(
        "http://127.0.0.1:8086",
        description="InfluxDB base URL, http://host:port or https://host:port. A user and password written in it "
        "(http://user:password@host:8086, percent-encoded) are taken as the InfluxDB 1.8 credentials, sent as the token "
        "user:password, and removed from the URL the gateway logs and connects to; give them there or as token/token_file, not both.",
    )
    org: str = "-"
    bucket: str = "emgate/autogen"
    token: SecretStr | None = Field(None, description="API token; for InfluxDB 1.8, user:password.")
    token_file: Path | None = Field(None, description="File holding the token (its content, whitespace stripped), instead of token.")
    measurement: str = "emissions"
    batch_size: int = Field(
        50_000,
        ge=1,
        le=100_000,
        description="Most points in one write. Live minutes go as they close; a backlog after an outage drains in "
        "batches this large, which influxd ingests with 25-30 % less CPU per point than batches of 10,000 "
        "(bench/ledger_drain.py). A server whose max-body-size refuses a batch (413) gets it in halves.",
    )
    timeout_s: float = Field(30.0, gt=0, le=300, description="Seconds to wait for InfluxDB to acknowledge one write.")
    ca_file: Path | None = Field(
        None,
        description="PEM CA bundle that signs an https InfluxDB's certificate (a private CA); default: the system's CAs.",
    )
    verify_tls: bool = Field(
        True,
        description="Check an https InfluxDB's certificate and name. Off only on a test bench: anyone on the path "
        "can then read the token and the data.",
    )

    @model_validator(mode="before")
    @classmethod
    def _url_credentials(cls, data: Any) -> Any:
        # Credentials in the URL become the token and leave the URL, so that `url` is safe to log
        # and show everywhere. Left in, aiohttp would send them as Basic auth, and refuse the
        # request outright next to the token's Authorization header.
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return data
        try:
            _ = urlsplit(data["url"]).port  # raises for a port that is not a number, an unclosed [IPv6
        except ValueError:
            return data  # not a URL at all: _http_url says so, without the credentials
        url, credentials = split_url_credentials(data["url"])
        if credentials is None:
            return data
        if data.get("token") is not None or data.get("token_file") is not None:
            given = "token" if data.get("token") is not None else "token_file"
            raise ValueError(
                f"url {url!r} carries a user and password and {given} is set too; give one of them: "
                "either the credentials in the URL or the token (user:password for InfluxDB 1.8)"
            )
        return {**data, "url": url, "token": credentials}

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        expected = "write it as http://host:8086 or https://host:8086 (a path such as /influx is allowed)"
        try:
            parts = urlsplit(url)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:  # a port that is not a number, an unclosed [IPv6 address
            raise ValueError(f"{redact_url_safe(url)!r} is not an InfluxDB address; {expected}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            raise ValueError(f"{redact_url(url)!r} is not an InfluxDB address; {expected}")
        if any(c.isspace() or not c.isprintable() for c in url):
            raise ValueError(f"{redact_url(url)!r} contains a space or control character; {expected}")
        if parts.query or parts.fragment or url.endswith(("?", "#")):
            raise ValueError(
                f"{redact_url(url)!r} has a query or fragment (?...#...), which the write path would be appended after; "
                f"{expected}"
            )
        if not _HOST.fullmatch(parts.hostname) and not _is_ip(parts.hostname):
            raise ValueError(f"{redact_url(url)!r}: {parts.hostname!r} is not a host name or IP address; {expected}")
        return url

    def token_value(self) -> str:
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is not None:
            return read_secret_file(self.token_file, "influx.token_file")
        return ""


def split_url_credentials(url: str) -> tuple[str, SecretStr | None]:
    """A URL without its `user:password@`, and those credentials (percent-decoded) as `user:password`.

    Raises:
        ValueError: the URL names a user without a password, or a password without a user.
    """
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return url, None
    clean = urlunsplit(parts._replace(netloc=hostport))
    user, colon, password = userinfo.partition(":")
    if not user or not colon or not password:
        raise ValueError(
            f"url {clean!r} carries incomplete credentials; write http://user:password@host:port "
            "(percent-encode : @ / in them) or set token instead"
        )
    return clean, SecretStr(f"{unquote(user)}:{unquote(password)}")


_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_\-]{0,62})(?:\.[A-Za-z0-9_\-]{1,63})*\.?")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def redact_url_safe(url: str) -> str:
    """redact_url for a URL that may not even split: everything up to the last '@' is hidden."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return url


def redact_url(url: str) -> str:
    """The URL with any `user:password@` replaced by `***@`, for messages."""
    parts = urlsplit(url)
    _, at, hostport = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"***@{hostport}")) if at else url


def split_bind(value: str) -> tuple[str, int]:
    """'127.0.0.1:8080', 'localhost:8080' or '[::1]:8080' -> (host, port); port 0 picks a free one.

    Raises:
        ValueError: not HOST:PORT, naming the value.
    """
    host, sep, port_s = value.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    if not sep or not host or not port_s.isascii() or not port_s.isdigit() or int(port_s) > 65535:
        raise ValueError(f"bind {value!r} is not HOST:PORT; write it as 127.0.0.1:8080 or [::1]:8080 (port 0-65535)")
    if ":" in host and not bracketed:
        raise ValueError(f"bind {value!r}: write an IPv6 address in brackets, as [{host}]:{port_s}")
    if any(c.isspace() for c in host) or "[" in host or "]" in host or "/" in host:
        raise ValueError(f"bind {value!r}: {host!r} is not a host name or IP address")
    return host, int(port_s)


class HttpConfig(Section):
    """The status page, its event stream and /metrics (docs/operator-guide.md, "Status page")."""

    bind: str = Field(
        "127.0.0.1:8080",
        description="Status page and /metrics address (host:port). On an address other than loopback the page needs "
        "token_file (or insecure_no_auth = true).",
    )
    token_file: Path | None = Field(
        None,
        description="File holding the page's access token (its content, whitespace stripped). Clients send it as "
        "'Authorization: Bearer <token>', or open /?token=<token> once to get a cookie. Enforced on any address.",
    )
    insecure_no_auth: bool = Field(
        False,
        description="Serve an address other than loopback without a token: anyone who reaches the port sees the "
        "plant's figures. For a network that is already closed (a VPN, a firewall allowing one host).",
    )
    cert_file: Path | None = Field(None, description="PEM certificate (chain) to serve HTTPS; needs key_file.")
    key_file: Path | None = Field(None, description="PEM private key of cert_file.")
    max_event_clients: int = Field(
        32, ge=1, le=10_000, description="Open event streams (status pages) at once; the next one gets HTTP 503."
    )

    @field_validator("bind")
    @classmethod
    def _host_port(cls, bind: str) -> str:
        split_bind(bind)
        return bind

    @model_validator(mode="after")
    def _access(self) -> HttpConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("http: give cert_file and key_file together (HTTPS needs both)")
        problem = http_access_problem(self.bind, self.token_file is not None, self.insecure_no_auth)
        if problem:
            raise ValueError(problem)
        return self


def is_loopback_host(host: str) -> bool:
    """A host that only this machine reaches: localhost, 127.0.0.0/8 or ::1."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name that may resolve to any interface


def http_access_problem(bind: str, has_token: bool, insecure_no_auth: bool) -> str | None:
    """Why the status page must not serve `bind` ("HOST:PORT") as configured, or None."""
    host = bind.rpartition(":")[0].strip("[]")
    if is_loopback_host(host) or has_token or insecure_no_auth:
        return None
    return (
        f"http bind {bind!r} is reachable from other machines and the status page has no access token: "
        "set [http] token_file (a file holding a long random token, readable by the gateway only) "
        "or, on a network closed by other means, insecure_no_auth = true; or bind 127.0.0.1"
    )


class PipelineConfig(Section):
    sample_buffer: int = Field(
        1000, ge=1, le=1_000_000, description="Sample batches queued between sources and the minute stage."
    )


def _key_path(loc: tuple[str | int, ...]) -> str:
    """("mqtt", "brokers", 0, "name") -> "mqtt.brokers[0].name"."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


class GatewaySettings(BaseSettings):
    """The whole site configuration. Build it with `gateway.settings.load.load_settings(path)`."""

    model_config = SettingsConfigDict(
        extra="forbid", env_prefix="EMGATE__", env_nested_delimiter="__", frozen=True, hide_input_in_errors=True
    )

    site: SiteConfig
    window: WindowConfig = WindowConfig()
    retry: RetryConfig = RetryConfig()
    pipeline: PipelineConfig = PipelineConfig()
    modbus: ModbusConfig = ModbusConfig()
    mqtt: MqttConfig = MqttConfig()
    opcua: OpcUaConfig = Field(default_factory=OpcUaConfig)
    hj212: Hj212Config = Field(default_factory=Hj212Config)
    s7: S7Config = Field(default_factory=S7Config)
    signals: dict[Name, SignalConfig] = Field(default_factory=dict)
    streams: list[StreamConfig] = Field(default_factory=list)
    production: list[ProductionConfig] = Field(default_factory=list)
    processes: dict[Name, ProcessConfig] = Field(default_factory=dict)
    factors: FactorsConfig = FactorsConfig()
    ledger: LedgerConfig = LedgerConfig()
    influx: InfluxConfig = InfluxConfig()
    http: HttpConfig = HttpConfig()
    replay: ReplayConfig = ReplayConfig()
    budget: BudgetConfig | None = None
    alerts: AlertsConfig = AlertsConfig()
    cbam: CbamConfig | None = Field(None, description="CBAM: installation, production processes, precursors (docs/cbam.md).")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs; the environment overrides it.
        return (env_settings, init_settings)

    @field_validator("signals", mode="after")
    @classmethod
    def _share_equal_signal_configs(cls, signals: dict[str, SignalConfig]) -> dict[str, SignalConfig]:
        # A plant's signals mostly come in kinds that share one configuration (every meter of a
        # type), and a frozen SignalConfig can be shared: 10,000 copies of one held 6.6 MB in
        # `emgate run` (bench.load_10k, tracemalloc).
        # Names are interned so that the points naming a signal share its key's string.
        shared: dict[SignalConfig, SignalConfig] = {}
        return {sys.intern(name): shared.setdefault(cfg, cfg) for name, cfg in signals.items()}

    @model_validator(mode="after")
    def _cross_rules(self) -> GatewaySettings:
        problems: list[str] = []
        seen: set[str] = set()
        for dev in self.modbus.devices:
            if dev.name in seen:
                problems.append(f"modbus.devices: device name {dev.name!r} is used twice; names must be unique")
            seen.add(dev.name)
            for point in dev.points:
                if point.signal not in self.signals:
                    problems.append(
                        f"modbus device {dev.name!r} point at {point.address}: signal {point.signal!r} is not declared under [signals]"
                    )
        for broker in self.mqtt.brokers:
            for sub in broker.subscriptions:
                for signal in [*sub.fields.values(), *([sub.signal] if sub.signal else [])]:
                    if signal not in self.signals:
                        problems.append(
                            f"mqtt broker {broker.name!r} topic {sub.topic!r}: signal {signal!r} is not declared under [signals]"
                        )
        for i, hj_server in enumerate(self.hj212.servers):
            for j, hj_point in enumerate(hj_server.points):
                if hj_point.signal not in self.signals:
                    problems.append(
                        f"hj212.servers[{i}].points[{j}] (server {hj_server.name!r}, mn={hj_point.mn}, "
                        f"{hj_point.code}-{hj_point.field}): signal {hj_point.signal!r} is not declared under [signals]"
                    )
            for j, hj_cems in enumerate(hj_server.cems):
                sig = self.signals.get(hj_cems.signal)
                if sig is None or sig.kind != "rate" or sig.unit not in ("kg/h", "t/h"):
                    problems.append(
                        f"hj212.servers[{i}].cems[{j}]: signal {hj_cems.signal!r} must be declared under [signals] "
                        "as a rate in kg/h or t/h (the CO2 mass flow)"
                    )
        for plc in self.s7.devices:
            for s7_point in plc.points:
                if s7_point.signal not in self.signals:
                    problems.append(
                        f"s7 device {plc.name!r} point {s7_point.where}: signal {s7_point.signal!r} is not declared under [signals]"
                    )
        for server in self.opcua.servers:
            for node in server.nodes:
                if node.signal not in self.signals:
                    problems.append(
                        f"opcua server {server.name!r} node {node.node!r}: signal {node.signal!r} is not declared under [signals]"
                    )
        for mapping in self.replay.csv:
            for column, signal in mapping.columns.items():
                if signal not in self.signals:
                    problems.append(
                        f"replay.csv {mapping.match!r} column {column!r}: signal {signal!r} is not declared under [signals]"
                    )
        keys: set[tuple[str, str]] = set()
        for stream in self.streams:
            if stream.signal not in self.signals:
                problems.append(
                    f"stream {stream.process}/{stream.stream}: signal {stream.signal!r} is not declared under [signals]"
                )
            if (stream.process, stream.stream) in keys:
                problems.append(f"stream {stream.process}/{stream.stream} is declared twice")
            keys.add((stream.process, stream.stream))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def duplicate_problems(self) -> list[tuple[tuple[str | int, ...], str, tuple[str | int, ...]]]:
        """Names and MQTT client ids that must be unique: (key path, problem, key path of the first use)."""
        problems: list[tuple[tuple[str | int, ...], str, tuple[str | int, ...]]] = []
        names: dict[str, int] = {}
        ids: dict[tuple[str, str, int], tuple[str | int, ...]] = {}
        for i, broker in enumerate(self.mqtt.brokers):
            first = names.setdefault(broker.name, i)
            if first != i:
                problems.append(
                    (
                        ("mqtt", "brokers", i, "name"),
                        f"broker name {broker.name!r} is already the name of {_key_path(('mqtt', 'brokers', first))}; "
                        "each broker needs its own name (its health, metrics and default client id are keyed by it)",
                        ("mqtt", "brokers", first),
                    )
                )
                continue
            loc: tuple[str | int, ...] = ("mqtt", "brokers", i, "client_id" if broker.client_id else "name")
            key = (broker.client_id_for(self.site.name), broker.host, broker.port)
            if key in ids:
                problems.append(
                    (
                        loc,
                        f"client id {key[0]!r} on {broker.host}:{broker.port} is also the client id of "
                        f"{_key_path(ids[key])}; the broker would disconnect one connection whenever the other connects: "
                        "give each a client_id of its own",
                        ids[key],
                    )
                )
            ids.setdefault(key, loc)
        publisher = self.alerts.mqtt
        if publisher is not None:
            key = (publisher.client_id or f"emgate-alerts-{self.site.name}", publisher.host, publisher.port)
            if key in ids:
                problems.append(
                    (
                        ("alerts", "mqtt", "client_id"),
                        f"the alert publisher's client id {key[0]!r} on {publisher.host}:{publisher.port} is also the "
                        f"client id of {_key_path(ids[key])}; the broker would disconnect one whenever the other connects: "
                        "give each a client_id of its own",
                        ids[key],
                    )
                )
        return problems

    def declares_balance(self) -> bool:
        """The site uses production or balance keys: `[[production]]`, `[processes.*]`, a stream's `balance` or `transfer`."""
        return bool(self.production or self.processes) or any(
            s.balance is not None or s.transfer is not None for s in self.streams
        )

    def balance_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Production and carbon-balance rules, each with the key path it concerns (for its line)."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        processes = {s.process for s in self.streams} | set(self.processes)
        seen: set[tuple[str, str]] = set()
        for i, p in enumerate(self.production):
            if (p.process, p.product) in seen:
                problems.append((("production", i), f"production {p.process}/{p.product} is declared twice"))
            seen.add((p.process, p.product))
            if p.process not in processes:
                problems.append(
                    (
                        ("production", i, "process"),
                        f"process {p.process!r} is not a process of [[streams]] or [processes.<name>]; known: {sorted(processes)}",
                    )
                )
            if p.signal is None:
                continue
            sig = self.signals.get(p.signal)
            if sig is None:
                problems.append((("production", i, "signal"), f"signal {p.signal!r} is not declared under [signals]"))
            elif sig.kind not in ("counter", "interval_total", "rate") or sig.amount_unit != "t":
                problems.append(
                    (
                        ("production", i, "signal"),
                        f"signal {p.signal!r} is a {sig.kind} in {sig.unit}; production needs a counter or interval total "
                        "in t, or a rate in t/h",
                    )
                )
        by_transfer: dict[str, set[str]] = {}
        for i, s in enumerate(self.streams):
            if s.transfer is None:
                continue
            if s.balance_role == "none":
                problems.append(
                    (("streams", i, "transfer"), f"stream {s.process}/{s.stream}: a transfer must be a balance input or output")
                )
            by_transfer.setdefault(s.transfer, set()).add(s.balance_role)
        for i, s in enumerate(self.streams):
            if s.transfer is not None and by_transfer[s.transfer] != {"input", "output"}:
                problems.append(
                    (
                        ("streams", i, "transfer"),
                        f"stream {s.process}/{s.stream}: transfer {s.transfer!r} needs a producing process (balance output) "
                        "and a consuming one (balance input) naming it",
                    )
                )
        return problems

    def signal_poll_s(self) -> dict[str, float]:
        """Fastest poll interval feeding each signal (MQTT signals: none; OPC UA: poll_s, or the
        publishing interval of a subscription)."""
        out: dict[str, float] = {}
        for server in self.opcua.servers:
            # subscribe: an unchanged value is re-emitted every publishing interval (at least every second)
            every_s = server.poll_s if server.mode == "poll" else max(server.publishing_interval_ms / 1000.0, min(server.watchdog_s, 1.0))
            for node in server.nodes:
                out[node.signal] = min(out.get(node.signal, every_s), every_s)
        for dev in self.modbus.devices:
            for point in dev.points:
                out[point.signal] = min(out.get(point.signal, dev.poll_s), dev.poll_s)
        for plc in self.s7.devices:
            for s7_point in plc.points:
                out[s7_point.signal] = min(out.get(s7_point.signal, plc.poll_s), plc.poll_s)
        return out
