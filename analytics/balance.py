"""The monthly carbon mass balance, per process and for the enterprise (domain reference 2.5).

    CO2_t = ( sum_in M_i x c_i  -  sum_out M_j x c_j ) x 44/12        c in tC per unit of M

Each item is one stream's activity in the month (with one carbon content: a stream whose factor
changed within the month gives one item per factor) and its role: carbon in (fuels and
reductants, carbonates as C, purchased pig iron, scrap, ferro-alloys, electrodes) or carbon out
(crude steel, sold by-products, gas sent out). Fuels count their whole carbon, NCV x carbon per
GJ: the balance applies no oxidation factor (carbon not oxidised leaves in an output or stays in
the process, which a balance sees as such).

Two levels, as the 2025 guideline reports them:
- **processes**: each process closes its own balance; by-product gas it sends to another
  process is carbon out, the gas a process burns is carbon in;
- **enterprise**: only carbon crossing the works' boundary. Items with a `transfer` name (gas
  moved between the works' own processes) are left out on both sides, so they cancel.

The difference processes - enterprise is, per transfer name, (consumed - produced) x 44/12:
gas carbon a process sent out that no process took in (flared, lost or not metered) is emitted
within the works but in no process balance. The captive power plant is a process like the
others and is also reported on its own line.

All sums are `math.fsum` (correctly rounded), so a month's figure does not depend on the order
of its items. A negative CO2 is a data error (an output over-counted or an input missing): it
is returned as is, never clipped. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

C_TO_CO2 = 44.0 / 12.0  # tCO2 per tC
ENTERPRISE = "(enterprise)"

Role = Literal["input", "output"]


@dataclass(frozen=True)
class BalanceItem:
    """One stream's month in the balance: `amount` in `unit` x `carbon_tc_per_unit` = carbon (tC)."""

    process: str
    stream: str
    role: Role
    amount: float
    unit: str
    carbon_tc_per_unit: float
    transfer: str | None = None
    factor_id: str = ""

    @property
    def carbon_t(self) -> float:
        return self.amount * self.carbon_tc_per_unit


@dataclass(frozen=True)
class ProcessBalance:
    """The balance of one process (or of the enterprise, process `(enterprise)`)."""

    process: str
    carbon_in_t: float
    carbon_out_t: float
    co2_t: float
    items: tuple[BalanceItem, ...]
    captive_power: bool = False


@dataclass(frozen=True)
class TransferBalance:
    """The gas of one transfer name: carbon sent out by producers, taken in by consumers."""

    name: str
    produced_t: float  # tC, the producers' output
    consumed_t: float  # tC, the consumers' input
    unaccounted_t: float  # tC, produced - consumed: flared, lost or not metered
    co2_t: float  # (consumed - produced) x 44/12: this transfer's share of processes - enterprise
    producers: tuple[str, ...]
    consumers: tuple[str, ...]


@dataclass(frozen=True)
class CarbonBalance:
    processes: tuple[ProcessBalance, ...]
    enterprise: ProcessBalance
    processes_t: float  # sum of the processes' co2_t
    enterprise_t: float
    difference_t: float  # processes_t - enterprise_t
    transfers: tuple[TransferBalance, ...]
    transfers_t: float  # sum of the transfers' co2_t: explains difference_t
    captive_power_t: float  # co2_t of the captive power plant process(es)


def carbon_tc_per_unit(factor: Mapping[str, Any], ef_tco2_per_unit: float | None) -> float | None:
    """The carbon content (tC per unit) a balance uses for a stream with this factor entry.

    In order: NCV x carbon per GJ (fuels; no oxidation), a given carbon content `c_tc_per_unit`
    (materials, electrodes, lab carbon fractions), else the applied factor x 12/44 divided by
    the oxidation if one is given (carbonates: the carbon of the CO2 they release). None when
    nothing is known.
    """
    ncv, cc = factor.get("ncv_gj_per_unit"), factor.get("cc_tc_per_gj")
    if ncv is not None and cc is not None:
        return float(ncv) * float(cc)
    if factor.get("c_tc_per_unit") is not None:
        return float(factor["c_tc_per_unit"])
    if ef_tco2_per_unit is None:
        return None
    oxidation = factor.get("oxidation")
    return ef_tco2_per_unit / C_TO_CO2 / (float(oxidation) if oxidation else 1.0)


def close_balance(items: Iterable[BalanceItem], captive_power: Collection[str] = ()) -> CarbonBalance:
    """Close the month's balance of `items` per process and for the enterprise.

    Args:
        items: the month's balance items (any order); amounts and carbon contents finite.
        captive_power: names of the captive power plant process(es).

    Raises:
        ValueError: an item's carbon is not finite, or its role is not input or output.
    """
    all_items = tuple(items)
    for it in all_items:
        if it.role not in ("input", "output"):
            raise ValueError(f"{it.process}/{it.stream}: balance role {it.role!r} is not input or output")
        if not math.isfinite(it.carbon_t):
            raise ValueError(f"{it.process}/{it.stream}: carbon {it.carbon_t!r} tC is not finite")
    by_process: dict[str, list[BalanceItem]] = {}
    for it in all_items:
        by_process.setdefault(it.process, []).append(it)
    processes = tuple(_close(name, by_process[name], name in captive_power) for name in sorted(by_process))
    enterprise = _close(ENTERPRISE, [it for it in all_items if it.transfer is None], False)
    transfers = tuple(
        _transfer(name, [it for it in all_items if it.transfer == name])
        for name in sorted({it.transfer for it in all_items if it.transfer is not None})
    )
    processes_t = math.fsum(p.co2_t for p in processes)
    return CarbonBalance(
        processes=processes,
        enterprise=enterprise,
        processes_t=processes_t,
        enterprise_t=enterprise.co2_t,
        difference_t=processes_t - enterprise.co2_t,
        transfers=transfers,
        transfers_t=math.fsum(t.co2_t for t in transfers),
        captive_power_t=math.fsum(p.co2_t for p in processes if p.captive_power),
    )


def _close(name: str, items: Sequence[BalanceItem], captive: bool) -> ProcessBalance:
    c_in = math.fsum(it.carbon_t for it in items if it.role == "input")
    c_out = math.fsum(it.carbon_t for it in items if it.role == "output")
    return ProcessBalance(name, c_in, c_out, (c_in - c_out) * C_TO_CO2, tuple(items), captive)


def _transfer(name: str, items: Sequence[BalanceItem]) -> TransferBalance:
    produced = math.fsum(it.carbon_t for it in items if it.role == "output")
    consumed = math.fsum(it.carbon_t for it in items if it.role == "input")
    return TransferBalance(
        name,
        produced,
        consumed,
        produced - consumed,
        (consumed - produced) * C_TO_CO2,
        tuple(sorted({it.process for it in items if it.role == "output"})),
        tuple(sorted({it.process for it in items if it.role == "input"})),
    )
