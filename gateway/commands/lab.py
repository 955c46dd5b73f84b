"""`emgate lab import`: accredited lab results as evidence in the ledger, and the minutes they restate.

    emgate lab import --config site.toml [--ledger var/ledger.sqlite] results-2026-11.csv

The CSV (gateway/settings/lab_csv.py) is checked whole against the site and the results already
imported; any problem refuses the file (exit 2, each problem as file:line) and nothing is stored
and no report copied. Otherwise each report file is copied into the ledger's evidence store
(`<ledger>.evidence/<sha256><suffix>`, owner-only), each sample becomes a chained evidence record
(gateway/ledger/evidence.py), and the minutes already in the ledger that the new results cover
(or that a superseded result covered) are restated at once: a correction row per changed minute,
the reason naming the sample and its report's SHA-256, as `emgate ledger restate` does. The
gateway running on the same ledger uses the new results from its next minute on.

Exit codes: 0 imported; 2 usage, configuration or a refused file; 1 the ledger refused a write.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from analytics.evidence import LabResult, labs_in_force
from analytics.factors import FactorTable
from gateway.commands.common import load_or_report, report_config_error, report_ledger_error
from gateway.core.errors import ConfigError, SinkWriteError
from gateway.core.model import MinuteResult
from gateway.ledger.errors import LedgerError
from gateway.ledger.evidence import EvidenceStore
from gateway.ledger.restate import RestatePlan, format_plan, plan_restatement
from gateway.ledger.site import LedgerSiteError
from gateway.ledger.store import Ledger
from gateway.settings.factors import factor_table_of
from gateway.settings.lab_csv import LabCsvError, LabSample, read_lab_csv
from gateway.settings.site import GatewaySettings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("lab", help="import accredited lab results as evidence (and restate their minutes)")
    lsub = p.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    i = lsub.add_parser(
        "import",
        help="check a lab results CSV, keep its reports, chain its records, restate the minutes it covers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    i.add_argument("--config", type=Path, required=True, help="site TOML file (its streams, factors and time zone)")
    i.add_argument("--ledger", type=Path, default=None, help="ledger SQLite file (default: [ledger] path of the config)")
    i.add_argument("file", type=Path, help="lab results CSV (UTF-8)")
    i.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    settings = load_or_report(args.config)
    if settings is None:
        return 2
    try:
        factors = factor_table_of(settings.factors)
    except ConfigError as exc:
        report_config_error(exc)
        return 2
    path: Path = args.ledger or settings.ledger.path
    site = settings.site.name
    try:
        stored = _stored_records(path, site)
        samples = read_lab_csv(args.file, settings, factors, stored)
    except LabCsvError as exc:
        print(f"emgate lab import: {exc}", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except LedgerSiteError as exc:
        return report_ledger_error("lab import", exc, args.config)
    except (LedgerError, SinkWriteError) as exc:
        print(f"emgate lab import: {path}: cannot read as a ledger: {exc}", file=sys.stderr)
        return 2
    try:
        ledger = Ledger(path, site=site)
    except LedgerSiteError as exc:
        return report_ledger_error("lab import", exc, args.config)
    except SinkWriteError as exc:
        print(f"emgate lab import: {path}: cannot open as a ledger: {exc}", file=sys.stderr)
        return 2
    created: list[str] = []
    appended = False
    store: EvidenceStore | None = None
    try:
        store = EvidenceStore(path)
        labs = labs_in_force([*stored, *(s.record for s in samples)])
        try:  # planned before anything is written: a factor problem refuses the import whole
            for s in samples:
                _plan(settings, factors, ledger, s, stored, labs)
        except ConfigError as exc:
            report_config_error(exc)
            return 2
        for s in samples:
            name, new = store.keep_copy(s.report_path, s.record["report_sha256"])
            if new:
                created.append(name)
        try:
            seqs = store.append("lab", [(s.result.sample_id, s.record) for s in samples])
        except BaseException:
            store.remove_copies(created)
            raise
        appended = True
        print(
            f"{args.file}: {len(samples)} lab result(s) stored as evidence records {seqs[0]}..{seqs[-1]} of {path}; "
            f"report copies in {store.folder}"
        )
        # Planned again and applied one sample at a time: the current rows now include any minute
        # the gateway closed meanwhile, and a sample's corrections are current before the next
        # sample's plan reads them (two samples of a file may cover the same minutes).
        for s in samples:
            _restate(ledger, s, _plan(settings, factors, ledger, s, stored, labs))
    except (SinkWriteError, LedgerError, OSError, ConfigError) as exc:
        print(f"emgate lab import: {path}: {exc}", file=sys.stderr)
        if appended:  # the evidence is stored; its minutes are not all restated yet
            print(
                "  the lab results are stored; finish the restatement with `emgate ledger restate --config "
                f"{args.config} {path} --from ... --to ... --reason ...` over their periods",
                file=sys.stderr,
            )
        return 1
    finally:
        if store is not None:
            store.close()
        ledger.close()
    print(f"check with `emgate ledger verify {path}`")
    return 0


def _stored_records(path: Path, site: str) -> list[dict[str, Any]]:
    """The lab records already in the ledger (none when it does not exist yet); checks its site."""
    if not path.exists():
        return []
    Ledger(path, readonly=True, site=site).close()  # raises LedgerSiteError for another site's ledger
    with EvidenceStore(path, readonly=True) as store:
        return store.lab_records()


def _plan(
    settings: GatewaySettings,
    factors: FactorTable,
    ledger: Ledger,
    s: LabSample,
    stored: list[dict[str, Any]],
    labs: Mapping[tuple[str, str], Sequence[LabResult]],
) -> RestatePlan:
    """The corrections of the minutes this sample (and what it supersedes) covers, for its stream only."""
    spans = [(s.result.valid_from, s.result.valid_to)]
    spans += [(float(r["valid_from"]), float(r["valid_to"])) for r in stored if r["sample_id"] in s.supersedes]
    lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
    key = (s.result.process, s.result.stream)

    def covered(r: MinuteResult) -> bool:
        return (r.process, r.stream) == key and any(a <= r.minute_start < b for a, b in spans)

    rows = ((seq, r) for seq, r in ledger.reader.current(from_s=lo, to_s=hi, process=key[0]) if covered(r))
    return plan_restatement(settings, factors, rows, lo, hi, labs)


def _restate(ledger: Ledger, s: LabSample, plan: RestatePlan) -> None:
    sid = s.result.sample_id
    if not plan.rows_checked:
        print(f"lab {sid} ({s.record['stream']}): no minutes in the ledger for its period yet")
        return
    reason = f"lab result {sid} ({s.record['lab']}, {s.record['accreditation']}), report sha256 {s.record['report_sha256']}"
    if s.supersedes:
        reason += f", supersedes {', '.join(s.supersedes)}"
    seqs = ledger.correct(plan.corrections, reason) if plan.corrections else []
    span = f" (rows {seqs[0]}..{seqs[-1]})" if seqs else ""
    print(f"lab {sid} ({s.record['stream']}): minutes {_fmt(plan.from_s)} to {_fmt(plan.to_s)} restated{span}:")
    print(format_plan(plan))


def _fmt(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%MZ")
