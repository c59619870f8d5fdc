"""Synthetic clips for the video tests, made with PyAV in pytest's tmp_path, and ways to read outputs back.

No tests here: the helpers live in a `test_video*` module because those are the video layer's files.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import Interpolation


def pattern(height: int, width: int, index: int = 0) -> np.ndarray:
    """A smooth RGB gradient with a bright square that moves with `index` (no two frames alike)."""
    yy, xx = np.mgrid[0:height, 0:width]
    red, green = (xx * 255) // max(1, width - 1), (yy * 255) // max(1, height - 1)
    image = np.stack([red, green, ((xx + yy) * 127) // (height + width)], axis=-1).astype(np.uint8)
    side = max(2, min(height, width) // 4)
    x = (index * 3) % max(1, width - side)
    image[2 : 2 + side, x : x + side] = (250, 240, 30)
    return image


def patches(height: int, width: int) -> np.ndarray:
    """Four flat saturated quadrants (red, green, blue, yellow): where YUV matrices differ most."""
    image = np.zeros((height, width, 3), np.uint8)
    h, w = height // 2, width // 2
    image[:h, :w], image[:h, w:], image[h:, :w], image[h:, w:] = (
        (220, 20, 20),
        (20, 200, 30),
        (30, 20, 210),
        (230, 220, 10),
    )
    return image


def matte(height: int, width: int, index: int = 0) -> np.ndarray:
    """A soft alpha: a horizontal ramp with an opaque disc that moves with `index`."""
    xx = np.mgrid[0:height, 0:width][1]
    alpha = ((xx * 255) // max(1, width - 1)).astype(np.uint8)
    cv2.circle(alpha, (width // 3 + index, height // 2), min(height, width) // 4, 255, -1)
    return alpha


def make_clip(
    path: Path,
    images: Sequence[np.ndarray],
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    time_base: Fraction = Fraction(1, 25),
    pts: Sequence[int] | None = None,
    rotation: int | None = None,
    options: dict[str, str] | None = None,
    container_format: str | None = None,
    input_format: str = "rgb24",
    colorspace: int | None = None,
) -> Path:
    """Encode `images` into `path`, with pts (default 0, 1, 2, ...) in `time_base`.

    `colorspace` (an AVColorSpace: 1 BT.709, 6 BT.601) converts with that matrix and tags the stream.
    """
    tags = {} if colorspace is None else {"dst_colorspace": {1: "ITU709", 6: "SMPTE170M"}[colorspace]}
    height, width = images[0].shape[:2]
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = stream.codec_context.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if colorspace is not None:
            stream.codec_context.colorspace, stream.codec_context.color_range = colorspace, 1
        for i, image in enumerate(images):
            # One swscale thread: its slice threads are not deterministic (trt_modnet.video.colour).
            frame = av.VideoFrame.from_ndarray(image, format=input_format)
            frame = frame.reformat(format=pix_fmt, threads=1, **tags)
            frame.pts = i if pts is None else pts[i]
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def make_audio_only(path: Path, seconds: float = 0.5) -> Path:
    """A short sine wave in an audio-only file (codec from the extension's default)."""
    rate = 48_000
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        t = np.arange(int(rate * seconds)) / rate
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def video_pts(path: Path) -> tuple[list[int], Fraction]:
    """Presentation timestamps of the first video stream, in display order, and its time base."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None)
        return pts, Fraction(stream.time_base)


def audio_packets(path: Path, index: int = 0) -> list[tuple[float, bytes]]:
    """(start seconds, payload) of every packet of the file's `index`-th audio stream."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[index]
        return [
            (float(p.pts * p.time_base), bytes(p))
            for p in container.demux(stream)
            if p.pts is not None and p.size
        ]


def read_rgba(path: Path, *, decoder: str | None = None) -> list[np.ndarray]:
    """Frames as [H,W,4] uint8; ProRes' 12-bit alpha is read at 16 bits and rounded (not truncated).

    `decoder` names a decoder to use instead of the default one (libvpx-vp9: the only one that returns
    VP9's alpha).
    """
    if path.is_dir():
        images = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in _pngs(path)]
        return [cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA) for image in images]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if decoder is None:
            frames = list(container.decode(stream))
        else:
            ctx = av.CodecContext.create(decoder, "r")
            frames = [f for p in container.demux(stream) if p.size for f in ctx.decode(p)]
            frames += ctx.decode(None)
        return [_rgba8(f) for f in frames]


def _rgba8(frame: av.VideoFrame) -> np.ndarray:
    if frame.format.name.startswith("yuva444p1"):
        wide = _array(frame, "rgba64le").astype(np.float64)
        return np.round(wide * 255 / 65535).astype(np.uint8)
    return _array(frame, "rgba")


def _array(frame: av.VideoFrame, pixel_format: str) -> np.ndarray:
    """Converted as a good player does: interpolated chroma, accurate rounding (swscale's default takes
    the nearest chroma sample, which would charge the writer under test with the reader's error)."""
    interpolation = Interpolation.BICUBIC | Interpolation.FULL_CHR_H_INT | Interpolation.ACCURATE_RND
    return frame.reformat(format=pixel_format, threads=1, interpolation=interpolation).to_ndarray()


def read_gray(path: Path) -> list[np.ndarray]:
    if path.is_dir():
        return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in _pngs(path)]
    with av.open(str(path)) as container:
        return [_array(f, "gray") for f in container.decode(video=0)]


def _pngs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def leftovers(folder: Path) -> list[str]:
    """Names in `folder` that a writer may have left: temporary (.part) files and folders."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))
