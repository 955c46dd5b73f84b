"""The [s7] section: Siemens S7 PLCs read over S7comm (ISO-on-TCP, port 102).

A point names where its value sits in the PLC the way a Step 7 / TIA Portal tag table does:
an area (DB, M, I, Q), the data block number for DB, the byte offset `byte`, and for BOOL the
bit (DB10.DBX4.3 is area "DB", db 10, byte 4, bit 3, type BOOL). Values are in S7 order (big
endian). The rules a point's raw value goes through (scale, offset, sentinel, min, max) are
Modbus's (gateway/codec/points.py).
"""

from __future__ import annotations

import sys
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.codec.s7 import S7_TYPE_BYTES

Name = Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.\-]+$")]
S7Area = Literal["DB", "M", "I", "Q"]
S7Type = Literal["BOOL", "BYTE", "WORD", "DWORD", "INT", "DINT", "REAL", "LREAL"]

#: The largest byte offset an S7 address can carry (21 bits of bit address).
S7_MAX_OFFSET = 0xFFFF


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class S7PointConfig(_Section):
    signal: Name = Field(description="Signal name this point feeds (a key of [signals]).")
    area: S7Area = Field("DB", description="PLC memory area: DB (data block), M (markers), I (inputs) or Q (outputs).")
    db: int | None = Field(None, ge=1, le=65535, description="Data block number; required for area DB, not allowed otherwise.")
    byte: int = Field(ge=0, le=S7_MAX_OFFSET, description="Byte offset of the value in the area (DB10.DBD4: 4).")
    type: S7Type = Field(description="BOOL, BYTE, WORD, DWORD, INT, DINT, REAL or LREAL (big endian, as S7 stores them).")
    bit: int | None = Field(None, ge=0, le=7, description="Bit 0..7 of the byte, for type BOOL (DB10.DBX4.3: 3).")
    scale: float = Field(1.0, allow_inf_nan=False, description="Engineering value = raw x scale + offset; finite and not zero.")
    offset: float = Field(0.0, allow_inf_nan=False, description="Added after scaling.")
    unit: str = ""
    sentinel: float | None = Field(None, description="Raw value that means 'no reading'.")
    min: float | None = Field(None, allow_inf_nan=False, description="Plausible minimum; outside is flagged, not clamped.")
    max: float | None = Field(None, allow_inf_nan=False, description="Plausible maximum (engineering units).")

    @model_validator(mode="before")
    @classmethod
    def _upper(cls, data: object) -> object:
        if isinstance(data, dict):
            data = dict(data)
            for key in ("area", "type"):
                if isinstance(data.get(key), str):
                    data[key] = data[key].strip().upper()
        return data

    @model_validator(mode="after")
    def _rules(self) -> S7PointConfig:
        object.__setattr__(self, "signal", sys.intern(self.signal))
        if self.area == "DB" and self.db is None:
            raise ValueError("area DB needs 'db' (the data block number, DB10 -> 10)")
        if self.area != "DB" and self.db is not None:
            raise ValueError(f"'db' applies to area DB only, not {self.area}")
        if self.type == "BOOL" and self.bit is None:
            raise ValueError("type BOOL needs 'bit' (0-7: DBX4.3 is byte 4, bit 3)")
        if self.type != "BOOL" and self.bit is not None:
            raise ValueError(f"'bit' applies to type BOOL only, not {self.type}")
        if self.scale == 0:
            raise ValueError("scale 0 makes every reading equal to offset; give the value's scale (1 when raw)")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        last = self.byte + S7_TYPE_BYTES[self.type] - 1
        if last > S7_MAX_OFFSET:
            raise ValueError(f"a {self.type} at byte {self.byte} ends at byte {last}, past the last S7 byte {S7_MAX_OFFSET}")
        return self

    @property
    def where(self) -> str:
        """The point's S7 address, as a tag table writes it: DB10.DBD4, MW2, I0.3."""
        size = {1: "B", 2: "W", 4: "D", 8: "D"}[S7_TYPE_BYTES[self.type]]
        if self.area == "DB":
            if self.type == "BOOL":
                return f"DB{self.db}.DBX{self.byte}.{self.bit}"
            return f"DB{self.db}.DB{size}{self.byte}"
        if self.type == "BOOL":
            return f"{self.area}{self.byte}.{self.bit}"
        return f"{self.area}{size}{self.byte}"


class S7DeviceConfig(_Section):
    name: Name
    host: str = Field(description="The PLC's (or its CP's) IP address or host name.")
    port: int = Field(102, ge=1, le=65535, description="ISO-on-TCP port; 102 on every S7 PLC.")
    rack: int = Field(0, ge=0, le=7, description="Rack of the CPU (0 on S7-1200/1500).")
    slot: int = Field(
        1, ge=0, le=31, description="Slot of the CPU: S7-300 2, S7-400 per hardware config, S7-1200/1500 0 or 1."
    )
    local_tsap: int | None = Field(
        None, ge=0, le=0xFFFF, description="TSAP of the gateway (e.g. 0x0100); with remote_tsap instead of rack/slot (LOGO!, S7-200)."
    )
    remote_tsap: int | None = Field(
        None, ge=0, le=0xFFFF, description="TSAP of the PLC (e.g. 0x0200 for a LOGO!); set both TSAPs or neither."
    )
    pdu_bytes: int = Field(
        960,
        ge=240,
        le=960,
        description="PDU size asked for at connect; the PLC answers with what it takes (240 on S7-300, 480 or 960 on "
        "S7-1500) and the read planner packs every request within the size agreed.",
    )
    poll_s: float = Field(1.0, gt=0, le=3600)
    timeout_s: float = Field(2.0, gt=0, le=60, description="Bounds connect and each request.")
    max_gap_bytes: int = Field(16, ge=0, le=512, description="Unused bytes a read may bridge to read fewer items.")
    max_items_per_request: int = Field(
        20, ge=1, le=20, description="Items in one multi-variable read (S7-300/400 CPUs take at most 20)."
    )
    points: list[S7PointConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _device_rules(self) -> S7DeviceConfig:
        if (self.local_tsap is None) != (self.remote_tsap is None):
            raise ValueError("set both local_tsap and remote_tsap (TSAP addressing) or neither (rack/slot addressing)")
        if self.timeout_s >= self.poll_s * 10:
            raise ValueError(f"timeout_s {self.timeout_s} should be well below poll_s {self.poll_s}")
        return self

    @property
    def endpoint(self) -> str:
        where = (
            f"TSAP {self.local_tsap:#06x}->{self.remote_tsap:#06x}"
            if self.local_tsap is not None and self.remote_tsap is not None
            else f"rack {self.rack} slot {self.slot}"
        )
        return f"s7 {self.name!r} {self.host}:{self.port} {where}"


class S7Config(_Section):
    devices: list[S7DeviceConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> S7Config:
        seen: set[str] = set()
        for dev in self.devices:
            if dev.name in seen:
                raise ValueError(f"s7.devices: device name {dev.name!r} is used twice; names must be unique")
            seen.add(dev.name)
        return self
