"""`emgate cbam`: the installation's embedded emissions per good from the ledger (docs/cbam.md).

    read -> sum per stream -> attribute per production process -> SEE per good -> files

1. read: pin the ledger's head and read the period's local days as of it with the export's
   reader (gateway/ledger/month.py `read_month`): the whole hash chain is verified first, and a
   ledger that fails is refused naming the row (LedgerIntegrityError). Months archived out of
   the ledger are read from their archive files (--archive DIR), each file's SHA-256 checked
   against the ledger's record and its cells as stored when it was archived
   (gateway/ledger/period.py); a changed archive is walked and refused naming the row.
2. sum: the period's cells summed (math.fsum) per (process, stream, scope, unit, factor).
3. attribute: per CBAM production process, its emgate processes' direct CO2, the waste-gas
   correction (analytics/cbam.py), electricity MWh and its CO2; the activity level from
   [[production]]; precursor masses from streams or monthly entries.
4. SEE per process and good (analytics/cbam.py), carbon price paid.
5. files: cbam.json, cbam.xlsx (a sheet Summary_Communication laid out like the communication
   template's, then the tables), manifest.json (SHA-256 of each) last.

Nothing written depends on the clock, the machine or the output path: the same ledger head and
configuration give the same bytes.
"""

from __future__ import annotations

import calendar
import dataclasses
import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from analytics import cbam as calc
from gateway import __version__
from gateway.core.errors import GatewayError
from gateway.export import context, manifest, times, workbook
from gateway.export.documents import T3, T6, Column, Sheet
from gateway.ledger import month as ledger_month
from gateway.ledger import period as ledger_period
from gateway.ledger.archive import archive_records
from gateway.ledger.evidence import EvidenceStore
from gateway.ledger.site import check_site_of
from gateway.settings.cbam import CbamConfig, PrecursorConfig
from gateway.settings.site import GatewaySettings

CBAM_JSON = "cbam.json"
CBAM_XLSX = "cbam.xlsx"
MANIFEST = "manifest.json"
SCHEMA = "emgate.cbam/1"
MWH_PER_UNIT = {"MWh": 1.0, "kWh": 1e-3, "GWh": 1e3}


class CbamInputError(GatewayError):
    """The CBAM report cannot be made from this input: period, configuration or data."""


@dataclass(frozen=True)
class Period:
    first: date
    last: date  # inclusive
    timezone: str
    day_starts_s: list[float]

    @property
    def months(self) -> list[tuple[str, bool]]:
        """Each calendar month the period touches, and whether the period holds it whole."""
        out = []
        y, m = self.first.year, self.first.month
        while (y, m) <= (self.last.year, self.last.month):
            whole = date(y, m, 1) >= self.first and date(y, m, calendar.monthrange(y, m)[1]) <= self.last
            out.append((f"{y:04d}-{m:02d}", whole))
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out


def period_of(first: str, last: str, timezone: str) -> Period:
    """The local days first..last (ISO dates, inclusive) in `timezone`. Raises CbamInputError."""
    try:
        d0, d1 = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError as exc:
        raise CbamInputError(f"--from/--to: {exc}; give ISO dates YYYY-MM-DD") from None
    if d1 < d0:
        raise CbamInputError(f"--to {last} is before --from {first}")
    tz = ZoneInfo(timezone)
    n = (d1 - d0).days + 1
    starts = [datetime.combine(d0 + timedelta(days=i), datetime.min.time()).replace(tzinfo=tz).timestamp() for i in range(n + 1)]
    return Period(d0, d1, timezone, starts)


