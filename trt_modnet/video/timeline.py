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
