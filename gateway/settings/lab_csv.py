"""Reading a lab results CSV: one row per accredited sample, checked whole before anything is stored.

Columns: sample_id, stream, sampled_from, sampled_to, lab, accreditation, ncv_gj_per_unit,
carbon_tc_per_gj, carbon_fraction, hydrogen_pct, total_sulfur_pct, moisture_pct, report_file
and, optional, supersedes (sample ids separated by ";"). Empty cells for values that do not
apply. Times are ISO 8601, in the site's time zone when they carry no offset; the validity is
[sampled_from, sampled_to). `report_file` is relative to the CSV's folder.

`read_lab_csv` returns the samples or raises LabCsvError with every problem as "file:line: ...".
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from analytics.evidence import CARBON_FRACTION_KINDS, LabResult
from analytics.factors import FactorTable, UnknownFactorError
from gateway.settings.site import GatewaySettings

COLUMNS = (
    "sample_id",
    "stream",
    "sampled_from",
    "sampled_to",
    "lab",
    "accreditation",
    "ncv_gj_per_unit",
    "carbon_tc_per_gj",
    "carbon_fraction",
    "hydrogen_pct",
    "total_sulfur_pct",
    "moisture_pct",
    "report_file",
)
OPTIONAL = ("supersedes",)
_VALUES = ("ncv_gj_per_unit", "carbon_tc_per_gj", "carbon_fraction", "hydrogen_pct", "total_sulfur_pct", "moisture_pct")
_PCTS = ("hydrogen_pct", "total_sulfur_pct", "moisture_pct")
# Plausible NCV per activity unit (GJ/t: coals 20-30, oils about 42, LPG about 47; GJ/10^4 Nm3:
# BFG about 33, COG about 173, natural gas about 389, LPG vapour about 1000). A value outside is
# almost always a unit mix-up (MJ/kg vs kcal/kg, GJ per Nm3 vs per 10^4 Nm3).
NCV_BOUNDS = {"t": (1.0, 60.0), "1e4Nm3": (5.0, 1300.0), "GJ": (0.0, 1300.0)}
CARBON_TC_PER_GJ_MAX = 0.12
_NO_LAB_METHODS = ("electricity", "heat")


class LabCsvError(ValueError):
    """The lab file is refused; `problems` are "file:line: what; check ..." lines."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__(f"{path}: {len(problems)} problem(s); nothing was stored")
        self.problems = problems


