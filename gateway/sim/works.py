"""The simulated integrated works (config/examples/integrated-works.toml), served over Modbus TCP.

Every signal of the works has a profile: a function of the clock alone, so a reading depends only
on the time it is taken at (and the seed), never on how often or in which order the plant is
read. The demo polls it live; `emgate examples integrated-works --month` (gateway/sim/record.py)
evaluates the same profiles on a month of minute boundaries; both see the same values.

Profiles:

- `Flow`: a smooth rate (t/h, Nm3/h): mean x (1 + a slow cycle + smooth noise), never below 0.
- `Blows`: a rate that flows only part of each cycle (converter gas recovered while blowing).
- `Totaliser`: a belt-scale or meter counter, the closed-form integral of a cyclic rate.
- `Batches`: a counter that steps by one batch (a torpedo car, a heat) at a fixed cadence,
  the batch weight varying deterministically from batch to batch.

The registers of each Modbus point are built from the site file (address, type, byte order,
scale), so the simulator serves whatever devices the site file declares for these signals. The
noise is a hash of (seed, signal, time knot): no random state, hence deterministic and cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gateway.codec import encode_value
from gateway.core.clock import Clock
from gateway.settings.site import GatewaySettings

FloatArray = NDArray[np.float64]
TAU = 2.0 * math.pi
_M64 = (1 << 64) - 1


def _mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64's finaliser on each element: a well-spread 64-bit hash."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _salt(seed: int, name: str) -> np.uint64:
    """A per-(seed, signal) key: the same name gives the same noise in every run."""
    h = 1469598103934665603
    for b in f"{seed}:{name}".encode():
        h = ((h ^ b) * 1099511628211) & _M64
    return np.uint64(h)


def _gauss_at(knots: NDArray[np.int64], salt: np.uint64) -> FloatArray:
    """A standard-normal-like value for each integer knot (sum of 4 hashed uniforms)."""
    k = knots.astype(np.uint64) ^ salt
    total = np.zeros(knots.shape, dtype=np.float64)
    for i in range(4):
        h = _mix(k + np.uint64(i * 0x632BE59BD9B4E019 & _M64))
        total += (h >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return (total - 2.0) * math.sqrt(3.0)


def smooth_noise(t_s: FloatArray, knot_s: float, salt: np.uint64) -> FloatArray:
    """Noise of unit spread varying smoothly over `knot_s` (cosine-interpolated hashed knots)."""
    x = t_s / knot_s
    k = np.floor(x).astype(np.int64)
    w = (1.0 - np.cos((x - k) * math.pi)) / 2.0
    return _gauss_at(k, salt) * (1.0 - w) + _gauss_at(k + 1, salt) * w


@dataclass(frozen=True)
class Flow:
    """A rate: mean x (1 + cycle_amp sin(2 pi t / cycle_s + phase) + noise x smooth noise)."""

    mean: float
    cycle_amp: float = 0.03
    cycle_s: float = 8 * 3600.0
    phase: float = 0.0
    noise: float = 0.02
    knot_s: float = 300.0

    def values(self, t_s: FloatArray, salt: np.uint64) -> FloatArray:
        cycle = self.cycle_amp * np.sin(TAU * t_s / self.cycle_s + self.phase)
        return np.maximum(0.0, self.mean * (1.0 + cycle + self.noise * smooth_noise(t_s, self.knot_s, salt)))


@dataclass(frozen=True)
class Blows:
    """A rate flowing from `on_s` to `off_s` of every `cycle_s` (converter gas recovery)."""

    mean: float  # the average over whole cycles
    cycle_s: float
    on_s: float
    off_s: float
    noise: float = 0.05

    def values(self, t_s: FloatArray, salt: np.uint64) -> FloatArray:
        phase = np.mod(t_s, self.cycle_s)
        peak = self.mean * self.cycle_s / (self.off_s - self.on_s)
        on = (phase >= self.on_s) & (phase < self.off_s)
        return np.where(on, np.maximum(0.0, peak * (1.0 + self.noise * smooth_noise(t_s, 60.0, salt))), 0.0)


@dataclass(frozen=True)
class Totaliser:
    """A counter of a rate mean_per_h x (1 + cycle_amp sin(2 pi t / cycle_s + phase)), in the
    signal's unit (t, kWh), counted from t = 0; its closed form needs no state."""

    mean_per_h: float
    cycle_amp: float = 0.05
    cycle_s: float = 24 * 3600.0
    phase: float = 0.0

    def values(self, t_s: FloatArray, salt: np.uint64) -> FloatArray:
        per_s = self.mean_per_h / 3600.0
        w = TAU / self.cycle_s
        return per_s * t_s + per_s * self.cycle_amp / w * (math.cos(self.phase) - np.cos(w * t_s + self.phase))


