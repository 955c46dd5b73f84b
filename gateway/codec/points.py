"""Point rules: a Modbus point's raw value -> engineering value and quality.

The rules, checked in this order:

1. raw == sentinel -> NaN, NO_READING. The sentinel is the device's "no reading" code,
   so it is compared on the RAW value, before scaling (0xFFFF means no reading whatever
   the scale). A NaN sentinel never matches.
2. raw or raw * scale + offset is NaN or infinite -> NaN, DECODE_ERROR.
3. value outside [min, max] (inclusive bounds, in engineering units) -> value KEPT,
   OUT_OF_RANGE. Never clamped: a clamped value would look like a real reading in the
   emission totals. A None bound means no bound.
4. otherwise -> value, GOOD.

`PointRules` holds the rules of a group of points as arrays, derived once when a read block
is compiled (`gateway.codec.blocks`), and runs them on a poll's raw values in a few numpy
calls. A rule no point of the group has (no scale, no sentinel ...) costs nothing at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from gateway.core.model import SampleQuality

__all__ = ["PointRules", "RuleSpec", "SampleQuality"]

GOOD = np.uint8(SampleQuality.GOOD)
OUT_OF_RANGE = np.uint8(SampleQuality.OUT_OF_RANGE)
DECODE_ERROR = np.uint8(SampleQuality.DECODE_ERROR)
NO_READING = np.uint8(SampleQuality.NO_READING)

# What a group's raw values come as: a tuple from struct, or an array from numpy.
Raw = tuple[Any, ...] | NDArray[np.generic]


class RuleSpec(Protocol):
    """The rule settings of one point (a `ModbusPointConfig` is one)."""

    @property
    def scale(self) -> float: ...
    @property
    def offset(self) -> float: ...
    @property
    def sentinel(self) -> float | None: ...
    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...


def _optional(values: list[float | None]) -> NDArray[np.float64]:
    # NaN for "none": a NaN sentinel never equals a value, a NaN bound never flags one
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


@dataclass(frozen=True)
class PointRules:
    """The rules of the points of one group, in the group's order; None: no point has that rule."""

    floats: bool  # the raw values are floats: NaN and inf are possible raw values
    scale: NDArray[np.float64] | None
    offset: NDArray[np.float64] | None
    sentinel: NDArray[np.float64] | None
    low: NDArray[np.float64] | None
    high: NDArray[np.float64] | None

    @classmethod
    def of(cls, points: Sequence[RuleSpec], *, floats: bool) -> PointRules:
        """The rules of `points`, which all decode to floats (`floats`) or all to integers."""
        def array(values: list[float]) -> NDArray[np.float64]:
            return np.array(values, dtype=np.float64)

        return cls(
            floats=floats,
            scale=None if all(p.scale == 1.0 for p in points) else array([p.scale for p in points]),
            offset=None if all(p.offset == 0.0 for p in points) else array([p.offset for p in points]),
            sentinel=None if all(p.sentinel is None for p in points) else _optional([p.sentinel for p in points]),
            low=None if all(p.min is None for p in points) else _optional([p.min for p in points]),
            high=None if all(p.max is None for p in points) else _optional([p.max for p in points]),
        )

    @property
    def plain(self) -> bool:
        """No scale, offset, sentinel or range: a finite raw value is the value, and GOOD."""
        rules = (self.scale, self.offset, self.sentinel, self.low, self.high)
        return all(rule is None for rule in rules)

    def apply(self, raw: Raw, values: NDArray[np.float64], quality: NDArray[np.uint8]) -> None:
        """Write the group's values and qualities (arrays of the group's size, views or scratch)."""
        if self.floats or self.scale is not None or self.offset is not None:
            # NaN (even signalling) raw floats, overflow to inf and inf * 0 are expected inputs,
            # flagged below, not warnings; unscaled integers can produce none of them
            with np.errstate(all="ignore"):
                self._apply(raw, values, quality)
        else:
            self._apply(raw, values, quality)

    def _apply(self, raw: Raw, v: NDArray[np.float64], q: NDArray[np.uint8]) -> None:
        v[...] = raw
        q.fill(GOOD)
        # the sentinel is compared on the raw value (as float64, as numpy compares it anyway)
        none = v == self.sentinel if self.sentinel is not None else None
        if self.scale is not None:
            v *= self.scale
        if self.offset is not None:
            v += self.offset
        # the precedence of the module docstring: out of range < decode error < no reading
        if self.low is not None or self.high is not None:
            out = v < self.low if self.low is not None else None
            if self.high is not None:
                out = v > self.high if out is None else out | (v > self.high)
            q[out] = OUT_OF_RANGE
        blank = None
        if self.floats or self.scale is not None or self.offset is not None:
            finite = np.isfinite(v)
            if np.count_nonzero(finite) != finite.size:  # count_nonzero: a C call, .all() is not
                blank = ~finite
                q[blank] = DECODE_ERROR
        if none is not None and np.count_nonzero(none):
            q[none] = NO_READING
            blank = none if blank is None else blank | none
        if blank is not None:
            v[blank] = np.nan
