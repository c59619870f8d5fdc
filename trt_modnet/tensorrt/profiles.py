"""Optimisation profiles: the frame batches an engine accepts and the shapes of every input they imply.

Plain Python: runs without TensorRT.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from trt_modnet.errors import MattingError
from trt_modnet.graph.official import SIZE_MULTIPLE

if TYPE_CHECKING:
    from trt_modnet.graph.deploy import DeploySpec

#: Named frame sizes (height, width) for `--profile`.
PRESETS: dict[str, tuple[int, int]] = {
    "720p": (720, 1280),
    "720p-portrait": (1280, 720),
    "1080p": (1080, 1920),
    "1080p-portrait": (1920, 1080),
    "4k": (2160, 3840),
    "4k-portrait": (3840, 2160),
}
DEFAULT_BATCH = 4

Shape = tuple[int, ...]
#: graph.size_feeds(spec, height, width, taps): the per-video inputs (resize taps...) for one frame size,
#: every axis padded to `taps` taps.
SizeFeeds = Callable[["DeploySpec", int, int, int], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class FrameShape:
    """A batch of frames: N x H x W (the `frames` input is N x H x W x 3 uint8)."""

    batch: int
    height: int
    width: int

    @classmethod
    def from_text(cls, text: str) -> FrameShape:
        match = re.fullmatch(r"\s*(\d+)x(\d+)x(\d+)\s*", text)
        if not match:
            raise MattingError(f"frame shape {text!r}: expected NxHxW, e.g. 4x1080x1920")
        return cls(*(int(g) for g in match.groups()))

    def __str__(self) -> str:
        return f"{self.batch}x{self.height}x{self.width}"


@dataclass(frozen=True)
class FrameProfile:
    """The range of frame batches one optimisation profile accepts; kernels are tuned for `opt`."""

    min: FrameShape
    opt: FrameShape
    max: FrameShape

    def __post_init__(self) -> None:
        for a, b in ((self.min, self.opt), (self.opt, self.max)):
            if a.batch > b.batch or a.height > b.height or a.width > b.width:
                raise MattingError(f"profile {self}: needs min <= opt <= max in every dimension")
        if self.min.batch < 1 or min(self.min.height, self.min.width) < SIZE_MULTIPLE:
            raise MattingError(f"profile {self}: batch must be >= 1 and frames at least 32x32")

    @classmethod
    def exact(cls, height: int, width: int, batch: int) -> FrameProfile:
        """Frames of exactly height x width, batches of 1 to `batch` (tuned for `batch`)."""
        return cls(
            FrameShape(1, height, width), FrameShape(batch, height, width), FrameShape(batch, height, width)
        )

    @classmethod
    def preset(cls, name: str, batch: int = DEFAULT_BATCH) -> FrameProfile:
        try:
            height, width = PRESETS[name.lower()]
        except KeyError:
            raise MattingError(f"unknown profile {name!r}; choose from {', '.join(PRESETS)}") from None
        return cls.exact(height, width, batch)

    def __str__(self) -> str:
        return f"{self.min}..{self.opt}..{self.max}"


@dataclass(frozen=True)
class ShapeRange:
    """min/opt/max shapes of one engine input, as TensorRT's `IOptimizationProfile.set_shape` takes them."""

    min: Shape
    opt: Shape
    max: Shape

    def contains(self, shape: Shape) -> bool:
        return len(shape) == len(self.min) and all(
            lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max, strict=True)
        )


InputRanges = dict[str, ShapeRange]


def input_ranges(spec: DeploySpec, profile: FrameProfile, size_feeds: SizeFeeds) -> InputRanges:
    """Shape ranges of every engine input for a frame profile: frames, background, and the size feeds."""
    lo, opt, hi = profile.min, profile.opt, profile.max
    ranges = {"frames": _frame_range(profile)}
    if "composite" in spec.outputs:
        # One background for the whole batch (colour, image) or one per frame (video).
        ranges["background"] = ShapeRange(
            (1, lo.height, lo.width, 3), (1, opt.height, opt.width, 3), (hi.batch, hi.height, hi.width, 3)
        )
    ranges.update(_size_feed_ranges(spec, profile, size_feeds))
    return ranges


def profile_taps(frames: ShapeRange, ref_size: int) -> int:
    """The taps per output (k) of every resize axis in an engine for frames in this range.

    The natural k is not monotonic in the scale (an exact x2 needs 2 taps, x1.95 or x2.03 need 3 or 4), so
    ranges of it taken at a profile's extreme sizes can be inconsistent (opt below min) or miss sizes
    inside. Padded to one K (zero weights) the tap inputs' k is a constant of the engine. K bounds every
    axis at every size of the range: INTER_AREA takes at most ceil(scale) + 1 inputs per output down, 2 up.
    """
    (_, lo_h, lo_w, _), (_, hi_h, hi_w, _) = frames.min, frames.max
    widths = np.arange(lo_w, hi_w + 1)
    scale = 1.0
    for height in range(lo_h, hi_h + 1):
        ih, iw = official_sizes(height, widths, ref_size)
        scale = max(scale, height / ih.min(), ih.max() / height, (widths / iw).max(), (iw / widths).max())
    return max(2, math.ceil(scale) + 1)


