"""Sans-IO decoding: register words -> values, raw values -> engineering values and quality,
MQTT payloads -> samples. Pure functions only: no sockets, clock, logging or pymodbus
(its `convert_from_registers` changed results between minors, so byte order lives here).

- `registers`: `DataType`, `ByteOrder`, `register_count`, `decode_registers`, `encode_value`,
  `decode_block` (vectorised, many points of one type).
- `points`: `apply_point`, `apply_points` (scale, offset, sentinel, plausibility), and
  `SampleQuality` re-exported from gateway.core.model.
- `payloads`: `PayloadFormat`, `parse_payload` (JSON, bare number, line protocol via `lineproto`).
"""

from gateway.codec.payloads import (
    PayloadFormat,
    Sample,
    parse_field_path,
    parse_payload,
    validate_payload_options,
)
from gateway.codec.points import SampleQuality, apply_point, apply_points
from gateway.codec.registers import (
    ByteOrder,
    DataType,
    decode_block,
    decode_registers,
    encode_value,
    register_count,
)
from gateway.core.errors import DecodeError

__all__ = [
    "ByteOrder",
    "DataType",
    "DecodeError",
    "PayloadFormat",
    "Sample",
    "SampleQuality",
    "apply_point",
    "apply_points",
    "decode_block",
    "decode_registers",
    "encode_value",
    "parse_field_path",
    "parse_payload",
    "register_count",
    "validate_payload_options",
]
