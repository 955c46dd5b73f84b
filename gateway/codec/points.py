"""Raw point value -> engineering value and quality: scale, offset, sentinel, plausibility.

The rules, checked in this order (the same for one value and for arrays):

1. raw == sentinel -> NaN, NO_READING. The sentinel is the device's "no reading" code,
   so it is compared on the RAW value, before scaling (0xFFFF means no reading whatever
   the scale). A NaN sentinel never matches; in a sentinel array, NaN means "none".
2. raw or raw * scale + offset is NaN or infinite -> NaN, DECODE_ERROR.
3. value outside [plausible_min, plausible_max] (inclusive bounds, in engineering units)
   -> value KEPT, OUT_OF_RANGE. Never clamped: a clamped value would look like a real
   reading in the emission totals. A None or NaN bound means no bound.
4. otherwise -> value, GOOD.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

# SampleQuality lives in gateway.core.model (it travels in SampleBatch); re-exported here so
# codec users need one import. gateway.core.model imports nothing from the codec: no cycle.
from gateway.core.model import SampleQuality

__all__ = ["SampleQuality", "apply_point", "apply_points"]


def apply_point(
    raw: int | float,
    *,
    scale: float = 1.0,
    offset: float = 0.0,
    sentinel: int | float | None = None,
    plausible_min: float | None = None,
    plausible_max: float | None = None,
) -> tuple[float, SampleQuality]:
    """Convert one raw value: value = raw * scale + offset, with the rules in the module docstring.

    Args:
        raw: The value from `decode_registers` or a payload (int, float or bool).
        scale: Multiplier to engineering units.
        offset: Added after scaling.
        sentinel: Raw value that means "no reading", or None.
        plausible_min: Lowest plausible engineering value, or None.
        plausible_max: Highest plausible engineering value, or None.

    Returns:
        (value, quality); value is NaN for NO_READING and DECODE_ERROR.

    Raises:
        TypeError: `raw` is not a number (a STRING point cannot be converted).
    """
    if isinstance(raw, str | bytes):
        raise TypeError(f"apply_point needs a number, got {type(raw).__name__} {raw!r}")
    if sentinel is not None and raw == sentinel:
        return math.nan, SampleQuality.NO_READING
    try:
        value = float(raw) * scale + offset
    except OverflowError:  # an int beyond float range
        return math.nan, SampleQuality.DECODE_ERROR
    if not math.isfinite(value):
        return math.nan, SampleQuality.DECODE_ERROR
    if (plausible_min is not None and value < plausible_min) or (
        plausible_max is not None and value > plausible_max
    ):
        return value, SampleQuality.OUT_OF_RANGE
    return value, SampleQuality.GOOD


def apply_points(
    raw: ArrayLike,
    *,
    scale: ArrayLike = 1.0,
    offset: ArrayLike = 0.0,
    sentinel: ArrayLike | None = None,
    plausible_min: ArrayLike | None = None,
    plausible_max: ArrayLike | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.uint8]]:
    """Vectorised `apply_point`: every parameter is a scalar or an array broadcastable to `raw`.

    Per-point parameters let one call convert a whole `decode_block` result. In arrays, NaN
    in `sentinel`, `plausible_min` or `plausible_max` means "none" for that point.

    Returns:
        (values float64, quality uint8 holding `SampleQuality` codes), both of the broadcast shape.

    Raises:
        TypeError: `raw` is not a numeric array.
    """
    raw_array = np.asarray(raw)
    if raw_array.dtype.kind not in "biuf":
        raise TypeError(f"apply_points needs a numeric array, got {raw_array.dtype}")
    # Overflow to inf and inf * 0 are expected inputs here, flagged below, not warnings.
    with np.errstate(all="ignore"):
        values = raw_array.astype(np.float64) * scale + offset
        bad = ~np.isfinite(values)
        if sentinel is None:
            no_reading = np.zeros(values.shape, dtype=bool)
        else:
            no_reading = np.broadcast_to(raw_array == sentinel, values.shape)
        out = np.zeros(values.shape, dtype=bool)
        if plausible_min is not None:
            out |= values < plausible_min
        if plausible_max is not None:
            out |= values > plausible_max
    quality = np.full(values.shape, SampleQuality.GOOD, dtype=np.uint8)
    quality[out] = SampleQuality.OUT_OF_RANGE
    quality[bad] = SampleQuality.DECODE_ERROR
    quality[no_reading] = SampleQuality.NO_READING
    values[bad | no_reading] = np.nan
    return values, quality
