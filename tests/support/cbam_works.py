"""The CBAM works shared by the CBAM tests: sinter plant -> blast furnace -> BOF, the furnace also
charging bought-in pellets on default values, the BOF bought-in pig iron on verified values; BFG
sent by the furnace to the captive power plant and the sinter plant's ignition hood; one day of
minutes as CSV, replayed into a ledger. The expected figures are computed here by hand, from the
factor library's values, independently of analytics/cbam.py."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 11, 3, tzinfo=TZ)
MINUTES = 1440
C2CO2 = 44.0 / 12.0

# per minute, what the CSV holds
PER_MINUTE = {
    "sinter_breeze": 0.5,  # t coke breeze, cn.coke
    "sinter_bfg": 100.0,  # Nm3 BFG burnt in the ignition hood, cn.bfg
    "sinter_kwh": 30.0,
    "sinter_out": 4.0,  # t sinter, all charged to the furnace
    "bf_coke": 2.0,
    "bf_hot_metal": 3.0,  # t, cn.pig_iron, carbon out
    "bf_bfg_out": 1000.0,  # Nm3, cn.bfg, carbon out, transfer BFG
    "bf_kwh": 20.0,
    "bof_hot_metal": 2.5,  # t charged, cn.pig_iron, carbon in
    "bof_steel": 2.8,  # t crude steel, cn.crude_steel, carbon out
    "bof_kwh": 10.0,
    "pp_bfg": 800.0,  # Nm3 burnt by the captive power plant
}

SITE = """
[site]
name = "cbam-works"
timezone = "Asia/Shanghai"

[signals.sinter_breeze_t]
kind = "interval_total"
unit = "t"
interval_s = 60
[signals.sinter_bfg_nm3]
kind = "interval_total"
unit = "Nm3"
interval_s = 60
[signals.sinter_kwh]
kind = "interval_total"
unit = "kWh"
interval_s = 60
[signals.sinter_out_t]
kind = "interval_total"
unit = "t"
interval_s = 60
[signals.bf_coke_t]
kind = "interval_total"
unit = "t"
interval_s = 60
[signals.bf_hot_metal_t]
kind = "interval_total"
unit = "t"
interval_s = 60
[signals.bf_bfg_out_nm3]
kind = "interval_total"
unit = "Nm3"
interval_s = 60
[signals.bf_kwh]
kind = "interval_total"
unit = "kWh"
interval_s = 60
[signals.bof_hot_metal_t]
kind = "interval_total"
unit = "t"
interval_s = 60
[signals.bof_steel_t]
kind = "interval_total"
unit = "t"
interval_s = 60
[signals.bof_kwh]
kind = "interval_total"
unit = "kWh"
interval_s = 60
[signals.pp_bfg_nm3]
kind = "interval_total"
unit = "Nm3"
interval_s = 60

[[streams]]
process = "sinter_plant"
stream = "coke_breeze"
signal = "sinter_breeze_t"
method = "fuel_combustion"
factor = "cn.coke"
[[streams]]
process = "sinter_plant"
stream = "ignition_bfg"
signal = "sinter_bfg_nm3"
method = "fuel_combustion"
factor = "cn.bfg"
transfer = "BFG"
[[streams]]
process = "sinter_plant"
stream = "electricity"
signal = "sinter_kwh"
method = "electricity"
factor = "cn.grid.2023.national_avg"
[[streams]]
process = "blast_furnace"
stream = "coke"
signal = "bf_coke_t"
method = "fuel_combustion"
factor = "cn.coke"
[[streams]]
process = "blast_furnace"
stream = "hot_metal"
signal = "bf_hot_metal_t"
method = "material"
factor = "cn.pig_iron"
sign = -1
[[streams]]
process = "blast_furnace"
stream = "bfg_out"
signal = "bf_bfg_out_nm3"
method = "fuel_combustion"
factor = "cn.bfg"
sign = -1
transfer = "BFG"
[[streams]]
process = "blast_furnace"
stream = "electricity"
signal = "bf_kwh"
method = "electricity"
factor = "cn.grid.2023.national_avg"
[[streams]]
process = "bof"
stream = "hot_metal"
signal = "bof_hot_metal_t"
method = "material"
factor = "cn.pig_iron"
[[streams]]
process = "bof"
stream = "crude_steel"
signal = "bof_steel_t"
method = "material"
factor = "cn.crude_steel"
sign = -1
[[streams]]
process = "bof"
stream = "electricity"
signal = "bof_kwh"
method = "electricity"
factor = "cn.grid.2023.national_avg"
[[streams]]
process = "power_plant"
stream = "bfg"
signal = "pp_bfg_nm3"
method = "fuel_combustion"
factor = "cn.bfg"
transfer = "BFG"

