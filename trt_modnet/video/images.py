"""Reading a single image, or a folder of images, as a video at `IMAGE_RATE`.

OpenCV decodes them (`IMREAD_COLOR_RGB`: any depth to 8 bits, grayscale to RGB, alpha dropped, EXIF
orientation applied, so the pixels are upright as a viewer shows them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from trt_modnet.errors import MattingError
from trt_modnet.video.info import IMAGE_RATE, Frame, VideoInfo
from trt_modnet.video.limits import check_image_header

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


class ImageReader:
    """Frames from one image file or from the images of a folder (in natural name order).

    Frame i has pts i in a time base of 1/IMAGE_RATE; `start`/`duration` select by that clock.
    """

    def __init__(
        self, path: str | Path, *, start: float | None = None, duration: float | None = None
    ) -> None:
        self.path = Path(path)
        self.start = start
        self.duration = duration
        self._closed = False
        self._iterated = False
        files = _list_images(self.path)
        first = _read(files[0])
        self._height, self._width = first.shape[:2]
        self._files = _segment(files, start, duration)
        if not self._files:
            raise MattingError(f"{self.path}: no images in the requested segment")
        self._first: np.ndarray | None = first if self._files[0][1] is files[0] else None
        self.info = VideoInfo(
            path=self.path,
            width=self._width,
            height=self._height,
            frame_count=len(files),
            average_rate=IMAGE_RATE,
            real_rate=IMAGE_RATE,
            time_base=1 / IMAGE_RATE,
            duration=len(files) / IMAGE_RATE if self.path.is_dir() else None,
            is_image=True,
            codec="image",
            pixel_format="rgb24",
        )

    @property
    def expected_frames(self) -> int:
        return len(self._files)

    def __iter__(self) -> Iterator[Frame]:
        if self._closed:
            raise RuntimeError(f"reader of {self.path} is closed")
        if self._iterated:
            raise RuntimeError(f"reader of {self.path} can be iterated only once")
        self._iterated = True
        return self._frames()

    def close(self) -> None:
        self._closed = True
        self._first = None

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _frames(self) -> Iterator[Frame]:
        time_base = self.info.time_base
        for index, (pts, file) in enumerate(self._files):
            if self._closed:
                raise RuntimeError(f"reader of {self.path} is closed")
            image = self._first if index == 0 and self._first is not None else _read(file)
            self._first = None
            if image.shape[:2] != (self._height, self._width):
                raise MattingError(
                    f"{file}: {image.shape[1]}x{image.shape[0]}, but the first image is "
                    f"{self._width}x{self._height}: all images of a sequence must have one size"
                )
            yield Frame(image, pts, time_base, index)


def _list_images(path: Path) -> list[Path]:
    if not path.exists():
        raise MattingError(f"{path}: no such file or folder")
    if path.is_file():
        return [path]
    files = sorted(
        (p for p in path.iterdir() if p.is_file() and is_image_path(p) and not p.name.startswith(".")),
        key=_natural_key,
    )
    if not files:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise MattingError(f"{path}: no images ({suffixes}) in this folder")
    return files


def _natural_key(path: Path) -> list[object]:
    """frame2.png before frame10.png."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _segment(files: list[Path], start: float | None, duration: float | None) -> list[tuple[int, Path]]:
    first = math.ceil((start or 0) * IMAGE_RATE)
    end = len(files) if duration is None else math.ceil(((start or 0) + duration) * IMAGE_RATE)
    return [(i, files[i]) for i in range(first, min(end, len(files)))]


def _read(path: Path) -> np.ndarray:
    check_image_header(path)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR_RGB)
    if image is None:
        raise MattingError(f"{path}: not an image, or unreadable")
    return np.ascontiguousarray(image)
