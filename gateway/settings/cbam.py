"""The `[cbam]` section: what `emgate cbam` needs besides the ledger (docs/cbam.md).

    [cbam]
    installation = { name = "...", address = "...", country = "CN", unlocode = "CNSHG",
                     latitude = 31.40, longitude = 121.48, economic_activity = "..." }

    [cbam.processes.ironmaking]          # one CBAM production process (one goods category)
    goods_category = "Pig iron"
    route = "Blast furnace route"
    emgate_processes = ["blast_furnace"] # its emissions: these processes' ledger rows
    production = ["blast_furnace/hot_metal"]  # its activity level: these [[production]] entries
    goods = [{ cn = "72011011", name = "Non-alloy pig iron" }]

    [[cbam.precursors]]                  # which process consumes how much of which precursor
    consumer = "ironmaking"
    precursor = "sintering"              # a [cbam.processes] or [cbam.purchased] key
    stream = "blast_furnace/sinter_charged"   # its t from the ledger, or monthly_t = {...} + evidence

    [cbam.purchased.pellets]             # a bought-in precursor with its supplier's SEE
    ...

Cross-checks against the rest of the site file (emgate processes, production entries, streams)
are gateway/export/cbam.py's `cbam_problems(settings)`, run by `emgate cbam`, each with its key path.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from analytics.cbam import EF_NATURAL_GAS_TCO2_PER_GJ, WASTE_GAS_CORR_ETA

Key = Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.\-]+$")]
CnCode = Annotated[str, Field(pattern=r"^[0-9]{4}( ?[0-9]{2}){0,3}$", description="CN code, 4 to 10 digits")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InstallationConfig(_Section):
    """The installation as the communication template's Summary_Communication names it."""

    name: str = Field(min_length=1, max_length=200)
    address: str = Field(min_length=1, max_length=300)
    country: str = Field(min_length=2, max_length=2, description="ISO 3166 alpha-2, e.g. CN.")
    unlocode: str = Field(pattern=r"^[A-Z]{2} ?[A-Z2-9]{3}$", description="UN/LOCODE, e.g. CNSHG.")
    latitude: float = Field(ge=-90, le=90, description="Main emission source, decimal degrees.")
    longitude: float = Field(ge=-180, le=180)
    economic_activity: str = Field(min_length=1, max_length=200)


Pct = Annotated[float | None, Field(None, ge=0, le=100, allow_inf_nan=False)]


class GoodConfig(_Section):
    """A good by CN code; for steel, the template's product parameters (as the works knows them)."""

    cn: CnCode
    name: str = Field(min_length=1, max_length=200)
    main_reducing_agent: str | None = Field(None, max_length=120, description="Steel: e.g. coke, natural gas, hydrogen.")
    steel_mill_id: str | None = Field(None, max_length=120, description="Steel: the mill's identification number.")
    mn_pct: Pct = None
    cr_pct: Pct = None
    ni_pct: Pct = None
    other_alloys_pct: Pct = None
    c_pct: Pct = None
    scrap_t_per_t: float | None = Field(None, ge=0, allow_inf_nan=False, description="Steel: t scrap per t of the good.")
    pre_consumer_scrap_pct: Pct = None

    def steel_parameters(self) -> dict[str, object]:
        return self.model_dump(exclude={"cn", "name"})


