"""The readers on the shared videos and images, and on synthetic clips with the awkward cases."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.conftest import IMAGES, VIDEOS, need
from tests.test_video_media import make_clip, pattern
from trt_modnet.errors import MattingError
from trt_modnet.video import IMAGE_RATE, open_reader
from trt_modnet.video.timeline import Timeline


def _frames(path: Path, **kwargs: object) -> tuple[object, list]:
    with open_reader(path, **kwargs) as reader:
        return reader.info, list(reader)


def test_shared_video_info_and_frames() -> None:
    info, frames = _frames(need(VIDEOS / "juggle_720p.mp4"), duration=0.25)
    assert (info.width, info.height, info.frame_count) == (1280, 720, 247)
    assert info.average_rate == info.real_rate == 24
    assert info.time_base == Fraction(1, 12288)
    assert info.duration == pytest.approx(10.29, abs=0.01)
    assert info.rotation == 0 and not info.is_image and info.audio == ()
    assert [f.pts for f in frames] == [512 * i for i in range(6)]
    assert [f.index for f in frames] == list(range(6))
    for frame in frames:
        assert frame.image.shape == (720, 1280, 3) and frame.image.dtype == np.uint8
        assert frame.image.flags.c_contiguous


def test_frames_match_an_independent_decoder() -> None:
    """OpenCV's own FFmpeg build decodes the same pictures (an untagged SD clip: BT.601 for both)."""
    path = need(VIDEOS / "carphone_qcif.mp4")
    _, frames = _frames(path, duration=0.2)
    capture = cv2.VideoCapture(str(path))
    try:
        for frame in frames:
            ok, bgr = capture.read()
            assert ok
            diff = np.abs(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(int) - frame.image)
            assert diff.mean() < 1.5
    finally:
        capture.release()


def test_odd_width_frames_are_contiguous_and_audio_is_listed() -> None:
    info, frames = _frames(need(VIDEOS / "pancake_240p.mkv"), duration=0.2)
    assert (info.width, info.height) == (426, 240)
    assert info.frame_count is None  # Matroska does not say
    assert [a.codec for a in info.audio] == ["opus"]
    assert all(f.image.shape == (240, 426, 3) and f.image.flags.c_contiguous for f in frames)
    assert [f.pts for f in frames] == [0, 33, 67, 100, 133, 167]


