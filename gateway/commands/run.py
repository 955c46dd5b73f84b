"""`emgate run --config FILE`: run the gateway for a site until stopped."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from gateway.commands.common import build_or_report, load_or_report, report_config_error, run_stoppable
from gateway.core.errors import ConfigError
from gateway.core.memory import built_compact, disable_huge_pages, pin_mmap_threshold
from gateway.http import add_http_argument, http_bind
from gateway.pipeline import Gateway

log = logging.getLogger("gateway")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the gateway for a site")
    p.add_argument("--config", type=Path, required=True, help="site TOML file")
    p.add_argument("--minutes", type=int, default=None, help="stop after this many closed minutes")
    p.add_argument("--quiet", action="store_true", help="do not print each closed minute")
    add_http_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    disable_huge_pages()  # numpy's large arrays resident 4 KiB at a time, not 2 MB (gateway/core/memory.py)
    pin_mmap_threshold()  # and a minute close's temporaries given back to the system
    # loaded, then made again once the parse's holes in the heap are given back (gateway/core/memory.py)
    settings = built_compact(lambda: load_or_report(args.config))
    if settings is None:
        return 2
    gw = build_or_report("run", args.config, lambda: Gateway.build(settings))
    if isinstance(gw, int):
        return gw
    if not args.quiet and sys.stdout.isatty():  # a terminal gets a live table, a pipe or journal gets lines
        gw.show_live_table()
    elif not args.quiet:
        gw.print_minutes()
    log.info("site %s: %d Modbus device(s), ledger %s%s", settings.site.name, len(settings.modbus.devices),
             settings.ledger.path, f", InfluxDB {settings.influx.url}" if settings.influx.enabled else "")
    try:
        # Ctrl-C and SIGTERM stop it in order: KeyboardInterrupt after the final checkpoint and drain (exit 130)
        run_stoppable(_run_with_page(gw, http_bind(args, settings), args.minutes))
    except ConfigError as exc:  # the status page's port is taken or malformed
        report_config_error(exc)
        return 2
    finally:
        gw.close()
    return 0


async def _run_with_page(gw: Gateway, bind: str | None, minutes: int | None) -> None:
    async with gw.status_page(bind) as page:
        if page is not None:
            print(f"emgate run: status page {page.url} (metrics {page.url}metrics)", flush=True)
        await gw.run(stop_after_minutes=minutes)
