"""[[production]], [processes.<name>] and the streams' balance keys: refused with key path and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.errors import ConfigError
from gateway.settings.load import load_settings

BASE = """[site]
name = "w"

[signals.coke_t]
kind = "interval_total"
unit = "t"

[signals.gas_nm3h]
unit = "Nm3/h"

[[streams]]
process = "blast_furnace"
stream = "coke"
signal = "coke_t"
method = "fuel_combustion"
factor = "cn.coke"

[[streams]]
process = "blast_furnace"
stream = "bfg_out"
signal = "gas_nm3h"
method = "fuel_combustion"
factor = "cn.bfg"
sign = -1
transfer = "BFG"

[[streams]]
process = "power_plant"
stream = "bfg"
signal = "gas_nm3h"
method = "fuel_combustion"
factor = "cn.bfg"
transfer = "BFG"
"""


def _load(tmp_path: Path, extra: str) -> ConfigError | None:
    path = tmp_path / "site.toml"
    path.write_text(BASE + extra)
    try:
        load_settings(path)
    except ConfigError as exc:
        return exc
    return None


def _problems(exc: ConfigError | None) -> str:
    assert exc is not None
    return "\n".join([str(exc), *getattr(exc, "problems", ())])


def test_a_valid_site_loads(tmp_path: Path) -> None:
    (tmp_path / "ledger.pdf").write_bytes(b"x")
    extra = """
[processes.power_plant]
captive_power = true

[processes.rolling]

[[production]]
process = "blast_furnace"
product = "hot_metal"
signal = "coke_t"

[[production]]
process = "rolling"
product = "rolled_steel"
monthly_t = { "2026-11" = 1.0 }
evidence = "ledger.pdf"
"""
    assert _load(tmp_path, extra) is None
    s = load_settings(tmp_path / "site.toml")
    assert s.production[1].evidence == tmp_path / "ledger.pdf"  # relative to the site file
    assert [st.balance_role for st in s.streams] == ["input", "output", "input"]


def test_production_signal_in_the_wrong_unit(tmp_path: Path) -> None:
    extra = """
[[production]]
process = "blast_furnace"
product = "hot_metal"
signal = "gas_nm3h"
"""
    text = _problems(_load(tmp_path, extra))
    line = (BASE + extra).splitlines().index('signal = "gas_nm3h"', 30) + 1
    assert f"site.toml:{line}: production[0].signal: signal 'gas_nm3h' is a rate in Nm3/h" in text


def test_production_of_an_unknown_process(tmp_path: Path) -> None:
    extra = """
[[production]]
process = "sinter"
product = "sinter"
signal = "coke_t"
"""
    text = _problems(_load(tmp_path, extra))
    line = (BASE + extra).splitlines().index('process = "sinter"') + 1
    assert f"site.toml:{line}: production[0].process: process 'sinter' is not a process" in text


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        pytest.param(
            """
[[streams]]
process = "coking"
stream = "cog_out"
signal = "gas_nm3h"
method = "fuel_combustion"
factor = "cn.cog"
sign = -1
transfer = "COG"
""",
            "streams[3].transfer: stream coking/cog_out: transfer 'COG' needs a producing process",
            id="transfer-without-consumer",
        ),
        pytest.param(
            "\n[processes.power_plant]\ncaptive_power = true\nfoo = 1\n", "processes.power_plant.foo", id="misspelt-process-key"
        ),
        pytest.param(
            '\n[[production]]\nprocess = "blast_furnace"\nproduct = "hot_metal"\nmonthly_t = { "2026-11" = 1.0 }\n',
            "monthly_t needs evidence",
            id="monthly-without-evidence",
        ),
    ],
)
def test_balance_keys_refused_with_line(tmp_path: Path, extra: str, needle: str) -> None:
    text = _problems(_load(tmp_path, extra))
    assert needle in text
    assert "site.toml:" in text