def cbam_problems(settings: GatewaySettings) -> list[tuple[tuple[str | int, ...], str]]:
    """The [cbam] section checked against the rest of the site file: (key path, problem)."""
    cfg = settings.cbam
    if cfg is None:
        return [(("cbam",), "the site file has no [cbam] section; see docs/cbam.md")]
    problems: list[tuple[tuple[str | int, ...], str]] = []
    emgate = {s.process for s in settings.streams} | set(settings.processes)
    production = {f"{p.process}/{p.product}" for p in settings.production}
    streams = {f"{s.process}/{s.stream}" for s in settings.streams} | {
        f"{p.process}/production.{p.product}" for p in settings.production if p.signal is not None
    }
    owner: dict[str, str] = {}
    for name, p in sorted(cfg.processes.items()):
        for j, e in enumerate(p.emgate_processes):
            if e not in emgate:
                problems.append(
                    (
                        ("cbam", "processes", name, "emgate_processes", j),
                        f"{e!r} is not an emgate process; known: {sorted(emgate)}",
                    )
                )
            elif e in owner:
                problems.append(
                    (
                        ("cbam", "processes", name, "emgate_processes", j),
                        f"{e!r} is already part of process {owner[e]!r}: its emissions would count twice",
                    )
                )
            owner.setdefault(e, name)
        for j, key in enumerate(p.production):
            if key not in production:
                problems.append(
                    (
                        ("cbam", "processes", name, "production", j),
                        f"{key!r} is not a [[production]] entry; known: {sorted(production)}",
                    )
                )
    for name in sorted(set(cfg.processes) & set(cfg.purchased)):
        problems.append((("cbam", "purchased", name), f"{name!r} is both a production process and a purchased precursor"))
    for i, u in enumerate(cfg.precursors):
        if u.consumer not in cfg.processes:
            problems.append((("cbam", "precursors", i, "consumer"), f"{u.consumer!r} is not a [cbam.processes] key"))
        if u.precursor not in cfg.processes and u.precursor not in cfg.purchased:
            problems.append(
                (
                    ("cbam", "precursors", i, "precursor"),
                    f"{u.precursor!r} is neither a [cbam.processes] nor a [cbam.purchased] key",
                )
            )
        if u.stream is not None and u.stream not in streams:
            problems.append(
                (
                    ("cbam", "precursors", i, "stream"),
                    f"{u.stream!r} is neither a stream (process/stream) of [[streams]] nor a weighed production (process/production.<product>)",
                )
            )
    transfers = {s.transfer for s in settings.streams if s.transfer is not None}
    for i, w in enumerate(cfg.waste_gases):
        if w not in transfers:
            problems.append((("cbam", "waste_gases", i), f"{w!r} is not the transfer of any stream; known: {sorted(transfers)}"))
    if (
        cfg.carbon_price is not None
        and cfg.carbon_price.price_per_t is None
        and (settings.budget is None or settings.budget.carbon_price_cny_per_t is None)
    ):
        problems.append(
            (("cbam", "carbon_price", "price_per_t"), "no price: give price_per_t (or [budget] carbon_price_cny_per_t)")
        )
    return problems


@dataclass
class _Line:
    co2_kg: list[float]
    activity: list[float]


def _sum_cells(cells: list[tuple[Any, ...]]) -> dict[tuple[str, str, str, str, str], tuple[float, float]]:
    """(process, stream, scope, unit, factor id) -> (CO2 t, activity) over the period, exact sums."""
    acc: dict[tuple[str, str, str, str, str], _Line] = {}
    for c in cells:
        _day, process, stream, scope, _method, unit, factor_id, _quality, _minutes, co2_kg, activity = c[:11]
        line = acc.setdefault((process, stream, scope, unit, factor_id), _Line([], []))
        line.co2_kg.append(float(co2_kg))
        line.activity.append(float(activity))
    return {k: (math.fsum(v.co2_kg) / 1000.0, math.fsum(v.activity)) for k, v in sorted(acc.items())}


#: The template's split of emissions by monitoring method: CEMS rows are measurement, the rest calculation.
MEASUREMENT_METHODS = ("cems",)


