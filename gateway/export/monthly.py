"""The monthly registry export: one month of the ledger into its files, in named phases.

    read -> aggregate -> tables -> workbook -> chart -> deposit -> write (manifest last)

1. read (`_read`): pin the ledger's head (its last row now) and read the month as of that head
   through the ledger package (gateway/ledger/month.py): the month's cells, flagged minutes and
   corrections, with the whole hash chain verified first. An export is evidence: it is never
   made from a ledger whose rows may have been edited. Rows the gateway appends meanwhile (it
   keeps running) are left out, so two exports of the same head are identical.
2. aggregate (`_aggregate`): the cells summed into days x lines x factors, in integer units
   (tables.py, pure); a month that cannot be summed exactly is refused, naming its largest row.
3. tables (`_tables`): summary.json, the CSV tables, and the restatement against the previous
   export in the directory (documents.py, manifest.py).
4. workbook (`_workbook`) and 5. chart (`_chart`): the same tables as XLSX, the days as PNG.
6. deposit (`_deposit`): deposit.json and deposit.xlsx (deposit.py, docs/deposit.md) from the
   summary, its balance and production and the lab records, and the month's evidence files
   (lab report copies, monthly production evidence) as evidence-<sha256><suffix>.
7. write (`_write`): every file atomically (temporary name, then rename), manifest.json last, so
   a manifest always describes files that are complete. Nothing is written before this phase.

Nothing written depends on the clock, the machine or the output path: no timestamps, no absolute
paths. The same ledger head and configuration give the same bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway import __version__
from gateway.core.errors import GatewayError
from gateway.export import balance, chart, context, deposit, documents, manifest, tables, times, workbook
from gateway.ledger import month as ledger_month
from gateway.ledger.evidence import EvidenceStore
from gateway.ledger.month import LedgerHead, MonthRead
from gateway.ledger.seals import latest_seal_up_to
from gateway.ledger.site import check_site_of
from gateway.settings.site import GatewaySettings

SUMMARY = "summary.json"
MANIFEST = "manifest.json"
RESTATEMENT_JSON = "restatement.json"
RESTATEMENT_CSV = "restatement.csv"
WORKBOOK = "workbook.xlsx"
CHART = "chart.png"

# progress(what runs now, units done, units total): one unit per phase, one per day while reading.
Progress = Callable[[str, int, int], None]


class ExportInputError(GatewayError):
    """The export cannot start: a bad month, or a directory holding another export; or its input
    cannot be exported: a month whose sums cannot be exact (tables.SumRangeError)."""


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
        ExportInputError: malformed month, no ledger file, out_dir holds another month's or
            site's export, a month whose sums cannot be exact (the message names the stream, day
            and ledger rows).
        LedgerError: the file cannot be read as a ledger.
        LedgerSiteError: the ledger belongs to another site (or holds rows of several).
        LedgerIntegrityError: the ledger's hash chain is broken (the message names the row).
        ConfigError: the factor library cannot be loaded.
        OSError: a file cannot be written.
    """
    try:
        period = tables.month_period(month, settings.site.timezone)
    except ValueError as exc:
        raise ExportInputError(f"--month: {exc}") from None
    previous = _previous_export(out_dir, month, settings.site.name)
    phases = _Phases(period.days, progress)
    with phases.run("read"):
        head, read, span = _read(settings, ledger_path, period, phases)
    with phases.run("aggregate", then="tables"):
        agg = _aggregate(read, period, ledger_path, head)
    with phases.run("tables", then="workbook"):
        budget = context.month_budget(settings, period)
        with EvidenceStore(ledger_path, readonly=True) as evidence:
            labs = evidence.lab_records()
        docs = _tables(settings, agg, read, head, budget, previous, labs)
        docs.summary.update(completeness(span, period))
        files = _table_files(docs)
    with phases.run("workbook", then="chart"):
        files[WORKBOOK] = _workbook(docs, f"emgate {settings.site.name} {month}")
    with phases.run("chart", then="deposit"):
        files[CHART] = _chart(agg, budget, f"{settings.site.name} — {month} ({period.timezone})")
    with phases.run("deposit", then="write files"):
        files.update(_deposit(settings, docs.summary, labs, ledger_path))
    with phases.run("write", then="done"):
        header = _manifest_header(settings, config_bytes, period, head, agg)
        header["ledger"]["seal"] = _seal_under(ledger_path, head)
        _write(out_dir, files, header)
    phases.seconds["verify"] = read.seconds["walk"]
    return ExportResult(out_dir, sorted(files), docs.summary, docs.restated, agg.rows, phases.seconds)


