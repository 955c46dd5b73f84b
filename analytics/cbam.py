"""CBAM: attributed emissions per production process and specific embedded emissions (SEE) per good.

The method is the one of the CBAM implementing regulation's Annex III (Implementing Regulation
(EU) 2023/1773, carried into 2025/2547), as summarised in the domain reference
(registry-deposit-and-cbam.md section 2). Check EUR-Lex before relying on a layout.

Attributed emissions of a production process P over the reporting period (tCO2):

    AttrEm_dir(P) = DirEm(P) + WG_exp,CO2(P) - WG_corr,exp(P) - WG_imp,CO2(P) + WG_corr,imp(P)
    AttrEm_ind(P) = Em_el(P) = MWh_el(P) x EF_el                       (the ledger's indirect rows)

- DirEm(P): the direct CO2 of the emgate processes P is built from, as the ledger holds it
  (combustion, process and mass-balance rows; a by-product gas sent out is a negative row of the
  producer, the gas burnt a positive row of the consumer).
- Waste gases (BFG, COG, BOF gas; Annex III: their emissions belong to the process that
  produces them, the consumer is credited with the natural gas it replaces):
      WG_exp,CO2  = CO2 of the gas carbon P sends out (its negative balance rows, as a positive figure)
      WG_corr,exp = E_WG,exp [GJ] x EF_NG x Corr_eta     (Corr_eta = 0.667: the efficiency
                    difference between waste gas and natural gas)
      WG_imp,CO2  = CO2 of the waste gas P burns (its transfer input rows)
      WG_corr,imp = E_WG,imp [GJ] x EF_NG
  EF_NG = 0.0561 tCO2/GJ (IPCC 2006 default for natural gas, 56.1 tCO2/TJ) unless configured.
  Choice where the summary is silent: the producer takes back the carbon it sent out (metered at
  the producer) and the consumer gives up the CO2 it burnt (metered at the consumer), so gas
  flared or lost stays with the producer.
- Measurable heat moved between production processes (Em_H,imp / Em_H,exp) is not modelled:
  emgate meters no heat flow between processes; purchased heat stays in the indirect scope.

Specific embedded emissions of the goods of P (one aggregated goods category per process, all
its goods share the SEE; AL(P) its activity level, t):

    SEE_dir(P) = ( AttrEm_dir(P) + sum_i M_i x SEE_dir(i) ) / AL(P)
    SEE_ind(P) = ( AttrEm_ind(P) + sum_i M_i x SEE_ind(i) ) / AL(P)
    EE(P)      = ( MWh_el(P)     + sum_i M_i x EE(i)      ) / AL(P)     embedded electricity, MWh/t

over the precursors i P consumes (M_i t in the period), recursively: an own precursor's SEE is
its process's; a purchased one's is its supplier's actual value when verified, else the default
value marked up (10 % in 2026, 20 % in 2027, 30 % from 2028; the mark-up multiplies the direct
and indirect default, not the embedded electricity).

What counts for CBAM: Annex II goods (iron and steel: CN 72, 73) count direct emissions only;
sintered ore (CN 2601 12 00) counts direct and indirect. `see_cbam = SEE_dir (+ SEE_ind when not
Annex II)`. The share of SEE from default values is the part of `see_cbam` that comes from
defaults (a default precursor's contribution, carried up the chain) over `see_cbam`, in %.

Pure: no I/O; sums are math.fsum (the result does not depend on the order of the inputs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: IPCC 2006 Vol. 2 ch. 1 Table 1.4 default for natural gas: 56.1 tCO2/TJ.
EF_NATURAL_GAS_TCO2_PER_GJ = 0.0561
#: Annex III's efficiency correction for exported waste gas.
WASTE_GAS_CORR_ETA = 0.667
#: Mark-up on default values by year (Regulation 2025/2621 as summarised): 2028 on = 30 %.
DEFAULT_MARKUP_PCT = {2026: 10.0, 2027: 20.0}
DEFAULT_MARKUP_PCT_FROM_2028 = 30.0
#: CN headings outside Annex II among the iron and steel goods: sintered ore counts indirect too.
NOT_ANNEX_II_PREFIXES = ("2601",)


def default_markup_pct(year: int) -> float:
    """The mark-up (%) on default values in `year`: none before 2026, 10 / 20 / 30 % from 2026."""
    if year < 2026:
        return 0.0
    return DEFAULT_MARKUP_PCT.get(year, DEFAULT_MARKUP_PCT_FROM_2028)


def annex_ii(cn_code: str) -> bool:
    """True for an Annex II good (direct emissions only): every iron and steel CN code but sintered ore."""
    return not cn_code.replace(" ", "").startswith(NOT_ANNEX_II_PREFIXES)


@dataclass(frozen=True)
class ProcessData:
    """What the ledger gives one production process over the period."""

    name: str
    activity_t: float  # AL: the output of its goods, t
    direct_t: float  # DirEm: direct CO2 of its emgate processes, t
    indirect_t: float  # electricity CO2, t
    electricity_mwh: float
    annex_ii: bool
    wg_exported_co2_t: float = 0.0  # CO2 of the waste-gas carbon it sends out (positive)
    wg_exported_gj: float = 0.0
    wg_imported_co2_t: float = 0.0  # CO2 of the waste gas it burns
    wg_imported_gj: float = 0.0


@dataclass(frozen=True)
class Purchased:
    """A bought-in precursor: the supplier's SEE (actual when verified, else the default value)."""

    name: str
    see_direct_tco2_per_t: float
    see_indirect_tco2_per_t: float
    electricity_mwh_per_t: float
    verified: bool


