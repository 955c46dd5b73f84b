"""`emgate ledger verify|show|restate`: the ledger for auditors and people.

    emgate ledger verify var/ledger.sqlite            -> exit 0, head hash and row count
    emgate ledger verify var/ledger.sqlite --expect-head 3f2a...   (a head recorded earlier)
    emgate ledger show var/ledger.sqlite --from 2026-11-23T08:00 --to 2026-11-23T09:00 --process sinter
    emgate ledger show var/ledger.sqlite --history    (superseded rows and corrections too)
    emgate ledger show var/ledger.sqlite --quarantine (rows InfluxDB refused, with its message)
    emgate ledger restate --config site.toml var/ledger.sqlite --from 2026-11-01T00:00+08:00 --to 2026-12-01T00:00+08:00 --reason "lab NCV PCI-2026-11"

verify and show open the file read-only and print whose ledger it is (the site recorded in it).
restate appends correction rows (gateway/ledger/restate.py) and refuses a ledger of another site than
its --config (exit 2); it may run while the gateway writes the same ledger (each writer chains
on the last row it finds inside its write transaction), so it does not take the gateway's lock. verify exits 1 naming the first bad row when the chain is broken
(a row edited, deleted, inserted or reordered), 2 when the file cannot be read as a ledger.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from analytics.evidence import LabResult, labs_in_force
from gateway.commands import ledger_files
from gateway.core.errors import SinkWriteError
from gateway.ledger.errors import LedgerError
from gateway.ledger.evidence import EvidenceStore, verify_evidence
from gateway.ledger.format import LedgerRow
from gateway.ledger.outbox import Outbox
from gateway.ledger.reader import LedgerReader
from gateway.ledger.site import LedgerSiteError, read_site_record
from gateway.ledger.store import Ledger


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ledger", help="verify, show, restate, back up or migrate a ledger file")
    lsub = p.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    v = lsub.add_parser("verify", help="check the hash chain; print the head hash and row count")
    v.add_argument("file", type=Path, help="ledger SQLite file")
    v.add_argument(
        "--expect-head",
        default=None,
        metavar="HASH",
        help="a head hash recorded earlier; fail if it is no longer in the chain",
    )
    v.add_argument(
        "--witness",
        type=Path,
        default=None,
        metavar="FILE",
        help="seals a witness kept (JSON lines, as published on <prefix>/<site>/seals): fail naming the first day "
        "whose sealed head the ledger no longer has",
    )
    v.add_argument(
        "--archive",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the archive files of `emgate ledger archive` are: check each one's SHA-256, head and month seals",
    )
    v.set_defaults(func=run_verify)
    s = lsub.add_parser("show", help="print minute results (current view, or --history)")
    s.add_argument("file", type=Path, help="ledger SQLite file")
    s.add_argument(
        "--from",
        dest="from_",
        type=parse_time,
        default=None,
        metavar="TIME",
        help="first minute, ISO 8601 (UTC unless it has an offset) or epoch seconds",
    )
    s.add_argument(
        "--to", type=parse_time, default=None, metavar="TIME", help="end (exclusive), same formats"
    )
    s.add_argument("--process", default=None, help="only this process")
    s.add_argument(
        "--history", action="store_true", help="every row: superseded ones and corrections with their reason"
    )
    s.add_argument(
        "--quarantine", action="store_true", help="rows InfluxDB refused for good, with the server's message"
    )
    s.add_argument(
        "--limit", type=int, default=1000, help="print at most this many rows (default 1000; 0 = all)"
    )
    s.set_defaults(func=run_show)
    r = lsub.add_parser(
        "restate",
        help="recompute CO2 of a time range with the factors the config resolves now; append corrections",
        description="For current rows with minute in [--from, --to): recompute co2_kg from the stored activity "
        "with the factor the config resolves for that minute (library, site overrides, validity), or the stream's lab "
        "result of the ledger's evidence valid then (emgate lab import), and append "
        "a correction row where it changed. It may run while the gateway writes the same ledger.",
    )
    r.add_argument("--config", type=Path, required=True, help="site TOML file (its streams and [factors])")
    r.add_argument("file", type=Path, help="ledger SQLite file")
    r.add_argument("--from", dest="from_", type=parse_time, required=True, metavar="TIME", help="first minute, as for show")
    r.add_argument("--to", type=parse_time, required=True, metavar="TIME", help="end (exclusive), same formats")
    r.add_argument("--reason", required=True, help="why, stored with every correction (e.g. 'lab NCV report PCI-2026-11')")
    r.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")
    r.set_defaults(func=run_restate)
    ledger_files.add_parsers(lsub)


def parse_time(text: str) -> float:
    """ISO 8601 (naive means UTC) or epoch seconds -> epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither ISO 8601 (2026-11-23T08:00) nor epoch seconds"
        ) from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def run_verify(args: argparse.Namespace) -> int:
    # imported here: every `emgate` command builds this parser, and the audit's process pool
    # (multiprocessing) is 1 MB that `emgate run` never needs
    from gateway.ledger.audit import cpus, native_walk, verify_ledger

    try:
        report = verify_ledger(args.file, expect_head=args.expect_head, processes=cpus())
        evidence = verify_evidence(args.file)
        site = read_site_record(args.file).describe()
    except LedgerError as exc:
        print(f"emgate ledger verify: {args.file}: cannot read as a ledger: {exc}", file=sys.stderr)
        return 2
    if not report.ok:
        print(
            f"emgate ledger verify: {args.file}: BROKEN at row {report.bad_seq}: {report.problem}",
            file=sys.stderr,
        )
        print(f"  rows {report.archived_seq + 1}..{report.head_seq} are intact; their head is {report.head_hash}", file=sys.stderr)
        return 1
    if not evidence.ok:
        for problem in evidence.problems:
            print(f"emgate ledger verify: {args.file}: BROKEN evidence: {problem}", file=sys.stderr)
        return 1
    if report.expected_head_found is False:
        archived = (
            f" (rows 1..{report.archived_seq} are archived: a head recorded before the archive is checked on the archive file, "
            f"`emgate ledger verify ARCHIVE --expect-head HASH`)"
            if report.archived_seq
            else ""
        )
        print(
            f"emgate ledger verify: {args.file}: head {args.expect_head} recorded earlier is not in the chain: "
            f"the ledger was rewritten or cut back{archived}",
            file=sys.stderr,
        )
        return 1
    archived = f", rows 1..{report.archived_seq} archived" if report.archived_seq else ""
    print(
        f"{args.file}: ok — {site}, {report.rows} row(s) ({report.current_rows} current, {report.corrections} correction(s)){archived}, "
        f"head {report.head_hash}; {'native' if native_walk() else 'Python'} walk"
    )
    if evidence.rows:
        print(f"evidence: ok — {evidence.rows} record(s), {evidence.files} report copy(ies) intact, head {evidence.head_hash}")
    archives = ledger_files.check_archives_or_report(args.file, args.archive)
    if archives:
        return archives
    if args.witness is not None:
        record = read_site_record(args.file)
        return ledger_files.check_witness_or_report(args.file, args.witness, record.sites[0] if len(record.sites) == 1 else None)
    return 0