class _Phases:
    """Progress and timing of the phases: the first unit is opening the ledger, then one per day
    of the read, then one per phase after it; `seconds` holds each phase's wall time."""

    def __init__(self, days: int, progress: Progress | None) -> None:
        self.days = days
        self.total = days + 7  # open, the days, aggregate, tables, workbook, chart, deposit, write
        self.done = 0
        self.seconds: dict[str, float] = {}
        self._report = progress or (lambda _what, _done, _total: None)
        self._report("open ledger", 0, self.total)

    def step(self, next_what: str) -> None:
        """One unit done; `next_what` runs now."""
        self.done += 1
        self._report(next_what, self.done, self.total)

    def day_done(self, d: int) -> None:
        self.step(f"read month: day {d + 2}/{self.days}" if d + 1 < self.days else "aggregate")

    @contextmanager
    def run(self, name: str, then: str | None = None) -> Iterator[None]:
        """Time phase `name`; with `then`, its end is one unit done and `then` runs next (the read
        counts its own units: opening the ledger, then its days)."""
        t0 = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - t0
        if then is not None:
            self.step(then)


def _read(
    settings: GatewaySettings, path: Path, period: tables.MonthPeriod, phases: _Phases
) -> tuple[LedgerHead, MonthRead, ledger_month.MinuteSpan]:
    """Pin the ledger's head and read the month as of it: chain verified, the ledger this site's.
    A month without a minute in the ledger is refused (ExportInputError): its files would say 0 t."""
    if not path.is_file():
        raise ExportInputError(f"ledger {path}: no such file; check --ledger (or [ledger] path in the config)")
    head = ledger_month.pin_head(path)
    span = ledger_month.minute_span(path, head, period.start_s, period.end_s)
    if not span.month_has_minutes:
        check_site_of(path, settings.site.name)  # a ledger of another site is refused as that first
        raise ExportInputError(_no_minutes(path, period, head, span))
    phases.step(f"read month: day 1/{period.days}")
    month = ledger_month.read_month(path, period.day_starts_s.tolist(), head, site=settings.site.name, on_day=phases.day_done)
    return head, month, span


def _no_minutes(path: Path, period: tables.MonthPeriod, head: LedgerHead, span: ledger_month.MinuteSpan) -> str:
    where = f"ledger {path} has no minute in {period.month} ({period.timezone})"
    if span.first_s is None or span.last_s is None:
        return f"{where}: it holds no minute at all; check --ledger (or [ledger] path in the config)"
    tz = ZoneInfo(period.timezone)
    return (
        f"{where}: its minutes run from {times.local_time(span.first_s, tz)} to {times.local_time(span.last_s, tz)} "
        f"(rows 1..{head.seq}); check --month and --ledger. An export of a month without data would file 0 t"
    )


def completeness(span: ledger_month.MinuteSpan, period: tables.MonthPeriod) -> dict[str, Any]:
    """summary.json's `complete` and `incomplete_reason`: a month is complete when the ledger (as
    of the head the export read) holds a minute at or after the month's last one. Decided by the
    ledger, never the clock, so that the same head exports the same bytes."""
    if span.last_s is not None and span.last_s + 60.0 >= period.end_s:
        return {"complete": True, "incomplete_reason": None}
    tz = ZoneInfo(period.timezone)
    last = "none" if span.last_s is None else times.local_time(span.last_s, tz)
    return {
        "complete": False,
        "incomplete_reason": (
            f"the ledger's last minute ({last}) is before the month's last ({times.local_time(period.end_s - 60.0, tz)}): "
            "the month has not ended, or recording stopped; do not deposit it, export it again once the ledger holds "
            "the whole month"
        ),
    }


def _aggregate(read: MonthRead, period: tables.MonthPeriod, path: Path, head: LedgerHead) -> tables.MonthTables:
    """The month's tables from its cells; a month that cannot be summed exactly is refused."""
    try:
        return tables.aggregate_cells(read.cells, tables.rows_from_records(read.flagged), period)
    except tables.SumRangeError as exc:
        raise ExportInputError(
            f"ledger {path}: {exc}{_largest_row(path, head, exc, period)}. The export refuses a month it "
            "cannot sum exactly: an implausible reading reached the ledger (a version without plausibility bounds, or "
            f"a signal whose bounds are wrong); check the rows with `emgate ledger show {path}` and the signal's "
            "unit and bounds in the site file"
        ) from None


