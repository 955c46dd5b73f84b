"""A period of days read across the live ledger and its archive files: the cells of a report
longer than a month (the CBAM year), whatever `emgate ledger archive` has moved out meanwhile.

Where each month of the period is read from:

- a month none of whose rows were archived: the live ledger, its chain walked (gateway/ledger/
  month.py, which reads the whole period in one walk);
- a month archived whole into one archive file (its seal's rows inside the file's record, and
  in its `sealed_months`): that file in the archive directory, once the file's SHA-256 equals
  the live ledger's record of it (meta `archived`); its cells as stored when it was archived
  (gateway/ledger/month_cells.py), or for an archive written before they were stored, a walk
  of the file. The archives are hashed in parallel, one per CPU.

Refused, naming the month and the file (never read around):

- an archived month without the archive directory (`PeriodError`): the live ledger alone would
  leave its rows out and report too little;
- an archive file missing (`PeriodError`), or changed (`LedgerIntegrityError`: the file is
  walked, and the walk names the row; a file whose rows still verify was changed beside them);
- a month split between the files (`PeriodError`): rows of it in an archive and in the live
  ledger (a late minute appended after its month was archived), or in two archives. Its cells
  would come from two walks, summed twice over; a report of it is not made.

The cells come back as month.read_month gives them (CELL_FIELDS, `day` an index into the
period's days), so a report reads the same bits from an archived month as from the live one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.core.errors import GatewayError
from gateway.ledger import month_cells
from gateway.ledger.archive import archive_records, identity_problem, month_of, month_seals, sha256_of, verify_month_seals
from gateway.ledger.audit import cpus, verify_ledger
from gateway.ledger.month import CELL_FIELDS, LedgerHead, LedgerIntegrityError, pin_head, read_month

_DAY = CELL_FIELDS.index("day")


class PeriodError(GatewayError):
    """The period cannot be read whole from the files given (module docstring)."""


@dataclass(frozen=True)
class ArchiveRead:
    """An archive file the period read months from: its name, SHA-256 (checked against the live
    ledger's record), the months, and how their cells were had ("stored" or "walked")."""

    file: str
    sha256: str
    months: list[str]
    cells: str


@dataclass
class PeriodRead:
    head: LedgerHead  # the live ledger's, pinned when the read started
    cells: list[tuple[Any, ...]]
    live_rows_verified: int  # rows of the live ledger whose chain was walked
    archives: list[ArchiveRead]


def read_period(live: Path, day_starts_s: Sequence[float], *, site: str, timezone: str, archive_dir: Path | None) -> PeriodRead:
    """The cells of the local days starting at `day_starts_s` (one per day and the period's end)
    of the live ledger at `live` and of its archives in `archive_dir`.

    Raises PeriodError (module docstring), LedgerIntegrityError (a file fails verification),
    LedgerSiteError (a ledger of another site), LedgerError (a file cannot be read)."""
    bounds = [float(b) for b in day_starts_s]
    head = pin_head(live)
    day_month = [month_of(b, timezone) for b in bounds[:-1]]  # each day's month, YYYY-MM
    plan = _archived_months(live, set(day_month))
    if plan and archive_dir is None:
        named = "; ".join(f"{', '.join(months)} in {rec['file']}" for rec, months in plan)
        raise PeriodError(
            f"ledger {live}: months of the period were archived ({named}); pass --archive DIR, the directory "
            "`emgate ledger archive` wrote them to: the live ledger alone would leave their rows out"
        )
    read = read_month(live, bounds, head, site=site)
    archived = {m: rec["file"] for rec, months in plan for m in months}
    for c in read.cells:
        month = day_month[c[_DAY]]
        if month in archived:
            raise PeriodError(
                f"ledger {live}: month {month} was archived to {archived[month]}, and the live ledger holds more of "
                f"its minutes (rows {c[CELL_FIELDS.index('first_seq')]}.. of {c[CELL_FIELDS.index('process')]}/"
                f"{c[CELL_FIELDS.index('stream')]}, appended after the archive): a month split between two files is "
                "not read; report a period without it"
            )
    cells = list(read.cells)
    archives: list[ArchiveRead] = []
    if plan:
        assert archive_dir is not None
        index = {b: i for i, b in enumerate(bounds[:-1])}
        for (rec, months), sha in zip(plan, _checked_hashes(archive_dir, [rec for rec, _ in plan]), strict=True):
            path = archive_dir / str(rec["file"])
            how = "stored"
            for month in months:
                starts, kind, stored = _month_cells(path, month, timezone, site)
                how = kind if kind == "walked" else how
                for c in stored:
                    d = index.get(starts[c[_DAY]])
                    if d is not None:  # a day of the month outside the period is left out
                        cells.append((d, *c[_DAY + 1 :]))
            archives.append(ArchiveRead(str(rec["file"]), sha, months, how))
    return PeriodRead(head, cells, read.report.rows, archives)


def _archived_months(live: Path, wanted: set[str]) -> list[tuple[dict[str, Any], list[str]]]:
    """(archive record, months of the period it holds whole) for each archive the period needs
    (`wanted`: the period's months), oldest first. Raises PeriodError for a month split between files."""
    records = archive_records(live)
    if not records:
        return []
    _count, problems = verify_month_seals(live)
    if problems:  # the seals say which months were archived: a changed one could hide one
        raise LedgerIntegrityError(f"ledger {live}: BROKEN month seals: {'; '.join(problems)}")
    base = int(records[-1]["last_seq"])
    plan: dict[int, list[str]] = defaultdict(list)
    for seal in month_seals(live):
        if seal.month not in wanted or seal.first_seq > base:
            continue
        at = next(
            (
                i
                for i, r in enumerate(records)
                if seal.month in r.get("sealed_months", [])
                and int(r["first_seq"]) <= seal.first_seq
                and seal.last_seq <= int(r["last_seq"])
            ),
            None,
        )
        if at is None:
            files = [
                str(r["file"]) for r in records if int(r["first_seq"]) <= seal.last_seq and seal.first_seq <= int(r["last_seq"])
            ]
            raise PeriodError(
                f"ledger {live}: month {seal.month} (rows {seal.first_seq}..{seal.last_seq}) lies partly in "
                f"{', '.join(files)} and partly in the live ledger or another archive: a month split between two "
                "files is not read; report a period without it"
            )
        plan[at].append(seal.month)
    return [(records[i], plan[i]) for i in sorted(plan)]


def _checked_hashes(archive_dir: Path, records: list[dict[str, Any]]) -> list[str]:
    """Each record's archive file hashed (a thread a CPU) and compared with the record (its SHA-256
    and head). Raises PeriodError (a file missing), LedgerIntegrityError (a file changed: walked,
    so the message names the row where its rows were changed)."""
    paths = [archive_dir / str(r["file"]) for r in records]
    for path in paths:
        if not path.is_file():
            raise PeriodError(
                f"archive {path}: no such archive file; check --archive (the directory `emgate ledger archive` wrote to)"
            )
    with ThreadPoolExecutor(max_workers=max(1, min(cpus(), len(paths))), thread_name_prefix="archive-sha") as pool:
        shas = list(pool.map(sha256_of, paths))
    for path, rec, sha in zip(paths, records, shas, strict=True):
        problem = identity_problem(path, rec, sha)
        if problem is None:
            continue
        report = verify_ledger(path, processes=cpus())
        where = f"BROKEN at row {report.bad_seq}: {report.problem}" if not report.ok else "its own chain still verifies"
        raise LedgerIntegrityError(f"archive {problem}; {where}; restore the file from a backup", report)
    return shas


def _month_cells(archive: Path, month: str, timezone: str, site: str) -> tuple[list[float], str, list[tuple[Any, ...]]]:
    """(the month's day starts, "stored" or "walked", its cells with `day` from the month's first)."""
    starts = month_cells.day_starts(month, month, timezone)
    stored = month_cells.sealed_cells(archive, month)
    if stored is not None:
        return starts, "stored", stored[2]
    read = read_month(archive, starts, pin_head(archive), site=site)
    return starts, "walked", read.cells
