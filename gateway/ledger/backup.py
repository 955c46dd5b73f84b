"""A consistent copy of a ledger, taken while a gateway writes it: `emgate ledger backup DEST`.

SQLite's online backup API copies the database page by page as of one moment: a gateway that
appends meanwhile neither waits long nor tears the copy (each step takes `PAGES_PER_STEP` pages;
a write between steps restarts the copy of what changed). Copying the file with `cp` is not
safe: the WAL file holds committed rows the main file does not have yet.

The copy gets the ledger's evidence store too (`<ledger>.evidence/`: the lab report copies its
evidence records name), so the backup verifies on its own: `backup_ledger` walks the copy's
chain and its evidence before it reports success. The copy is written as `<dest>.partial` and
renamed once complete, so a DEST that exists is always a whole backup. DEST must not exist.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from gateway.ledger.database import backup_into, open_ledger_db, reading
from gateway.ledger.errors import LedgerError
from gateway.ledger.evidence import evidence_dir

PAGES_PER_STEP = 4096  # 16 MB of 4 KB pages per step: the writer waits at most one step


@dataclass(frozen=True)
class BackupResult:
    dest: Path
    bytes_copied: int
    evidence_files: int


def backup_ledger(source: Path, dest: Path) -> BackupResult:
    """Copy the ledger at `source` (and its evidence store) to `dest`, consistently.

    Raises LedgerError: the source cannot be read as a ledger, DEST (or its evidence folder)
    exists, or the copy cannot be written (the message names the file and what to check).
    """
    if dest.exists() or evidence_dir(dest).exists():
        raise LedgerError(dest, "already exists", "name a new file: a backup never overwrites one")
    partial = dest.with_name(dest.name + ".partial")
    src = open_ledger_db(source, readonly=True)
    try:
        try:
            partial.unlink(missing_ok=True)  # a backup that stopped half way
            with reading(source, f"copying it to {partial}"):
                backup_into(src, partial, PAGES_PER_STEP)
        except OSError as exc:
            raise LedgerError(dest, f"cannot create {partial}: {exc.strerror}", "check the directory and its permissions") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    files = copy_evidence(source, dest)
    os.replace(partial, dest)
    return BackupResult(dest, dest.stat().st_size, files)


def copy_evidence(source: Path, dest: Path) -> int:
    """Copy the evidence store's files (named by their SHA-256: they never change once stored)."""
    folder = evidence_dir(source)
    if not folder.is_dir():
        return 0
    target = evidence_dir(dest)
    try:
        target.mkdir(mode=0o700, parents=True)
        count = 0
        for f in sorted(folder.iterdir()):
            if f.is_file():
                shutil.copy2(f, target / f.name)
                count += 1
    except OSError as exc:
        raise LedgerError(dest, f"cannot copy the evidence store to {target}: {exc}", "check free space and permissions") from exc
    return count