def _largest_row(path: Path, head: LedgerHead, exc: tables.SumRangeError, period: tables.MonthPeriod) -> str:
    """The largest row of the cell `exc` names, as "; its largest row is seq N (minute ...): ...", or ""."""
    ln = exc.line
    row = ledger_month.largest_row(
        path,
        head,
        process=ln.process,
        stream=ln.stream,
        scope=ln.scope,
        quality=exc.quality,
        factor_id=exc.factor_id,
        seqs=(exc.first_seq, exc.last_seq),
    )
    if row is None:
        return ""
    seq, minute_start, co2, activity = row
    minute = times.local_time(minute_start, ZoneInfo(period.timezone))
    return f"; its largest row is seq {seq} (minute {minute}): co2_kg {co2!r}, activity {activity!r}"


@dataclass
class _Documents:
    """What the tables phase builds: summary.json's document, the tables (CSV files and sheets),
    the month's restatement history (None before figures first change), and whether this
    export added to it."""

    summary: dict[str, Any]
    sheets: list[documents.Sheet]
    history: dict[str, Any] | None
    restated: bool


def _tables(
    settings: GatewaySettings,
    agg: tables.MonthTables,
    read: MonthRead,
    head: LedgerHead,
    budget: dict[str, Any] | None,
    previous: dict[str, Any],
    labs: list[dict[str, Any]],
) -> _Documents:
    """The documents of the month, compared with the previous export in the directory."""
    corrections = _corrections(read, agg.period)
    ctx = documents.ExportContext(
        site=settings.site.name,
        sources=context.stream_sources(settings),
        factors={**context.factor_info(settings), **context.lab_info(labs), **balance.PRODUCTION_FACTOR},
        ledger={
            "head_seq": head.seq,
            "head_hash": head.hash,
            # Rows 1..head were verified. The walk may have gone further (rows appended meanwhile),
            # but writing that count would make two exports of the same head differ.
            "rows_verified": head.seq,
            "month_rows": agg.rows,
            "month_first_seq": agg.first_seq,
            "month_last_seq": agg.last_seq,
            "month_corrections": len(corrections),
        },
        budget=budget,
    )
    summary = documents.build_summary(agg, ctx)
    summary["data_quality"]["corrections"] = len(corrections)
    summary["corrections"] = corrections  # domain 7: manual corrections, with why (the ledger's reason)
    try:
        summary["production"] = balance.production_of(summary, settings, agg.period.month)
    except balance.ProductionEvidenceError as exc:
        raise ExportInputError(str(exc)) from None
    summary["balance"] = balance.balance_of(summary, settings)
    sheets = documents.build_sheets(agg, ctx)
    if settings.declares_balance():  # sheets (and CSV files) only for a site that asks for them: others' files stay as they were
        evidence_sheet = next(sh for sh in sheets if sh.filename == "evidence.csv")
        evidence_sheet.rows += balance.evidence_rows(summary["production"], agg.period.month, len(evidence_sheet.columns))
        sheets.append(balance.production_sheet(summary["production"]))
        sheets.append(balance.balance_sheet(summary["balance"]))
    history = previous.get("restatement")
    restated = False
    if previous.get("summary") is not None:
        entry = manifest.restatement_entry(previous["summary"], summary, corrections)
        if entry is not None:
            history = manifest.append_restatement(history, entry, month=agg.period.month, site=settings.site.name)
            restated = True
    if history is not None:
        sheets.append(manifest.restatement_sheet(history))
    return _Documents(summary, sheets, history, restated)


def _corrections(read: MonthRead, period: tables.MonthPeriod) -> list[dict[str, Any]]:
    """The month's corrections as summary.json lists them: local minute, old and new CO2, why."""
    tz = ZoneInfo(period.timezone)
    return [
        {
            "seq": seq,
            "supersedes": sup,
            "reason": reason,
            "minute": times.local_time(ms, tz),
            "process": proc,
            "stream": stream,
            "old_co2_kg": old,
            "new_co2_kg": new,
        }
        for seq, sup, reason, ms, proc, stream, old, new in read.corrections
    ]