@dataclass(frozen=True)
class Batches:
    """A counter booking batch k (batch_t + vary_t sin(k a)) from k x every_s + offset_s, over
    ramp_s (the weighbridge's or crane's reading settling: a counter never jumps by a whole car).

    The sum of the first k weights is closed-form (the sum of sin(j a)), so the counter at any
    time needs no state.
    """

    batch_t: float
    every_s: float
    offset_s: float = 0.0
    vary_t: float = 0.0
    ramp_s: float = 60.0
    a: float = 2.4

    def _booked(self, k: FloatArray) -> FloatArray:
        """The weight of batches 0 .. k-1."""
        half = self.a / 2.0
        return self.batch_t * k + self.vary_t * np.sin(k * half) * np.sin((k - 1.0) * half) / math.sin(half)

    def values(self, t_s: FloatArray, salt: np.uint64) -> FloatArray:
        x = (t_s - self.offset_s) / self.every_s
        k = np.maximum(np.floor(x), 0.0)
        frac = np.where(x < 0, 0.0, np.clip((x - k) * self.every_s / self.ramp_s, 0.0, 1.0))
        weight = self.batch_t + self.vary_t * np.sin(k * self.a)
        return self._booked(k) + weight * frac


Profile = Flow | Blows | Totaliser | Batches

# The works of config/examples/integrated-works.toml: ~420 t/h crude steel (3.7 Mt a year).
HEAT_S = 1200.0  # a converter heat every 20 minutes: 140 t each, 3 an hour
WORKS_PROFILES: dict[str, Profile] = {
    # coke-oven plant: 205 t/h coal -> 155 t/h coke, 420 Nm3 COG per t coke, by-products sold
    "coking.coal_tph": Flow(205.0, cycle_amp=0.02, cycle_s=4 * 3600.0, noise=0.03),
    "coking.coke_t": Totaliser(155.0, cycle_amp=0.02, cycle_s=4 * 3600.0),
    "coking.cog_out_nm3h": Flow(65_000.0, cycle_amp=0.04, cycle_s=1200.0, noise=0.03),  # oven pushes
    "coking.bfg_heating_nm3h": Flow(80_000.0, cycle_amp=0.02, noise=0.02),
    "coking.benzene_tph": Flow(2.2, cycle_amp=0.0, noise=0.05),
    "coking.tar_tph": Flow(8.0, cycle_amp=0.0, noise=0.05),
    # sinter strand: 460 t/h sinter, 50 kg coke breeze and 87 kg limestone per t sinter
    "sinter.coke_breeze_tph": Flow(23.0, cycle_amp=0.03, cycle_s=6 * 3600.0, noise=0.03),
    "sinter.limestone_tph": Flow(40.0, cycle_amp=0.02, cycle_s=6 * 3600.0, noise=0.02),
    "sinter.cog_ignition_nm3h": Flow(3_000.0, cycle_amp=0.0, noise=0.02),
    "sinter.output_t": Totaliser(460.0, cycle_amp=0.03, cycle_s=6 * 3600.0),
    # blast furnace: 380 t/h hot metal, coke 350 kg/t, PCI 150 kg/t, 1,580 Nm3 BFG per t
    "bf.coke_tph": Flow(133.0, cycle_amp=0.02, cycle_s=8 * 3600.0, noise=0.02),
    "bf.pci_tph": Flow(57.0, cycle_amp=0.03, cycle_s=8 * 3600.0, noise=0.03),
    "bf.stoves_bfg_nm3h": Flow(250_000.0, cycle_amp=0.08, cycle_s=3600.0, noise=0.02),  # stove changeovers
    "bf.bfg_out_nm3h": Flow(600_000.0, cycle_amp=0.02, cycle_s=8 * 3600.0, noise=0.02),
    "bf.hot_metal_t": Batches(160.0, every_s=1516.0, offset_s=700.0, vary_t=8.0),  # a torpedo car
    # converter shop: a 140 t heat every 20 minutes, LDG (70 Nm3/t) recovered mid-blow
    "bof.ldg_out_nm3h": Blows(29_400.0, cycle_s=HEAT_S, on_s=240.0, off_s=840.0),
    "bof.crude_steel_t": Batches(140.0, every_s=HEAT_S, offset_s=1080.0, vary_t=5.0),
    # captive power plant: the gas the processes do not burn themselves (the rest is flared)
    "pp.bfg_nm3h": Flow(250_000.0, cycle_amp=0.05, cycle_s=12 * 3600.0, noise=0.02),
    "pp.cog_nm3h": Flow(33_000.0, cycle_amp=0.05, cycle_s=12 * 3600.0, noise=0.03),
    "pp.ldg_nm3h": Flow(29_000.0, cycle_amp=0.03, cycle_s=12 * 3600.0, noise=0.03),  # from the gasholder
    # hot strip mill: 400 t/h, reheating furnace on COG topped up with natural gas
    "rolling.cog_nm3h": Flow(25_000.0, cycle_amp=0.06, cycle_s=4 * 3600.0, noise=0.03),
    "rolling.natural_gas_nm3h": Flow(2_500.0, cycle_amp=0.10, cycle_s=4 * 3600.0, noise=0.05),
    "rolling.output_t": Totaliser(400.0, cycle_amp=0.06, cycle_s=4 * 3600.0),
    # the grid supply: 60 MW on average, more by night (cheaper)
    "grid.energy_kwh": Totaliser(60_000.0, cycle_amp=0.25, cycle_s=24 * 3600.0, phase=1.0),
}


