"""The simulated integrated works (gateway/sim/works.py): deterministic given the clock and the
seed, whatever the order and number of reads; counters in closed form; registers as the site
file declares them; the demo's budget opening."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gateway.codec import decode_registers
from gateway.commands.demo import DEMO_CONFIG, DEMO_PLANT_CONFIG, demo_settings, with_opening
from gateway.settings.load import load_settings
from gateway.sim.works import DIRECT_CO2_T_PER_H, WORKS_PROFILES, Batches, ProfilePlant, Totaliser, serves

T0 = 1_793_462_400.0  # 2026-11-01T00:00+08:00
SETTINGS = load_settings(DEMO_CONFIG)


def test_the_default_demo_is_the_integrated_works_and_every_signal_has_a_profile() -> None:
    assert DEMO_CONFIG.name == "integrated-works.toml"
    assert serves(SETTINGS) and not serves(load_settings(DEMO_PLANT_CONFIG))
    assert set(SETTINGS.signals) == set(WORKS_PROFILES)


def test_values_depend_on_the_time_and_seed_only() -> None:
    ts = T0 + np.arange(0.0, 1200.0, 2.0)
    a, b, other = ProfilePlant(SETTINGS), ProfilePlant(SETTINGS), ProfilePlant(SETTINGS, seed=8)
    for signal in WORKS_PROFILES:
        whole = a.raw(signal, ts)
        assert np.array_equal(whole, b.raw(signal, ts)), signal
        # read one at a time, backwards: the same values (no state, no random stream)
        one_by_one = np.array([b.raw(signal, np.array([t]))[0] for t in ts[::-1]])[::-1]
        assert np.array_equal(whole, one_by_one), signal
        assert np.all(np.isfinite(whole)) and np.all(whole >= 0), signal
    noisy = [s for s, p in WORKS_PROFILES.items() if not isinstance(p, (Totaliser, Batches))]
    assert all(not np.array_equal(a.values(s, ts), other.values(s, ts)) for s in noisy)


def test_rates_keep_their_means_and_the_converter_blows_in_cycles() -> None:
    plant = ProfilePlant(SETTINGS)
    day = T0 + np.arange(0.0, 86400.0, 10.0)
    assert plant.values("bf.coke_tph", day).mean() == pytest.approx(133.0, rel=0.03)
    assert plant.values("bf.bfg_out_nm3h", day).mean() == pytest.approx(600_000.0, rel=0.03)
    ldg = plant.values("bof.ldg_out_nm3h", day)
    assert ldg.mean() == pytest.approx(29_400.0, rel=0.05)
    assert 0.3 < np.mean(ldg == 0.0) < 0.6  # recovered for 10 of every 20 minutes


def test_counters_are_closed_form_and_never_run_backwards() -> None:
    plant = ProfilePlant(SETTINGS)
    ts = T0 + np.arange(0.0, 3 * 86400.0, 2.0)
    for signal in (
        "coking.coke_t",
        "sinter.output_t",
        "bf.hot_metal_t",
        "bof.crude_steel_t",
        "rolling.output_t",
        "grid.energy_kwh",
    ):
        v = plant.values(signal, ts)
        assert np.all(np.diff(v) >= -1e-6), signal
        cfg = SETTINGS.signals[signal]
        # the fastest rise stays under the signal's plausible bound (a car or heat over a minute)
        assert np.diff(v).max() / 2.0 <= cfg.max_rate_per_s, signal
    heats = Batches(140.0, every_s=1200.0, offset_s=1080.0, vary_t=5.0)
    k = np.arange(50.0)
    starts = k * 1200.0 + 1080.0
    booked = heats.values(starts + 60.0, np.uint64(0)) - heats.values(starts, np.uint64(0))
    assert np.allclose(booked, 140.0 + 5.0 * np.sin(k * 2.4))  # each heat's own weight, booked over the ramp
    assert heats.values(np.array([starts[-1] + 60.0]), np.uint64(0))[0] == pytest.approx(math.fsum(140.0 + 5.0 * np.sin(k * 2.4)))
    hm = plant.values("bf.hot_metal_t", np.array([T0, T0 + 86400.0]))
    assert hm[1] - hm[0] == pytest.approx(380.0 * 24, rel=0.03)


def test_registers_follow_the_site_files_points() -> None:
    plant = ProfilePlant(SETTINGS)
    t = T0 + 1234.0
    for dev in SETTINGS.modbus.devices:
        regs = plant.registers(dev.unit_id, t)
        assert len(regs) <= 16  # the demo's RegisterServer holds 16 registers a unit
        for p in dev.points:
            words = regs[p.address : p.address + 2]
            got = decode_registers(words, p.type, p.byte_order)
            want = plant.raw(p.signal, np.array([t]))[0]
            if p.type == "FLOAT32":
                assert got == pytest.approx(want, rel=1e-6), p.signal
            else:
                assert got == int(want) and 0 <= got < 2**32, p.signal


def test_demo_opens_the_budget_year_at_the_works_pace(tmp_path) -> None:
    at = T0 + 10 * 86400.0  # 2026-11-11T00:00+08:00: 314 days into the year
    settings = demo_settings(DEMO_CONFIG, 5020, tmp_path / "ledger.sqlite", opening_at_s=at)
    assert settings.budget is not None
    years = {y.year: y for y in settings.budget.years}
    assert years[2026].opening_t == pytest.approx(DIRECT_CO2_T_PER_H * 314 * 24, abs=0.1)
    assert all(y.opening_t == 0.0 for year, y in years.items() if year != 2026)
    assert demo_settings(DEMO_CONFIG, 5020, tmp_path / "ledger.sqlite").budget.years == SETTINGS.budget.years
    assert with_opening(settings, at).budget == settings.budget  # a year with its opening keeps it