[processes.power_plant]
captive_power = true

[[production]]
process = "sinter_plant"
product = "sinter"
signal = "sinter_out_t"
[[production]]
process = "blast_furnace"
product = "hot_metal"
signal = "bf_hot_metal_t"
[[production]]
process = "bof"
product = "crude_steel"
signal = "bof_steel_t"

[cbam]
waste_gases = ["BFG"]
installation = { name = "CBAM Works No. 1", address = "1 Furnace Road, Baoshan, Shanghai", country = "CN", unlocode = "CNSHG", latitude = 31.40, longitude = 121.48, economic_activity = "Manufacture of basic iron and steel" }

[cbam.processes.sintering]
goods_category = "Sintered ore"
route = "Sinter strand"
emgate_processes = ["sinter_plant"]
production = ["sinter_plant/sinter"]
goods = [{ cn = "26011200", name = "Agglomerated iron ores (sinter)" }]

[cbam.processes.ironmaking]
goods_category = "Pig iron"
route = "Blast furnace route"
emgate_processes = ["blast_furnace"]
production = ["blast_furnace/hot_metal"]
goods = [{ cn = "72011011", name = "Non-alloy pig iron" }]

[cbam.processes.steelmaking]
goods_category = "Crude steel"
route = "Basic oxygen steelmaking"
emgate_processes = ["bof"]
production = ["bof/crude_steel"]
goods = [{ cn = "72061000", name = "Iron and non-alloy steel in ingots", main_reducing_agent = "coke", mn_pct = 0.45, c_pct = 0.18, scrap_t_per_t = 0.12 }, { cn = "72071111", name = "Semi-finished billets" }]

[[cbam.precursors]]
consumer = "ironmaking"
precursor = "sintering"
stream = "sinter_plant/production.sinter"

[[cbam.precursors]]
consumer = "ironmaking"
precursor = "pellets"
monthly_t = { "2026-11" = 1000.0 }
evidence = "pellets-2026-11.pdf"

[[cbam.precursors]]
consumer = "steelmaking"
precursor = "ironmaking"
stream = "bof/hot_metal"

[[cbam.precursors]]
consumer = "steelmaking"
precursor = "bought_pig_iron"
monthly_t = { "2026-11" = 200.0 }
evidence = "pig-iron-2026-11.pdf"

[cbam.purchased.pellets]
name = "Iron ore pellets"
cn = "26011200"
supplier = "Pellet Co."
see_direct_tco2_per_t = 0.3
see_indirect_tco2_per_t = 0.05
electricity_mwh_per_t = 0.06
verified = false
source = "EU default value for 2601 12 00 (no verified supplier data)"

[cbam.purchased.bought_pig_iron]
name = "Pig iron"
cn = "72011011"
supplier = "Iron Co."
see_direct_tco2_per_t = 1.9
see_indirect_tco2_per_t = 0.2
electricity_mwh_per_t = 0.1
verified = true
source = "supplier communication, verified by Verifier GmbH"

[cbam.carbon_price]
instrument = "China national ETS"
currency = "CNY"
price_per_t = 90.0
share_covered_pct = 60.0
rebate_per_t = 10.0

