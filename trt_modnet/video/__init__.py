"""Video I/O on PyAV: readers that yield upright RGB frames with their source timestamps, and writers
for ProRes 4444 .mov, VP9 .webm, PNG, FFV1 .mkv and H.264 .mp4 that keep the timing and the audio.
"""

from __future__ import annotations

from pathlib import Path

from trt_modnet.errors import MattingError
from trt_modnet.video.formats import (
    CONTENTS,
    DEFAULT_FORMATS,
    FORMATS,
    Format,
    OutputPlan,
    OutputSpec,
    default_output_path,
    validate_output,
)
from trt_modnet.video.images import IMAGE_SUFFIXES, ImageReader, is_image_path
from trt_modnet.video.info import IMAGE_RATE, AudioInfo, Colour, Frame, VideoInfo
from trt_modnet.video.reader import VideoReader
from trt_modnet.video.writers import Source, Writer, open_writer

__all__ = [
    "CONTENTS",
    "DEFAULT_FORMATS",
    "FORMATS",
    "IMAGE_RATE",
    "IMAGE_SUFFIXES",
    "AudioInfo",
    "Colour",
    "Format",
    "Frame",
    "ImageReader",
    "OutputPlan",
    "OutputSpec",
    "Source",
    "VideoInfo",
    "VideoReader",
    "Writer",
    "default_output_path",
    "open_reader",
    "open_writer",
    "validate_output",
]


def open_reader(
    path: str | Path,
    *,
    stream_index: int | None = None,
    start: float | None = None,
    duration: float | None = None,
    threads: int = 0,
    decoder: str = "cpu",
) -> VideoReader | ImageReader:
    """A reader for a video file, a single image, or a folder of images (decided by what `path` is).

    `start`/`duration` (seconds) select a segment, `stream_index` a video stream other than the first
    (its index among all the file's streams), `threads` the decoder's threads (0: one per core),
    `decoder` "cpu" or "nvdec" (NVDEC where it opens, else the CPU, said in one line).
    """
    path = Path(path)
    if start is not None and not start >= 0:
        raise MattingError(f"{path}: start must be 0 or more seconds, got {start}")
    if duration is not None and not duration > 0:
        raise MattingError(f"{path}: duration must be more than 0 seconds, got {duration}")
    if path.is_dir() or is_image_path(path):
        if stream_index not in (None, 0):
            raise MattingError(f"{path}: images have no stream {stream_index}")
        return ImageReader(path, start=start, duration=duration)
    return VideoReader(
        path, stream_index=stream_index, start=start, duration=duration, threads=threads, decoder=decoder
    )
