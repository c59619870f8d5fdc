"""Backgrounds for the composite output: a colour, an image, or a video (looped or cut to length).

Each yields uint8 RGB arrays shaped for the deployment graph's `background` input: [1,H,W,3] for a
colour or an image (made once per video, broadcast by the graph over the batch) and [N,H,W,3] for a video.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from trt_modnet.errors import MattingError
from trt_modnet.video import is_image_path, open_reader

# Pure green and blue are the chroma-key colours editors expect from a "green screen" render.
COLOURS: dict[str, tuple[int, int, int]] = {
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "red": (255, 0, 0),
    "magenta": (255, 0, 255),
}
DEFAULT_COLOUR = "green"
_HEX = re.compile(r"#?([0-9a-fA-F]{6})")


class Background(ABC):
    """A source of background pixels, sized once per video with `prepare`."""

    def prepare(self, height: int, width: int) -> None:
        self.size = (height, width)

    @abstractmethod
    def batch(self, count: int) -> np.ndarray:
        """Background for the next `count` frames: [1,H,W,3] or [count,H,W,3] uint8 RGB."""

    def close(self) -> None:  # noqa: B027 - most backgrounds hold nothing to release
        """Release what the background holds; idempotent."""

    def __enter__(self) -> Background:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ColourBackground(Background):
    def __init__(self, rgb: tuple[int, int, int]) -> None:
        self.rgb = rgb
        self._plate: np.ndarray | None = None

    def prepare(self, height: int, width: int) -> None:
        super().prepare(height, width)
        self._plate = np.empty((1, height, width, 3), np.uint8)
        self._plate[...] = self.rgb

    def batch(self, count: int) -> np.ndarray:
        assert self._plate is not None, "prepare() first"
        return self._plate


class ImageBackground(Background):
    def __init__(self, path: Path) -> None:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise MattingError(f"{path}: cannot read the --background image")
        self.path = path
        self.image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        self._plate: np.ndarray | None = None

    def prepare(self, height: int, width: int) -> None:
        super().prepare(height, width)
        self._plate = cover(self.image, height, width)[None]

    def batch(self, count: int) -> np.ndarray:
        assert self._plate is not None, "prepare() first"
        return self._plate


class VideoBackground(Background):
    """Frames of another video, scaled to cover the frame; looped when shorter than the footage.

    Each batch gets its own array: batches wait in queues and in the runner while the next is made.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader = open_reader(path)
        self._frames = iter(self._reader)

    def batch(self, count: int) -> np.ndarray:
        height, width = self.size
        out = np.empty((count, height, width, 3), np.uint8)
        for i in range(count):
            out[i] = cover(self._next_image(), height, width)
        return out

    def _next_image(self) -> np.ndarray:
        frame = next(self._frames, None)
        if frame is None:  # loop: start the background video again
            self._reader.close()
            self._reader = open_reader(self.path)
            self._frames = iter(self._reader)
            frame = next(self._frames, None)
            if frame is None:
                raise MattingError(f"{self.path}: the --background video has no frames")
        return frame.image

    def close(self) -> None:
        self._reader.close()


def cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale `image` to cover height x width keeping its aspect ratio, then crop the centre."""
    ih, iw = image.shape[:2]
    scale = max(height / ih, width / iw)
    sh, sw = max(height, round(ih * scale)), max(width, round(iw * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = image if (sh, sw) == (ih, iw) else cv2.resize(image, (sw, sh), interpolation=interp)
    top, left = (sh - height) // 2, (sw - width) // 2
    return np.ascontiguousarray(scaled[top : top + height, left : left + width])


def parse_colour(text: str) -> tuple[int, int, int] | None:
    """A colour name or #RRGGBB, or None when `text` is neither."""
    if text.lower() in COLOURS:
        return COLOURS[text.lower()]
    m = _HEX.fullmatch(text)
    if m is None:
        return None
    value = int(m.group(1), 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def open_background(text: str | None) -> Background:
    """`text` is a colour name, #RRGGBB, an image file or a video file; None means the default colour."""
    colour = parse_colour(DEFAULT_COLOUR if text is None else text)
    if colour is not None:
        return ColourBackground(colour)
    assert text is not None
    path = Path(text)
    if path.is_dir():
        raise MattingError(f"{text}: the --background is a folder; name a colour, an image or a video")
    if not path.is_file():
        names = ", ".join(sorted(COLOURS))
        raise MattingError(
            f"{text!r}: the --background is not a colour ({names} or #RRGGBB) nor an image or video file"
        )
    if is_image_path(path):
        return ImageBackground(path)
    return VideoBackground(path)