def _frame_range(profile: FrameProfile) -> ShapeRange:
    lo, opt, hi = profile.min, profile.opt, profile.max
    return ShapeRange(
        (lo.batch, lo.height, lo.width, 3),
        (opt.batch, opt.height, opt.width, 3),
        (hi.batch, hi.height, hi.width, 3),
    )


def _size_feed_ranges(spec: DeploySpec, profile: FrameProfile, size_feeds: SizeFeeds) -> InputRanges:
    """Bounding shapes of the size feeds over the frame sizes of the profile.

    The feeds' shapes follow each frame side, its inference side and the scale between them (the taps per
    output of a resize), and the official size rule is not monotonic (a 600x500 frame is inferred at
    480x576, a 1080x1920 one at 512x896), so the feeds are evaluated wherever any of those is extreme, not
    only at the profile's corners. A video whose exact shapes still fall outside is never handed this
    profile (`profile_covers` checks the exact shapes): it gets an engine of its own.
    """
    points = _extreme_frame_sizes(profile, spec.ref_size)
    taps = profile_taps(_frame_range(profile), spec.ref_size)
    shapes = [{k: tuple(v.shape) for k, v in size_feeds(spec, h, w, taps).items()} for h, w in points]
    opt_feeds = size_feeds(spec, profile.opt.height, profile.opt.width, taps)
    opt = {k: tuple(v.shape) for k, v in opt_feeds.items()}
    ranges = {}
    for name, opt_shape in opt.items():
        dims = np.array([s[name] for s in shapes])
        ranges[name] = ShapeRange(tuple(map(int, dims.min(0))), opt_shape, tuple(map(int, dims.max(0))))
    return ranges


def _extreme_frame_sizes(profile: FrameProfile, ref_size: int) -> list[tuple[int, int]]:
    """The profile's corners, and the frame sizes where either inference side or either scale is extreme."""
    lo, hi = profile.min, profile.max
    widths = np.arange(lo.width, hi.width + 1)
    # (quantity, sign) -> (sign * value, height, width): sign 1 tracks the minimum, -1 the maximum.
    extremes: dict[tuple[int, int], tuple[float, int, int]] = {}
    for height in range(lo.height, hi.height + 1):
        ih, iw = official_sizes(height, widths, ref_size)
        for quantity, values in enumerate((ih, iw, height / ih, widths / iw)):
            for sign, index in ((1, int(values.argmin())), (-1, int(values.argmax()))):
                found = (sign * float(values[index]), height, int(widths[index]))
                extremes[quantity, sign] = min(extremes.get((quantity, sign), found), found)
    corners = {(h, w) for h in (lo.height, hi.height) for w in (lo.width, hi.width)}
    return sorted(corners | {(h, w) for _, h, w in extremes.values()})


def official_sizes(height: int, widths: np.ndarray, ref_size: int) -> tuple[np.ndarray, np.ndarray]:
    """`official.inference_size` for one height and many widths at once (the same arithmetic, vectorised)."""
    w = widths.astype(np.int64)
    h = np.full_like(w, height)
    rescale = (np.maximum(h, w) < ref_size) | (np.minimum(h, w) > ref_size)
    landscape = w >= h
    # Same float64 operations in the same order as the scalar rule, then truncation like int().
    ih = np.where(rescale, np.where(landscape, ref_size, (h / w * ref_size).astype(np.int64)), h)
    iw = np.where(rescale, np.where(landscape, (w / h * ref_size).astype(np.int64), ref_size), w)
    return ih - ih % SIZE_MULTIPLE, iw - iw % SIZE_MULTIPLE


def covers(
    spec: DeploySpec,
    ranges: Mapping[str, ShapeRange],
    height: int,
    width: int,
    batch: int,
    size_feeds: SizeFeeds,
) -> bool:
    """Whether an engine profile takes this video: every input, at both batch ends, with its taps padded."""
    taps = profile_taps(ranges["frames"], spec.ref_size)
    try:
        needs = required_shapes(spec, height, width, batch, size_feeds, taps)
    except ValueError:  # an axis of this video needs more taps than the engine has
        return False
    return profile_covers(ranges, needs)


def required_shapes(
    spec: DeploySpec, height: int, width: int, batch: int, size_feeds: SizeFeeds, taps: int
) -> list[dict]:
    """The input shapes a video needs, for its smallest (1) and largest (`batch`) batches."""
    feeds = {k: tuple(v.shape) for k, v in size_feeds(spec, height, width, taps).items()}
    needs = []
    for n in (1, batch):
        shapes: dict[str, Shape] = {"frames": (n, height, width, 3), **feeds}
        if "composite" in spec.outputs:
            shapes["background"] = (n, height, width, 3)
        needs.append(shapes)
    return needs


def profile_covers(ranges: Mapping[str, ShapeRange], needs: Sequence[Mapping[str, Shape]]) -> bool:
    return all(
        set(need) == set(ranges) and all(ranges[k].contains(s) for k, s in need.items()) for need in needs
    )
