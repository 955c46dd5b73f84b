"""A recorded period of the simulated integrated works, to try the deposit on: replay -> lab import -> export.

`emgate examples integrated-works --month 2026-11 --out works` writes into `works/`:

- `integrated-works-2026-11.csv`: one row a minute (the historian's export), stamped at each
  minute boundary of the month in site time from its first instant to its end inclusive, one
  column per signal as the Modbus devices report it (rates in their unit, counters in counts);
  the site file's `[[replay.csv]]` maps it;
- `lab-2026-11.csv`: accredited lab results for parts of the month (coke and coking coal at the
  coke-oven plant, PCI coal at the blast furnace, the COG sent out), in the format of
  `emgate lab import` (docs/operator-guide.md section 5);
- `reports/<sample>.pdf`: the stamped report of each sample, named by the CSV relative to its
  own folder.

The same month and seed give the same bytes: the profiles are functions of the clock
(gateway/sim/works.py) and the lab values are fixed below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from gateway.settings.site import GatewaySettings
from gateway.sim.works import ProfilePlant


@dataclass(frozen=True)
class LabSample:
    """One accredited sample: the stream it is for and the days of the month it is valid."""

    sample_id: str
    stream: str  # process/stream
    first_day: int
    last_day: int  # inclusive: valid to the next day's 00:00
    ncv_gj_per_unit: float | None = None
    carbon_tc_per_gj: float | None = None
    carbon_fraction: float | None = None
    hydrogen_pct: float | None = None
    total_sulfur_pct: float | None = None
    moisture_pct: float | None = None


LAB = "Works QC laboratory"
ACCREDITATION = "CNAS L0123"
#: The samples of a month (ids get the month: COKE-2611-A). Parts of the month only: the rest of
#: it stays on the default factors, so the deposit shows measured and default rows side by side.
SAMPLES = (
    LabSample("COKE-A", "coking/coke_out", 1, 10, 28.9, 0.02985, None, 0.4, 0.72, 4.1),
    LabSample("COKE-B", "coking/coke_out", 11, 20, 29.1, 0.02978, None, 0.4, 0.69, 4.3),
    LabSample("BFCOKE-A", "blast_furnace/coke", 1, 20, 29.0, 0.02981, None, 0.4, 0.71, 4.2),
    LabSample("COAL-A", "coking/coking_coal", 1, 15, 26.8, 0.02561, None, 4.6, 0.65, 9.5),
    LabSample("PCI-A", "blast_furnace/pci_coal", 1, 31, 24.6, 0.02605, None, 3.9, 0.48, 8.7),
    LabSample("COG-A", "coking/cog_out", 3, 25, 175.2, 0.01225, None, None, None, None),
)

LAB_HEADER = (
    "sample_id,stream,sampled_from,sampled_to,lab,accreditation,ncv_gj_per_unit,carbon_tc_per_gj,"
    "carbon_fraction,hydrogen_pct,total_sulfur_pct,moisture_pct,report_file,supersedes"
)


def month_bounds(month: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The month's first instant and the next month's, in the site's time zone.

    Raises:
        ValueError: `month` is not YYYY-MM.
    """
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=tz)
    except ValueError:
        raise ValueError(f"month {month!r} is not YYYY-MM") from None
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def replay_file_name(month: str) -> str:
    return f"integrated-works-{month}.csv"


def _fmt(values: np.ndarray, counter: bool) -> list[str]:
    if counter:
        return [str(int(v)) for v in values]
    return [f"{v:.3f}" for v in values]


def write_recording(settings: GatewaySettings, month: str, out: Path, days: int | None = None, seed: int = 7) -> Path:
    """Write the month's minute CSV (or its first `days` days) into `out`; returns its path."""
    tz = ZoneInfo(settings.site.timezone)
    start, end = month_bounds(month, tz)
    if days is not None:
        end = min(end, start + timedelta(days=days))
    plant = ProfilePlant(settings, seed=seed)
    t0, t1 = start.timestamp(), end.timestamp()
    ts = np.arange(t0, t1 + 1.0, 60.0)
    signals = [p.signal for d in settings.modbus.devices for p in d.points]
    columns = [_fmt(plant.raw(s, ts), settings.signals[s].kind == "counter") for s in signals]
    stamps = [datetime.fromtimestamp(t, tz).isoformat() for t in ts.tolist()]
    lines = [",".join(["ts", *signals])]
    lines += [",".join(row) for row in zip(stamps, *columns, strict=True)]
    out.mkdir(parents=True, exist_ok=True)
    path = out / replay_file_name(month)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    return path


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:g}"


def write_lab(settings: GatewaySettings, month: str, out: Path, days: int | None = None) -> Path:
    """Write `lab-<month>.csv` and the reports it names into `out`; returns the CSV's path.

    With `days`, only the samples starting within the first `days` days, cut at its end.
    """
    tz = ZoneInfo(settings.site.timezone)
    start, end = month_bounds(month, tz)
    last_day = (end - timedelta(days=1)).day if days is None else min(days, (end - timedelta(days=1)).day)
    streams = {f"{s.process}/{s.stream}" for s in settings.streams}
    tag = month[2:4] + month[5:7]
    rows = [LAB_HEADER]
    (out / "reports").mkdir(parents=True, exist_ok=True)
    for s in SAMPLES:
        if s.stream not in streams:
            raise ValueError(f"lab sample {s.sample_id}: the site has no stream {s.stream}")
        if s.first_day > last_day:
            continue
        sample_id = f"{s.sample_id[:-2]}-{tag}-{s.sample_id[-1]}"
        valid_from = start.replace(day=s.first_day)
        valid_to = start.replace(day=min(s.last_day, last_day)) + timedelta(days=1)
        report = Path("reports") / f"{sample_id.lower()}.pdf"
        (out / report).write_bytes(
            (
                f"%PDF-1.4\n% {LAB} ({ACCREDITATION}) test report {sample_id}\n"
                f"% sample of {s.stream}, valid {valid_from:%Y-%m-%d %H:%M} to {valid_to:%Y-%m-%d %H:%M} ({settings.site.timezone})\n"
                f"% NCV {_num(s.ncv_gj_per_unit)} GJ/unit, carbon {_num(s.carbon_tc_per_gj)} tC/GJ, "
                f"H {_num(s.hydrogen_pct)} %, S {_num(s.total_sulfur_pct)} %, moisture {_num(s.moisture_pct)} %\n"
                "% (a stand-in for the stamped report of the simulated works)\n%%EOF\n"
            ).encode()
        )
        rows.append(
            ",".join(
                [
                    sample_id,
                    s.stream,
                    f"{valid_from:%Y-%m-%dT%H:%M}",
                    f"{valid_to:%Y-%m-%dT%H:%M}",
                    LAB,
                    ACCREDITATION,
                    _num(s.ncv_gj_per_unit),
                    _num(s.carbon_tc_per_gj),
                    _num(s.carbon_fraction),
                    _num(s.hydrogen_pct),
                    _num(s.total_sulfur_pct),
                    _num(s.moisture_pct),
                    report.as_posix(),
                    "",
                ]
            )
        )
    path = out / f"lab-{month}.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8", newline="\n")
    return path


def record(settings: GatewaySettings, month: str, out: Path, days: int | None = None) -> tuple[Path, Path]:
    """The recorded month (or its first `days` days) and its lab CSV with reports, into `out`."""
    if days is not None and days < 1:
        raise ValueError("days must be at least 1")
    return write_recording(settings, month, out, days), write_lab(settings, month, out, days)
