"""analytics.balance: the monthly carbon balance per process and for the enterprise, hand-worked."""

from __future__ import annotations

import math

import pytest

from analytics.balance import C_TO_CO2, ENTERPRISE, BalanceItem, carbon_tc_per_unit, close_balance


def _works() -> list[BalanceItem]:
    # blast furnace: coke 1000 t x 0.85 tC/t = 850 tC, PCI 200 t x 0.80 = 160 tC in;
    #   hot metal 1500 t x 0.045 = 67.5 tC out, BFG 300 (10^4 Nm3) x 2.0 tC = 600 tC sent out (transfer)
    # power plant (captive): BFG 250 x 2.0 = 500 tC in (transfer); the other 100 tC of BFG is flared
    # BOF: hot metal 1500 t x 0.045 = 67.5 tC in (bought-in scrap 100 t x 0.004 = 0.4 tC),
    #   crude steel 1550 t x 0.0042 = 6.51 tC out
    return [
        BalanceItem("blast_furnace", "coke", "input", 1000.0, "t", 0.85),
        BalanceItem("blast_furnace", "pci", "input", 200.0, "t", 0.80),
        BalanceItem("blast_furnace", "hot_metal", "output", 1500.0, "t", 0.045),
        BalanceItem("blast_furnace", "bfg_out", "output", 300.0, "10^4 Nm3", 2.0, transfer="BFG"),
        BalanceItem("power_plant", "bfg", "input", 250.0, "10^4 Nm3", 2.0, transfer="BFG"),
        BalanceItem("bof", "scrap", "input", 100.0, "t", 0.004),
        BalanceItem("bof", "crude_steel", "output", 1550.0, "t", 0.0042),
    ]


def test_processes_by_hand() -> None:
    b = close_balance(_works(), captive_power={"power_plant"})
    by = {p.process: p for p in b.processes}
    assert [p.process for p in b.processes] == ["blast_furnace", "bof", "power_plant"]
    bf = by["blast_furnace"]
    assert bf.carbon_in_t == pytest.approx(1010.0, rel=1e-15)
    assert bf.carbon_out_t == pytest.approx(667.5, rel=1e-15)
    assert bf.co2_t == pytest.approx(342.5 * 44 / 12, rel=1e-15)
    assert by["power_plant"].co2_t == pytest.approx(500.0 * 44 / 12, rel=1e-15)
    assert by["power_plant"].captive_power and not bf.captive_power
    assert by["bof"].co2_t == pytest.approx((0.4 - 6.51) * 44 / 12, rel=1e-12)  # negative: returned, not clipped
    assert b.captive_power_t == by["power_plant"].co2_t


def test_enterprise_cancels_the_internal_transfer_and_the_flare_explains_the_difference() -> None:
    b = close_balance(_works(), captive_power={"power_plant"})
    e = b.enterprise
    assert e.process == ENTERPRISE
    assert all(it.transfer is None for it in e.items)
    # in: coke 850 + PCI 160 + scrap 0.4; out: hot metal 67.5 + crude steel 6.51; hot metal is
    # both a BF output and ... here the BOF's hot metal input is not an item, so out counts it once
    assert e.carbon_in_t == pytest.approx(1010.4, rel=1e-15)
    assert e.carbon_out_t == pytest.approx(74.01, rel=1e-15)
    assert e.co2_t == pytest.approx((1010.4 - 74.01) * 44 / 12, rel=1e-14)
    (bfg,) = b.transfers
    assert (bfg.name, bfg.producers, bfg.consumers) == ("BFG", ("blast_furnace",), ("power_plant",))
    assert bfg.produced_t == 600.0 and bfg.consumed_t == 500.0 and bfg.unaccounted_t == 100.0
    # the 100 tC flared is emitted in the works but in no process: processes - enterprise = -100 x 44/12
    assert bfg.co2_t == pytest.approx(-100.0 * 44 / 12, rel=1e-15)
    assert b.difference_t == pytest.approx(b.processes_t - b.enterprise_t, rel=1e-15)
    assert b.difference_t == pytest.approx(b.transfers_t, rel=1e-12)
    assert b.difference_t == pytest.approx(-100.0 * 44 / 12, rel=1e-12)


def test_a_fully_consumed_transfer_leaves_no_difference() -> None:
    items = [
        BalanceItem("bf", "coke", "input", 10.0, "t", 0.85),
        BalanceItem("bf", "bfg_out", "output", 3.0, "10^4 Nm3", 2.0, transfer="BFG"),
        BalanceItem("stoves", "bfg", "input", 3.0, "10^4 Nm3", 2.0, transfer="BFG"),
    ]
    b = close_balance(items)
    assert b.difference_t == 0.0 and b.transfers[0].unaccounted_t == 0.0
    assert b.enterprise_t == b.processes_t == pytest.approx(8.5 * 44 / 12, rel=1e-15)
    assert b.captive_power_t == 0.0


def test_44_over_12_is_exact() -> None:
    assert C_TO_CO2 == 44.0 / 12.0
    b = close_balance([BalanceItem("p", "c", "input", 12.0, "t", 1.0)])
    assert b.enterprise_t == 44.0


def test_the_monthly_balance_equals_inputs_minus_outputs() -> None:
    # a month of 44,640 minute-sized items: the balance equals (sum in - sum out) x 44/12
    items = [
        BalanceItem("bf", f"s{i % 7}", "input" if i % 3 else "output", 1.0 + (i % 101) * 0.137, "t", 0.01 + (i % 13) * 0.061)
        for i in range(44_640)
    ]
    b = close_balance(items)
    c_in = math.fsum(it.amount * it.carbon_tc_per_unit for it in items if it.role == "input")
    c_out = math.fsum(it.amount * it.carbon_tc_per_unit for it in items if it.role == "output")
    assert abs(b.enterprise_t - (c_in - c_out) * 44 / 12) <= 1e-12 * abs(b.enterprise_t)
    assert b.processes[0].carbon_in_t == c_in and b.processes[0].carbon_out_t == c_out
    assert close_balance(reversed(items)).enterprise_t == b.enterprise_t  # order does not matter


@pytest.mark.parametrize(
    ("factor", "ef", "expected"),
    [
        pytest.param(
            {"ncv_gj_per_unit": 28.435, "cc_tc_per_gj": 0.02942, "oxidation": 0.93}, 2.9, 28.435 * 0.02942, id="fuel-no-oxidation"
        ),
        pytest.param({"c_tc_per_unit": 0.0469}, 0.172, 0.0469, id="material-carbon"),
        pytest.param({"mineral": "limestone", "purity": 1.0}, 0.44, 0.44 * 12 / 44, id="carbonate-from-ef"),
        pytest.param({"oxidation": 0.98}, 2.0, 2.0 * 12 / 44 / 0.98, id="fuel-ef-given"),
        pytest.param({}, None, None, id="unknown"),
    ],
)
def test_carbon_per_unit(factor: dict[str, float], ef: float | None, expected: float | None) -> None:
    got = carbon_tc_per_unit(factor, ef)
    assert got == (pytest.approx(expected, rel=1e-15) if expected is not None else None)


def test_bad_items_are_refused() -> None:
    with pytest.raises(ValueError, match="not finite"):
        close_balance([BalanceItem("p", "s", "input", math.inf, "t", 1.0)])
    with pytest.raises(ValueError, match="role"):
        close_balance([BalanceItem("p", "s", "none", 1.0, "t", 1.0)])  # type: ignore[arg-type]
