"""Benchmark: `emgate cbam` over a year of the synthetic plant's ledger.

    python -m bench.cbam                # 365 days of 100 streams (52,560,000 rows, about 9 GB of ledger)
    python -m bench.cbam --quick        # 2 days, 20 streams: a smoke run
    python -m bench.cbam --streams 100 --days 31

The ledger is bench/export_month.py's (gateway.ledger.store.Ledger, a real hash chain, one row per
stream per minute from 2026-01-01, about 1 % substituted). The site: the synthetic works's eight
processes p0..p7 as three CBAM production processes (p0 sintered ore, p1 pig iron, p2..p7 crude
steel) with monthly production and precursor entries, so the chain and the defaults are computed
as for a real works. The report covers the whole months holding the ledger's days. `cbam_s` is the
whole command in-process (read with the chain verified, sums, SEE, files); the goal for a year of
the 10,000-signal plant is 10 s (issue 19). A smaller run's time carries its size in the name.
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


def _months(days: int) -> list[str]:
    """The months of YEAR holding days 1..days (from 1 January)."""
    out, left, m = [], days, 1
    while left > 0 and m <= 12:
        out.append(f"{YEAR}-{m:02d}")
        left -= calendar.monthrange(YEAR, m)[1]
        m += 1
    return out


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


def run(quick: bool, *, streams: int | None = None, days: int | None = None) -> dict[str, Any]:
    from bench.export_month import PLANT_STREAMS, build_ledger
    from gateway.export.cbam import make_report

    streams = streams or (20 if quick else PLANT_STREAMS)
    days = days or (2 if quick else 365)
    months = _months(days)
    last = f"{months[-1]}-{calendar.monthrange(YEAR, int(months[-1][5:]))[1]:02d}"
    with tempfile.TemporaryDirectory(prefix="emgate-bench-") as tmp:
        ledger = Path(tmp) / "ledger.sqlite"
        evidence = Path(tmp) / "evidence.pdf"
        evidence.write_bytes(b"%PDF bench evidence\n")
        t0 = time.perf_counter()
        rows = build_ledger(ledger, streams, days)
        build_s = time.perf_counter() - t0
        settings = _settings(streams, months, evidence)
        t0 = time.perf_counter()
        doc = make_report(settings, b"bench", ledger, f"{YEAR}-01-01", last, Path(tmp) / "out")
        cbam_s = time.perf_counter() - t0
        ledger_mb = sum(p.stat().st_size for p in Path(tmp).glob("ledger.sqlite*")) / 1e6
    whole = streams >= PLANT_STREAMS and days >= 365
    figures: dict[str, Any] = {
        "quick": quick,
        "streams": streams,
        "days": days,
        "rows": rows,
        "ledger_mb": round(ledger_mb, 1),
        "build_ledger_s": round(build_s, 2),
        "cbam_rows_per_s": round(rows / cbam_s),
        "target_s": TARGET_S,
        "meets_target": cbam_s <= TARGET_S if whole else None,
        "goods": {g["cn"]: round(g["see_cbam_tco2_per_t"], 6) for g in doc["goods"]},
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    figures["cbam_year_s" if whole else f"cbam_s_{streams}_streams_{days}_days"] = round(cbam_s, 3)
    print(json.dumps(figures, indent=2))
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--streams", type=int, default=None)
    p.add_argument("--days", type=int, default=None)
    a = p.parse_args()
    run(a.quick, streams=a.streams, days=a.days)


if __name__ == "__main__":
    main()