[[replay.csv]]
match = "day*.csv"
timestamp_column = "ts"
columns = { sinter_breeze = "sinter_breeze_t", sinter_bfg = "sinter_bfg_nm3", sinter_kwh = "sinter_kwh", sinter_out = "sinter_out_t", bf_coke = "bf_coke_t", bf_hot_metal = "bf_hot_metal_t", bf_bfg_out = "bf_bfg_out_nm3", bf_kwh = "bf_kwh", bof_hot_metal = "bof_hot_metal_t", bof_steel = "bof_steel_t", bof_kwh = "bof_kwh", pp_bfg = "pp_bfg_nm3" }
"""


def write_works(tmp_path: Path) -> Path:
    """The site file, its evidence files and day1.csv in tmp_path; returns the site file."""
    (tmp_path / "pellets-2026-11.pdf").write_bytes(b"%PDF pellet deliveries 2026-11\n")
    (tmp_path / "pig-iron-2026-11.pdf").write_bytes(b"%PDF pig iron deliveries 2026-11\n")
    site = tmp_path / "site.toml"
    site.write_text(SITE)
    cols = list(PER_MINUTE)
    lines = ["ts," + ",".join(cols)]
    for m in range(1, MINUTES + 1):
        lines.append(f"{(DAY + timedelta(minutes=m)).isoformat()}," + ",".join(str(PER_MINUTE[c]) for c in cols))
    (tmp_path / "day1.csv").write_text("\n".join(lines) + "\n")
    return site


# ---- the expected figures, by hand (factor library values; the ledger applies the oxidation factor)
COKE = 28.435 * 0.02942 * 0.93 * C2CO2  # tCO2 per t coke
BFG = 33.0 * 0.0708 * 0.99 * C2CO2  # tCO2 per 10^4 Nm3
BFG_GJ = 33.0  # GJ per 10^4 Nm3
GRID = 0.5306  # tCO2/MWh
EF_NG = 0.0561
ETA = 0.667
MARKUP = 1.10  # 2026


def expected() -> dict[str, dict[str, float]]:
    """Every SEE, share from defaults and embedded electricity of the three processes, by hand."""
    pm, n = PER_MINUTE, MINUTES
    # sintering: coke breeze + BFG it burns, the BFG taken out and replaced by natural gas
    s_bfg = pm["sinter_bfg"] / 1e4 * n
    s_dir = pm["sinter_breeze"] * n * COKE + s_bfg * BFG - s_bfg * BFG + s_bfg * BFG_GJ * EF_NG
    s_mwh = pm["sinter_kwh"] * n / 1000
    s_al = pm["sinter_out"] * n
    sinter = {"dir": s_dir / s_al, "ind": s_mwh * GRID / s_al, "ee": s_mwh / s_al, "def_dir": 0.0, "def_ind": 0.0}
    # ironmaking: coke - hot metal carbon - BFG carbon out, the BFG sent out taken back minus its NG equivalent x 0.667
    b_out = pm["bf_bfg_out"] / 1e4 * n
    b_dir = pm["bf_coke"] * n * COKE - pm["bf_hot_metal"] * n * 0.172 - b_out * BFG + b_out * BFG - b_out * BFG_GJ * EF_NG * ETA
    b_mwh = pm["bf_kwh"] * n / 1000
    b_al = pm["bf_hot_metal"] * n
    m_sinter, m_pellets = pm["sinter_out"] * n, 1000.0
    pel_dir, pel_ind, pel_ee = 0.3 * MARKUP, 0.05 * MARKUP, 0.06
    iron = {
        "dir": (b_dir + m_sinter * sinter["dir"] + m_pellets * pel_dir) / b_al,
        "ind": (b_mwh * GRID + m_sinter * sinter["ind"] + m_pellets * pel_ind) / b_al,
        "ee": (b_mwh + m_sinter * sinter["ee"] + m_pellets * pel_ee) / b_al,
        "def_dir": m_pellets * pel_dir / b_al,
        "def_ind": m_pellets * pel_ind / b_al,
    }
    # steelmaking: hot metal carbon in - steel carbon out; own hot metal and bought pig iron (verified)
    m_hm, m_pig = pm["bof_hot_metal"] * n, 200.0
    o_dir = m_hm * 0.172 - pm["bof_steel"] * n * 0.0154
    o_mwh = pm["bof_kwh"] * n / 1000
    o_al = pm["bof_steel"] * n
    steel = {
        "dir": (o_dir + m_hm * iron["dir"] + m_pig * 1.9) / o_al,
        "ind": (o_mwh * GRID + m_hm * iron["ind"] + m_pig * 0.2) / o_al,
        "ee": (o_mwh + m_hm * iron["ee"] + m_pig * 0.1) / o_al,
        "def_dir": m_hm * iron["def_dir"] / o_al,
        "def_ind": m_hm * iron["def_ind"] / o_al,
    }
    out = {}
    for name, r, annex_ii in (("sintering", sinter, False), ("ironmaking", iron, True), ("steelmaking", steel, True)):
        cbam = r["dir"] if annex_ii else r["dir"] + r["ind"]
        dflt = r["def_dir"] if annex_ii else r["def_dir"] + r["def_ind"]
        out[name] = {**r, "total": r["dir"] + r["ind"], "cbam": cbam, "share": 100 * dflt / cbam}
    return out
