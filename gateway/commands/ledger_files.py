"""`emgate ledger backup`, `migrate` and `archive`: a ledger file into another, proven.

    emgate ledger backup var/ledger.sqlite /backup/ledger-2026-12-07.sqlite
    emgate ledger migrate var/ledger-v2.sqlite var/ledger.sqlite
    emgate ledger archive --config site.toml --before 2026-10 /archive

Archive seals the closed months before --before and moves their rows out of the live ledger
into a new archive file in DIR that verifies on its own and exports (gateway/ledger/archive.py);
the live ledger records the archive and keeps verifying across the gap.

Backup takes a consistent copy of a ledger a gateway may be writing, with its evidence store,
and verifies it (gateway/ledger/backup.py). Migrate writes a schema-2 ledger (the first
release's) into a new file of this version's schema and proves it holds the same rows
(gateway/ledger/migrate.py). Neither ever changes its source or overwrites a file.

Exit codes: 0 done and verified; 2 bad input (no such file, DEST exists, nothing to migrate, a
file that is not a ledger); 1 the source's chain is broken, or the copy does not verify.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.ledger.errors import LedgerError


def add_parsers(lsub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    b = lsub.add_parser(
        "backup",
        help="a consistent copy of a ledger (also while a gateway writes it), with its evidence; verified",
    )
    b.add_argument("file", type=Path, help="ledger SQLite file")
    b.add_argument("dest", type=Path, help="the copy: a new file (its evidence goes to DEST.evidence/)")
    b.set_defaults(func=run_backup)
    m = lsub.add_parser(
        "migrate",
        help="write a ledger of the first release (schema 2) into a new file of this version's schema, proven",
    )
    m.add_argument("file", type=Path, help="the old ledger (kept as it is)")
    m.add_argument("dest", type=Path, help="the new ledger: a new file")
    m.set_defaults(func=run_migrate)
    a = lsub.add_parser(
        "archive",
        help="seal the closed months before YYYY-MM and move them from the live ledger to an archive file in DIR",
        description="Seal every closed month before --before (a month seal in the ledger: its row range, count, last "
        "row's hash and CO2 totals), write their rows to DIR/<site>-ledger-<first month>-<last month>.sqlite (a "
        "ledger file of its own: `emgate ledger verify` and `emgate export --ledger` read it), verify it, record it "
        "in the live ledger and delete the rows there. It may run while the gateway writes the ledger; the gateway "
        "waits during the final VACUUM (its minutes wait in memory meanwhile).",
    )
    a.add_argument("--config", type=Path, required=True, help="site TOML file (its site name and time zone)")
    a.add_argument("--ledger", type=Path, default=None, help="the live ledger (default: [ledger] path of the config)")
    a.add_argument("--before", required=True, metavar="YYYY-MM", help="archive the months before this one (site time zone)")
    a.add_argument("--no-vacuum", action="store_true", help="do not VACUUM: the freed space is reused by new rows instead")
    a.add_argument("dir", type=Path, help="directory for the archive file (created if missing)")
    a.set_defaults(func=run_archive)


def run_backup(args: argparse.Namespace) -> int:
    from gateway.ledger.audit import cpus, verify_ledger
    from gateway.ledger.backup import backup_ledger
    from gateway.ledger.evidence import verify_evidence

    try:
        result = backup_ledger(args.file, args.dest)
        report = verify_ledger(args.dest, processes=cpus())
        evidence = verify_evidence(args.dest)
    except LedgerError as exc:
        print(f"emgate ledger backup: {exc}", file=sys.stderr)
        return 2
    if not report.ok or not evidence.ok:
        problem = report.problem or "; ".join(evidence.problems)
        print(f"emgate ledger backup: {args.dest}: the copy does not verify: {problem}", file=sys.stderr)
        return 1
    print(
        f"{args.dest}: ok — {report.rows} row(s), head {report.head_hash}, {result.bytes_copied:,} bytes; "
        f"{result.evidence_files} evidence file(s); copied from {args.file}"
    )
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    from gateway.ledger.migrate import MigrationError, migrate_ledger

    try:
        r = migrate_ledger(args.file, args.dest)
    except MigrationError as exc:
        print(f"emgate ledger migrate: {exc}", file=sys.stderr)
        return 1 if exc.broken else 2
    except LedgerError as exc:
        print(f"emgate ledger migrate: {exc}", file=sys.stderr)
        return 2
    checkpoint = {
        None: "no crash checkpoint",
        True: "the crash checkpoint carried over",
        False: "the crash checkpoint is of an older format and was left out: the minute in progress at the stop starts anew",
    }[r.checkpoint_carried]
    print(
        f"{r.dest}: ok — {r.rows} row(s) of schema {r.from_schema} (head {r.old_head}) now schema 3 (head {r.new_head}); "
        f"same rows, count and totals (CO2 {r.co2_kg_current / 1000:,.3f} t current, {r.co2_kg_all / 1000:,.3f} t all rows); "
        f"carried: {', '.join(r.tables) or 'nothing else'}; {checkpoint}; {r.seconds:.2f} s. {r.source} is unchanged."
    )
    return 0


def run_archive(args: argparse.Namespace) -> int:
    import re

    from gateway.commands.common import load_or_report, report_ledger_error
    from gateway.ledger.archive import ArchiveError, archive_ledger
    from gateway.ledger.site import LedgerSiteError, check_site_of

    settings = load_or_report(args.config)
    if settings is None:
        return 2
    if not re.fullmatch(r"[0-9]{4}-(0[1-9]|1[0-2])", args.before, flags=re.ASCII):
        print(f"emgate ledger archive: --before {args.before!r} is not YYYY-MM in ASCII digits (e.g. 2026-10)", file=sys.stderr)
        return 2
    ledger = args.ledger or settings.ledger.path
    try:
        check_site_of(ledger, settings.site.name)
        r = archive_ledger(
            ledger,
            args.dir,
            args.before,
            timezone=settings.site.timezone,
            site=settings.site.name,
            vacuum=not args.no_vacuum,
            progress=lambda what: print(f"  {what} ...", file=sys.stderr),
        )
    except LedgerSiteError as exc:  # its rows would be archived under this site's name
        return report_ledger_error("ledger archive", exc, args.config)
    except ArchiveError as exc:
        print(f"emgate ledger archive: {exc}", file=sys.stderr)
        return 1 if exc.broken else 2
    except LedgerError as exc:
        print(f"emgate ledger archive: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"emgate ledger archive: cannot write the archive in {args.dir}: {exc}; check the directory and free space", file=sys.stderr)
        return 1
    rec = r.record
    for seal in r.sealed:
        s = seal.record
        print(
            f"sealed {seal.month}: rows in {s['first_seq']}..{s['last_seq']} ({s['rows']} row(s), {s['current_rows']} current), "
            f"CO2 {s['co2_kg_current'] / 1000:,.3f} t, last row hash {s['last_hash']}"
        )
    for why in r.held_back:
        print(f"emgate ledger archive: note: {why}", file=sys.stderr)
    for warning in r.warnings:
        print(f"emgate ledger archive: warning: {warning}", file=sys.stderr)
    vacuum = f"; VACUUM {r.seconds['vacuum']:.1f} s" if "vacuum" in r.seconds else "; not vacuumed (--no-vacuum)"
    print(
        f"{r.archive}: ok — rows {rec['first_seq']}..{rec['last_seq']} ({rec['rows']} row(s), months {rec['months'][0]} to "
        f"{rec['months'][-1]}, whole and sealed: {', '.join(rec['sealed_months']) or 'none'}), head {rec['last_hash']}, "
        f"CO2 {rec['co2_kg_current'] / 1000:,.3f} t current, sha256 {rec['sha256']}"
    )
    print(
        f"{ledger}: rows 1..{rec['last_seq']} now archived; {r.bytes_before:,} -> {r.bytes_after:,} bytes; "
        f"{r.seconds['total']:.1f} s{vacuum}. Check with `emgate ledger verify {ledger} --archive {args.dir}`"
    )
    return 0


def check_archives_or_report(ledger: Path, folder: Path | None) -> int:
    """`emgate ledger verify`, after the chain verified: print the archive records and the month
    seals; with `--archive DIR`, check each archive file there against its record. 0 or 1."""
    from gateway.ledger.archive import archive_records, check_archive, verify_month_seals

    try:
        records = archive_records(ledger)
        seals, seal_problems = verify_month_seals(ledger)
    except LedgerError as exc:
        print(f"emgate ledger verify: {exc}", file=sys.stderr)
        return 2
    if seal_problems:
        for problem in seal_problems:
            print(f"emgate ledger verify: {ledger}: BROKEN month seals: {problem}", file=sys.stderr)
        return 1
    if seals:
        print(f"month seals: ok — {seals} seal(s) chained")
    status = 0
    for rec in records:
        print(
            f"archived: rows {rec['first_seq']}..{rec['last_seq']} ({rec['rows']} row(s), {rec['months'][0]} to {rec['months'][-1]}) "
            f"in {rec['file']}, sha256 {rec['sha256']}, head {rec['last_hash']}"
        )
        if folder is None:
            continue
        try:
            problems = check_archive(folder, rec)
        except LedgerError as exc:
            problems = [str(exc)]
        if problems:
            for problem in problems:
                print(f"emgate ledger verify: archive BROKEN: {problem}", file=sys.stderr)
            status = 1
        else:
            print(f"  {folder / rec['file']}: ok — sha256 and head match the record, sealed months match their seals")
    if folder is not None and not records:
        print(f"emgate ledger verify: --archive {folder}: {ledger} has no archive record", file=sys.stderr)
        return 1
    return status


def check_witness_or_report(ledger: Path, witness: Path, site: str | None) -> int:
    """`emgate ledger verify --witness FILE`, after the chain verified: 0 when every witnessed
    seal matches, 1 naming the first day that no longer does, 2 for a file that is not seals."""
    from gateway.ledger.seals import check_witness, read_witness_file

    try:
        seals = read_witness_file(witness)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        print(f"emgate ledger verify: --witness {witness}: {exc}", file=sys.stderr)
        return 2
    if not seals:
        print(f"emgate ledger verify: --witness {witness}: no seal in it; each line is one seal's JSON", file=sys.stderr)
        return 2
    try:
        report = check_witness(ledger, seals, site)
    except LedgerError as exc:
        print(f"emgate ledger verify: {exc}", file=sys.stderr)
        return 2
    if not report.ok:
        print(f"emgate ledger verify: {ledger}: no longer matches its witness: {report.problem}", file=sys.stderr)
        return 1
    last = report.last_witnessed
    elsewhere = f"; {report.elsewhere} seal(s) of rows this file does not hold (archived): check them on the archive" if report.elsewhere else ""
    if last is None:
        print(f"witness: ok — no seal of the rows this file holds{elsewhere}")
        return 0
    print(
        f"witness: ok — {report.checked} seal(s) match, the last {last.day} at row {last.head_seq}; "
        f"{report.rows_after} row(s) after it not witnessed yet{elsewhere}"
    )
    return 0
