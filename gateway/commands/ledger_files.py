"""`emgate ledger backup` and `emgate ledger migrate`: a ledger file into another, proven.

    emgate ledger backup var/ledger.sqlite /backup/ledger-2026-12-07.sqlite
    emgate ledger migrate var/ledger-v2.sqlite var/ledger.sqlite

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
    assert last is not None
    print(
        f"witness: ok — {report.checked} seal(s) match, the last {last.day} at row {last.head_seq}; "
        f"{report.rows_after} row(s) after it not witnessed yet"
    )
    return 0
