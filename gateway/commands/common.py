"""Helpers shared by subcommands: loading settings and printing configuration problems."""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.errors import ConfigError
from gateway.settings import GatewaySettings, load_settings


def load_or_report(path: Path) -> GatewaySettings | None:
    """Load a site file; print every problem to stderr and return None if it is invalid."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        report_config_error(exc)
        return None


def report_config_error(exc: ConfigError) -> None:
    print(f"emgate: configuration error: {exc}", file=sys.stderr)
    for problem in exc.problems:
        if problem != str(exc):
            print(f"  - {problem}", file=sys.stderr)