def _methods_and_quality(cells: list[tuple[Any, ...]], cfg: CbamConfig) -> dict[str, dict[str, Any]]:
    """Per production process: direct CO2 (t) by monitoring method, and its rows' minutes by quality."""
    owner = {e: name for name, p in cfg.processes.items() for e in p.emgate_processes}
    co2: dict[str, dict[str, list[float]]] = {name: {"calculation": [], "measurement": []} for name in cfg.processes}
    minutes: dict[str, dict[str, int]] = {name: {} for name in cfg.processes}
    for c in cells:
        _day, process, _stream, scope, method, _unit, _factor_id, quality, n, co2_kg = c[:10]
        name = owner.get(process)
        if name is None or scope not in ("direct", "indirect"):
            continue
        if scope == "direct":
            co2[name]["measurement" if method in MEASUREMENT_METHODS else "calculation"].append(float(co2_kg))
        minutes[name][quality] = minutes[name].get(quality, 0) + int(n)
    return {
        name: {
            "direct_by_method_t": {m: math.fsum(v) / 1000.0 for m, v in co2[name].items()},
            "minutes_by_quality": dict(sorted(minutes[name].items())),
        }
        for name in cfg.processes
    }


def _monthly(monthly_t: Mapping[str, float], period: Period, where: str) -> float:
    parts = []
    for month, whole in period.months:
        if month not in monthly_t:
            continue
        if not whole:
            raise CbamInputError(
                f"{where}: a monthly entry for {month}, which the period {period.first}..{period.last} holds only in part; "
                "give whole months (--from the 1st, --to the last day) or meter it"
            )
        parts.append(monthly_t[month])
    return math.fsum(parts)


