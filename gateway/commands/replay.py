"""`emgate replay --config FILE --input F [--input F ...] --out DIR`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.commands.common import load_or_report, report_config_error
from gateway.core.errors import ConfigError, DecodeError

if TYPE_CHECKING:  # rich is loaded only when a terminal shows the bar
    from rich.progress import Progress


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="run recorded data through the gateway's minute and emission stages")
    p.add_argument("--config", type=Path, required=True, help="site TOML file")
    p.add_argument("--input", type=Path, action="append", required=True, help="recorded CSV (repeatable)")
    p.add_argument("--out", type=Path, required=True, help="output directory: ledger.sqlite, minutes.csv")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # imported here: every `emgate` command builds this parser, and `emgate run` needs none of it
    from gateway.replay.engine import replay
    from gateway.replay.inputs import InputReport, read_inputs, utc_iso

    settings = load_or_report(args.config)
    if settings is None:
        return 2
    report = InputReport()
    try:
        series = read_inputs(args.input, settings, report)
    except DecodeError as exc:
        print(f"emgate replay: {exc}", file=sys.stderr)
        return 2
    progress, bar = _progress_bar()
    try:
        summary = asyncio.run(replay(settings, series, args.out, progress=progress, notice=_notice))
    except ConfigError as exc:
        report_config_error(exc)
        return 2
    except (FileExistsError, ValueError) as exc:
        print(f"emgate replay: {exc}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.stop()
    print(
        f"emgate replay: {summary.minutes} minute(s) from {utc_iso(summary.first_minute)} to {utc_iso(summary.last_minute)}, "
        f"{summary.rows} ledger row(s); CO2 direct {summary.co2_kg_direct / 1000:,.3f} t, "
        f"indirect {summary.co2_kg_indirect / 1000:,.3f} t; ledger head {summary.ledger_head[:16]}…; wrote {args.out}/"
        + (
            f"; {report.duplicates_dropped} repeated reading(s) (same signal, time and value) dropped"
            if report.duplicates_dropped
            else ""
        )
    )
    return 0


def _notice(message: str) -> None:
    print(f"emgate replay: {message}", file=sys.stderr)


def _progress_bar() -> tuple[Callable[[int, int], None] | None, Progress | None]:
    """A rich progress bar on a terminal; nothing when output is piped."""
    if not sys.stderr.isatty():
        return None, None
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("replay"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} min"),
        TimeRemainingColumn(),
        transient=True,
    )
    task = bar.add_task("replay", total=1)
    bar.start()

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return update, bar