def _fmt_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%MZ")


def run_show(args: argparse.Namespace) -> int:
    try:
        ledger = Ledger(args.file, readonly=True)
    except SinkWriteError as exc:
        print(f"emgate ledger show: {args.file}: cannot read as a ledger: {exc}", file=sys.stderr)
        return 2
    try:
        try:  # on stderr: stdout stays the table
            print(f"{args.file}: {ledger.reader.site_record().describe()}", file=sys.stderr)
        except LedgerError:
            pass  # not a ledger's tables: the query below says so
        if args.quarantine:
            return _show_quarantine(ledger.outbox, sys.stdout)
        return _show_rows(ledger.reader, args, sys.stdout)
    except BrokenPipeError:  # the reader went away (`| head`): what it wanted it has
        _silence_stdout()
        return 0
    except LedgerError as exc:
        print(f"emgate ledger show: {exc}", file=sys.stderr)
        return 2
    finally:
        ledger.close()


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush of a closed pipe raises nothing."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def printable(text: str) -> str:
    """`text` with its control characters (escape codes, line ends) written as escapes: a
    reason or name stored in the ledger is shown, never executed by the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _show_rows(reader: LedgerReader, args: argparse.Namespace, out: TextIO) -> int:
    out.write(
        f"{'seq':>8} {'minute (UTC)':17} {'process':16} {'stream':22} {'scope':8} {'quality':11} "
        f"{'activity':>12} {'unit':8} {'co2_kg':>12}  flags\n"
    )
    shown = 0
    if args.history:
        rows = reader.history(from_s=args.from_, to_s=args.to, process=args.process)
    else:
        rows = (
            LedgerRow(seq, r, None, None, 0.0, "", "")
            for seq, r in reader.current(from_s=args.from_, to_s=args.to, process=args.process, by_minute=True)
        )
    for row in rows:
        if args.limit and shown >= args.limit:
            out.write("... more rows; narrow --from/--to/--process or raise --limit\n")
            break
        r = row.result
        out.write(
            f"{row.seq:>8} {_fmt_time(r.minute_start):17} {printable(r.process):16} {printable(r.stream):22} "
            f"{printable(r.scope):8} {printable(r.quality):11} {r.activity:>12.4f} {printable(r.activity_unit):8} "
            f"{r.co2_kg:>12.3f}  {printable(r.flags)}\n"
        )
        if row.supersedes is not None:
            out.write(f"{'':8}   supersedes row {row.supersedes}: {printable(row.reason or '')}\n")
        shown += 1
    return 0


def _show_quarantine(outbox: Outbox, out: TextIO) -> int:
    rows = outbox.quarantined()
    for q in rows:
        at = datetime.fromtimestamp(float(q["at"]), UTC).strftime("%Y-%m-%d %H:%M:%SZ")  # type: ignore[arg-type]  # `at` is a REAL column
        out.write(
            f"{q['sink']} rows {q['first_seq']}..{q['last_seq']} ({q['rows']}) at {at}: HTTP {q['status']} {q['message']}\n"
        )
    out.write(f"{len(rows)} quarantined batch(es)\n")
    return 0


def stored_labs(path: Path) -> dict[tuple[str, str], list[LabResult]]:
    """The lab results in force in the ledger at `path` (its evidence table), per (process, stream)."""
    with EvidenceStore(path, readonly=True) as store:
        return labs_in_force(store.lab_records())


def run_restate(args: argparse.Namespace) -> int:
    from gateway.commands.common import load_or_report, report_config_error, report_ledger_error
    from gateway.core.errors import ConfigError
    from gateway.ledger.restate import apply_restatement, format_plan, plan_restatement
    from gateway.settings.factors import factor_table_of

    if not args.from_ < args.to:
        print(f"emgate ledger restate: --from {_fmt_time(args.from_)} is not before --to {_fmt_time(args.to)}", file=sys.stderr)
        return 2
    if not args.reason.strip():
        print("emgate ledger restate: --reason is empty; say what changed and why", file=sys.stderr)
        return 2
    settings = load_or_report(args.config)
    if settings is None:
        return 2
    try:
        factors = factor_table_of(settings.factors)
        ledger = Ledger(args.file, readonly=args.dry_run, site=settings.site.name)
    except ConfigError as exc:
        report_config_error(exc)
        return 2
    except LedgerSiteError as exc:  # its rows would be restated with this site's factors
        return report_ledger_error("ledger restate", exc, args.config)
    except SinkWriteError as exc:
        print(f"emgate ledger restate: {args.file}: cannot open as a ledger: {exc}", file=sys.stderr)
        return 2
    try:
        plan = plan_restatement(
            settings, factors, ledger.reader.current(from_s=args.from_, to_s=args.to), args.from_, args.to, stored_labs(args.file)
        )
        print(f"{args.file}: minutes {_fmt_time(args.from_)} to {_fmt_time(args.to)} (exclusive), factors of {args.config}")
        print(format_plan(plan))
        if args.dry_run:
            print(f"dry run: {len(plan.corrections)} correction row(s) would be appended; nothing written")
            return 0
        seqs = apply_restatement(ledger, plan, args.reason)
    except ConfigError as exc:
        report_config_error(exc)
        return 2
    except (SinkWriteError, ValueError, LedgerError) as exc:
        print(f"emgate ledger restate: {args.file}: nothing written: {exc}", file=sys.stderr)
        return 1
    finally:
        ledger.close()
    span = f" (rows {seqs[0]}..{seqs[-1]})" if seqs else ""
    print(f"appended {len(seqs)} correction row(s){span}; check with `emgate ledger verify {args.file}`")
    return 0