@dataclass(frozen=True)
class PrecursorUse:
    consumer: str  # production process
    precursor: str  # a production process or a purchased precursor
    mass_t: float


@dataclass(frozen=True)
class PrecursorContribution:
    precursor: str
    mass_t: float
    see_direct_tco2_per_t: float
    see_indirect_tco2_per_t: float
    electricity_mwh_per_t: float
    purchased: bool
    default: bool  # its SEE is (or rests on) default values
    markup_pct: float


@dataclass(frozen=True)
class ProcessResult:
    name: str
    activity_t: float
    direct_t: float
    waste_gas_correction_t: float  # AttrEm_dir - DirEm
    attributed_direct_t: float
    attributed_indirect_t: float
    electricity_mwh: float
    see_direct_tco2_per_t: float
    see_indirect_tco2_per_t: float
    see_total_tco2_per_t: float
    see_cbam_tco2_per_t: float  # what counts: direct only for Annex II goods
    annex_ii: bool
    default_direct_tco2_per_t: float  # the part of SEE_dir from default values
    default_indirect_tco2_per_t: float
    default_share_pct: float | None  # of see_cbam; None when see_cbam is 0
    embedded_electricity_mwh_per_t: float
    precursors: tuple[PrecursorContribution, ...]


class CbamError(ValueError):
    """The chain cannot be computed: a cycle, an unknown precursor, a process without output."""


def attributed_direct_t(p: ProcessData, ef_ng_tco2_per_gj: float, corr_eta: float) -> float:
    """AttrEm_dir of the module docstring."""
    return math.fsum(
        (
            p.direct_t,
            p.wg_exported_co2_t,
            -p.wg_exported_gj * ef_ng_tco2_per_gj * corr_eta,
            -p.wg_imported_co2_t,
            p.wg_imported_gj * ef_ng_tco2_per_gj,
        )
    )


