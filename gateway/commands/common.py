"""Helpers shared by subcommands: loading settings, printing configuration and ledger problems,
and running the gateway until it is stopped."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.core.errors import ConfigError, SinkWriteError
from gateway.ledger.lock import LedgerInUseError
from gateway.ledger.site import LedgerSiteError
from gateway.settings.load import load_settings
from gateway.settings.site import GatewaySettings

if TYPE_CHECKING:  # the pipeline (pymodbus, numpy stages) loads only for the commands that run it
    from gateway.pipeline import Gateway

_T = TypeVar("_T")


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


def report_ledger_error(command: str, exc: LedgerSiteError | LedgerInUseError, site_file: Path | None = None) -> int:
    """Print a ledger of another site, or one another gateway holds, for `emgate COMMAND`; 2."""
    text = exc.message(site_file) if isinstance(exc, LedgerSiteError) else str(exc)
    print(f"emgate {command}: {text}", file=sys.stderr)
    return 2


def build_or_report(command: str, site_file: Path, build: Callable[[], Gateway]) -> Gateway | int:
    """`build()` the gateway of `emgate COMMAND`, or print why it cannot start and return the exit
    code: 2 for a configuration problem, another site's ledger or a ledger another gateway holds
    (restarting fixes none of them), 1 when the ledger cannot be opened."""
    try:
        return build()
    except ConfigError as exc:
        report_config_error(exc)
        return 2
    except (LedgerSiteError, LedgerInUseError) as exc:
        return report_ledger_error(command, exc, site_file)
    except SinkWriteError as exc:
        print(f"emgate {command}: {exc}", file=sys.stderr)
        return 1


class _Terminated(Exception):
    """The main task was cancelled by SIGTERM (and by nothing else)."""


def run_stoppable(main: Coroutine[Any, Any, _T]) -> _T:
    """`asyncio.run(main)`, with SIGTERM stopping it the way Ctrl-C (SIGINT) does.

    asyncio.run turns the first SIGINT into a cancellation of the main task: the pipeline's
    TaskGroup unwinds, the gateway saves its window marked as a stop and drains InfluxDB
    (Gateway.run), and then KeyboardInterrupt is raised, which `emgate` exits 130 for. Python's
    default for SIGTERM, which kill, docker stop, supervisord and Kubernetes send, is to die on
    the spot: none of that would run. Here the first SIGTERM cancels the main task the same
    way and ends in the same KeyboardInterrupt (so the same exit code, 130); a second one while
    stopping raises KeyboardInterrupt at once, as a second Ctrl-C does.
    """

    async def guarded() -> _T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        terms = 0

        def on_sigterm() -> None:
            nonlocal terms
            terms += 1
            if terms > 1:
                raise KeyboardInterrupt
            task.cancel()

        previous = signal.getsignal(signal.SIGTERM)
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
        try:
            return await main
        except asyncio.CancelledError:
            if terms and task.uncancel() == 0:  # our cancellation, nobody else's: a stop on request
                raise _Terminated from None
            raise
        finally:
            loop.remove_signal_handler(signal.SIGTERM)  # which leaves SIG_DFL
            signal.signal(signal.SIGTERM, previous)

    try:
        return asyncio.run(guarded())
    except _Terminated:
        raise KeyboardInterrupt from None
