"""The balance works shared by the export tests: a blast furnace sending BFG to the captive power
plant (the rest flared), a rolling mill with a monthly production entry, one day of minutes as CSV."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 11, 3, tzinfo=TZ)

SITE = """
[site]
name = "balance-works"
timezone = "Asia/Shanghai"

[signals.coke_t]
kind = "interval_total"
unit = "t"
interval_s = 60

[signals.hot_metal_t]
kind = "interval_total"
unit = "t"
interval_s = 60

[signals.bfg_out_nm3]
kind = "interval_total"
unit = "Nm3"
interval_s = 60

[signals.pp_bfg_nm3]
kind = "interval_total"
unit = "Nm3"
interval_s = 60

[[streams]]
process = "blast_furnace"
stream = "coke"
signal = "coke_t"
method = "fuel_combustion"
factor = "cn.coke"

[[streams]]
process = "blast_furnace"
stream = "hot_metal"
signal = "hot_metal_t"
method = "material"
factor = "cn.pig_iron"
sign = -1

[[streams]]
process = "blast_furnace"
stream = "bfg_out"
signal = "bfg_out_nm3"
method = "fuel_combustion"
factor = "cn.bfg"
sign = -1
transfer = "BFG"

[[streams]]
process = "power_plant"
stream = "bfg"
signal = "pp_bfg_nm3"
method = "fuel_combustion"
factor = "cn.bfg"
transfer = "BFG"

[processes.power_plant]
captive_power = true

[processes.rolling]

[[production]]
process = "blast_furnace"
product = "hot_metal"
signal = "hot_metal_t"
source = "torpedo-car weighbridge WB-3"

[[production]]
process = "rolling"
product = "rolled_steel"
monthly_t = { "2026-11" = 123456.0 }
evidence = "rolling-2026-11.pdf"

[[replay.csv]]
match = "day*.csv"
timestamp_column = "ts"
columns = { coke = "coke_t", hot_metal = "hot_metal_t", bfg_out = "bfg_out_nm3", pp_bfg = "pp_bfg_nm3" }
"""

# per minute: coke 2 t, hot metal 3 t, BFG 1000 Nm3 sent out by the furnace, 800 Nm3 burnt by the plant
MINUTES = 1440
COKE_C = 2.0 * MINUTES * 28.435 * 0.02942  # cn.coke: NCV x CC, no oxidation in a balance
HOT_METAL_C = 3.0 * MINUTES * 0.172 * 12 / 44  # cn.pig_iron: ef x 12/44
BFG_OUT_C = 0.1 * MINUTES * 33.0 * 0.0708  # 10^4 Nm3 x NCV x CC
PP_BFG_C = 0.08 * MINUTES * 33.0 * 0.0708


def _site(tmp_path: Path) -> Path:
    (tmp_path / "rolling-2026-11.pdf").write_bytes(b"%PDF stamped production ledger, rolling mill, 2026-11\n")
    site = tmp_path / "site.toml"
    site.write_text(SITE)
    lines = ["ts,coke,hot_metal,bfg_out,pp_bfg"]
    for m in range(1, MINUTES + 1):  # each row: the minute ending at ts
        lines.append(f"{(DAY + timedelta(minutes=m)).isoformat()},2.0,3.0,1000.0,800.0")
    (tmp_path / "day1.csv").write_text("\n".join(lines) + "\n")
    return site