class CbamProcessConfig(_Section):
    goods_category: str = Field(min_length=1, max_length=120, description="e.g. Sintered ore, Pig iron, Crude steel.")
    route: str = Field("", max_length=200, description="Production route, e.g. Blast furnace route.")
    emgate_processes: list[Key] = Field(min_length=1, description="emgate processes whose ledger rows are its emissions.")
    production: list[str] = Field(
        min_length=1, description='Its activity level: [[production]] entries as "process/product", summed (t).'
    )
    goods: list[GoodConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_category(self) -> CbamProcessConfig:
        kinds = {g.cn.replace(" ", "").startswith("2601") for g in self.goods}
        if len(kinds) > 1:
            raise ValueError("goods mix sintered ore (CN 2601) with Annex II goods; make them two processes")
        return self

    @property
    def annex_ii(self) -> bool:
        return not self.goods[0].cn.replace(" ", "").startswith("2601")


class PrecursorConfig(_Section):
    consumer: Key = Field(description="The consuming [cbam.processes] key.")
    precursor: Key = Field(description="A [cbam.processes] or [cbam.purchased] key.")
    stream: str | None = Field(
        None,
        description='"process/stream" whose activity (t) in the ledger is the mass consumed, or "process/production.<product>".',
    )
    monthly_t: dict[str, float] | None = Field(None, description='Mass consumed per month: { "2026-01" = 1234.5 }.')
    evidence: Path | None = Field(None, description="The document behind monthly_t.")

    @model_validator(mode="after")
    def _one_source(self) -> PrecursorConfig:
        if (self.stream is None) == (self.monthly_t is None):
            raise ValueError("give either stream (metered) or monthly_t with evidence, not both or neither")
        if self.monthly_t is not None:
            if self.evidence is None:
                raise ValueError('monthly_t needs evidence = "path/to/file"')
            for month, t in self.monthly_t.items():
                if not (
                    len(month) == 7
                    and month[4] == "-"
                    and month[:4].isdigit()
                    and month[5:].isdigit()
                    and 1 <= int(month[5:]) <= 12
                ):
                    raise ValueError(f"monthly_t key {month!r} is not a month YYYY-MM")
                if not (math.isfinite(t) and t >= 0):
                    raise ValueError(f"monthly_t[{month!r}] = {t!r} is not a finite, non-negative tonnage")
        return self


class PurchasedConfig(_Section):
    name: str = Field(min_length=1, max_length=200)
    cn: CnCode
    supplier: str = Field("", max_length=200)
    see_direct_tco2_per_t: float = Field(ge=0, allow_inf_nan=False)
    see_indirect_tco2_per_t: float = Field(0.0, ge=0, allow_inf_nan=False)
    electricity_mwh_per_t: float = Field(0.0, ge=0, allow_inf_nan=False)
    verified: bool = Field(description="true: the supplier's verified actual values; false: default values (marked up).")
    source: str = Field(
        min_length=1, max_length=300, description="Where the values come from (verifier's report, default table)."
    )


class CarbonPriceConfig(_Section):
    instrument: str = Field("China national ETS", max_length=200)
    currency: str = Field("CNY", min_length=3, max_length=3)
    price_per_t: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="Price per tCO2; default: [budget] carbon_price_cny_per_t."
    )
    share_covered_pct: float = Field(ge=0, le=100, description="Share of the installation's emissions the instrument covers.")
    rebate_per_t: float = Field(0.0, ge=0, allow_inf_nan=False, description="Rebates or free allocation, per t.")


class CbamConfig(_Section):
    installation: InstallationConfig
    processes: dict[Key, CbamProcessConfig] = Field(min_length=1)
    precursors: list[PrecursorConfig] = Field(default_factory=list)
    purchased: dict[Key, PurchasedConfig] = Field(default_factory=dict)
    carbon_price: CarbonPriceConfig | None = None
    default_markup_pct: float | None = Field(
        None, ge=0, le=100, description="Mark-up on default values; default: by the period's year (10/20/30 %)."
    )
    waste_gases: list[Key] = Field(
        default_factory=list,
        description="Transfer names (a stream's `transfer`) that are waste gases (BFG, COG, LDG): corrected as Annex III says.",
    )
    natural_gas_ef_tco2_per_gj: float = Field(EF_NATURAL_GAS_TCO2_PER_GJ, gt=0, allow_inf_nan=False)
    waste_gas_corr_eta: float = Field(WASTE_GAS_CORR_ETA, gt=0, le=1, allow_inf_nan=False)