def build_report(
    settings: GatewaySettings,
    sums: Mapping[tuple[str, str, str, str, str], tuple[float, float]],
    factors: Mapping[str, Mapping[str, Any]],
    period: Period,
) -> dict[str, Any]:
    """cbam.json's document from the period's sums. Raises CbamInputError."""
    cfg = settings.cbam
    assert cfg is not None
    gases = set(cfg.waste_gases)
    transfer_of = {(s.process, s.stream): (s.transfer, s.balance_role) for s in settings.streams if s.transfer in gases}
    prod_cfg = {f"{p.process}/{p.product}": p for p in settings.production}
    inputs: list[calc.ProcessData] = []
    detail: dict[str, dict[str, Any]] = {}
    for name, p in sorted(cfg.processes.items()):
        members = set(p.emgate_processes)
        direct = [v[0] for k, v in sums.items() if k[0] in members and k[2] == "direct"]
        el_co2, el_mwh, el_factors = [], [], set()
        gas: dict[str, dict[str, list[float]]] = {}
        for (proc, stream, scope, unit, fid), (co2, act) in sums.items():
            if proc not in members:
                continue
            if scope == "indirect" and unit in MWH_PER_UNIT:
                el_co2.append(co2)
                el_mwh.append(act * MWH_PER_UNIT[unit])
                el_factors.add(fid)
            t = transfer_of.get((proc, stream))
            if scope == "direct" and t is not None:
                ncv = factors.get(fid, {}).get("ncv_gj_per_unit")
                if ncv is None:
                    raise CbamInputError(
                        f"stream {proc}/{stream} (transfer {t[0]}): factor {fid!r} has no ncv_gj_per_unit; the waste-gas "
                        "correction needs the gas's energy: use a factor with an NCV"
                    )
                g = gas.setdefault(str(t[0]), {"out_co2": [], "out_gj": [], "in_co2": [], "in_gj": []})
                side = "out" if t[1] == "output" else "in"
                g[f"{side}_co2"].append(-co2 if side == "out" else co2)
                g[f"{side}_gj"].append(act * float(ncv))
        exp_co2, exp_gj, imp_co2, imp_gj = [], [], [], []
        gas_rows = []
        for wname, g in sorted(gas.items()):
            oc, og, ic, ig = (math.fsum(g[k]) for k in ("out_co2", "out_gj", "in_co2", "in_gj"))
            # gas the process both makes and burns is internal: only the net flow crosses its boundary
            if og >= ig:
                exp_co2.append(oc - ic)
                exp_gj.append(og - ig)
            else:
                imp_co2.append(ic - oc)
                imp_gj.append(ig - og)
            gas_rows.append({"transfer": wname, "sent_out_co2_t": oc, "sent_out_gj": og, "burnt_co2_t": ic, "burnt_gj": ig})
        al_parts = []
        for key in p.production:
            pc = prod_cfg[key]
            if pc.signal is not None:
                al_parts += [
                    v[1]
                    for k, v in sums.items()
                    if k[0] == pc.process and k[1] == f"production.{pc.product}" and k[2] == "production"
                ]
            else:
                assert pc.monthly_t is not None
                al_parts.append(_monthly(pc.monthly_t, period, f"production {key}"))
        data = calc.ProcessData(
            name=name,
            activity_t=math.fsum(al_parts),
            direct_t=math.fsum(direct),
            indirect_t=math.fsum(el_co2),
            electricity_mwh=math.fsum(el_mwh),
            annex_ii=p.annex_ii,
            wg_exported_co2_t=math.fsum(exp_co2),
            wg_exported_gj=math.fsum(exp_gj),
            wg_imported_co2_t=math.fsum(imp_co2),
            wg_imported_gj=math.fsum(imp_gj),
        )
        inputs.append(data)
        detail[name] = {
            "waste_gas": gas_rows,
            "electricity_factors": [{"id": f, "source": factors.get(f, {}).get("source")} for f in sorted(el_factors)],
        }
    uses = []
    sources: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for i, u in enumerate(cfg.precursors):
        if u.stream is not None:
            proc, _, stream = u.stream.partition("/")
            lines = [(k, v) for k, v in sums.items() if k[0] == proc and k[1] == stream]
            bad = sorted({k[3] for k, _ in lines if k[3] != "t"})
            if bad:
                raise CbamInputError(f"cbam.precursors[{i}].stream {u.stream!r}: activity in {bad}, a precursor mass needs t")
            mass = math.fsum(v[1] for _, v in lines)
        else:
            assert u.monthly_t is not None
            mass = _monthly(u.monthly_t, period, f"cbam.precursors[{i}] ({u.consumer} <- {u.precursor})")
        sources.setdefault((u.consumer, u.precursor), []).append(_source(u, i, mass))
        uses.append(calc.PrecursorUse(u.consumer, u.precursor, mass))
    purchased = {
        k: calc.Purchased(k, b.see_direct_tco2_per_t, b.see_indirect_tco2_per_t, b.electricity_mwh_per_t, b.verified)
        for k, b in cfg.purchased.items()
    }
    markup = cfg.default_markup_pct if cfg.default_markup_pct is not None else calc.default_markup_pct(period.first.year)
    try:
        results = calc.embedded_emissions(
            inputs,
            uses,
            purchased,
            markup_pct=markup,
            ef_ng_tco2_per_gj=cfg.natural_gas_ef_tco2_per_gj,
            corr_eta=cfg.waste_gas_corr_eta,
        )
    except calc.CbamError as exc:
        raise CbamInputError(f"[cbam]: {exc}") from None
    for name in detail:
        detail[name]["sources"] = {pre: v for (con, pre), v in sources.items() if con == name}
    return _document(settings, cfg, results, detail, purchased, markup, period)


def _source(u: PrecursorConfig, i: int, mass_t: float) -> dict[str, Any]:
    """How a precursor mass was measured: the ledger stream, or the monthly entry and its evidence's SHA-256."""
    if u.stream is not None:
        return {"mass_t": mass_t, "measured_by": "ledger stream", "stream": u.stream, "evidence": None}
    assert u.evidence is not None
    try:
        digest = hashlib.sha256(Path(u.evidence).read_bytes()).hexdigest()
    except OSError as exc:
        raise CbamInputError(
            f"cbam.precursors[{i}].evidence {u.evidence}: {exc.strerror}; check the path (relative to the site file)"
        ) from None
    return {
        "mass_t": mass_t,
        "measured_by": "monthly entry",
        "stream": None,
        "evidence": {"file": Path(u.evidence).name, "sha256": digest},
    }


