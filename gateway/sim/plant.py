"""A simulated steel works served over Modbus TCP, for the demo and the tests.

Five devices, one unit id each, values computed from the (injected) clock at each read:

| unit | device      | register 0..             | signal                              |
| 1    | sinter-1    | FLOAT32 ABCD t/h         | solid fuel (coke breeze) feed       |
| 2    | bf-1        | FLOAT32 ABCD t/h at 0, 2 | PCI coal injection, coke charged    |
| 3    | bof-1       | FLOAT32 ABCD Nm3/h       | converter oxygen (blowing ~16 of every 35 min) |
| 4    | lf-1        | FLOAT32 CDAB kW          | ladle furnace active power          |
| 5    | main-meter  | UINT32 CDAB, 0.1 kWh     | cumulative energy counter           |

The ladle furnace follows the real arc periods in shared/data when that folder is found
(EMGATE_DATA_DIR, or ../shared/data beside a source checkout), the main meter the UCI plant's
15-minute load profile; otherwise both use built-in profiles of the same shape.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gateway.codec import encode_value
from gateway.core.clock import Clock

log = logging.getLogger("gateway.sim")

UNITS = {"sinter-1": 1, "bf-1": 2, "bof-1": 3, "lf-1": 4, "main-meter": 5}


def data_dir() -> Path | None:
    """The shared plant data folder: EMGATE_DATA_DIR, else ../shared/data beside a source checkout.

    The data is not shipped (it is the plants' own, tens of MB). An installed wheel has no
    checkout around it, so there only EMGATE_DATA_DIR finds the data; None means the built-in
    profiles, which SimulatedPlant reports once when it starts.
    """
    env = os.environ.get("EMGATE_DATA_DIR")
    candidates = [Path(env)] if env else []
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():  # running from the repository, not from site-packages
        candidates.append(checkout.parent / "shared" / "data")
    return next((p for p in candidates if p.is_dir()), None)


def _load_arc_periods(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    try:
        with path.open(encoding="utf-8") as fh:
            rows = list(csv.reader(fh))[1:]
        from datetime import datetime

        def ts(s: str) -> float:
            return datetime.strptime(s, "%Y-%m-%d %H:%M:%S").timestamp()

        starts = np.array([ts(r[2]) for r in rows])
        ends = np.array([ts(r[3]) for r in rows])
        power_mw = np.array([float(r[4]) for r in rows])
    except (OSError, ValueError, IndexError):
        return None
    order = np.argsort(starts)
    return starts[order] - starts.min(), ends[order] - starts.min(), power_mw[order]


def _load_uci_profile(path: Path) -> np.ndarray | None:
    """Mean kW of each 15-minute slot of the day (96 slots) over the UCI file."""
    try:
        with path.open(encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            next(reader)
            sums, counts = np.zeros(96), np.zeros(96)
            for row in reader:
                hh, mm = row[0][-5:].split(":")
                slot = ((int(hh) * 60 + int(mm)) // 15 - 1) % 96  # end-labelled: 00:15 is slot 0
                sums[slot] += float(row[1]) * 4.0  # kWh per 15 min -> kW
                counts[slot] += 1
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return sums / np.maximum(counts, 1)


@dataclass
class SimulatedPlant:
    clock: Clock
    seed: int = 7
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        d = data_dir()
        self._arcs = _load_arc_periods(d / "ladle_furnace_arc_keys_1-2584.csv") if d else None
        self._profile = _load_uci_profile(d / "steel_industry_energy_2018-01_to_10.csv") if d else None
        if d is None:  # an installed wheel without EMGATE_DATA_DIR, or a checkout without ../shared
            log.info("simulated plant: built-in profiles; set EMGATE_DATA_DIR to the shared plant data folder for the real ones")
        self._meter_kwh = 1_234_567.0
        self._meter_t: float | None = None

    # -- process values (engineering units) -------------------------------------------------
    def sinter_fuel_tph(self, t: float) -> float:
        return 28.0 + 2.0 * math.sin(t / 900.0) + self.rng.normal(0, 0.4)

    def bf_pci_tph(self, t: float) -> float:
        return 42.0 + 1.5 * math.sin(t / 1300.0) + self.rng.normal(0, 0.5)

    def bf_coke_tph(self, t: float) -> float:
        return 48.0 + self.rng.normal(0, 0.8)

    def bof_oxygen_nm3h(self, t: float) -> float:
        phase = t % 2100.0  # a heat every 35 minutes, blowing for 16 of them
        return max(0.0, 50_000.0 + self.rng.normal(0, 800)) if phase < 960 else 0.0

    def lf_power_kw(self, t: float) -> float:
        if self._arcs is not None:
            starts, ends, power = self._arcs
            span = float(ends.max())
            x = t % span
            i = int(np.searchsorted(starts, x, side="right")) - 1
            return float(power[i] * 1000.0) if i >= 0 and x < ends[i] else 0.0
        return 2500.0 if (t % 1800.0) < 600.0 else 0.0

    def meter_power_kw(self, t: float) -> float:
        slot = int((t % 86400.0) // 900.0)
        base = self._profile[slot] if self._profile is not None else 40.0 + 80.0 * (8 <= slot // 4 < 20)
        return max(0.0, base * (1.0 + self.rng.normal(0, 0.03)))

    def meter_kwh(self, t: float) -> float:
        if self._meter_t is not None and t > self._meter_t:
            self._meter_kwh += self.meter_power_kw(t) * (t - self._meter_t) / 3600.0
        self._meter_t = t if self._meter_t is None else max(t, self._meter_t)
        return self._meter_kwh

    # -- Modbus view ------------------------------------------------------------------------
    def registers(self, unit_id: int, t: float) -> list[int]:
        if unit_id == 1:
            return encode_value(self.sinter_fuel_tph(t), "FLOAT32", "ABCD")
        if unit_id == 2:
            return encode_value(self.bf_pci_tph(t), "FLOAT32", "ABCD") + encode_value(self.bf_coke_tph(t), "FLOAT32", "ABCD")
        if unit_id == 3:
            return encode_value(self.bof_oxygen_nm3h(t), "FLOAT32", "ABCD")
        if unit_id == 4:
            return encode_value(self.lf_power_kw(t), "FLOAT32", "CDAB")
        if unit_id == 5:
            return encode_value(int(self.meter_kwh(t) * 10) % 2**32, "UINT32", "CDAB")
        return []

    def fill(self, unit_id: int) -> Callable[[int, int, int, list[int]], None]:
        """A RegisterServer fill callback for one unit."""

        def fill(function_code: int, address: int, count: int, registers: list[int]) -> None:
            words = self.registers(unit_id, self.clock.now())
            registers[: len(words)] = words

        return fill
