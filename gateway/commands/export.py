"""`emgate export`: the monthly registry export of one site's ledger.

    emgate export --config site.toml --ledger var/ledger.sqlite --month 2026-11 --out exports/2026-11

writes summary.json, daily.csv, daily_by_process.csv, evidence.csv, flagged_minutes.csv,
workbook.xlsx, chart.png, deposit.json, deposit.xlsx, the month's evidence files, manifest.json
(and restatement.json/.csv once figures change after a first export) directly into --out. See
docs/export.md. Each export is noted in the ledger's export log (gateway/ledger/exports.py): the
deposit alert counts a month exported once an export is as of its last change.

Exit codes: 0 written; 2 bad arguments, configuration or input (month, missing ledger, a file
that cannot be read as a ledger, a ledger of another site, --out holding another month); 1 the
ledger fails verification (as `emgate ledger verify`), or a file cannot be written.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.commands.common import load_or_report, report_config_error, report_ledger_error
from gateway.core.errors import ConfigError, SinkWriteError
from gateway.ledger.errors import LedgerError
from gateway.ledger.exports import ExportRecord, record_export
from gateway.ledger.site import LedgerSiteError

if TYPE_CHECKING:
    from gateway.export.monthly import ExportResult


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export",
        help="write the monthly registry export (JSON, CSV, XLSX, PNG, manifest)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, required=True, help="site TOML file")
    p.add_argument(
        "--ledger", type=Path, default=None, help="ledger SQLite file (default: [ledger] path of the config)"
    )
    p.add_argument("--month", required=True, help="YYYY-MM, a calendar month in the site's time zone")
    p.add_argument("--out", type=Path, required=True, help="directory for the files (one per site and month)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gateway.export import monthly  # numpy, openpyxl and matplotlib load only for this command
    from gateway.ledger.month import LedgerIntegrityError

    settings = load_or_report(args.config)
    if settings is None:
        return 2
    ledger = args.ledger or settings.ledger.path
    try:
        config_bytes = args.config.read_bytes()
        with _progress(enabled=not args.no_progress and sys.stderr.isatty()) as step:
            result = monthly.export_month(settings, config_bytes, ledger, args.month, args.out, progress=step)
    except ConfigError as exc:
        report_config_error(exc)
        return 2
    except (monthly.ExportInputError, LedgerError) as exc:
        print(f"emgate export: {exc}", file=sys.stderr)
        return 2
    except LedgerSiteError as exc:  # its minutes would be filed under this site
        return report_ledger_error("export", exc, args.config)
    except LedgerIntegrityError as exc:
        print(f"emgate export: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"emgate export: cannot write to {args.out}: {exc}; check the directory and free space",
            file=sys.stderr,
        )
        return 1
    s = result.summary
    _record(ledger, result)
    if not s["complete"]:
        print(f"emgate export: warning: {s['month']} is INCOMPLETE: {s['incomplete_reason']}", file=sys.stderr)
    direct, indirect = s["scopes"]["direct"]["co2_t"], s["scopes"]["indirect"]["co2_t"]
    print(
        f"{args.out}: {len(result.files)} file(s) for {s['site']} {s['month']} ({s['timezone']}): "
        f"direct {direct:,.3f} t (compliance), indirect {indirect:,.3f} t, {result.rows} minute row(s), "
        f"ledger head {s['ledger']['head_seq']} {s['ledger']['head_hash'][:16]}…"
        + ("; figures changed since the last export: see restatement.json" if result.restated else "")
    )
    return 0


class _progress:
    """A rich progress bar over the export's steps on a terminal (stderr); a no-op otherwise."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None

    def __enter__(self) -> Callable[[str, int, int], None]:
        if not self.enabled:
            return lambda _what, _done, _total: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("export"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.__enter__()
        task = self._bar.add_task("starting", total=None)

        def update(what: str, done: int, total: int) -> None:
            self._bar.update(task, description=what, completed=done, total=total)

        return update

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def _record(ledger: Path, result: ExportResult) -> None:
    """Note the export in the ledger's export log, for the deposit alert (gateway/alerts/deposit.py).

    The export is complete whether or not this works: a ledger the user may only read is told
    about on stderr, and the deposit alert then still counts the month as not exported.
    """
    from gateway.export.deposit import DEPOSIT_JSON

    deposit = result.out_dir / DEPOSIT_JSON
    record = ExportRecord(
        month=result.summary["month"],
        head_seq=int(result.summary["ledger"]["head_seq"]),
        deposit_sha256=hashlib.sha256(deposit.read_bytes()).hexdigest(),
        out_dir=str(result.out_dir.resolve()),
        exported_at=time.time(),
    )
    try:
        record_export(ledger, record)
    except (LedgerError, SinkWriteError) as exc:
        print(
            f"emgate export: warning: the export was not recorded in the ledger's export log ({exc}); "
            "the deposit alert still counts the month as not exported",
            file=sys.stderr,
        )
