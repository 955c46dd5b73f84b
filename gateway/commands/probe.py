"""`emgate probe`: one live Modbus read, printed raw and decoded, for checking a device on site;
or one OPC UA node read (`--opcua URL --node ID`, the same as `emgate browse URL --node ID --depth 0`).

    emgate probe --host 10.0.0.7 --unit 3 --address 100 --count 2 --type FLOAT32 --byte-order CDAB
    emgate probe --serial-port /dev/ttyUSB0 --baudrate 9600 --unit 2 --address 0 --register input
    emgate probe --opcua opcua://10.30.0.5:4840 --node "ns=2;s=Sinter.Gas.Flow"

Only read function codes (1, 2, 3, 4) exist on this path, like everywhere in emgate. Exit codes:
0 the device answered, 1 no reply or an exception reply, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any, Literal

from gateway.codec import ByteOrder, DataType, decode_registers, register_count
from gateway.core.errors import DecodeError
from gateway.sources.modbus import EXCEPTION_NAMES
from gateway.sources.pymodbus_client import READ_FUNCTION_CODES, ModbusClient, ModbusExceptionReply, ModbusNoReply


def add_parser(subparsers: Any) -> None:
    """Register the `probe` subcommand."""
    p = subparsers.add_parser(
        "probe",
        help="read registers from a live Modbus device once and decode them",
        description="One live read over Modbus TCP, RTU over TCP or RTU on a serial port; prints every "
        "word (decimal and hex) and, with --type, the decoded value(s).",
    )
    where = p.add_argument_group("where")
    where.add_argument("--host", help="device or gateway address (TCP)")
    where.add_argument("--port", type=int, default=502, help="TCP port (default 502)")
    where.add_argument("--rtu-over-tcp", action="store_true", help="RTU framing over TCP (serial servers)")
    where.add_argument("--serial-port", help="serial device for RTU, e.g. /dev/ttyUSB0")
    where.add_argument("--baudrate", type=int, default=9600)
    where.add_argument("--parity", choices=["N", "E", "O"], default="N")
    where.add_argument("--stopbits", type=int, choices=[1, 2], default=1)
    what = p.add_argument_group("what")
    what.add_argument("--unit", type=int, default=1, help="unit id (slave id), default 1")
    what.add_argument("--address", type=int, help="zero-based first address (Modbus; required there)")
    what.add_argument(
        "--count", type=int, default=None, help="registers or bits (default: what --type needs, else 1)"
    )
    what.add_argument("--register", choices=list(READ_FUNCTION_CODES), default="holding")
    what.add_argument("--type", help=f"decode as: {', '.join(DataType)}")
    what.add_argument("--byte-order", default="ABCD", help="ABCD, CDAB (word swap), BADC (byte swap), DCBA")
    what.add_argument("--bit", type=int, default=None, help="bit index 0..15 for --type BIT")
    what.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the reply (default 2)")
    opcua = p.add_argument_group("OPC UA (instead of Modbus)")
    opcua.add_argument("--opcua", metavar="URL", help="opcua://HOST:PORT[/PATH]: read one node of this server")
    opcua.add_argument("--node", help="with --opcua: the NodeId (ns=2;s=Name) or browse path (/0:Objects/2:Name)")
    p.set_defaults(func=run)


class _Usage(Exception):
    pass


def _check(args: argparse.Namespace) -> tuple[DataType | None, ByteOrder, int]:
    if args.address is None:
        raise _Usage("--address is required (or --opcua URL --node ID for an OPC UA node)")
    if bool(args.host) == bool(args.serial_port):
        raise _Usage("give either --host (TCP) or --serial-port (RTU)")
    if not 0 <= args.unit <= 247:
        raise _Usage(f"--unit {args.unit} is outside 0..247")
    if not 0 <= args.address <= 65535:
        raise _Usage(f"--address {args.address} is outside 0..65535")
    try:
        order = ByteOrder(args.byte_order)
    except ValueError:
        raise _Usage(f"unknown --byte-order {args.byte_order!r}; use one of {', '.join(ByteOrder)}") from None
    dtype = None
    if args.type:
        try:
            dtype = DataType(args.type)
        except ValueError:
            raise _Usage(f"unknown --type {args.type!r}; use one of {', '.join(DataType)}") from None
        if dtype is DataType.BIT and args.register in ("holding", "input") and args.bit is None:
            raise _Usage("--type BIT on a register needs --bit N (0..15)")
    bits = args.register in ("coil", "discrete")
    width = 1 if (dtype is None or dtype is DataType.STRING or bits) else register_count(dtype)
    count = args.count if args.count is not None else width
    limit = 2000 if bits else 125
    if not 1 <= count <= limit:
        raise _Usage(f"--count {count} is outside 1..{limit} for {args.register}")
    if dtype is not None and not bits and dtype is not DataType.STRING and count % width:
        raise _Usage(f"--count {count} is not a multiple of {width}, the registers of one {dtype}")
    return dtype, order, count


async def _read(args: argparse.Namespace, count: int) -> tuple[list[int], float, str]:
    transport: Literal["tcp", "rtu", "rtu_over_tcp"] = (
        "rtu" if args.serial_port else ("rtu_over_tcp" if args.rtu_over_tcp else "tcp")
    )
    client = ModbusClient(
        transport=transport,
        host=args.host or "127.0.0.1",
        port=args.port,
        serial_port=args.serial_port,
        baudrate=args.baudrate,
        parity=args.parity,
        stopbits=args.stopbits,
        timeout_s=args.timeout,
    )
    try:
        await client.connect()
        started = time.perf_counter()
        words = await client.read(args.register, args.address, count, args.unit)
        return words, time.perf_counter() - started, client.endpoint
    finally:
        client.close()


def _decoded(words: list[int], dtype: DataType, order: ByteOrder, args: argparse.Namespace) -> list[str]:
    if args.register in ("coil", "discrete"):
        return []
    if dtype is DataType.STRING:
        chunks = [words]
    else:
        width = register_count(dtype)
        chunks = [words[i : i + width] for i in range(0, len(words), width)]
    out = []
    for i, chunk in enumerate(chunks):
        address = args.address + i * len(chunk)
        try:
            value = decode_registers(chunk, dtype, order, bit=args.bit if dtype is DataType.BIT else None)
        except DecodeError as exc:
            value = f"decode error: {exc}"
        out.append(f"{address:>7}  {dtype} {order}: {value!r}")
    return out


def run(args: argparse.Namespace) -> int:
    """Read once; print words and decoded values."""
    if args.opcua is not None or args.node is not None:
        return _probe_opcua(args)
    try:
        dtype, order, count = _check(args)
    except _Usage as exc:
        print(f"emgate probe: error: {exc}", file=sys.stderr)
        return 2
    try:
        words, took_s, endpoint = asyncio.run(_read(args, count))
    except ModbusExceptionReply as exc:
        name = EXCEPTION_NAMES.get(exc.code, "unknown code")
        print(
            f"emgate probe: {exc} ({name}); check the address, --register table and --count against "
            f"the device's register map",
            file=sys.stderr,
        )
        return 1
    except ModbusNoReply as exc:
        print(f"emgate probe: {exc}", file=sys.stderr)
        return 1
    fc = READ_FUNCTION_CODES[args.register]
    print(
        f"{endpoint} unit {args.unit}: read {args.register} (function code {fc}) "
        f"address {args.address} count {count}: {took_s * 1000:.1f} ms"
    )
    print("address     word     hex")
    for i, w in enumerate(words):
        print(f"{args.address + i:>7}  {w:>7}  0x{w:04X}")
    if dtype is not None:
        print("\n".join(_decoded(words, dtype, order, args)))
    return 0


def _probe_opcua(args: argparse.Namespace) -> int:
    """One OPC UA node, read through `emgate browse` at depth 0."""
    from gateway.commands import browse

    if args.opcua is None or args.node is None:
        print("emgate probe: error: --opcua URL and --node ID go together", file=sys.stderr)
        return 2
    ns = argparse.Namespace(url=args.opcua, node=args.node, depth=0, username=None, password_file=None, timeout=args.timeout)
    return browse.run(ns)
