"""The `emgate` command: one entry point, one module per subcommand in gateway/commands/.

Exit codes: 0 ok, 2 usage, configuration or input error, 1 runtime failure.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gateway import __version__
from gateway.logging_setup import setup_logging

# Subcommand modules; each has add_parser(subparsers) and sets func(args) -> int.
COMMANDS = ("run", "demo", "check_config", "calc", "decode", "ledger", "config_schema", "export", "replay", "probe", "poll", "examples", "lab", "browse", "cbam")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emgate", description="Emissions gateway for steel plants.")
    parser.add_argument("--version", action="version", version=f"emgate {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"],
                        help="text: human lines (default); json: one JSON object per line, for log collectors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"gateway.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    setup_logging(args.log_level, args.log_format)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
