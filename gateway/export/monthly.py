"""The monthly registry export: verify the ledger, read the month, write the files, then the manifest.

Order of work, and why:
1. Verify the whole hash chain (gateway.ledger.audit). An export is evidence; it is never
   made from a ledger whose rows may have been edited. The head found (seq, hash) pins the export:
   rows appended while we work (the gateway keeps running) are left out, so two exports of the
   same head are identical whatever else happens meanwhile. The walk runs beside steps 2 and 3,
   and step 4 waits for its verdict.
2. Read the month's current view up to that head (rows nobody superseded by then). With the
   native walk (ledger_audit.native_walk()) steps 1 and 2 are one pass: the walk sums the month's
   cells and keeps its flagged minutes as it checks each row, on every CPU, and SQLite reads only
   the days where a correction (or an unusual row) falls, as below. Without it, SQLite sums each
   day of the month beside the walk.
   Either way a cell's sums are exact (math.fsum: the correctly rounded sum of its minutes), so
   both ways, and any split of the walk, give the same bytes.
3. Aggregate (tables.py, pure), build the documents, render workbook and chart.
4. Compare with the previous export in the directory (restatement), write every file atomically
   (temporary name, then rename), and manifest.json last, so a manifest always describes files
   that are complete.

Nothing written depends on the clock, the machine or the output path: no timestamps, no absolute
paths. The same ledger head and configuration give the same bytes.
"""

from __future__ import annotations

import bisect
import csv
import functools
import hashlib
import io
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway import __version__
from gateway.core.errors import GatewayError
from gateway.export import beside, chart, documents, manifest, tables, workbook
from gateway.ledger.audit import MonthSums, MonthWindow, VerifyReport, cpus, native_walk, walk_ledger
from gateway.ledger.format import check_site
from gateway.ledger.store import GENESIS_HASH, open_ledger_db
from gateway.settings.factors import factor_table_of
from gateway.settings.site import GatewaySettings

SUMMARY = "summary.json"
MANIFEST = "manifest.json"
RESTATEMENT_JSON = "restatement.json"
RESTATEMENT_CSV = "restatement.csv"
WORKBOOK = "workbook.xlsx"
CHART = "chart.png"
STEPS = ("verify ledger", "read month", "aggregate", "tables", "workbook", "chart", "write files")

# progress(what runs now, units done, units total): one unit per step, one per day while reading.
Progress = Callable[[str, int, int], None]


class ExportInputError(GatewayError):
    """The export cannot start: a bad month, a missing ledger, or a directory holding another export;
    or its input cannot be exported: a month whose sums cannot be exact (tables.SumRangeError)."""