def _table_files(docs: _Documents) -> dict[str, bytes]:
    """summary.json, one CSV file per table, and restatement.json when there is a history."""
    files: dict[str, bytes] = {SUMMARY: manifest.json_bytes(docs.summary)}
    for sheet in docs.sheets:
        files[sheet.filename] = _csv_bytes(sheet)
    if docs.history is not None:
        files[RESTATEMENT_JSON] = manifest.json_bytes(docs.history)
    return files


def _workbook(docs: _Documents, title: str) -> bytes:
    """workbook.xlsx: the Summary sheet, then the tables."""
    return workbook.build_workbook(workbook.summary_rows(docs.summary), docs.sheets, title=title)


def _deposit(
    settings: GatewaySettings, summary: dict[str, Any], labs: list[dict[str, Any]], ledger_path: Path
) -> dict[str, bytes]:
    """deposit.json, deposit.xlsx and the month's evidence files (evidence-<sha256><suffix>)."""
    roles = {f"{s.process}/{s.stream}": str(s.balance_role) for s in settings.streams}
    doc, copies = deposit.build_deposit(summary, settings.site.model_dump(), roles, labs)
    production_paths = {}
    for p in settings.production:
        if p.evidence is not None:
            try:
                production_paths[hashlib.sha256(Path(p.evidence).read_bytes()).hexdigest()] = Path(p.evidence)
            except OSError:
                pass
    try:
        files = deposit.evidence_files(copies, ledger_path, production_paths)
    except (OSError, KeyError, ValueError) as exc:
        raise ExportInputError(f"deposit: an evidence file cannot be copied: {exc}") from None
    files[deposit.DEPOSIT_JSON] = manifest.json_bytes(doc)
    files[deposit.DEPOSIT_XLSX] = deposit.build_workbook(doc)
    return files


def _chart(agg: tables.MonthTables, budget: dict[str, Any] | None, title: str) -> bytes:
    """chart.png: CO2 per day by process, one panel per scope, and the allowance line of a budget."""
    keys, grams = documents.process_day_grams(agg)
    drawn = budget if budget and budget.get("allowance_t") is not None else None
    period = agg.period
    trajectory = (
        tables.calendar_linear_allowance_t(float(drawn["allowance_t"]), period, period.day_starts_s[1:]) if drawn else None
    )
    return chart.render_chart(period.day_labels, keys, grams, title=title, budget=drawn, trajectory_t=trajectory)


def _manifest_header(
    settings: GatewaySettings, config_bytes: bytes, period: tables.MonthPeriod, head: LedgerHead, agg: tables.MonthTables
) -> dict[str, Any]:
    """What manifest.json says besides its files: the month, the software, the configuration and the ledger."""
    return {
        "month": period.month,
        "site": settings.site.name,
        "timezone": period.timezone,
        "emgate_version": __version__,
        "config_sha256": manifest.config_sha256(config_bytes, settings),  # secret values redacted
        "ledger": {
            "head_seq": head.seq,
            "head_hash": head.hash,
            "row_range": [1, head.seq] if head.seq else None,
            "month_row_range": [agg.first_seq, agg.last_seq] if agg.rows else None,
            "month_rows": agg.rows,
        },
    }


def _seal_under(ledger_path: Path, head: LedgerHead) -> dict[str, Any] | None:
    """The latest daily seal strictly below the pinned head (gateway/ledger/seals.py): one made
    before the export, so a second export of the same head records the same seal. A witness
    outside the box holds it too; None when the ledger has none yet."""
    seal = latest_seal_up_to(ledger_path, head.seq - 1)
    return None if seal is None else {"day": seal.day, "head_seq": seal.head_seq, "head_hash": seal.head_hash, "sealed_at": seal.sealed_at}


def _write(out_dir: Path, files: dict[str, bytes], header: dict[str, Any]) -> None:
    """Every file atomically, manifest.json (their digests) last."""
    files[MANIFEST] = manifest.build_manifest(files, header)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in sorted(files, key=lambda n: n == MANIFEST):  # manifest last
        _write_atomic(out_dir / name, files[name])


def _previous_export(out_dir: Path, month: str, site: str) -> dict[str, Any]:
    """The summary and restatement history of an earlier export of this month in out_dir, if any.

    Raises ExportInputError when out_dir holds another site's or month's export, or an unreadable one.
    """
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
    w.writerow([documents.formula_safe(c.key) for c in sheet.columns])
    w.writerows(  # csv writes None as an empty field
        [documents.formula_safe(v) if type(v) is str and v.startswith(documents.FORMULA_START) else v for v in row]
        for row in sheet.rows
    )
    return buf.getvalue().encode()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
