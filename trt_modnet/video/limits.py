"""Limits on what a file's headers may claim, checked before anything is allocated for it, and a decode
watchdog for streams that stop producing frames.

A damaged or hostile header can claim a 100000x100000 frame or 2^31 frames; FFmpeg and OpenCV would try
to allocate for it, and a demuxer fed garbage can hand over packet after packet that decode to nothing.
Both end as one clear line (a `MattingError`) instead of an out-of-memory kill or a hang.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from trt_modnet.errors import MattingError


@dataclass(frozen=True)
class Limits:
    """What a header may claim. The defaults exceed every real camera (16K is 15360x8640)."""

    max_side: int = 16384
    max_pixels: int = 16384 * 16384
    #: Above this a declared frame count is treated as unknown: it only sizes progress bars and batches.
    max_frames: int = 100_000_000
    #: Above this a declared frame rate is treated as unknown (the fuzzer's mdhd timescale of 2^31-1 gave
    #: 1480283433/23 fps, whose time base PyAV cannot set on the output: a traceback).
    max_rate: int = 10_000
    #: Packets in a row that decode to no frame before the stream counts as stuck.
    max_silent_packets: int = 5000
    #: Seconds without a decoded frame (checked between packets) before the decoder counts as stuck.
    max_silent_seconds: float = 60.0


LIMITS = Limits()


def check_frame_size(path: Path, width: int, height: int, limits: Limits = LIMITS) -> None:
    """Refuse a declared frame size that is empty or beyond the limits, before decoding it."""
    if width <= 0 or height <= 0:
        raise MattingError(f"{path}: the header declares an empty frame ({width}x{height}); damaged file")
    if max(width, height) > limits.max_side or width * height > limits.max_pixels:
        raise MattingError(
            f"{path}: the header declares a {width}x{height} frame, beyond the {limits.max_side} pixel "
            "limit per side; damaged file or not supported"
        )


def plausible_frame_count(count: int | None, limits: Limits = LIMITS) -> int | None:
    """A declared frame count, or None when it is absent, negative or absurd (a damaged header)."""
    if count is None or count <= 0 or count > limits.max_frames:
        return None
    return count


def plausible_rate(rate: Fraction | None, limits: Limits = LIMITS) -> Fraction | None:
    """A header's frame rate, or None when it is no rate a camera could have recorded."""
    return rate if rate is not None and 0 < rate <= limits.max_rate else None


def check_image_header(path: Path, limits: Limits = LIMITS) -> None:
    """A PNG's or JPEG's declared size checked before OpenCV allocates the pixels (other formats are
    left to OpenCV's own limit)."""
    try:
        with path.open("rb") as f:
            head = f.read(1 << 16)
    except OSError as exc:
        raise MattingError(f"{path}: unreadable ({exc.strerror})") from None
    size = _png_size(head) or _jpeg_size(head)
    if size is not None:
        check_frame_size(path, *size, limits=limits)


def _png_size(head: bytes) -> tuple[int, int] | None:
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR" or len(head) < 24:
        return None
    return struct.unpack(">II", head[16:24])


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    """The first SOFn segment's size (baseline, progressive, lossless...), walking the markers."""
    if head[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 9 <= len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        length = struct.unpack(">H", head[at + 2 : at + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", head[at + 5 : at + 9])
            return width, height
        at += 2 + length
    return None


class DecodeWatchdog:
    """Counts packets and time since the last decoded frame; `packet()` raises when the stream is stuck.

    It is checked between packets, so a single decode call that never returns is not caught here: the
    fuzzer's per-case time limit is what bounds that (docs/reliability.md).
    """

    def __init__(self, path: Path, limits: Limits = LIMITS) -> None:
        self.path = path
        self.limits = limits
        self._silent = 0
        self._since = time.monotonic()

    def frame(self) -> None:
        self._silent = 0
        self._since = time.monotonic()

    def packet(self) -> None:
        self._silent += 1
        waited = time.monotonic() - self._since
        if self._silent > self.limits.max_silent_packets or waited > self.limits.max_silent_seconds:
            raise MattingError(
                f"{self.path}: the video stream stopped producing frames ({self._silent} packets, "
                f"{waited:.0f} s without one); damaged file"
            )