class LedgerIntegrityError(GatewayError):
    """The ledger fails verification; the export refuses it."""

    def __init__(self, message: str, report: VerifyReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ExportResult:
    out_dir: Path
    files: list[str]
    summary: dict[str, Any]
    restated: bool
    rows: int
    seconds: dict[str, float] = field(default_factory=dict)


def export_month(
    settings: GatewaySettings,
    config_bytes: bytes,
    ledger_path: Path,
    month: str,
    out_dir: Path,
    *,
    progress: Progress | None = None,
) -> ExportResult:
    """Write the month's export into out_dir (see docs/export.md).

    Raises:
        ExportInputError: malformed month, missing or unreadable ledger, out_dir holds another
            month's or site's export, a month whose sums cannot be exact (the message names the
            stream, day and ledger rows).
        LedgerSiteError: the ledger belongs to another site (or holds rows of several).
        LedgerIntegrityError: the ledger's hash chain is broken (the message names the row).
        ConfigError: the factor library cannot be loaded.
        OSError: a file cannot be written.
    """
    seconds: dict[str, float] = {}
    clock = time.perf_counter
    try:
        period = tables.month_period(month, settings.site.timezone)
    except ValueError as exc:
        raise ExportInputError(f"--month: {exc}") from None
    previous = _previous_export(out_dir, month, settings.site.name)
    report_progress = progress or (lambda _what, _done, _total: None)
    units, done = len(STEPS) - 1 + period.days, 0

    def step(next_what: str) -> None:
        nonlocal done
        done += 1
        report_progress(next_what, done, units)

    report_progress(f"verify ledger, read month: day 1/{period.days}", 0, units)
    head_seq, head_hash = _pinned_head(ledger_path)
    _check_site(ledger_path, settings.site.name)
    t0 = started = clock()

    def day_done(d: int) -> None:
        step(f"verify ledger, read month: day {d + 2}/{period.days}" if d + 1 < period.days else "aggregate")

    verifying: Future[VerifyReport] | None = None
    if native_walk():
        # One pass on every CPU checks the chain and sums the month; SQLite reads what it leaves.
        sums = _verify(
            ledger_path,
            head_seq,
            head_hash,
            processes=cpus(),
            month=MonthWindow(tuple(period.day_starts_s.tolist()), head_seq),
            on_range=_DaysDone(period.days, day_done),
        )[1]
        seconds["verify"] = clock() - started
        assert sums is not None  # the native walk sums the month of a ledger that verifies
        cells, flagged_records, corrections = _read_month_left(ledger_path, period, head_seq, sums)
    else:
        # The walk in worker processes, its verdict needed only before the first file is written:
        # it runs beside all the rest, in a thread that just waits for the workers, leaving the GIL
        # to the main thread, which reads the month (SQLite's C code), aggregates and renders.
        def verified() -> VerifyReport:
            report = _verify(ledger_path, head_seq, head_hash, processes=max(1, cpus() - 1))[0]
            seconds["verify"] = clock() - started  # wall time from the start, beside the other steps
            return report

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-verify")
        verifying = pool.submit(verified)
        pool.shutdown(wait=False)  # takes no more work; the walk runs on, verifying.result() waits for it
        cells, flagged_records, corrections = _read_month(ledger_path, period, head_seq, day_done)
    seconds["read"] = clock() - t0

    t0 = clock()
    try:
        agg = tables.aggregate_cells(cells, tables.rows_from_records(flagged_records), period)
    except tables.SumRangeError as exc:
        raise ExportInputError(
            f"ledger {ledger_path}: {exc}{_largest_row(ledger_path, exc, head_seq, period)}. The export refuses a month it "
            "cannot sum exactly: an implausible reading reached the ledger (a version without plausibility bounds, or "
            f"a signal whose bounds are wrong); check the rows with `emgate ledger show {ledger_path}` and the signal's "
            "unit and bounds in the site file"
        ) from None
    budget = _budget(settings, period)
    # The chart needs only the day totals: it renders in a forked child (beside.py) while the
    # tables and the workbook are built here.
    chart_png = beside.start(functools.partial(_chart, agg, budget, f"{settings.site.name} — {month} ({period.timezone})"))
    seconds["aggregate"] = clock() - t0
    step("tables")

    t0 = clock()
    factor_info = _factor_info(settings)
    ledger_info = {
        "head_seq": head_seq,
        "head_hash": head_hash,
        # Rows 1..head were verified. The walk may have gone further (rows appended meanwhile), but
        # writing that count would make two exports of the same head differ.
        "rows_verified": head_seq,
        "month_rows": agg.rows,
        "month_first_seq": agg.first_seq,
        "month_last_seq": agg.last_seq,
        "month_corrections": len(corrections),
    }
    ctx = documents.ExportContext(
        site=settings.site.name,
        sources=_stream_sources(settings),
        factors=factor_info,
        ledger=ledger_info,
        budget=budget,
    )
    summary = documents.build_summary(agg, ctx)
    summary["data_quality"]["corrections"] = len(corrections)
    summary["corrections"] = corrections  # domain 7: manual corrections, with why (the ledger's reason)
    sheets = documents.build_sheets(agg, ctx)
    restatement_doc = previous.get("restatement")
    restated = False
    if previous.get("summary") is not None:
        entry = manifest.restatement_entry(previous["summary"], summary, corrections)
        if entry is not None:
            restatement_doc = manifest.append_restatement(restatement_doc, entry, month=month, site=settings.site.name)
            restated = True
    if restatement_doc is not None:
        sheets.append(manifest.restatement_sheet(restatement_doc))
    files: dict[str, bytes] = {SUMMARY: manifest.json_bytes(summary)}
    for sheet in sheets:
        files[sheet.filename] = _csv_bytes(sheet)
    if restatement_doc is not None:
        files[RESTATEMENT_JSON] = manifest.json_bytes(restatement_doc)
    seconds["tables"] = clock() - t0
    step("workbook")

    t0 = clock()
    files[WORKBOOK] = workbook.build_workbook(_summary_rows(summary), sheets, title=f"emgate {settings.site.name} {month}")
    seconds["workbook"] = clock() - t0
    step("chart")

    t0 = clock()
    files[CHART] = chart_png()
    seconds["chart"] = clock() - t0  # what is left of it after the tables and the workbook
    step("verify ledger")

    t0 = clock()
    if verifying is not None:
        verifying.result()  # raises LedgerIntegrityError before anything is written
    seconds["verify_wait"] = clock() - t0
    step("write files")

    t0 = clock()
    header = {
        "month": month,
        "site": settings.site.name,
        "timezone": period.timezone,
        "emgate_version": __version__,
        "config_sha256": hashlib.sha256(config_bytes).hexdigest(),
        "ledger": {
            "head_seq": head_seq,
            "head_hash": head_hash,
            "row_range": [1, head_seq] if head_seq else None,
            "month_row_range": [agg.first_seq, agg.last_seq] if agg.rows else None,
            "month_rows": agg.rows,
        },
    }
    files[MANIFEST] = manifest.build_manifest({k: v for k, v in files.items() if k != MANIFEST}, header)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in sorted(files, key=lambda n: n == MANIFEST):  # manifest last
        _write_atomic(out_dir / name, files[name])
    seconds["write"] = clock() - t0
    step("done")
    return ExportResult(out_dir, sorted(files), summary, restated, agg.rows, seconds)


class _DaysDone:
    """The native walk's ranges done (called from its threads) as the progress bar's days: the
    walk reads the month's days as it goes, so range k of n stands for days up to k/n of them."""

    def __init__(self, days: int, day_done: Callable[[int], None]) -> None:
        self._days, self._day_done = days, day_done
        self._reported = 0
        self._lock = threading.Lock()

    def __call__(self, done: int, total: int) -> None:
        with self._lock:
            while self._reported < done * self._days // total:
                self._day_done(self._reported)
                self._reported += 1


def _chart(agg: tables.MonthTables, budget: dict[str, Any] | None, title: str) -> bytes:
    keys, grams = documents.process_day_grams(agg)
    drawn = budget if budget and budget.get("allowance_t") is not None else None
    period = agg.period
    trajectory = (
        tables.calendar_linear_allowance_t(float(drawn["allowance_t"]), period, period.day_starts_s[1:]) if drawn else None
    )
    return chart.render_chart(period.day_labels, keys, grams, title=title, budget=drawn, trajectory_t=trajectory)


def _pinned_head(ledger_path: Path) -> tuple[int, str]:
    """The ledger's last row (seq, hash) now; (0, genesis) for an empty ledger."""
    if not ledger_path.is_file():
        raise ExportInputError(f"ledger {ledger_path}: no such file; check --ledger (or [ledger] path in the config)")
    try:
        db = open_ledger_db(ledger_path, readonly=True)
        try:
            row = db.execute("SELECT seq, hash FROM minutes ORDER BY seq DESC LIMIT 1").fetchone()
        finally:
            db.close()
    except (OSError, sqlite3.Error) as exc:
        raise ExportInputError(f"ledger {ledger_path}: cannot read it as a ledger: {exc}; check the path") from exc
    return (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)


def _check_site(ledger_path: Path, site: str) -> None:
    """Raise LedgerSiteError unless the ledger is `site`'s: its rows would be filed under the wrong site."""
    try:
        db = open_ledger_db(ledger_path, readonly=True)
        try:
            check_site(db, ledger_path, site)
        finally:
            db.close()
    except (OSError, sqlite3.Error) as exc:
        raise ExportInputError(f"ledger {ledger_path}: cannot read it as a ledger: {exc}; check the path") from exc


def _verify(
    ledger_path: Path,
    head_seq: int,
    head_hash: str,
    *,
    processes: int,
    month: MonthWindow | None = None,
    on_range: Callable[[int, int], None] | None = None,
) -> tuple[VerifyReport, MonthSums | None]:
    try:
        report, sums = walk_ledger(
            ledger_path, expect_head=head_hash if head_seq else None, processes=processes, month=month, on_range=on_range
        )
    except (OSError, sqlite3.Error) as exc:
        raise ExportInputError(f"ledger {ledger_path}: cannot read it as a ledger: {exc}; check the path") from exc
    if report.ok and head_seq and not report.expected_head_found:
        raise LedgerIntegrityError(
            f"ledger {ledger_path}: row {head_seq} (hash {head_hash[:16]}…) was the head when the export "
            "started and is no longer in the chain: the file was rewritten meanwhile. The export refuses it; "
            f"run `emgate ledger verify {ledger_path}`",
            report,
        )
    if not report.ok:
        raise LedgerIntegrityError(
            f"ledger {ledger_path}: hash chain broken at row {report.bad_seq}: {report.problem}. "
            "The export refuses a ledger that fails verification; "
            f"run `emgate ledger verify {ledger_path}` and restore the file from a backup "
            "whose head hash matches the last manifest",
            report,
        )
    return report, sums


# The current view as of `head`: rows up to head that no row up to head supersedes. The ledger
# module defines the same view without the head bound (gateway/ledger/store.py, _CURRENT).
# `+m.seq` keeps SQLite from scanning the primary key up to the head instead of using the time
# index: a year-long ledger would otherwise be read whole for one month.
_VIEW = (
    "FROM minutes m WHERE m.minute_start >= ? AND m.minute_start < ? AND +m.seq <= ? "
    "AND NOT EXISTS (SELECT 1 FROM minutes c WHERE c.supersedes = m.seq AND c.seq <= ?)"
)
_FLAGGED_SQL = (
    f"SELECT {', '.join('m.' + f for f in tables.RECORD_FIELDS)} {_VIEW} "
    "AND (m.quality != 'measured' OR m.flags != '') ORDER BY m.minute_start, m.seq"
)


# SQLite sums the minutes into cells (tables.CELL_FIELDS) so Python never holds one object per
# minute (a month of a large site is millions of rows). One query per local day: the day is
# exact across daylight-saving changes, each sort stays small, and the progress bar can move.
# fsum (`_open_month_db`) is math.fsum: the same exact sums as the native walk's.
_DAY_CELLS_SQL = (
    "SELECT ?, m.process, m.stream, m.scope, m.method, m.activity_unit, m.factor_id, m.quality, "
    "count(*), fsum(m.co2_kg), fsum(m.activity), fsum(m.coverage), "
    "min(m.ef_kg_per_unit), max(m.ef_kg_per_unit), "
    f"min(m.minute_start), max(m.minute_start), min(m.seq), max(m.seq) {_VIEW} GROUP BY 2, 3, 4, 5, 6, 7, 8"
)
# A correction, the row it supersedes (o) and both CO2 figures: the fields of `_corrections`.
_CORRECTIONS_FROM = (
    "SELECT m.seq, m.supersedes, m.reason, m.minute_start, m.process, m.stream, o.co2_kg, m.co2_kg "
    "FROM minutes m JOIN minutes o ON o.seq = m.supersedes WHERE m.supersedes IS NOT NULL"
)
_CORRECTIONS_SQL = f"{_CORRECTIONS_FROM} AND m.minute_start >= ? AND m.minute_start < ? AND m.seq <= ? ORDER BY m.seq"


class _FSum:
    """SQLite aggregate fsum(x): math.fsum of the group's values, the correctly rounded sum."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def step(self, x: float) -> None:
        self.values.append(x)

    def finalize(self) -> float:
        return tables.exact_sum(self.values)  # NaN where no sum exists: aggregate_cells refuses it, naming the cell


def _largest_row(path: Path, exc: tables.SumRangeError, head: int, period: tables.MonthPeriod) -> str:
    """The largest row of the cell `exc` names, as "; its largest row is seq N (minute ...): ...", or ""."""
    ln = exc.line
    try:
        db = open_ledger_db(path, readonly=True)
        try:
            row = db.execute(
                "SELECT m.seq, m.minute_start, m.co2_kg, m.activity FROM minutes m WHERE m.seq BETWEEN ? AND ? "
                "AND m.process = ? AND m.stream = ? AND m.scope = ? AND m.quality = ? AND m.factor_id = ? "
                "AND NOT EXISTS (SELECT 1 FROM minutes c WHERE c.supersedes = m.seq AND c.seq <= ?) "
                "ORDER BY max(abs(m.co2_kg), abs(m.activity)) DESC, m.seq LIMIT 1",
                (exc.first_seq, min(exc.last_seq, head), ln.process, ln.stream, ln.scope, exc.quality, exc.factor_id, head),
            ).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return ""
    if row is None:
        return ""
    seq, ms, co2, activity = row
    minute = documents.local_time(ms, ZoneInfo(period.timezone))
    return f"; its largest row is seq {seq} (minute {minute}): co2_kg {co2!r}, activity {activity!r}"


def _open_month_db(path: Path) -> sqlite3.Connection:
    db = open_ledger_db(path, readonly=True)
    db.create_aggregate("fsum", 1, _FSum)  # type: ignore[arg-type]
    return db


def _read_month(
    path: Path, period: tables.MonthPeriod, head: int, day_done: Callable[[int], None]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[dict[str, Any]]]:
    """Cell records, flagged minute records and corrections of the month, as of row `head`."""
    view = (period.start_s, period.end_s, head, head)
    bounds = period.day_starts_s.tolist()
    db = _open_month_db(path)
    try:
        cells: list[tuple[Any, ...]] = []
        for d in range(period.days):
            cells += db.execute(_DAY_CELLS_SQL, (d, bounds[d], bounds[d + 1], head, head)).fetchall()
            day_done(d)
        flagged = db.execute(_FLAGGED_SQL, view).fetchall()
        corrections = _corrections(db.execute(_CORRECTIONS_SQL, (period.start_s, period.end_s, head)), period)
    finally:
        db.close()
    return cells, flagged, corrections


def _corrections(rows: Iterable[Sequence[Any]], period: tables.MonthPeriod) -> list[dict[str, Any]]:
    tz = ZoneInfo(period.timezone)
    return [
        {
            "seq": seq,
            "supersedes": sup,
            "reason": reason,
            "minute": documents.local_time(ms, tz),
            "process": proc,
            "stream": stream,
            "old_co2_kg": old,
            "new_co2_kg": new,
        }
        for seq, sup, reason, ms, proc, stream, old, new in rows
    ]


_BY_SEQ = 500  # seqs per IN (...) list; SQLite takes 999 parameters in every build


def _by_seq(db: sqlite3.Connection, sql: str, seqs: Sequence[int]) -> list[tuple[Any, ...]]:
    """Rows of `sql` (its WHERE ends with `seq IN ({})`) for the given seqs, in chunks."""
    out: list[tuple[Any, ...]] = []
    for i in range(0, len(seqs), _BY_SEQ):
        chunk = seqs[i : i + _BY_SEQ]
        out += db.execute(sql.format(", ".join("?" * len(chunk))), chunk).fetchall()
    return out


_CORRECTIONS_BY_SEQ = f"{_CORRECTIONS_FROM} AND m.seq IN ({{}})"


def _read_month_left(
    path: Path, period: tables.MonthPeriod, head: int, sums: MonthSums
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[dict[str, Any]]]:
    """`_read_month` from the native walk's sums: its cells and flagged minutes of the days it
    summed whole, SQLite's for the days where it left a row to the Python walk (a correction
    supersedes a row of its own minute, so the rows a correction hides are on such a day too),
    and the corrections among the rows it left."""
    start, end = period.start_s, period.end_s
    bounds = period.day_starts_s.tolist()
    db = _open_month_db(path)
    try:
        left = [r for r in _by_seq(db, "SELECT seq, minute_start FROM minutes WHERE seq IN ({})", sums.left) if r[0] <= head]
        redo = sorted({_day(bounds, ms) for _, ms in left if start <= ms < end})
        cells = tables.cells_from_sums(sums.cells, skip_days=set(redo))
        for d in redo:
            cells += db.execute(_DAY_CELLS_SQL, (d, bounds[d], bounds[d + 1], head, head)).fetchall()
        redo_days = set(redo)
        flagged = [r for r in sums.flagged if _day(bounds, r[1]) not in redo_days]  # RECORD_FIELDS
        for d in redo:
            view = (bounds[d], bounds[d + 1], head, head)
            flagged += db.execute(_FLAGGED_SQL, view).fetchall()
        flagged.sort(key=lambda r: (r[1], r[0]))
        in_month = [seq for seq, ms in left if start <= ms < end]
        corrections = _corrections(sorted(_by_seq(db, _CORRECTIONS_BY_SEQ, in_month)), period)
    finally:
        db.close()
    return cells, flagged, corrections


def _day(bounds: Sequence[float], minute_start: float) -> int:
    return bisect.bisect_right(bounds, minute_start) - 1


def _factor_info(settings: GatewaySettings) -> dict[str, dict[str, Any]]:
    table = factor_table_of(settings.factors)
    return {fid: table.get(fid).to_dict() for fid in table.ids()}


def _stream_sources(settings: GatewaySettings) -> dict[tuple[str, str], documents.StreamSource]:
    where: dict[str, list[str]] = {}
    for dev in settings.modbus.devices:
        for pt in dev.points:
            where.setdefault(pt.signal, []).append(f"modbus {dev.name} unit {dev.unit_id} {pt.kind} {pt.address}")
    for broker in settings.mqtt.brokers:
        for sub in broker.subscriptions:
            for signal in [*sub.fields.values(), *([sub.signal] if sub.signal else [])]:
                where.setdefault(signal, []).append(f"mqtt {broker.name} {sub.topic}")
    out = {}
    for s in settings.streams:
        sig = settings.signals.get(s.signal)
        out[(s.process, s.stream)] = documents.StreamSource(
            signal=s.signal,
            signal_kind=sig.kind if sig else "",
            signal_unit=sig.unit if sig else "",
            measured_by="; ".join(where.get(s.signal, [])),
        )
    return out


def _budget(settings: GatewaySettings, period: tables.MonthPeriod) -> dict[str, Any] | None:
    """The allowance line of the chart: the annual allowance_t of the month's year, calendar-linear.

    [budget] (gateway/settings/alerts.py) holds one entry per year. A year with an intensity
    allowance (benchmark_t_per_t) has no fixed annual figure, so no line is drawn; the summary
    says why. The chart is calendar-linear whatever trajectory the budget's alerts use; the
    summary names both.
    """
    budget = getattr(settings, "budget", None)
    if budget is None:
        return None
    year = int(period.month[:4])
    year_cfg = budget.year(year) if hasattr(budget, "year") else None
    allowance = getattr(year_cfg, "allowance_t", None) if year_cfg is not None else None
    scope = str(getattr(budget, "scope", "direct") or "direct")
    name = str(getattr(budget, "name", "budget"))
    if allowance is None:
        why = "no budget year" if year_cfg is None else "an intensity allowance (benchmark_t_per_t)"
        return {
            "name": name,
            "scope": scope,
            "year": year,
            "allowance_t": None,
            "omitted": f"no allowance line: {why} for {year}",
        }
    year_s = period.year_end_s - period.year_start_s
    return {
        "name": name,
        "scope": scope,
        "year": year,
        "allowance_t": float(allowance),
        "method": "calendar-linear",
        "configured_trajectory": str(getattr(year_cfg, "trajectory", "calendar_linear")),
        "month_allowance_t": round(float(allowance) * (period.end_s - period.start_s) / year_s, 6),
    }


def _previous_export(out_dir: Path, month: str, site: str) -> dict[str, Any]:
    prev: dict[str, Any] = {}
    for key, name in (("summary", SUMMARY), ("restatement", RESTATEMENT_JSON)):
        path = out_dir / name
        if not path.is_file():
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ExportInputError(f"{path}: cannot read the previous export ({exc}); move it away or use another --out") from exc
        if doc.get("month") != month or doc.get("site") != site:
            raise ExportInputError(
                f"{out_dir} holds the export of {doc.get('site')} {doc.get('month')}, not {site} {month}; "
                "use one directory per site and month"
            )
        prev[key] = doc
    return prev


def _csv_bytes(sheet: documents.Sheet) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([c.key for c in sheet.columns])
    w.writerows(sheet.rows)  # csv writes None as an empty field
    return buf.getvalue().encode()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _summary_rows(s: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    rows: list[tuple[str, Any, str]] = [
        ("Month", s["month"], ""),
        ("Site", s["site"], ""),
        ("Time zone", s["timezone"], ""),
        ("Period start", s["period"]["start"], "local"),
        ("Period end (exclusive)", s["period"]["end"], "local"),
    ]
    for scope, block in s["scopes"].items():
        label = "compliance" if block["compliance"] else "not in the compliance total"
        rows.append((f"CO2 {scope} (t)", block["co2_t"], f"{scope} ({label})"))
        for process, t in block["by_process"].items():
            rows.append((f"  {process} (t)", t, scope))
    rows.append(("CO2 direct + indirect (t)", s["co2_t"], "direct+indirect (corporate view)"))
    dq = s["data_quality"]
    rows += [
        ("Coverage (%)", dq["coverage_pct"], "all streams"),
        ("Substituted minutes (count)", dq["substituted_minutes"], "all streams"),
        ("Estimated minutes (count)", dq["estimated_minutes"], "all streams"),
        ("Substituted + estimated share of CO2 (%)", dq["substituted_estimated_share_pct"], "all streams"),
        ("Corrections in the ledger (count)", dq.get("corrections", 0), ""),
    ]
    for scope, block in s["scopes"].items():
        rows.append(
            (
                f"Substituted + estimated share of {scope} CO2 (%)",
                block["data_quality"]["substituted_estimated_share_pct"],
                scope,
            )
        )
    b = s.get("budget")
    if b and b.get("allowance_t") is not None:
        rows.append((f"Annual allowance {b['year']} (t)", b["allowance_t"], f"{b['scope']}, calendar-linear"))
        rows.append(("Allowance for the month (t)", b["month_allowance_t"], b["scope"]))
    elif b:
        rows.append(("Allowance", b["omitted"], b["scope"]))
    led = s["ledger"]
    rows += [
        ("Ledger head row", led["head_seq"], ""),
        ("Ledger head hash", led["head_hash"], "SHA-256"),
        ("Ledger rows in the month", led["month_rows"], "current view"),
    ]
    return rows