@dataclass
class LabSample:
    """One checked row: the result, the record to store, and the report file to keep."""

    line: int
    result: LabResult
    record: dict[str, Any]
    report_path: Path
    supersedes: list[str] = field(default_factory=list)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_lab_csv(
    path: Path, settings: GatewaySettings, factors: FactorTable, stored: list[dict[str, Any]]
) -> list[LabSample]:
    """Parse and check a lab CSV against the site and the lab records already stored.

    Raises:
        LabCsvError: any problem; the whole file is refused.
    """
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LabCsvError(path, [f"{name}: cannot read it: {exc.strerror}; check the path"]) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise LabCsvError(
            path,
            [f"{name}:{line}: not UTF-8 (byte {raw[exc.start]:#04x}); save the file as UTF-8 (Excel: CSV UTF-8)"],
        ) from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in COLUMNS if c not in header]
    unknown = [c for c in header if c not in COLUMNS + OPTIONAL]
    if missing or unknown:
        what = (f"missing column(s) {', '.join(missing)}" if missing else "") + (
            ("; " if missing else "") + f"unknown column(s) {', '.join(unknown)}" if unknown else ""
        )
        raise LabCsvError(path, [f"{name}:1: {what}; the header must be {','.join(COLUMNS)}[,supersedes]"])
    reader.fieldnames = header
    tz = ZoneInfo(settings.site.timezone)
    streams = {f"{s.process}/{s.stream}": s for s in settings.streams}
    problems: list[str] = []
    samples: list[LabSample] = []
    ids = {str(r["sample_id"]): r for r in stored}
    superseded_before = {s for r in stored for s in (r.get("supersedes") or [])}
    file_ids: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        at = f"{name}:{line}"
        bad: list[str] = []
        cell = {k: (v or "").strip() for k, v in row.items() if k is not None}
        if None in row:
            bad.append(f"{at}: more cells than columns; check for an unquoted comma")
        sid = cell.get("sample_id", "")
        if not sid:
            bad.append(f"{at}: sample_id is empty")
        elif sid in ids:
            bad.append(f"{at}: sample_id {sid!r} was already imported (evidence record of {ids[sid].get('source', '?')}); a sample is imported once — a corrected result needs a new id with supersedes = {sid}")
        elif sid in file_ids:
            bad.append(f"{at}: sample_id {sid!r} repeats line {file_ids[sid]} of this file")
        file_ids.setdefault(sid, line)
        key = cell.get("stream", "")
        cfg = streams.get(key)
        kind = None
        unit = None
        if cfg is None:
            bad.append(f"{at}: stream {key!r} is not a [[streams]] entry of the site (process/stream); known: {', '.join(sorted(streams))}")
        elif cfg.method in _NO_LAB_METHODS:
            bad.append(f"{at}: stream {key!r} uses method {cfg.method}, which takes no lab values")
            cfg = None
        else:
            try:
                f = factors.get(cfg.factor)
                kind, unit = f.kind, f.unit
            except UnknownFactorError as exc:
                bad.append(f"{at}: stream {key!r}: {exc}")
        t0 = _time(cell.get("sampled_from", ""), tz, at, "sampled_from", bad)
        t1 = _time(cell.get("sampled_to", ""), tz, at, "sampled_to", bad)
        if t0 is not None and t1 is not None and not t1[0] > t0[0]:
            bad.append(f"{at}: sampled_to {t1[1]} is not after sampled_from {t0[1]}")
        for k in ("lab", "accreditation"):
            if not cell.get(k):
                bad.append(f"{at}: {k} is empty; name the lab and its CMA or CNAS number")
        values = {k: _number(cell.get(k, ""), at, k, bad) for k in _VALUES}
        _bounds(values, unit, at, bad)
        if kind == "fuel":
            if values["ncv_gj_per_unit"] is None or values["carbon_tc_per_gj"] is None:
                bad.append(f"{at}: stream {key!r} burns a fuel: give ncv_gj_per_unit and carbon_tc_per_gj of this same sample")
            if values["carbon_fraction"] is not None:
                bad.append(f"{at}: stream {key!r} burns a fuel: carbon_fraction does not apply (give carbon_tc_per_gj)")
            if cfg is not None:
                try:
                    if factors.get(cfg.factor).oxidation is None:
                        bad.append(f"{at}: factor {cfg.factor!r} of stream {key!r} has no oxidation fraction to combine with a lab NCV and carbon")
                except UnknownFactorError:
                    pass
        elif kind in CARBON_FRACTION_KINDS:
            if values["carbon_fraction"] is None:
                bad.append(f"{at}: stream {key!r} is a {kind}: give carbon_fraction (t C per t) of the sample")
        elif kind is not None:
            bad.append(f"{at}: stream {key!r} uses a {kind} factor, which takes no lab values")
        report = cell.get("report_file", "")
        report_path = path.parent / report
        sha = ""
        if not report:
            bad.append(f"{at}: report_file is empty; name the lab's report (a path relative to the CSV)")
        else:
            try:
                sha = file_sha256(report_path)
            except OSError as exc:
                bad.append(f"{at}: report_file {report!r}: cannot read {report_path}: {exc.strerror}; check the path (relative to the CSV's folder)")
        supersedes = [s.strip() for s in cell.get("supersedes", "").split(";") if s.strip()]
        for s in supersedes:
            old = ids.get(s) or next((x.record for x in samples if x.result.sample_id == s), None)
            if old is None:
                bad.append(f"{at}: supersedes {s!r}: no such sample imported or earlier in this file")
            elif old["stream"] != key:
                bad.append(f"{at}: supersedes {s!r}, a sample of stream {old['stream']!r}, not {key!r}")
            elif s in superseded_before or any(s in x.supersedes for x in samples):
                bad.append(f"{at}: supersedes {s!r}, which is already superseded; name the sample that replaced it")
        if bad:
            problems += bad
            continue
        assert t0 is not None and t1 is not None and cfg is not None
        process, stream = cfg.process, cfg.stream
        result = LabResult(sid, process, stream, t0[0], t1[0], values["ncv_gj_per_unit"], values["carbon_tc_per_gj"], values["carbon_fraction"])
        record: dict[str, Any] = {
            "sample_id": sid,
            "stream": key,
            "sampled_from": t0[1],
            "sampled_to": t1[1],
            "valid_from": t0[0],
            "valid_to": t1[0],
            "lab": cell["lab"],
            "accreditation": cell["accreditation"],
            **values,
            "factor": cfg.factor,
            "report_file": report,
            "report_sha256": sha,
            "stored_as": sha + report_path.suffix.lower(),
            "supersedes": supersedes,
            "source": f"{path.name}:{line}",
        }
        samples.append(LabSample(line, result, record, report_path, supersedes))
    if not samples and not problems:
        problems.append(f"{name}: no sample rows after the header")
    problems += _overlaps(name, samples, stored)
    if problems:
        raise LabCsvError(path, problems)
    return samples