#: The works's direct CO2 (t/h) as the ledger books it: the recorded 2026-11 gave 404,293 t in
#: 720 h. The demo takes the year to date before its first minute at this pace (demo_opening).
DIRECT_CO2_T_PER_H = 561.5


def serves(settings: GatewaySettings, profiles: Mapping[str, Profile] = WORKS_PROFILES) -> bool:
    """Whether the profiles cover every Modbus point of the site (the integrated works's signals)."""
    points = [p.signal for d in settings.modbus.devices for p in d.points]
    return bool(points) and all(s in profiles for s in points)


class ProfilePlant:
    """The site's Modbus devices, each point's register value computed from its signal's profile.

    `raw(signal, t_s)` is what the device holds: an engineering value for a rate, counts (the
    value / counter_scale, modulo the counter's width) for a counter, as the gateway reads it.
    """

    def __init__(
        self,
        settings: GatewaySettings,
        clock: Clock | None = None,
        seed: int = 7,
        profiles: Mapping[str, Profile] = WORKS_PROFILES,
    ) -> None:
        missing = sorted({p.signal for d in settings.modbus.devices for p in d.points} - set(profiles))
        if missing:
            raise ValueError(f"the simulated works has no profile for signal(s) {', '.join(missing)}")
        self.settings, self.clock, self.seed, self.profiles = settings, clock, seed, profiles
        self._salts = {name: _salt(seed, name) for name in profiles}

    def values(self, signal: str, t_s: FloatArray) -> FloatArray:
        """The signal's engineering values (t/h, Nm3/h, t, kWh) at each of `t_s` (epoch s)."""
        return self.profiles[signal].values(np.asarray(t_s, dtype=np.float64), self._salts[signal])

    def raw(self, signal: str, t_s: FloatArray) -> FloatArray:
        """What the device reports at each of `t_s`: counts for a counter, else the value."""
        v = self.values(signal, t_s)
        cfg = self.settings.signals[signal]
        if cfg.kind == "counter":
            return np.mod(np.floor(v / cfg.counter_scale), float(2**cfg.counter_bits))
        return v

    def registers(self, unit_id: int, t_s: float) -> list[int]:
        """The holding registers of the device with `unit_id` at `t_s`, from address 0."""
        regs: list[int] = []
        for dev in self.settings.modbus.devices:
            if dev.unit_id != unit_id:
                continue
            for p in dev.points:
                value = float(self.raw(p.signal, np.array([t_s]))[0])
                value = (value - p.offset) / p.scale
                if p.type.startswith(("UINT", "INT")):
                    value = int(value)
                words = encode_value(value, p.type, p.byte_order)
                end = p.address + len(words)
                if len(regs) < end:
                    regs.extend([0] * (end - len(regs)))
                regs[p.address : end] = words
        return regs

    def unit_ids(self) -> list[int]:
        return sorted({d.unit_id for d in self.settings.modbus.devices})

    def fill(self, unit_id: int) -> Callable[[int, int, int, list[int]], None]:
        """A RegisterServer fill callback for one unit, on the plant's clock."""
        if self.clock is None:
            raise ValueError("ProfilePlant.fill needs the clock the gateway runs on")
        clock = self.clock

        def fill(function_code: int, address: int, count: int, registers: list[int]) -> None:
            words = self.registers(unit_id, clock.now())
            registers[: len(words)] = words

        return fill
