"""The [hj212] section: TCP listeners that CEMS data loggers send HJ 212-2017 frames to."""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Name = Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.\-]+$")]
#: Which data command a value field comes from when `cn` is not given.
DEFAULT_CN = {"Rtd": 2011, "Avg": 2051, "Min": 2051, "Max": 2051, "Cou": 2051}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hj212PointConfig(_Section):
    """One value of one data logger's frames feeding one signal."""

    mn: str = Field(
        min_length=1, max_length=24, pattern=r"^[A-Za-z0-9]+$", description="The data logger's MN (device number) as it sends it."
    )
    code: str = Field(
        min_length=1,
        max_length=20,
        pattern=r"^[A-Za-z0-9]+$",
        description="Pollutant or parameter code, e.g. a21026 (SO2), a01011 (flow velocity).",
    )
    field: Literal["Rtd", "Avg", "Min", "Max", "Cou"] = Field(
        "Rtd", description="Which value of the code: Rtd real-time, Avg/Min/Max of an interval, Cou its total."
    )
    cn: Literal[2011, 2051, 2061] | None = Field(
        None,
        description="Data command the value is taken from: 2011 real-time, 2051 minute, 2061 hourly; default 2011 for Rtd, else 2051.",
    )
    signal: Name = Field(description="Signal this value feeds (a key of [signals]).")

    @property
    def command(self) -> int:
        return self.cn if self.cn is not None else DEFAULT_CN[self.field]

    @model_validator(mode="after")
    def _field_in_command(self) -> Hj212PointConfig:
        _check_field(self.field, self.command)
        return self


def _check_field(field: str, command: int) -> None:
    if command == 2011 and field != "Rtd":
        raise ValueError(f"field {field!r} is not sent in real-time data (CN 2011); use Rtd, or cn 2051/2061")
    if command != 2011 and field == "Rtd":
        raise ValueError(f"field 'Rtd' is sent in real-time data only; set cn = 2011 or use Avg/Min/Max/Cou for CN {command}")


class Hj212CemsConfig(_Section):
    """A stack's CO2 mass flow: one frame's CO2 concentration x its dry flue-gas flow (analytics/cems.py).

    Both values come from the same frame (same DataTime), so the product is taken at each report
    and the minute stage integrates it like any rate. Both must be dry gas at normal conditions.
    """

    mn: str = Field(min_length=1, max_length=24, pattern=r"^[A-Za-z0-9]+$", description="The data logger's MN.")
    co2_code: str = Field(
        min_length=1,
        max_length=20,
        pattern=r"^[A-Za-z0-9]+$",
        description="Code of the CO2 concentration (a05001 in HJ 212-2017).",
    )
    co2_unit: Literal["%", "ppm", "mg/m3"] = Field(
        description="Unit of the CO2 concentration, of dry gas: % (volume), ppm (umol/mol) or mg/m3 (mg per Nm3)."
    )
    flow_code: str = Field(
        min_length=1, max_length=20, pattern=r"^[A-Za-z0-9]+$", description="Code of the dry flue-gas flow (e.g. a00000)."
    )
    flow_unit: Literal["Nm3/h", "Nm3/min", "Nm3/s"] = Field(
        description="Unit of the dry flue-gas flow at 0 degC and 101.325 kPa (HJ 212 sends a00000 in m3/s: Nm3/s)."
    )
    field: Literal["Rtd", "Avg"] = Field("Rtd", description="Rtd (real-time data) or Avg (of minute or hourly data).")
    cn: Literal[2011, 2051, 2061] | None = Field(None, description="Data command; default 2011 for Rtd, 2051 for Avg.")
    signal: Name = Field(description="Signal the CO2 mass flow feeds: a rate in kg/h or t/h.")

    @property
    def command(self) -> int:
        return self.cn if self.cn is not None else DEFAULT_CN[self.field]

    @model_validator(mode="after")
    def _field_in_command(self) -> Hj212CemsConfig:
        _check_field(self.field, self.command)
        return self


class Hj212ServerConfig(_Section):
    """One TCP listener. Data loggers connect to it; each frame is checked, parsed and mapped."""

    name: Name
    host: str = Field("127.0.0.1", description="Address to listen on; the CEMS network's interface (or 0.0.0.0) in a plant.")
    port: int = Field(ge=1, le=65535, description="TCP port the data loggers are configured to send to.")
    max_connections: int = Field(8, ge=1, le=1000, description="Connections beyond this are closed at once (counted).")
    idle_timeout_s: float = Field(
        300.0, gt=0, le=86400, description="A connection that sends nothing this long is closed; the data logger reconnects."
    )
    frame_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="A frame begun must be complete within this; else the connection is closed (slow senders).",
    )
    max_data_bytes: int = Field(
        9999, ge=64, le=9999, description="Largest data segment accepted (the length field allows 9999; the standard 1024)."
    )
    timezone: str | None = Field(None, description="Zone of the data loggers' DataTime; default the site's.")
    points: list[Hj212PointConfig] = Field(default_factory=list)
    cems: list[Hj212CemsConfig] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Asia/Shanghai") from None
        return value

    @model_validator(mode="after")
    def _unique_points(self) -> Hj212ServerConfig:
        seen: set[tuple[str, str, str, int]] = set()
        for p in self.points:
            key = (p.mn, p.code, p.field, p.command)
            if key in seen:
                raise ValueError(f"point mn={p.mn} code={p.code} field={p.field} cn={p.command} is mapped twice")
            seen.add(key)
        return self


class Hj212Config(_Section):
    servers: list[Hj212ServerConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_servers(self) -> Hj212Config:
        names: set[str] = set()
        binds: set[tuple[str, int]] = set()
        for s in self.servers:
            if s.name in names:
                raise ValueError(f"hj212 server name {s.name!r} is used twice; names must be unique")
            if (s.host, s.port) in binds:
                raise ValueError(f"hj212 server {s.name!r}: {s.host}:{s.port} is already the address of another server")
            names.add(s.name)
            binds.add((s.host, s.port))
        return self
