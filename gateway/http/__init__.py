"""The status page, its event stream and /metrics (aiohttp), served by `emgate run/demo --http`,
and the live table on a terminal. The pipeline builds and runs them (gateway/pipeline.py); this
package holds the views and the `--http` option of the commands that show them."""

from __future__ import annotations

import argparse

from gateway.settings.site import GatewaySettings

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


def http_bind(args: argparse.Namespace, settings: GatewaySettings) -> str | None:
    """Where `--http` asks to serve the page, or None without the option."""
    value: str | None = args.http
    if value is None:
        return None
    return str(settings.http.bind) if value == _FROM_SETTINGS else value
