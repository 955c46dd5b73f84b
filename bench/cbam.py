"""Benchmark: `emgate cbam` over a year of the synthetic plant's ledger, archived month by month.

    python -m bench.cbam                # 12 months of 100 streams (52,560,000 rows, about 9 GB of ledger)
    python -m bench.cbam --quick        # 1 month of 20 streams: a smoke run
    python -m bench.cbam --streams 100 --months 1

The ledger is bench/export_month.py's (gateway.ledger.store.Ledger, a real hash chain, one row per
stream per minute from 2026-01-01, about 1 % substituted), its months and one day of the next, so
every month is closed. The site: the synthetic works's eight processes p0..p7 as three CBAM
production processes (p0 sintered ore, p1 pig iron, p2..p7 crude steel) with monthly production
and precursor entries, so the chain and the defaults are computed as for a real works.

The report over the months is made twice, in-process, the whole command each time (read with the
chain verified, sums, SEE, files):
- `cbam_..._unarchived_s`: nothing archived, the live ledger's whole chain walked;
- then every month is archived, one `emgate ledger archive` a month as a works runs it (without
  VACUUM: the freed pages are reused), and `cbam_year_s` (or `cbam_<streams>_streams_<months>_months_s`)
  is the report from the live ledger and the archive files (--archive): each file's SHA-256
  checked against the ledger's record, the months' cells as stored when archived.
Both reports must be the same but for the ledger section (`same_report`). The goal for a year of
the 10,000-signal plant is 10 s (issue 19).
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.settings.site import GatewaySettings

TARGET_S = 10.0
YEAR = 2026


def _months(n: int) -> list[str]:
    """The first n months of YEAR."""
    return [f"{YEAR}-{m:02d}" for m in range(1, n + 1)]


def _settings(streams: int, months: list[str], evidence: Path) -> GatewaySettings:
    from bench.export_month import TZ
    from gateway.settings.site import GatewaySettings

    signals = {f"s{i:05d}": {"kind": "rate", "unit": "t/h"} for i in range(streams)}
    stream_cfg = [
        {"process": f"p{i % 8}", "stream": f"s{i:05d}", "signal": f"s{i:05d}", "method": "fuel_combustion", "factor": "cn.coke"}
        for i in range(streams)
    ]
    products = (("p0", "sinter"), ("p1", "hot_metal"), ("p2", "crude_steel"))
    monthly = {"sinter": 120_000.0, "hot_metal": 100_000.0, "crude_steel": 110_000.0}
    production = [
        {"process": p, "product": prod, "monthly_t": dict.fromkeys(months, monthly[prod]), "evidence": str(evidence)}
        for p, prod in products
    ]
    cbam = {
        "waste_gases": [],
        "installation": {
            "name": "Bench works",
            "address": "1 Bench Road",
            "country": "CN",
            "unlocode": "CNSHG",
            "latitude": 31.4,
            "longitude": 121.5,
            "economic_activity": "basic iron and steel",
        },
        "processes": {
            "sintered_ore": {
                "goods_category": "Sintered ore",
                "emgate_processes": ["p0"],
                "production": ["p0/sinter"],
                "goods": [{"cn": "26011200", "name": "sinter"}],
            },
            "pig_iron": {
                "goods_category": "Pig iron",
                "emgate_processes": ["p1"],
                "production": ["p1/hot_metal"],
                "goods": [{"cn": "72011011", "name": "pig iron"}],
            },
            "crude_steel": {
                "goods_category": "Crude steel",
                "emgate_processes": [f"p{i}" for i in range(2, 8)],
                "production": ["p2/crude_steel"],
                "goods": [{"cn": "72071111", "name": "billets"}],
            },
        },
        "precursors": [
            {
                "consumer": "pig_iron",
                "precursor": "sintered_ore",
                "monthly_t": dict.fromkeys(months, 118_000.0),
                "evidence": str(evidence),
            },
            {
                "consumer": "pig_iron",
                "precursor": "pellets",
                "monthly_t": dict.fromkeys(months, 30_000.0),
                "evidence": str(evidence),
            },
            {
                "consumer": "crude_steel",
                "precursor": "pig_iron",
                "monthly_t": dict.fromkeys(months, 99_000.0),
                "evidence": str(evidence),
            },
        ],
        "purchased": {
            "pellets": {
                "name": "pellets",
                "cn": "26011200",
                "see_direct_tco2_per_t": 0.3,
                "verified": False,
                "source": "default",
            },
        },
    }
    return GatewaySettings(
        site={"name": "bench-works", "timezone": TZ}, signals=signals, streams=stream_cfg, production=production, cbam=cbam
    )


def run(quick: bool, *, streams: int | None = None, months: int | None = None) -> dict[str, Any]:
    from bench.export_month import PLANT_STREAMS, TZ, build_ledger
    from gateway.export.cbam import make_report
    from gateway.ledger.archive import archive_ledger, next_month

    streams = streams or (20 if quick else PLANT_STREAMS)
    names = _months(months or (1 if quick else 12))
    days = sum(calendar.monthrange(YEAR, int(m[5:]))[1] for m in names)
    last = f"{names[-1]}-{calendar.monthrange(YEAR, int(names[-1][5:]))[1]:02d}"
    whole = streams >= PLANT_STREAMS and len(names) == 12
    size = "year" if whole else f"{streams}_streams_{len(names)}_months"
    figures: dict[str, Any] = {"quick": quick, "streams": streams, "months": len(names)}
    with tempfile.TemporaryDirectory(prefix="emgate-bench-") as tmp:
        ledger = Path(tmp) / "ledger.sqlite"
        evidence = Path(tmp) / "evidence.pdf"
        evidence.write_bytes(b"%PDF bench evidence\n")
        t0 = time.perf_counter()
        rows = build_ledger(ledger, streams, days + 1)  # and a day of the next month: every month is closed
        figures["rows"] = rows
        figures["build_ledger_s"] = round(time.perf_counter() - t0, 2)
        figures["ledger_mb"] = round(sum(p.stat().st_size for p in Path(tmp).glob("ledger.sqlite*")) / 1e6, 1)
        settings = _settings(streams, names, evidence)

        def report(out: str, archive_dir: Path | None) -> tuple[dict[str, Any], float]:
            t = time.perf_counter()
            doc = make_report(settings, b"bench", ledger, f"{YEAR}-01-01", last, Path(tmp) / out, archive_dir=archive_dir)
            return doc, time.perf_counter() - t

        live_doc, live_s = report("out-live", None)
        figures[f"cbam_{size}_unarchived_s"] = round(live_s, 3)
        archive_s = 0.0
        for month in names:
            r = archive_ledger(ledger, Path(tmp) / "archive", next_month(month), timezone=TZ, site="bench-works", vacuum=False)
            archive_s += r.seconds["total"]
        figures["archive_months_s"] = round(archive_s, 1)
        figures["archive_mb"] = round(sum(p.stat().st_size for p in (Path(tmp) / "archive").glob("*.sqlite")) / 1e6, 1)
        doc, cbam_s = report("out-archived", Path(tmp) / "archive")
        figures[f"cbam_{size}_s"] = round(cbam_s, 3)
        figures["archive_files_read"] = len(doc["ledger"]["archives"])
        figures["same_report"] = {k: v for k, v in doc.items() if k != "ledger"} == {
            k: v for k, v in live_doc.items() if k != "ledger"
        }
    figures.update(
        {
            "target_s": TARGET_S,
            "meets_target": cbam_s <= TARGET_S if whole else None,
            "goods": {g["cn"]: round(g["see_cbam_tco2_per_t"], 6) for g in doc["goods"]},
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
    )
    print(json.dumps(figures, indent=2))
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--streams", type=int, default=None)
    p.add_argument("--months", type=int, default=None, help="months from January (12: a year)")
    a = p.parse_args()
    if a.months is not None and not 1 <= a.months <= 12:
        p.error("--months takes 1..12")
    run(a.quick, streams=a.streams, months=a.months)


if __name__ == "__main__":
    main()
