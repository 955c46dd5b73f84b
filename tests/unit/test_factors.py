"""analytics.factors and gateway.settings.factors: the shipped library, overrides, validity, errors."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from analytics.factors import FactorTable, FactorTableError, UnknownFactorError
from gateway.core.errors import ConfigError
from gateway.settings.factors import default_factor_dir, load_factor_table

MAR_2025 = datetime(2025, 3, 1, tzinfo=UTC).timestamp()
APR_2025 = datetime(2025, 4, 1, tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def library() -> FactorTable:
    return load_factor_table([default_factor_dir()])


def test_default_dir_holds_the_four_files() -> None:
    names = sorted(p.name for p in default_factor_dir().glob("*.toml"))
    assert names == ["fuels.toml", "grid.toml", "heat.toml", "process.toml"]


def test_every_entry_has_provenance(library: FactorTable) -> None:
    for fid in library.ids():
        f = library.get(fid)
        assert f.source.strip() and f.status in ("confirmed", "verify") and 2000 <= f.year <= 2030, fid


@pytest.mark.parametrize(
    ("fid", "ef"),
    [
        # 33.000 x 0.0708 x 0.99 x 44/12 = 8.481132 tCO2 per 10^4 Nm3
        ("cn.bfg", 8.481132),
        # 84.000 x 0.0496 = 4.1664; x 0.99 = 4.124736; x 44/12 = 15.124032
        ("cn.ldg", 15.124032),
        # 389.31 x 0.01532 x 0.99 x 44/12 = 5.9642292 x 0.99 = 5.904586908; x 44/12 = 21.650151996
        ("cn.natural_gas", 21.650151996),
        # 2.47 x 0.0708 x 1.0 x 44/12 = 0.174876 x 3.6666... = 0.641212
        ("ipcc2006.bfg", 0.641212),
        ("cn.limestone", 0.440),
        ("stoich.dolomite", 0.47732),
        ("cn.electrode", 3.663),
        ("cn.pig_iron", 0.172),
        ("cn.crude_steel", 0.0154),
        ("cn.grid.2021.national_avg", 0.5568),
        ("cn.grid.2022.national_avg", 0.5366),  # 0.5366 is 2022's factor ...
        ("cn.grid.2023.national_avg", 0.5306),  # ... and 0.5306 is 2023's
        ("cn.grid.notice.2022.grid_avg", 0.5703),
        ("kr.grid.uci.0.4585", 0.4585),
        ("cn.heat.default", 0.11),
    ],
)
def test_library_values(library: FactorTable, fid: str, ef: float) -> None:
    assert_allclose(library.resolve(fid, MAR_2025).ef_tco2_per_unit(), ef, rtol=1e-12)


@pytest.mark.parametrize(
    ("fid", "tco2_per_tj"),
    # IPCC default CO2 factors the carbon contents must reproduce (reference 3.1): CC x 44/12 x 1000
    [
        ("ipcc2006.bfg", 260.0),
        ("ipcc2006.ldg", 182.0),
        ("ipcc2006.cog", 44.4),
        ("ipcc2006.natural_gas", 56.1),
    ],
)
def test_ipcc_gas_carbon_contents_match_ipcc_co2_factors(
    library: FactorTable, fid: str, tco2_per_tj: float
) -> None:
    f = library.get(fid)
    assert abs(f.cc_tc_per_gj * 44 / 12 * 1000 / tco2_per_tj - 1) < 0.002


def test_units_and_statuses_of_key_entries(library: FactorTable) -> None:
    assert library.get("cn.bfg").unit == "1e4Nm3" and library.get("ipcc2006.bfg").unit == "t"
    assert library.get("cn.bfg").status == "confirmed"
    assert library.get("cn.heat.default").status == "verify"
    assert library.get("kr.grid.uci.0.4585").source.startswith("implied by the UCI steel dataset CO2 column")


def test_grid_selection_by_key(library: FactorTable) -> None:
    found = library.select(
        kind="grid", data_year=2022, series="mee_nbs_annual", variant="national_avg", region="national"
    )
    assert [f.id for f in found] == ["cn.grid.2022.national_avg"]


def test_coal_without_ncv_needs_a_lab_value(library: FactorTable) -> None:
    with pytest.raises(ValueError, match=r"cn\.anthracite.*ncv_gj_per_unit"):
        library.get("cn.anthracite").ef_tco2_per_unit()


# --------------------------------------------------------------------------- overrides


def _coke_default() -> dict:
    return {
        "id": "cn.coke",
        "kind": "fuel",
        "unit": "t",
        "ncv_gj_per_unit": 28.435,
        "cc_tc_per_gj": 0.02942,
        "oxidation": 0.93,
        "source": "CN",
        "year": 2013,
        "status": "verify",
    }


def _lab_override(**kw) -> dict:
    d = {
        "id": "site.coke.2025-03",
        "overrides": "cn.coke",
        "ncv_gj_per_unit": 29.0,
        "source": "lab report 25-031",
        "year": 2025,
        "status": "confirmed",
        "valid_from": "2025-03-01T00:00:00Z",
        "valid_to": datetime(2025, 4, 1, tzinfo=UTC),
    }
    d.update(kw)
    return d


def test_override_applies_only_inside_its_validity() -> None:
    table = FactorTable([_coke_default(), _lab_override()])
    assert table.resolve("cn.coke", MAR_2025 - 1).id == "cn.coke"
    inside = table.resolve("cn.coke", MAR_2025)
    assert inside.id == "site.coke.2025-03"
    # inherits CC and OF: 29.0 x 0.02942 x 0.93 x 44/12 = 0.85318 x 0.93 = 0.7934574; x 44/12 = 2.9093438
    assert_allclose(inside.ef_tco2_per_unit(), 2.9093438, rtol=1e-12)
    assert table.resolve("cn.coke", APR_2025).id == "cn.coke"  # valid_to is exclusive


def test_resolve_many_matches_resolve() -> None:
    table = FactorTable([_coke_default(), _lab_override()])
    ts = np.array([MAR_2025 - 60, MAR_2025, MAR_2025 + 86_400, APR_2025 - 1e-3, APR_2025])
    ef, ids = table.resolve_many("cn.coke", ts)
    expected_ids = [table.resolve("cn.coke", t).id for t in ts]
    assert_array_equal(ids, expected_ids)
    assert list(ids) == ["cn.coke", "site.coke.2025-03", "site.coke.2025-03", "site.coke.2025-03", "cn.coke"]
    # default: 28.435 x 0.02942 x 0.93 x 44/12 = 2.852661757
    assert_allclose(ef, [2.852661757, 2.9093438, 2.9093438, 2.9093438, 2.852661757], rtol=1e-9)


def test_lab_ncv_completes_a_coal_default(library: FactorTable) -> None:
    lab = {
        "id": "site.anthracite.d17",
        "overrides": "cn.anthracite",
        "ncv_gj_per_unit": 22.0,
        "source": "delivery 17 lab",
        "year": 2025,
        "status": "confirmed",
        "valid_from": MAR_2025,
        "valid_to": APR_2025,
    }
    table = load_factor_table([default_factor_dir()], overrides=[lab])
    # 22.0 x 0.02749 x 0.94 x 44/12 = 0.60478 x 0.94 = 0.5684932; x 44/12 = 2.084475066...
    assert_allclose(
        table.resolve("cn.anthracite", MAR_2025).ef_tco2_per_unit(), 2.0844750666666667, rtol=1e-12
    )


def test_unknown_id_and_uncovered_time() -> None:
    table = FactorTable([{**_coke_default(), "valid_from": MAR_2025}])
    with pytest.raises(UnknownFactorError, match=r"cn\.cokes"):
        table.resolve("cn.cokes", MAR_2025)
    with pytest.raises(UnknownFactorError, match="not valid at 2025-02-28T23:59:59Z"):
        table.resolve("cn.coke", MAR_2025 - 1)
    with pytest.raises(UnknownFactorError, match="not valid"):
        table.resolve_many("cn.coke", [MAR_2025, MAR_2025 - 1])


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        pytest.param([_coke_default(), _coke_default()], r"'cn.coke': id: defined twice", id="duplicate"),
        pytest.param(
            [{**_coke_default(), "oxidation": 1.3}],
            r"'cn.coke': oxidation: must be a fraction",
            id="fraction",
        ),
        pytest.param([{**_coke_default(), "source": None}], r"'cn.coke': source: missing", id="no-source"),
        pytest.param([{**_coke_default(), "ncv": 28.0}], r"'cn.coke': unknown key\(s\) \['ncv'\]", id="typo"),
        pytest.param([{**_coke_default(), "kind": "fuels"}], r"'cn.coke': kind: 'fuels'", id="kind"),
        pytest.param([{**_coke_default(), "status": "maybe"}], r"'cn.coke': status", id="status"),
        pytest.param(
            [{**_coke_default(), "cc_tc_per_gj": "0.029"}],
            r"'cn.coke': cc_tc_per_gj: expected a finite",
            id="string-number",
        ),
        pytest.param(
            [_coke_default(), _lab_override(overrides="cn.cokes")],
            r"overrides: 'cn.cokes' is not in",
            id="override-unknown",
        ),
        pytest.param(
            [_coke_default(), _lab_override(unit="1e4Nm3")],
            r"unit: '1e4Nm3' differs from 't'",
            id="override-unit",
        ),
        pytest.param(
            [
                _coke_default(),
                _lab_override(),
                _lab_override(id="site.coke.b", valid_from=MAR_2025 + 86400, valid_to=None),
            ],
            r"'site.coke.b': valid_from: overlaps 'site.coke.2025-03'",
            id="override-overlap",
        ),
        pytest.param(
            [_coke_default(), _lab_override(valid_from="2025-03-01T00:00:00")],
            r"valid_from: .* no UTC offset",
            id="naive-datetime",
        ),
        pytest.param(
            [_coke_default(), _lab_override(valid_to=MAR_2025 - 1)],
            r"valid_to: must be after valid_from",
            id="validity-order",
        ),
        pytest.param(
            [
                {
                    "id": "g",
                    "kind": "grid",
                    "unit": "t",
                    "ef_tco2_per_unit": 0.5,
                    "source": "x",
                    "year": 2022,
                    "status": "verify",
                }
            ],
            r"'g': unit: a grid factor applies to",
            id="grid-unit",
        ),
    ],
)
def test_table_errors_name_id_and_field(entries: list[dict], match: str) -> None:
    with pytest.raises(FactorTableError, match=match):
        FactorTable(entries)


# --------------------------------------------------------------------------- loader


def test_loader_error_names_file_and_entry(tmp_path: Path) -> None:
    bad = tmp_path / "site.toml"
    bad.write_text(
        '[[factor]]\nid = "x.ok"\nkind = "heat"\nunit = "GJ"\nef_tco2_per_unit = 0.1\n'
        'source = "s"\nyear = 2024\nstatus = "verify"\n\n'
        '[[factor]]\nid = "x.bad"\nkind = "heat"\nunit = "GJ"\nef_tco2_per_unit = -0.1\n'
        'source = "s"\nyear = 2024\nstatus = "verify"\n'
    )
    with pytest.raises(
        ConfigError, match=r"site\.toml entry #1: factor 'x.bad': ef_tco2_per_unit: must be >= 0"
    ):
        load_factor_table([bad])


def test_loader_duplicate_across_files_names_both(tmp_path: Path) -> None:
    extra = tmp_path / "extra.toml"
    extra.write_text(
        '[[factor]]\nid = "cn.bfg"\nkind = "fuel"\nunit = "1e4Nm3"\nncv_gj_per_unit = 33.0\n'
        'cc_tc_per_gj = 0.0708\noxidation = 0.99\nsource = "s"\nyear = 2024\nstatus = "verify"\n'
    )
    with pytest.raises(ConfigError, match=r"fuels\.toml entry #\d+; .*extra\.toml entry #0: .*defined twice"):
        load_factor_table([default_factor_dir(), extra])


def test_loader_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[[factor]\nid = 1\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: invalid TOML"):
        load_factor_table([broken])
    with pytest.raises(ConfigError, match=r"nope\.toml: file not found"):
        load_factor_table([tmp_path / "nope.toml"])


def test_loader_names_site_overrides() -> None:
    with pytest.raises(
        ConfigError, match=r"site overrides entry #0: factor 'lab.1': overrides: 'cn.nothing'"
    ):
        load_factor_table(
            [default_factor_dir()],
            overrides=[
                {
                    "id": "lab.1",
                    "overrides": "cn.nothing",
                    "source": "lab",
                    "year": 2025,
                    "status": "confirmed",
                }
            ],
        )


def test_toml_datetime_validity(tmp_path: Path) -> None:
    f = tmp_path / "site.toml"
    f.write_text(
        '[[factor]]\nid = "lab.bfg.2025-03"\noverrides = "cn.bfg"\nncv_gj_per_unit = 31.5\n'
        'source = "monthly gas analysis"\nyear = 2025\nstatus = "confirmed"\n'
        "valid_from = 2025-03-01T08:00:00+08:00\nvalid_to = 2025-04-01T08:00:00+08:00\n"
    )
    table = load_factor_table([default_factor_dir(), f])
    f_used = table.resolve("cn.bfg", MAR_2025)  # 08:00 +08:00 = 00:00Z
    assert f_used.id == "lab.bfg.2025-03" and math.isclose(f_used.valid_from, MAR_2025)
    # 31.5 x 0.0708 x 0.99 x 44/12 = 2.2302 x 0.99 = 2.207898; x 44/12 = 8.095626
    assert_allclose(f_used.ef_tco2_per_unit(), 8.095626, rtol=1e-12)


def test_site_factor_table_defaults_to_the_shipped_library() -> None:
    from gateway.settings.factors import site_factor_table

    lab = {
        "id": "lab.bfg",
        "overrides": "cn.bfg",
        "ncv_gj_per_unit": 31.5,
        "source": "lab",
        "year": 2025,
        "status": "confirmed",
        "valid_from": MAR_2025,
        "valid_to": APR_2025,
        "note": None,
    }
    table = site_factor_table([], [lab])  # None values (pydantic model_dump) mean "not given"
    assert "cn.grid.2023.national_avg" in table
    assert table.resolve("cn.bfg", MAR_2025).id == "lab.bfg"
