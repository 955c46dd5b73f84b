"""Sans-IO decoding: register words -> values and qualities, MQTT payloads -> samples, line
protocol. Pure functions only: no sockets, clock, logging or pymodbus (its
`convert_from_registers` changed results between minors, so byte order lives here).

- `registers`: `DataType`, `ByteOrder`, `register_count`, `encode_value` (values -> words).
- `blocks`: the one Modbus decoder: `compile_block` (a read block's words -> its points' values
  and qualities, every poll) and `decode_registers` (one point, through the same decoder).
- `points`: the point rules the decoder applies (scale, offset, sentinel, plausible range).
- `payloads`: `PayloadFormat`, `parse_payload` (JSON, bare number, line protocol via `lineproto`).
"""

from gateway.codec.blocks import BlockDecoder, compile_block, decode_registers, point_width
from gateway.codec.payloads import (
    PayloadFormat,
    Sample,
    parse_field_path,
    parse_payload,
    validate_payload_options,
)
from gateway.codec.registers import ByteOrder, DataType, encode_value, register_count
from gateway.core.errors import DecodeError
from gateway.core.model import SampleQuality

__all__ = [
    "BlockDecoder",
    "ByteOrder",
    "DataType",
    "DecodeError",
    "PayloadFormat",
    "Sample",
    "SampleQuality",
    "compile_block",
    "decode_registers",
    "encode_value",
    "parse_field_path",
    "parse_payload",
    "point_width",
    "register_count",
    "validate_payload_options",
]