def _document(
    settings: GatewaySettings,
    cfg: CbamConfig,
    results: Mapping[str, calc.ProcessResult],
    detail: Mapping[str, Any],
    purchased: Mapping[str, calc.Purchased],
    markup: float,
    period: Period,
) -> dict[str, Any]:
    processes, goods = [], []
    for name, r in results.items():
        p = cfg.processes[name]
        processes.append(
            {
                "process": name,
                "goods_category": p.goods_category,
                "route": p.route,
                "emgate_processes": list(p.emgate_processes),
                "activity_t": r.activity_t,
                "direct_t": r.direct_t,
                "waste_gas_correction_t": r.waste_gas_correction_t,
                "waste_gas": detail[name]["waste_gas"],
                "attributed_direct_t": r.attributed_direct_t,
                "attributed_indirect_t": r.attributed_indirect_t,
                "attributed_total_t": r.attributed_direct_t + r.attributed_indirect_t,
                "electricity_mwh": r.electricity_mwh,
                "electricity_factors": detail[name]["electricity_factors"],
                "precursors": [
                    {
                        "precursor": c.precursor,
                        "purchased": c.purchased,
                        "mass_t": c.mass_t,
                        "see_direct_tco2_per_t": c.see_direct_tco2_per_t,
                        "see_indirect_tco2_per_t": c.see_indirect_tco2_per_t,
                        "electricity_mwh_per_t": c.electricity_mwh_per_t,
                        "default_values": c.default,
                        "measured_by": detail[name]["sources"].get(c.precursor, []),
                        "markup_pct": c.markup_pct,
                        **(
                            {
                                "verified": cfg.purchased[c.precursor].verified,
                                "source": cfg.purchased[c.precursor].source,
                                "supplier": cfg.purchased[c.precursor].supplier,
                                "cn": cfg.purchased[c.precursor].cn,
                            }
                            if c.purchased
                            else {}
                        ),
                    }
                    for c in r.precursors
                ],
            }
        )
        for g in p.goods:
            goods.append(
                {
                    "cn": g.cn,
                    "name": g.name,
                    "process": name,
                    "annex_ii": r.annex_ii,
                    "counts": "direct" if r.annex_ii else "direct+indirect",
                    "see_direct_tco2_per_t": r.see_direct_tco2_per_t,
                    "see_indirect_tco2_per_t": r.see_indirect_tco2_per_t,
                    "see_total_tco2_per_t": r.see_total_tco2_per_t,
                    "see_cbam_tco2_per_t": r.see_cbam_tco2_per_t,
                    "default_share_pct": r.default_share_pct,
                    "embedded_electricity_mwh_per_t": r.embedded_electricity_mwh_per_t,
                    "electricity_factors": detail[name]["electricity_factors"],
                    "steel_parameters": g.steel_parameters(),
                }
            )
    price = None
    if cfg.carbon_price is not None:
        cp = cfg.carbon_price
        per_t = cp.price_per_t
        if per_t is None:
            assert settings.budget is not None and settings.budget.carbon_price_cny_per_t is not None
            per_t = settings.budget.carbon_price_cny_per_t
        cpx = calc.CarbonPrice(cp.instrument, cp.currency, per_t, cp.share_covered_pct, cp.rebate_per_t)
        price = {
            "instrument": cp.instrument,
            "currency": cp.currency,
            "price_per_t": per_t,
            "price_source": "[cbam.carbon_price] price_per_t"
            if cp.price_per_t is not None
            else "[budget] carbon_price_cny_per_t",
            "share_covered_pct": cp.share_covered_pct,
            "rebate_per_t": cp.rebate_per_t,
            "effective_price_per_t": cpx.effective_price_per_t,
        }
    inst = cfg.installation
    return {
        "schema": SCHEMA,
        "site": settings.site.name,
        "installation": inst.model_dump(),
        "reporting_period": {"from": period.first.isoformat(), "to": period.last.isoformat(), "timezone": period.timezone},
        "method": {
            "attribution": "AttrEm_dir = DirEm + WG_exp,CO2 - E_WG,exp x EF_NG x Corr_eta - WG_imp,CO2 + E_WG,imp x EF_NG; "
            "AttrEm_ind = electricity MWh x grid factor (implementing regulation Annex III; docs/cbam.md)",
            "see": "SEE = (AttrEm + sum_i M_i x SEE_i) / AL, recursively over precursors",
            "natural_gas_ef_tco2_per_gj": cfg.natural_gas_ef_tco2_per_gj,
            "waste_gas_corr_eta": cfg.waste_gas_corr_eta,
            "default_markup_pct": markup,
            "default_markup_source": "[cbam] default_markup_pct"
            if cfg.default_markup_pct is not None
            else f"schedule for {period.first.year}",
        },
        "processes": processes,
        "goods": goods,
        "purchased": [{"precursor": k, **cfg.purchased[k].model_dump()} for k in sorted(purchased)],
        "carbon_price": price,
    }


