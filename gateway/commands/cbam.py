"""`emgate cbam`: the installation's embedded emissions per good for its EU importers (docs/cbam.md).

    emgate cbam --config site.toml --ledger var/ledger.sqlite --from 2026-01-01 --to 2026-12-31 --out cbam/2026

writes cbam.json, cbam.xlsx (laid out like the communication template's Summary_Communication)
and manifest.json (SHA-256 of each file) into --out, from the ledger's rows of the local days
--from..--to (inclusive, the site's time zone) and the site file's [cbam] section. Months that
`emgate ledger archive` moved out of the ledger are read from their archive files: --archive DIR.

Exit codes: 0 written; 2 bad arguments, configuration or input (dates, [cbam] that does not fit
the site file, a process without output, a missing ledger, a ledger of another site, an archived
month without --archive or its file); 1 the ledger or an archive fails verification (the
message names the row), or a file cannot be written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.commands.common import load_or_report, report_config_error, report_ledger_error
from gateway.core.errors import ConfigError
from gateway.ledger.errors import LedgerError
from gateway.ledger.site import LedgerSiteError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "cbam",
        help="write the CBAM communication: embedded emissions per good (JSON, XLSX, manifest)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, required=True, help="site TOML file with a [cbam] section")
    p.add_argument("--ledger", type=Path, default=None, help="ledger SQLite file (default: [ledger] path of the config)")
    p.add_argument("--from", dest="first", required=True, help="first local day, YYYY-MM-DD")
    p.add_argument("--to", dest="last", required=True, help="last local day (inclusive), YYYY-MM-DD")
    p.add_argument("--out", type=Path, required=True, help="directory for the files")
    p.add_argument(
        "--archive",
        type=Path,
        default=None,
        metavar="DIR",
        help="where `emgate ledger archive` wrote the archive files: months archived out of the ledger are read from them",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gateway.export import cbam  # numpy and openpyxl load only for this command
    from gateway.ledger.month import LedgerIntegrityError

    settings = load_or_report(args.config)
    if settings is None:
        return 2
    ledger = args.ledger or settings.ledger.path
    try:
        doc = cbam.make_report(
            settings, args.config.read_bytes(), ledger, args.first, args.last, args.out, archive_dir=args.archive
        )
    except ConfigError as exc:
        report_config_error(exc)
        return 2
    except (cbam.CbamInputError, LedgerError) as exc:
        print(f"emgate cbam: {exc}", file=sys.stderr)
        return 2
    except LedgerSiteError as exc:
        return report_ledger_error("cbam", exc, args.config)
    except LedgerIntegrityError as exc:
        print(f"emgate cbam: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"emgate cbam: cannot write to {args.out}: {exc}; check the directory and free space", file=sys.stderr)
        return 1
    for g in doc["goods"]:
        share = "n/a" if g["default_share_pct"] is None else f"{g['default_share_pct']:.2f} %"
        print(
            f"{g['cn']} {g['name']}: SEE direct {g['see_direct_tco2_per_t']:.6f}, indirect {g['see_indirect_tco2_per_t']:.6f} "
            f"tCO2/t (counts {g['counts']}: {g['see_cbam_tco2_per_t']:.6f}); from defaults {share}; "
            f"electricity {g['embedded_electricity_mwh_per_t']:.6f} MWh/t"
        )
    print(
        f"{args.out}: cbam.json, cbam.xlsx, manifest.json for {doc['site']} {args.first}..{args.last}, ledger head {doc['ledger']['head_seq']}"
    )
    return 0