def test_segment_keeps_the_source_pts() -> None:
    _, frames = _frames(need(VIDEOS / "juggle_720p.mp4"), start=2.0, duration=0.5)
    assert [f.pts for f in frames] == [512 * (48 + i) for i in range(12)]
    assert [f.index for f in frames] == list(range(12))
    assert frames[0].time == 2.0


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotated_video_is_read_upright(tmp_path: Path, rotation: int) -> None:
    upright = [pattern(64, 48, i) for i in range(3)]  # portrait, as the player shows it
    stored = [np.ascontiguousarray(np.rot90(img, -rotation // 90)) for img in upright]
    path = make_clip(
        tmp_path / "phone.mp4", stored, pix_fmt="yuv444p", rotation=rotation, options={"qp": "0"}
    )
    info, frames = _frames(path)
    assert (info.width, info.height, info.rotation) == (48, 64, rotation % 360)
    capture = cv2.VideoCapture(str(path))  # a player: OpenCV applies the display matrix
    ok, shown = capture.read()
    capture.release()
    assert ok and shown.shape == (64, 48, 3)
    assert np.abs(cv2.cvtColor(shown, cv2.COLOR_BGR2RGB).astype(int) - frames[0].image).max() <= 3
    for frame, expected in zip(frames, upright, strict=True):
        assert np.abs(frame.image.astype(int) - expected).max() <= 3


@pytest.mark.parametrize(
    ("pix_fmt", "tolerance"),
    [("gray", 0), ("yuv444p", 3), ("yuv420p10le", 10), ("yuv444p16le", 2), ("bgr0", 0)],
)
def test_source_pixel_formats_become_rgb(tmp_path: Path, pix_fmt: str, tolerance: int) -> None:
    """Grayscale, 4:4:4, 10-bit and RGB sources (FFV1 is lossless: only the conversion differs)."""
    images = [pattern(32, 40, i) for i in range(2)]
    if pix_fmt == "gray":
        images = [np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2) for img in images]
    if pix_fmt.startswith("yuv420"):  # half-resolution chroma: keep colour edges out of the picture
        images = [cv2.GaussianBlur(img, (0, 0), 4) for img in images]
    path = make_clip(tmp_path / f"{pix_fmt}.mkv", images, codec="ffv1", pix_fmt=pix_fmt)
    info, frames = _frames(path)
    assert info.pixel_format == pix_fmt
    for frame, expected in zip(frames, images, strict=True):
        assert frame.image.shape == expected.shape
        diff = np.abs(frame.image.astype(int) - expected)
        assert diff.max() <= tolerance and diff.mean() < 2


def test_variable_frame_rate_pts_are_kept(tmp_path: Path) -> None:
    pts = [0, 3000, 4500, 9000, 10_000, 16_000, 16_900, 30_000]
    path = make_clip(
        tmp_path / "vfr.mp4", [pattern(48, 64, i) for i in range(8)], time_base=Fraction(1, 90_000), pts=pts
    )
    info, frames = _frames(path)
    assert info.time_base == Fraction(1, 90_000)
    assert [f.pts for f in frames] == pts


def test_missing_pts_are_filled_from_the_rate(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A raw H.264 stream carries no timestamps at all."""
    path = make_clip(tmp_path / "raw.h264", [pattern(48, 64, i) for i in range(6)], container_format="h264")
    with caplog.at_level(logging.WARNING, logger="trt_modnet"):
        info, frames = _frames(path)
    step = round(1 / (info.average_rate * info.time_base))
    assert [f.pts for f in frames] == [step * i for i in range(6)]
    assert "missing or out-of-order timestamps" in caplog.text


def test_timeline_keeps_good_pts_and_repairs_the_rest() -> None:
    timeline = Timeline(start=0, step=10)
    got = [timeline.fix(p, d) for p, d in [(None, 0), (None, 0), (50, 20), (50, 20), (60, 0), (100, 10)]]
    assert got == [0, 10, 50, 70, 90, 100]
    assert timeline.repaired == 4


def test_second_video_stream_can_be_chosen(tmp_path: Path) -> None:
    path = tmp_path / "two.mkv"
    with av.open(str(path), "w") as container:
        streams = []
        for width in (32, 48):
            stream = container.add_stream("ffv1")
            stream.width, stream.height, stream.pix_fmt = width, 16, "bgr0"
            streams.append(stream)
        for stream in streams:
            frame = av.VideoFrame.from_ndarray(pattern(16, stream.width), format="rgb24")
            frame.pts = 0
            container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    assert _frames(path)[0].width == 32
    assert _frames(path, stream_index=1)[0].width == 48
    with pytest.raises(MattingError, match="stream 5 is not a video stream"):
        open_reader(path, stream_index=5)


def test_single_image_is_a_one_frame_video() -> None:
    path = need(IMAGES / "portraits" / "astronaut.png")
    info, frames = _frames(path)
    assert info.is_image and info.frame_count == 1 and (info.width, info.height) == (512, 512)
    assert [(f.pts, f.index) for f in frames] == [(0, 0)]
    expected = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(frames[0].image, expected)


def test_folder_of_images_in_natural_order(tmp_path: Path) -> None:
    for i in (1, 2, 10):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), pattern(20, 30, i)[..., ::-1])
    (tmp_path / "notes.txt").write_text("not an image")
    info, frames = _frames(tmp_path)
    assert info.is_image and info.frame_count == 3 and info.time_base == 1 / IMAGE_RATE
    assert [f.pts for f in frames] == [0, 1, 2]
    for frame, i in zip(frames, (1, 2, 10), strict=True):
        assert np.array_equal(frame.image, pattern(20, 30, i))


def test_folder_of_images_segment() -> None:
    folder = need(IMAGES / "davis_lucia" / "frames")
    _, frames = _frames(folder, start=1 / IMAGE_RATE, duration=2 / IMAGE_RATE)
    assert [f.pts for f in frames] == [1, 2]
    assert frames[0].image.shape == (480, 854, 3)