def _overlaps(name: str, samples: list[LabSample], stored: list[dict[str, Any]]) -> list[str]:
    """Overlapping validity for one stream, unless the newer row supersedes the older sample."""
    out: list[str] = []
    gone = {s for r in stored for s in (r.get("supersedes") or [])} | {s for x in samples for s in x.supersedes}
    active = [(str(r["stream"]), str(r["sample_id"]), float(r["valid_from"]), float(r["valid_to"]), "imported") for r in stored]
    for x in samples:
        r = x.result
        key = f"{r.process}/{r.stream}"
        for stream, sid, a, b, where in active:
            if stream == key and sid not in gone and a < r.valid_to and r.valid_from < b and sid not in x.supersedes:
                out.append(
                    f"{name}:{x.line}: sample {r.sample_id!r} ({x.record['sampled_from']} to {x.record['sampled_to']}) overlaps "
                    f"sample {sid!r} ({where}) of stream {key!r}; fix the periods, or name {sid} in supersedes if this result replaces it"
                )
        active.append((key, r.sample_id, r.valid_from, r.valid_to, f"line {x.line}"))
    return out


def _time(text: str, tz: ZoneInfo, at: str, key: str, bad: list[str]) -> tuple[float, str] | None:
    if not text:
        bad.append(f"{at}: {key} is empty; give an ISO 8601 datetime, e.g. 2026-11-01T00:00")
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        bad.append(f"{at}: {key} {text!r} is not an ISO 8601 datetime (e.g. 2026-11-01T00:00 or 2026-11-01T00:00+08:00)")
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.timestamp(), dt.isoformat()


def _number(text: str, at: str, key: str, bad: list[str]) -> float | None:
    if not text:
        return None
    try:
        x = float(text)
    except ValueError:
        bad.append(f"{at}: {key} {text!r} is not a number (use a point as decimal separator, no units)")
        return None
    if not math.isfinite(x):
        bad.append(f"{at}: {key} {text!r} is not a finite number")
        return None
    return x


def _bounds(values: dict[str, float | None], unit: str | None, at: str, bad: list[str]) -> None:
    ncv = values["ncv_gj_per_unit"]
    if ncv is not None:
        lo, hi = NCV_BOUNDS.get(unit or "", (0.0, 1300.0))
        if not (ncv > 0 and lo <= ncv <= hi):
            per = f" per {unit}" if unit else ""
            bad.append(f"{at}: ncv_gj_per_unit {ncv:g} is outside ({lo:g}, {hi:g}] GJ{per}; check the unit (GJ/t, GJ per 10^4 Nm3)")
    cc = values["carbon_tc_per_gj"]
    if cc is not None and not 0 < cc <= CARBON_TC_PER_GJ_MAX:
        bad.append(f"{at}: carbon_tc_per_gj {cc:g} is outside (0, {CARBON_TC_PER_GJ_MAX}] tC/GJ; check the unit (tC/GJ, not kgC/GJ)")
    cf = values["carbon_fraction"]
    if cf is not None and not 0 < cf <= 1:
        bad.append(f"{at}: carbon_fraction {cf:g} is outside (0, 1] t C per t; give a fraction, not a percentage")
    for k in _PCTS:
        v = values[k]
        if v is not None and not 0 <= v <= 100:
            bad.append(f"{at}: {k} {v:g} is outside [0, 100] %")
