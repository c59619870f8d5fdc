"""What a reader knows about its input (`VideoInfo`) and what it yields (`Frame`)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

# FFmpeg's AVColorSpace / AVColorRange values (libavutil/pixfmt.h); 2 and 0 mean "not tagged".
SPACE_UNSPECIFIED = 2
RANGE_UNSPECIFIED = 0
RANGE_LIMITED = 1
RANGE_FULL = 2
PRIMARIES_UNSPECIFIED = 2
TRANSFER_UNSPECIFIED = 2
FIELD_PROGRESSIVE = 1

# Frame rate given to images and folders of images, which carry no timing of their own.
IMAGE_RATE = Fraction(25)


@dataclass(frozen=True)
class Colour:
    """The source's colour tags, as FFmpeg's enum values (2 = unspecified; range 0 = unspecified)."""

    range: int = RANGE_UNSPECIFIED
    space: int = SPACE_UNSPECIFIED
    primaries: int = PRIMARIES_UNSPECIFIED
    transfer: int = TRANSFER_UNSPECIFIED


@dataclass(frozen=True)
class AudioInfo:
    """One audio stream of the input; `index` is its index among all the container's streams."""

    index: int
    codec: str
    sample_rate: int
    channels: int
    layout: str
    time_base: Fraction
    duration: float | None = None
    language: str | None = None


@dataclass(frozen=True)
class VideoInfo:
    """The input as a player shows it: width and height are after rotation. It describes the whole
    file (frame count, duration), whatever segment a reader selects.

    `rotation` is the counter-clockwise rotation (0, 90, 180 or 270 degrees) the reader applied to the
    decoded pixels to stand them upright. Images and folders of images read as a video at `IMAGE_RATE`
    with pts 0, 1, 2, ... in a time base of 1/IMAGE_RATE.
    """

    path: Path
    width: int
    height: int
    frame_count: int | None
    average_rate: Fraction | None
    real_rate: Fraction | None
    time_base: Fraction
    duration: float | None
    rotation: int = 0
    colour: Colour = Colour()
    audio: tuple[AudioInfo, ...] = ()
    is_image: bool = False
    stream_index: int | None = None
    codec: str = ""
    pixel_format: str = ""
    sample_aspect_ratio: Fraction | None = None
    field_order: int = 0  # FFmpeg's AVFieldOrder: 0 unknown, 1 progressive, 2-5 interlaced


@dataclass(frozen=True, eq=False)
class Frame:
    """One upright RGB frame ([H,W,3] uint8, C-contiguous) with the source's timestamp.

    `pts` is in `time_base` units (the stream's own); `index` counts the frames the reader yielded, from 0.
    """

    image: np.ndarray
    pts: int | None
    time_base: Fraction
    index: int

    @property
    def time(self) -> float | None:
        """Presentation time in seconds."""
        return None if self.pts is None else float(self.pts * self.time_base)