def embedded_emissions(
    processes: Sequence[ProcessData],
    uses: Sequence[PrecursorUse],
    purchased: Mapping[str, Purchased],
    *,
    markup_pct: float,
    ef_ng_tco2_per_gj: float = EF_NATURAL_GAS_TCO2_PER_GJ,
    corr_eta: float = WASTE_GAS_CORR_ETA,
) -> dict[str, ProcessResult]:
    """Every production process's attributed emissions and SEE, precursors first (module docstring).

    Raises:
        CbamError: a precursor that is neither a process nor purchased, a cycle of precursors, or a
            process with precursors or emissions but no output (its SEE would divide by 0).
    """
    by_name = {p.name: p for p in processes}
    consumed: dict[str, list[PrecursorUse]] = {p.name: [] for p in processes}
    for u in uses:
        if u.consumer not in by_name:
            raise CbamError(f"precursor {u.precursor!r}: consumer {u.consumer!r} is not a production process")
        if u.precursor not in by_name and u.precursor not in purchased:
            raise CbamError(
                f"process {u.consumer!r}: precursor {u.precursor!r} is neither a production process nor a purchased precursor"
            )
        consumed[u.consumer].append(u)
    factor = 1.0 + markup_pct / 100.0
    done: dict[str, ProcessResult] = {}
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, path: tuple[str, ...]) -> ProcessResult:
        if state.get(name) == 2:
            return done[name]
        if state.get(name) == 1:
            raise CbamError(f"precursors form a cycle: {' -> '.join((*path, name))}")
        state[name] = 1
        p = by_name[name]
        contributions = []
        for u in sorted(consumed[name], key=lambda u: u.precursor):
            if u.precursor in by_name:
                r = visit(u.precursor, (*path, name))
                contributions.append(
                    (
                        PrecursorContribution(
                            u.precursor,
                            u.mass_t,
                            r.see_direct_tco2_per_t,
                            r.see_indirect_tco2_per_t,
                            r.embedded_electricity_mwh_per_t,
                            False,
                            r.default_direct_tco2_per_t > 0,
                            0.0,
                        ),
                        r.default_direct_tco2_per_t,
                        r.default_indirect_tco2_per_t,
                    )
                )
            else:
                b = purchased[u.precursor]
                f = 1.0 if b.verified else factor
                see_d, see_i = b.see_direct_tco2_per_t * f, b.see_indirect_tco2_per_t * f
                contributions.append(
                    (
                        PrecursorContribution(
                            u.precursor,
                            u.mass_t,
                            see_d,
                            see_i,
                            b.electricity_mwh_per_t,
                            True,
                            not b.verified,
                            0.0 if b.verified else markup_pct,
                        ),
                        0.0 if b.verified else see_d,
                        0.0 if b.verified else see_i,
                    )
                )
        attr_dir = attributed_direct_t(p, ef_ng_tco2_per_gj, corr_eta)
        if not (p.activity_t > 0):
            if attr_dir == 0 and p.indirect_t == 0 and not contributions:
                raise CbamError(f"process {name!r} produced nothing in the period and has no emissions: leave it out")
            raise CbamError(
                f"process {name!r}: activity level {p.activity_t!r} t in the period; its SEE needs an output above 0 "
                "(check its production entries)"
            )
        al = p.activity_t
        see_d = math.fsum((attr_dir, *(c.mass_t * c.see_direct_tco2_per_t for c, _, _ in contributions))) / al
        see_i = math.fsum((p.indirect_t, *(c.mass_t * c.see_indirect_tco2_per_t for c, _, _ in contributions))) / al
        ee = math.fsum((p.electricity_mwh, *(c.mass_t * c.electricity_mwh_per_t for c, _, _ in contributions))) / al
        def_d = math.fsum(c.mass_t * d for c, d, _ in contributions) / al
        def_i = math.fsum(c.mass_t * i for c, _, i in contributions) / al
        cbam = see_d if p.annex_ii else see_d + see_i
        def_cbam = def_d if p.annex_ii else def_d + def_i
        res = ProcessResult(
            name=name,
            activity_t=al,
            direct_t=p.direct_t,
            waste_gas_correction_t=attr_dir - p.direct_t,
            attributed_direct_t=attr_dir,
            attributed_indirect_t=p.indirect_t,
            electricity_mwh=p.electricity_mwh,
            see_direct_tco2_per_t=see_d,
            see_indirect_tco2_per_t=see_i,
            see_total_tco2_per_t=see_d + see_i,
            see_cbam_tco2_per_t=cbam,
            annex_ii=p.annex_ii,
            default_direct_tco2_per_t=def_d,
            default_indirect_tco2_per_t=def_i,
            default_share_pct=(100.0 * def_cbam / cbam) if cbam != 0 else None,
            embedded_electricity_mwh_per_t=ee,
            precursors=tuple(c for c, _, _ in contributions),
        )
        state[name] = 2
        done[name] = res
        return res

    for p in sorted(by_name):
        visit(p, ())
    return {name: done[name] for name in sorted(done)}


@dataclass(frozen=True)
class CarbonPrice:
    instrument: str
    currency: str
    price_per_t: float
    share_covered_pct: float
    rebate_per_t: float

    @property
    def effective_price_per_t(self) -> float:
        """The price per t of embedded emissions actually paid: (price - rebate) x share covered, never below 0."""
        return max(0.0, (self.price_per_t - self.rebate_per_t) * self.share_covered_pct / 100.0)
