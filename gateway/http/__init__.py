"""The status page, its event stream and /metrics (aiohttp), served by `emgate run/demo --http`."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

_FROM_SETTINGS = "from-settings"


def add_http_argument(parser: argparse.ArgumentParser) -> None:
    """`--http [HOST:PORT]`: serve the status page and /metrics (bare flag: settings.http.bind)."""
    parser.add_argument(
        "--http",
        nargs="?",
        const=_FROM_SETTINGS,
        default=None,
        metavar="HOST:PORT",
        help="serve the status page and /metrics; without a value at [http] bind "
        "(default 127.0.0.1:8080); port 0 picks a free port",
    )


def http_bind(args: argparse.Namespace, settings: Any) -> str | None:
    value = getattr(args, "http", None)
    if value is None:
        return None
    return str(settings.http.bind) if value == _FROM_SETTINGS else str(value)


@asynccontextmanager
async def status_page(gw: Any, bind: str | None) -> AsyncIterator[Any]:
    """Serve the status page for `gw` while the block runs; yields the StatusServer (None if bind is None)."""
    if bind is None:
        yield None
        return
    from gateway.http.server import StatusServer

    async with StatusServer(gw, bind) as server:
        gw.extra_tasks.append(server.run)
        yield server
