"""`emgate poll --config FILE --once`: poll every configured Modbus point once and print a table,
like Telegraf's --test: device, point (signal), address, raw words, value, unit and quality.

The reads are the gateway's own (same planner, shared serial lines, exception-2 isolation,
decoding), so what this prints is what the gateway would record. Exit codes: 0 every device
answered, 1 a device did not (its rows say COMM_ERROR and the reason is printed), 2 bad config.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from gateway.codec import decode_registers
from gateway.commands.common import load_or_report
from gateway.core.clock import SystemClock
from gateway.core.errors import DecodeError, TransientError
from gateway.core.health import ComponentHealth
from gateway.core.model import SampleBatch, SampleQuality
from gateway.core.signals import SignalTable
from gateway.settings.site import GatewaySettings
from gateway.sources.modbus import ModbusSource
from gateway.sources.modbus_link import ModbusLinkPool

HEADER = ("device", "point", "address", "raw", "value", "unit", "quality")


def add_parser(subparsers: Any) -> None:
    """Register the `poll` subcommand."""
    p = subparsers.add_parser(
        "poll",
        help="poll every configured Modbus point once and print a table",
        description="Read every Modbus point of a site file once, as the gateway "
        "would, and print raw words, value, unit and quality per point.",
    )
    p.add_argument("--config", type=Path, required=True, help="site TOML file")
    p.add_argument("--once", action="store_true", help="one poll of every device (the only mode)")
    p.add_argument("--device", action="append", help="only this device (repeatable)")
    p.set_defaults(func=run)


async def _poll(
    settings: GatewaySettings, names: set[str] | None
) -> list[tuple[ModbusSource, SampleBatch | None, str]]:
    signals = SignalTable.from_settings(settings)
    devices = [d for d in settings.modbus.devices if names is None or d.name in names]
    links = ModbusLinkPool(settings.retry)
    links.reserve_timeouts(devices)
    queue: asyncio.Queue[SampleBatch] = asyncio.Queue()

    async def one(dev: Any) -> tuple[ModbusSource, SampleBatch | None, str]:
        src = ModbusSource(
            dev, signals, queue, SystemClock(), ComponentHealth(dev.name), links=links, retry=settings.retry
        )
        src.keep_words = True
        try:
            async with src:
                batch = await src.poll_once(time.time())
        except TransientError as exc:
            return src, None, str(exc)
        return src, batch, "" if src.health.ok else src.health.last_error

    return list(await asyncio.gather(*(one(d) for d in devices)))


def _value(src: ModbusSource, i: int, batch: SampleBatch | None) -> str:
    p = src.cfg.points[i]
    if batch is None:
        return "-"
    if p.type == "STRING" and i in src.last_words:
        try:
            return repr(decode_registers(src.last_words[i], "STRING", p.byte_order))
        except DecodeError:
            return "?"
    v = float(batch.values[i])
    return "-" if v != v else f"{v:.6g}"


def rows(
    settings: GatewaySettings, results: list[tuple[ModbusSource, SampleBatch | None, str]]
) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for src, batch, _ in results:
        for i, p in enumerate(src.cfg.points):
            words = src.last_words.get(i)
            raw = (
                " ".join(f"0x{w:04X}" if p.kind in ("holding", "input") else str(w) for w in words)
                if words
                else "-"
            )
            quality = SampleQuality(int(batch.quality[i])).label if batch is not None else "comm_error"
            if p.type == "STRING" and words:
                quality = "text"
            unit = p.unit or (settings.signals[p.signal].unit if p.signal in settings.signals else "")
            out.append(
                (
                    src.cfg.name,
                    p.signal,
                    f"{p.kind}:{p.address} {p.type}",
                    raw,
                    _value(src, i, batch),
                    unit,
                    quality,
                )
            )
    return out


def format_table(table: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[c]) for r in [HEADER, *table]) for c in range(len(HEADER))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [HEADER, *table]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Poll once, print the table and the reason for every device that failed."""
    settings = load_or_report(args.config)
    if settings is None:
        return 2
    names = set(args.device) if args.device else None
    if names and (unknown := names - {d.name for d in settings.modbus.devices}):
        print(
            f"emgate poll: error: no Modbus device named {', '.join(sorted(unknown))} in {args.config}",
            file=sys.stderr,
        )
        return 2
    if not settings.modbus.devices:
        print(f"emgate poll: {args.config} has no [[modbus.devices]] to poll", file=sys.stderr)
        return 2
    results = asyncio.run(_poll(settings, names))
    print(format_table(rows(settings, results)))
    failed = [(src, why) for src, _, why in results if why]
    for src, why in failed:
        print(f"emgate poll: {src.cfg.name}: {why}", file=sys.stderr)
    return 1 if failed else 0
