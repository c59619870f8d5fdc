"""Timestamps: repairing missing ones, and seconds to pts without float rounding."""

from __future__ import annotations

import math
from fractions import Fraction


class Timeline:
    """Gives every frame a pts that increases strictly, keeping the source's wherever it is usable.

    A frame without pts (raw H.264, the first frames of some captures) or with one that does not
    increase gets the previous pts plus the previous frame's duration (or `step`, one frame at the
    stream's rate): encoders and muxers reject anything else.
    """

    def __init__(self, *, start: int, step: int) -> None:
        self.start = start
        self.step = max(1, step)
        self.last: int | None = None
        self.repaired = 0
        self._last_step = self.step

    def fix(self, pts: int | None, duration: int | None = None) -> int:
        if self.last is None:
            value = self.start if pts is None else pts
            if pts is None:
                self.repaired += 1
        elif pts is not None and pts > self.last:
            value = pts
        else:
            value = self.last + self._last_step
            self.repaired += 1
        self._last_step = duration if duration and duration > 0 else self.step
        self.last = value
        return value


def seconds_to_pts(seconds: float, time_base: Fraction) -> int:
    """The first pts at or after `seconds` (decimal seconds taken as written: 0.1 is 1/10, not 0.1000..01)."""
    return math.ceil(Fraction(repr(float(seconds))) / time_base)


class Grid:
    """Puts frames of a constant-rate source stored in a coarse time base back on their regular grid.

    Matroska stores milliseconds: 30 fps becomes 0, 33, 67, 100, ..., which rescaled exactly into a
    .mov's timescale alternates frame durations and reads as variable-rate. A time within half a source
    tick of the grid (`origin + n / rate`) is the rounding of it and goes out as the grid time; any other
    time (true VFR) goes out as it is. `time_base` holds both exactly.
    """

    def __init__(self, rate: Fraction, source_time_base: Fraction) -> None:
        self.rate = rate
        self.tolerance = source_time_base / 2
        self.time_base = Fraction(1, math.lcm(rate.numerator, source_time_base.denominator))
        self.origin: Fraction | None = None

    @staticmethod
    def needed(rate: Fraction | None, time_base: Fraction) -> bool:
        """Whether `time_base` cannot hold a regular grid at `rate` (so its times are roundings)."""
        return bool(rate) and (1 / (rate * time_base)).denominator != 1

    def pts(self, time: Fraction) -> int:
        if self.origin is None:
            self.origin = time
        on_grid = self.origin + round((time - self.origin) * self.rate) / self.rate
        if abs(on_grid - time) <= self.tolerance:
            time = on_grid
        return round(time / self.time_base)
