"""What the export takes from the site configuration besides the ledger: how each stream is
measured, the factor library's entries, and the month's allowance for the chart and summary.

The ledger holds figures; the registry also wants to know which signal and device measured a
stream and where each factor comes from. These are read from the site file the export runs
with (its hash is in the manifest), so they describe the configuration at export time.
"""

from __future__ import annotations

from typing import Any

from gateway.export.documents import StreamSource
from gateway.export.tables import MonthPeriod
from gateway.settings.factors import factor_table_of
from gateway.settings.site import GatewaySettings


def factor_info(settings: GatewaySettings) -> dict[str, dict[str, Any]]:
    """Factor id -> its library entry (Factor.to_dict()), for every id of the site's factor table.

    Raises ConfigError when the factor library cannot be loaded.
    """
    table = factor_table_of(settings.factors)
    return {fid: table.get(fid).to_dict() for fid in table.ids()}


def lab_info(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """"lab:<sample_id>" -> the lab result as a factor entry (the keys `factor_info` gives), for the
    minutes that used it: source (lab, accreditation, report and its SHA-256), validity, values."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        out[f"lab:{r['sample_id']}"] = {
            "source": f"lab result {r['sample_id']}: {r['lab']} ({r['accreditation']}), report {r['report_file']} "
            f"sha256 {r['report_sha256']}",
            "year": int(str(r["sampled_from"])[:4]),
            "status": "confirmed",
            "overrides": r.get("factor"),
            "valid_from": r["valid_from"],
            "valid_to": r["valid_to"],
            **{k: v for k, v in (("ncv_gj_per_unit", r.get("ncv_gj_per_unit")), ("cc_tc_per_gj", r.get("carbon_tc_per_gj")),
                                 ("c_tc_per_unit", r.get("carbon_fraction"))) if v is not None},
        }
    return out


def stream_sources(settings: GatewaySettings) -> dict[tuple[str, str], StreamSource]:
    """(process, stream) -> its signal and the devices or topics that measure it."""
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
        out[(s.process, s.stream)] = StreamSource(
            signal=s.signal,
            signal_kind=sig.kind if sig else "",
            signal_unit=sig.unit if sig else "",
            measured_by="; ".join(where.get(s.signal, [])),
        )
    for p in settings.production:  # production minutes: stream `production.<product>`
        if p.signal is None:
            continue
        sig = settings.signals.get(p.signal)
        out[(p.process, f"production.{p.product}")] = StreamSource(
            signal=p.signal,
            signal_kind=sig.kind if sig else "",
            signal_unit=sig.unit if sig else "",
            measured_by="; ".join([*([p.source] if p.source else []), *where.get(p.signal, [])]),
        )
    return out


def month_budget(settings: GatewaySettings, period: MonthPeriod) -> dict[str, Any] | None:
    """The allowance line of the chart: the annual allowance_t of the month's year, calendar-linear.

    [budget] (gateway/settings/alerts.py) holds one entry per year. A year with an intensity
    allowance (benchmark_t_per_t) has no fixed annual figure, so no line is drawn; the summary
    says why. The chart is calendar-linear whatever trajectory the budget's alerts use; the
    summary names both. None without a [budget] section.
    """
    budget = settings.budget
    if budget is None:
        return None
    year = int(period.month[:4])
    year_cfg = budget.year(year)
    if year_cfg is None or year_cfg.allowance_t is None:
        why = "no budget year" if year_cfg is None else "an intensity allowance (benchmark_t_per_t)"
        return {
            "name": budget.name,
            "scope": budget.scope,
            "year": year,
            "allowance_t": None,
            "omitted": f"no allowance line: {why} for {year}",
        }
    allowance = float(year_cfg.allowance_t)
    year_s = period.year_end_s - period.year_start_s
    return {
        "name": budget.name,
        "scope": budget.scope,
        "year": year,
        "allowance_t": allowance,
        "method": "calendar-linear",
        "configured_trajectory": year_cfg.trajectory,
        "month_allowance_t": round(allowance * (period.end_s - period.start_s) / year_s, 6),
    }
