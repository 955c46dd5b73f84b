"""`emgate decode`: decode register words by hand, the way the gateway would.

    emgate decode --type FLOAT32 --byte-order CDAB 0xE979 0x42F6   ->  123.45600128173828

For checking a device's register map on site: paste the words a Modbus tool shows and
see whether the type and byte order give the value on the device's display.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from gateway.codec import ByteOrder, DataType, decode_registers, register_count
from gateway.core.errors import DecodeError

_WORD = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")


def add_parser(subparsers: Any) -> None:
    """Register the `decode` subcommand on the `emgate` parser's subparsers."""
    parser = subparsers.add_parser(
        "decode",
        help="decode Modbus register words into a value",
        description=(
            "Decode register words as the gateway would and print the value alone. Words are "
            "given as the device returns them, lowest address first, in decimal or 0x hex."
        ),
    )
    parser.add_argument(
        "--type",
        required=True,
        metavar="TYPE",
        help=f"data type, case-insensitive: {', '.join(DataType)}",
    )
    parser.add_argument(
        "--byte-order",
        required=True,
        metavar="ORDER",
        help="ABCD (big endian), CDAB (word swap), BADC (byte swap) or DCBA (little endian)",
    )
    parser.add_argument("--scale", type=float, default=None, help="multiply the raw value (default 1)")
    parser.add_argument("--offset", type=float, default=None, help="add after scaling (default 0)")
    parser.add_argument("--bit", type=int, default=None, help="bit index 0..15 for --type BIT")
    parser.add_argument("words", nargs="+", metavar="WORD", help="register words, e.g. 17142 or 0x42F6")
    parser.set_defaults(func=run)


class _UsageError(Exception):
    pass


def _parse_word(text: str, index: int) -> int:
    if not _WORD.fullmatch(text):
        raise _UsageError(f"word {index + 1} {text!r} is not a decimal or 0x hex number")
    value = int(text, 16) if text[:2].lower() == "0x" else int(text, 10)
    if value > 0xFFFF:
        raise _UsageError(f"word {index + 1} {text!r} is {value}, outside 0..65535 (0x0000..0xFFFF)")
    return value


def _decode(args: argparse.Namespace) -> str:
    try:
        dtype = DataType(args.type)
    except ValueError:
        raise _UsageError(f"unknown --type {args.type!r}; use one of {', '.join(DataType)}") from None
    try:
        order = ByteOrder(args.byte_order)
    except ValueError:
        raise _UsageError(
            f"unknown --byte-order {args.byte_order!r}; use one of {', '.join(ByteOrder)}"
        ) from None
    words = [_parse_word(text, i) for i, text in enumerate(args.words)]
    if dtype is DataType.BIT and args.bit is None:
        raise _UsageError("--type BIT needs --bit N (0..15, 0 = least significant)")
    if dtype is not DataType.BIT and args.bit is not None:
        raise _UsageError(f"--bit applies to --type BIT only, not to {dtype}")
    if dtype is not DataType.STRING and len(words) != register_count(dtype):
        count = register_count(dtype)
        raise _UsageError(f"{dtype} needs {count} word{'s' * (count != 1)}, got {len(words)}")
    scale = 1.0 if args.scale is None else args.scale
    offset = 0.0 if args.offset is None else args.offset
    if dtype is DataType.STRING and (scale != 1.0 or offset != 0.0):
        raise _UsageError("--scale and --offset apply to numeric types, not STRING")

    try:
        raw = decode_registers(words, dtype, order, bit=args.bit)
    except (DecodeError, ValueError) as exc:
        raise _UsageError(str(exc)) from None
    if isinstance(raw, str) or (scale == 1.0 and offset == 0.0):
        return raw if isinstance(raw, str) else repr(raw)
    # Plain arithmetic, not the point rules: on site you want to see inf as inf, not a quality flag.
    return repr(float(raw) * scale + offset)


def run(args: argparse.Namespace) -> int:
    """Print the decoded value; exit 0, or 2 with a one-line error for bad input."""
    try:
        print(_decode(args))
    except _UsageError as exc:
        print(f"emgate decode: error: {exc}", file=sys.stderr)
        return 2
    return 0
