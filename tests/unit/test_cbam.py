"""analytics/cbam.py: the mark-up schedule, Annex II, the waste-gas correction, cycles and empty processes."""

from __future__ import annotations

import pytest

from analytics.cbam import (
    CbamError,
    PrecursorUse,
    ProcessData,
    Purchased,
    annex_ii,
    attributed_direct_t,
    default_markup_pct,
    embedded_emissions,
)


def test_markup_schedule_and_annex_ii() -> None:
    assert [default_markup_pct(y) for y in (2025, 2026, 2027, 2028, 2031)] == [0.0, 10.0, 20.0, 30.0, 30.0]
    assert not annex_ii("2601 12 00") and not annex_ii("26011200")
    assert annex_ii("72011011") and annex_ii("7208") and annex_ii("73181500")


def test_waste_gas_correction() -> None:
    p = ProcessData(
        "bf",
        10.0,
        100.0,
        0.0,
        0.0,
        True,
        wg_exported_co2_t=50.0,
        wg_exported_gj=1000.0,
        wg_imported_co2_t=5.0,
        wg_imported_gj=20.0,
    )
    assert attributed_direct_t(p, 0.0561, 0.667) == pytest.approx(100 + 50 - 1000 * 0.0561 * 0.667 - 5 + 20 * 0.0561, rel=1e-12)


def test_chain_with_default_precursor() -> None:
    procs = [ProcessData("a", 10.0, 20.0, 1.0, 2.0, False), ProcessData("b", 5.0, 5.0, 0.5, 1.0, True)]
    uses = [PrecursorUse("b", "a", 4.0), PrecursorUse("b", "x", 1.0)]
    bought = {"x": Purchased("x", 2.0, 1.0, 0.5, verified=False)}
    r = embedded_emissions(procs, uses, bought, markup_pct=20.0)
    a, b = r["a"], r["b"]
    assert a.see_direct_tco2_per_t == 2.0 and a.see_cbam_tco2_per_t == pytest.approx(2.1) and a.default_share_pct == 0.0
    assert b.see_direct_tco2_per_t == pytest.approx((5.0 + 4 * 2.0 + 1 * 2.4) / 5)
    assert b.see_indirect_tco2_per_t == pytest.approx((0.5 + 4 * 0.1 + 1 * 1.2) / 5)
    assert b.embedded_electricity_mwh_per_t == pytest.approx((1.0 + 4 * 0.2 + 0.5) / 5)
    assert b.default_share_pct == pytest.approx(100 * 2.4 / (5.0 + 8.0 + 2.4))


def test_cycle_and_no_output_refused() -> None:
    procs = [ProcessData("a", 1.0, 1.0, 0.0, 0.0, True), ProcessData("b", 1.0, 1.0, 0.0, 0.0, True)]
    with pytest.raises(CbamError, match="cycle: a -> b -> a"):
        embedded_emissions(procs, [PrecursorUse("a", "b", 1.0), PrecursorUse("b", "a", 1.0)], {}, markup_pct=0.0)
    with pytest.raises(CbamError, match=r"'z': activity level 0\.0 t"):
        embedded_emissions([ProcessData("z", 0.0, 3.0, 0.0, 0.0, True)], [], {}, markup_pct=0.0)
    with pytest.raises(CbamError, match="neither a production process nor a purchased"):
        embedded_emissions(procs[:1], [PrecursorUse("a", "nope", 1.0)], {}, markup_pct=0.0)


def test_integrated_works_example_cbam_fits_its_site() -> None:
    from pathlib import Path

    from gateway.export.cbam import cbam_problems
    from gateway.settings.load import load_settings

    settings = load_settings(Path(__file__).parents[2] / "config" / "examples" / "integrated-works.toml")
    assert settings.cbam is not None and sorted(settings.cbam.processes) == ["crude_steel", "hot_rolled", "pig_iron", "sintered_ore"]
    assert cbam_problems(settings) == []
