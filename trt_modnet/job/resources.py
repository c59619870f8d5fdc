"""What one input costs before it runs: the batch memory allows, and the disk space its outputs need."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from trt_modnet.video import OutputSpec
from trt_modnet.video.formats import resolve_format

log = logging.getLogger("trt_modnet")

#: Bytes the pipeline holds per pixel of one batch slot: about six pooled and in-flight batches of the
#: RGB input and the graph's outputs (up to 8 bytes: rgba, alpha, composite).
_BYTES_PER_SLOT_PIXEL = 6 * (3 + 8)
#: The frame buffers may take at most this share of the memory available when the file starts.
_MEMORY_SHARE = 0.5
#: Peak memory of the whole job per pixel of one frame on the CPU backends, by the output it computes
#: (ONNX Runtime, 8000x6000 still: 2.6, 4.2 and 5.0 GB). The graph's float intermediates at full
#: resolution are most of it (3.1 of the 4.2 GB of rgba); TensorRT keeps those on the GPU.
_PEAK_BYTES_PER_PIXEL = {"alpha": 54, "rgba": 88, "composite": 105}
#: A frame that costs more than this is said before it starts.
_LARGE_FRAME_BYTES = 2e9
#: Rough encoded bytes per pixel and frame, to warn before a long run that cannot fit on the disk.
_ENCODED_BYTES_PER_PIXEL = {"mov": 1.0, "png": 1.5, "mkv": 1.5, "webm": 0.1, "mp4": 0.1}


def bounded_batch(batch: int, frames: int | None, height: int, width: int, path: Path) -> int:
    """`batch`, cut to the clip's length and to what the available memory holds (one line if so)."""
    if frames:
        batch = min(batch, frames)  # a batch longer than the clip only costs memory
    fits = max(1, int(_available_memory() * _MEMORY_SHARE) // (_BYTES_PER_SLOT_PIXEL * height * width))
    if batch > fits:
        log.warning(
            "%s: --batch %d does not fit in memory at %dx%d; using %d", path, batch, width, height, fits
        )
        batch = fits
    return batch


def warn_if_large_frame(path: Path, height: int, width: int, contents: tuple[str, ...]) -> None:
    """One line before a frame size whose memory cost is large: a warning when it exceeds what is free."""
    # No outputs to write (only the preview is missing): the matte alone.
    need = max((_PEAK_BYTES_PER_PIXEL[c] for c in contents), default=_PEAK_BYTES_PER_PIXEL["alpha"])
    need *= height * width
    available = _available_memory()
    if need > available:
        log.warning(
            "%s: a %dx%d frame needs about %.1f GB of memory on the CPU backends, %.1f GB is available: "
            "expect swapping or the run to be killed (a smaller copy of the image costs less)",
            path,
            width,
            height,
            need / 1e9,
            available / 1e9,
        )
    elif need > _LARGE_FRAME_BYTES:
        log.info(
            "%s: a %dx%d frame takes about %.1f GB of memory on the CPU backends",
            path,
            width,
            height,
            need / 1e9,
        )


def warn_if_low_space(specs: tuple[OutputSpec, ...], frames: int | None, height: int, width: int) -> None:
    """One warning per output folder whose free space looks too small for what is about to be written."""
    if not frames:
        return
    need: dict[Path, float] = {}
    for spec in specs:
        per_pixel = _ENCODED_BYTES_PER_PIXEL.get(resolve_format(spec).name, 1.0)
        folder = Path(spec.path).parent
        need[folder] = need.get(folder, 0.0) + per_pixel * height * width * frames
    for folder, size in need.items():
        free = shutil.disk_usage(folder).free
        if free < size:
            log.warning(
                "%s: %.0f MB free, the outputs may need about %.0f MB; a full disk fails the file",
                folder,
                free / 1e6,
                size / 1e6,
            )


def _available_memory() -> int:
    """MemAvailable (free plus reclaimable cache) on Linux; free pages elsewhere."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