def summary_rows(doc: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
    """The Summary_Communication sheet, in the order of the template's."""
    i = doc["installation"]
    rp = doc["reporting_period"]
    rows: list[tuple[str, Any, str]] = [
        ("Installation name", i["name"], ""),
        ("Address", i["address"], ""),
        ("Economic activity", i["economic_activity"], ""),
        ("Country", i["country"], "ISO 3166"),
        ("UN/LOCODE", i["unlocode"], ""),
        ("Main emission source latitude", i["latitude"], "degrees"),
        ("Main emission source longitude", i["longitude"], "degrees"),
        ("Reporting period from", rp["from"], rp["timezone"]),
        ("Reporting period to", rp["to"], rp["timezone"]),
        ("Mark-up on default values", doc["method"]["default_markup_pct"], "%"),
    ]
    for p in doc["processes"]:
        rows.append((f"{p['process']}: goods category / route", f"{p['goods_category']} / {p['route']}", ""))
        rows.append((f"{p['process']}: attributed emissions, direct (calculation)", p["attributed_direct_t"], "tCO2"))
        rows.append((f"{p['process']}: attributed emissions, indirect", p["attributed_indirect_t"], "tCO2"))
        rows.append((f"{p['process']}: attributed emissions, total", p["attributed_total_t"], "tCO2"))
    for g in doc["goods"]:
        head = f"{g['cn']} {g['name']}"
        rows.append((f"{head}: SEE direct", g["see_direct_tco2_per_t"], "tCO2/t"))
        rows.append((f"{head}: SEE indirect", g["see_indirect_tco2_per_t"], "tCO2/t"))
        rows.append((f"{head}: SEE total", g["see_total_tco2_per_t"], "tCO2/t"))
        rows.append((f"{head}: SEE counted for CBAM ({g['counts']})", g["see_cbam_tco2_per_t"], "tCO2/t"))
        rows.append((f"{head}: share of SEE from default values", g["default_share_pct"], "%"))
        rows.append((f"{head}: embedded electricity", g["embedded_electricity_mwh_per_t"], "MWh/t"))
    cp = doc["carbon_price"]
    if cp is not None:
        rows += [
            ("Carbon price: instrument", cp["instrument"], ""),
            ("Carbon price: share of emissions covered", cp["share_covered_pct"], "%"),
            ("Carbon price: price", cp["price_per_t"], f"{cp['currency']}/tCO2"),
            ("Carbon price: rebates", cp["rebate_per_t"], f"{cp['currency']}/tCO2"),
            ("Carbon price: effective price", cp["effective_price_per_t"], f"{cp['currency']}/tCO2"),
        ]
    return rows


#: The template's steel product parameters: key of GoodConfig, title, number format.
STEEL_COLUMNS = (
    ("main_reducing_agent", "Main reducing agent", None),
    ("steel_mill_id", "Steel mill id", None),
    ("mn_pct", "Mn (%)", "0.00"),
    ("cr_pct", "Cr (%)", "0.00"),
    ("ni_pct", "Ni (%)", "0.00"),
    ("other_alloys_pct", "Other alloys (%)", "0.00"),
    ("c_pct", "C (%)", "0.000"),
    ("scrap_t_per_t", "Scrap (t/t)", "0.000"),
    ("pre_consumer_scrap_pct", "Pre-consumer scrap (%)", "0.00"),
)


def sheets(doc: Mapping[str, Any]) -> list[Sheet]:
    goods = Sheet(
        "goods.csv",
        "Goods",
        [
            Column("cn", "CN code", width=12),
            Column("name", "Good", width=28),
            Column("process", "Production process", width=18),
            Column("counts", "Counts for CBAM", width=16),
            Column("see_direct", "SEE direct (tCO2/t)", T6),
            Column("see_indirect", "SEE indirect (tCO2/t)", T6),
            Column("see_total", "SEE total (tCO2/t)", T6),
            Column("see_cbam", "SEE counted (tCO2/t)", T6),
            Column("default_share_pct", "From default values (%)", "0.00"),
            Column("ee", "Embedded electricity (MWh/t)", T6),
            Column("ef_source", "Electricity factor source", width=40),
            *[Column(k, title, fmt, width=14) for k, title, fmt in STEEL_COLUMNS],
        ],
        [
            [
                g["cn"],
                g["name"],
                g["process"],
                g["counts"],
                g["see_direct_tco2_per_t"],
                g["see_indirect_tco2_per_t"],
                g["see_total_tco2_per_t"],
                g["see_cbam_tco2_per_t"],
                g["default_share_pct"],
                g["embedded_electricity_mwh_per_t"],
                "; ".join(f"{f['id']}: {f['source']}" for f in g["electricity_factors"]),
                *[g["steel_parameters"][k] for k, _, _ in STEEL_COLUMNS],
            ]
            for g in doc["goods"]
        ],
    )
    procs = Sheet(
        "processes.csv",
        "Processes",
        [
            Column("process", "Process", width=18),
            Column("activity_t", "Activity level (t)", T3),
            Column("direct_t", "Direct, ledger (tCO2)", T3),
            Column("wg_corr_t", "Waste-gas correction (tCO2)", T3),
            Column("attr_direct_t", "Attributed direct (tCO2)", T3),
            Column("attr_indirect_t", "Attributed indirect (tCO2)", T3),
            Column("electricity_mwh", "Electricity (MWh)", T3),
        ],
        [
            [
                p["process"],
                p["activity_t"],
                p["direct_t"],
                p["waste_gas_correction_t"],
                p["attributed_direct_t"],
                p["attributed_indirect_t"],
                p["electricity_mwh"],
            ]
            for p in doc["processes"]
        ],
    )
    pre = Sheet(
        "precursors.csv",
        "Precursors",
        [
            Column("process", "Consumer", width=18),
            Column("precursor", "Precursor", width=18),
            Column("purchased", "Purchased", width=10),
            Column("mass_t", "Mass (t)", T3),
            Column("see_direct", "SEE direct (tCO2/t)", T6),
            Column("see_indirect", "SEE indirect (tCO2/t)", T6),
            Column("default", "Default values", width=10),
            Column("justification", "Source / justification of defaults", width=40),
        ],
        [
            [
                p["process"],
                c["precursor"],
                c["purchased"],
                c["mass_t"],
                c["see_direct_tco2_per_t"],
                c["see_indirect_tco2_per_t"],
                c["default_values"],
                c.get("source", ""),
            ]
            for p in doc["processes"]
            for c in p["precursors"]
        ],
    )
    return [goods, procs, pre]


def read_period(
    settings: GatewaySettings, ledger: Path, period: Period, archive_dir: Path | None
) -> tuple[ledger_period.PeriodRead, list[dict[str, Any]]]:
    """The period's cells as of the ledger's head, from the live ledger (chain verified) and, for
    months archived out of it, from their archive files in `archive_dir` (each checked against
    the ledger's record: gateway/ledger/period.py); and the ledger's lab records.

    Raises CbamInputError (no ledger file, no minute in the period, an archived month without
    its archive), LedgerError, LedgerSiteError, LedgerIntegrityError."""
    if not ledger.is_file():
        raise CbamInputError(f"ledger {ledger}: no such file; check --ledger (or [ledger] path in the config)")
    if not archive_records(ledger):  # nothing archived: a period without minutes is refused before the walk
        head = ledger_month.pin_head(ledger)
        if not ledger_month.minute_span(ledger, head, period.day_starts_s[0], period.day_starts_s[-1]).month_has_minutes:
            check_site_of(ledger, settings.site.name)  # a ledger of another site is refused as that first
            raise _no_minute(ledger, head, period)
    try:
        read = ledger_period.read_period(
            ledger, period.day_starts_s, site=settings.site.name, timezone=period.timezone, archive_dir=archive_dir
        )
    except ledger_period.PeriodError as exc:
        raise CbamInputError(str(exc)) from None
    if not read.cells and not read.archives:
        raise _no_minute(ledger, read.head, period)
    with EvidenceStore(ledger, readonly=True) as evidence:
        labs = evidence.lab_records()
    return read, labs


def _no_minute(ledger: Path, head: ledger_month.LedgerHead, period: Period) -> CbamInputError:
    span = ledger_month.minute_span(ledger, head, period.day_starts_s[0], period.day_starts_s[-1])
    tz = ZoneInfo(period.timezone)
    held = (
        "no minute at all"
        if span.first_s is None or span.last_s is None
        else f"minutes from {times.local_time(span.first_s, tz)} to {times.local_time(span.last_s, tz)}"
    )
    return CbamInputError(
        f"ledger {ledger} has no minute in {period.first}..{period.last} ({period.timezone}): it holds {held} "
        f"(rows 1..{head.seq}); check --from, --to and --ledger. A report of a period without data would say 0 t"
    )


def make_report(
    settings: GatewaySettings,
    config_bytes: bytes,
    ledger: Path,
    first: str,
    last: str,
    out_dir: Path,
    *,
    archive_dir: Path | None = None,
) -> dict[str, Any]:
    """Write cbam.json, cbam.xlsx and manifest.json into out_dir; return cbam.json's document.
    `archive_dir`: where the archive files of months archived out of the ledger are."""
    problems = cbam_problems(settings)
    if problems:
        raise CbamInputError("; ".join(f"{'.'.join(str(k) for k in path)}: {msg}" for path, msg in problems))
    period = period_of(first, last, settings.site.timezone)
    read, labs = read_period(settings, ledger, period, archive_dir)
    head, cells = read.head, read.cells
    factors = {**context.factor_info(settings), **context.lab_info(labs)}
    doc = build_report(settings, _sum_cells(cells), factors, period)
    assert settings.cbam is not None  # cbam_problems refuses a site file without it
    extra = _methods_and_quality(cells, settings.cbam)
    for p in doc["processes"]:
        p.update(extra[p["process"]])
    doc["ledger"] = {
        "head_seq": head.seq,
        "head_hash": head.hash,
        "rows_verified": read.live_rows_verified,
        "archives": [dataclasses.asdict(a) for a in read.archives],
    }
    files = {
        CBAM_JSON: manifest.json_bytes(doc),
        CBAM_XLSX: workbook.build_workbook(
            summary_rows(doc),
            sheets(doc),
            title=f"emgate CBAM {settings.site.name} {first}..{last}",
            summary_sheet="Summary_Communication",  # the communication template's sheet
        ),
    }
    header = {
        "site": settings.site.name,
        "reporting_period": doc["reporting_period"],
        "emgate_version": __version__,
        "config_sha256": manifest.config_sha256(config_bytes, settings),
        "ledger": doc["ledger"],
    }
    files[MANIFEST] = manifest.build_manifest(files, header)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in sorted(files, key=lambda n: n == MANIFEST):
        tmp = out_dir / f".{name}.tmp"
        tmp.write_bytes(files[name])
        os.replace(tmp, out_dir / name)
    return doc
