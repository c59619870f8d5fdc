"""Encode-only speed of the ProRes encoders per size, threads and instances; their quality and bitstream.

`python -m benchmarks.encoders [--video V] [--sizes 720 1080 2160] [--repeat 3] [--json OUT]`.
`benchmarks.throughput --encoders` runs it beside its own figures.

Method: frames of the video (resized with INTER_AREA/CUBIC to each height), with a soft-edged moving
figure as alpha (zero around it, as MODNet's mattes), converted once to yuva444p10le (the writer's
conversion is not timed); each configuration (encoder x threads x instances) encodes the same frames
into an in-memory .mov, the configurations interleaved in each of `repeat` rounds, and the median fps is
kept, so a loaded machine slows all of them alike. Quality: PSNR of the colour planes decoded back to
8-bit RGB against the source, the alpha compared after the decoder's 12-bit alpha is rounded to 8 bits,
by FFmpeg through PyAV and by the system's `ffmpeg` CLI where one is installed (another build of the
decoder); bitstream facts are read from the first frame header (`icpf`, Apple ProRes RDD 36).
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import io
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import cv2
import numpy as np

from benchmarks.parity import write_result
from trt_modnet.video.encoders import ALTERNATIVES
from trt_modnet.video.parallel import ParallelEncoder, prepare_instance

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_VIDEO = SHARED / "data" / "videos" / "juggle_720p.mp4"
METHOD = " ".join(__doc__.split("Method: ", 1)[1].split()) if __doc__ else ""
PIXEL_FORMAT = "yuva444p10le"
BT709 = 1


@dataclass(frozen=True)
class Config:
    codec: str
    threads: int  # FFmpeg's own threads in one encoder (0: one per core)
    instances: int  # encoders side by side (`ParallelEncoder`), one thread each

    @property
    def label(self) -> str:
        if self.instances > 1:
            return f"{self.codec} x{self.instances} instances"
        return f"{self.codec} {self.threads or 'auto'} thread{'s' if self.threads != 1 else ''}"


def source_frames(video: Path, height: int, count: int) -> list[np.ndarray]:
    """`count` RGBA frames of `video` at `height` (width to keep the aspect) with a portrait-like matte."""
    rgb = []
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            rgb.append(frame.to_ndarray(format="rgb24"))
            if len(rgb) == count:
                break
    h, w = rgb[0].shape[:2]
    width = round(w * height / h / 2) * 2
    interpolation = cv2.INTER_AREA if height < h else cv2.INTER_CUBIC
    frames = []
    for i, image in enumerate(rgb):
        image = cv2.resize(image, (width, height), interpolation=interpolation)
        frames.append(np.dstack([image, _matte(height, width, i)]))
    return frames


def _matte(height: int, width: int, index: int) -> np.ndarray:
    """A matte shaped like MODNet's: zero, a soft-edged figure (an opaque disc with a 1/8-wide
    ramp around it, every level 0-255) that moves with `index`."""
    yy, xx = np.mgrid[0:height, 0:width]
    cx, cy, r = width * (0.4 + 0.01 * index), height * 0.5, height * 0.3
    distance = np.hypot(xx - cx, yy - cy)
    edge = height / 8
    return np.clip((r + edge - distance) * 255 / edge, 0, 255).round().astype(np.uint8)


def to_yuva(frames: list[np.ndarray]) -> list[av.VideoFrame]:
    out = []
    for image in frames:
        frame = av.VideoFrame.from_ndarray(image, format="rgba").reformat(
            format=PIXEL_FORMAT, dst_colorspace="ITU709", dst_color_range="MPEG"
        )
        frame.color_primaries = frame.color_trc = frame.colorspace = BT709
        frame.color_range = 1
        out.append(frame)
    return out


def encode(config: Config, frames: list[av.VideoFrame]) -> tuple[float, bytes]:
    """Seconds to encode `frames` (container start and flush included, a few ms), and the .mov."""
    buffer = io.BytesIO()
    options = (
        dict(ALTERNATIVES["mov"][config.codec]["rgba"])
        if config.codec == "prores_aw"
        else {
            "profile": "4444",
            "vendor": "apl0",
        }
    )
    with av.open(buffer, "w", format="mov") as container:
        stream = container.add_stream(config.codec, options=options)
        ctx = stream.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = frames[0].width, frames[0].height, PIXEL_FORMAT
        stream.time_base = ctx.time_base = Fraction(1, 25)
        ctx.color_primaries = ctx.color_trc = ctx.colorspace = BT709
        ctx.color_range = 1
        if config.instances > 1:
            prepare_instance(ctx)
        else:
            ctx.thread_type, ctx.thread_count = "AUTO", config.threads
        ctx.open()
        parallel = ParallelEncoder(stream, config.instances, options) if config.instances > 1 else None
        try:
            start = time.perf_counter()
            for i, frame in enumerate(frames):
                frame.pts, frame.time_base = i, Fraction(1, 25)
                container.mux(parallel.encode(frame) if parallel else stream.encode(frame))
            container.mux(parallel.flush() if parallel else stream.encode(None))
            seconds = time.perf_counter() - start
        finally:
            if parallel:
                parallel.close()
    return seconds, buffer.getvalue()


def quality(mov: bytes, source: list[np.ndarray]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "out.mov"
        path.write_bytes(mov)
        facts = bitstream(path)
        decoded = {"pyav": decode_pyav(path)}
        if shutil.which("ffmpeg"):
            decoded["ffmpeg_cli"] = decode_cli(path, source[0].shape)
    result: dict[str, Any] = {"bitstream": facts, "bytes_per_frame": len(mov) // len(source)}
    for name, frames in decoded.items():
        colour = np.stack([f[..., :3] for f in frames]).astype(np.float64)
        mse = np.mean((colour - np.stack([s[..., :3] for s in source])) ** 2)
        alpha_error = max(
            int(np.abs(f[..., 3].astype(int) - s[..., 3]).max()) for f, s in zip(frames, source, strict=True)
        )
        result[name] = {
            "colour_psnr_db": round(10 * np.log10(255**2 / mse), 2),
            "alpha_max_error": alpha_error,
        }
    return result


def decode_pyav(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        wide = [f.to_ndarray(format="rgba64le") for f in container.decode(video=0)]
    return [np.round(w.astype(np.float64) * 255 / 65535).astype(np.uint8) for w in wide]


def decode_cli(path: Path, shape: tuple[int, ...]) -> list[np.ndarray]:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgba64le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    wide = np.frombuffer(raw, np.uint16).reshape(-1, shape[0], shape[1], 4)
    return list(np.round(wide.astype(np.float64) * 255 / 65535).astype(np.uint8))


def bitstream(path: Path) -> dict[str, Any]:
    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        tag, profile = ctx.codec_tag, ctx.profile
        raw = bytes(next(container.demux(video=0)))
    header = raw[raw.index(b"icpf") + 4 :]
    alpha = header[17] & 0x0F
    return {
        "fourcc": tag,
        "profile": profile,
        "vendor": header[4:8].decode("latin-1"),
        "frame_header_primaries_transfer_matrix": list(header[14:17]),
        "alpha_bits": {0: 0, 1: 8, 2: 16}.get(alpha, alpha),
    }


def configs(cores: int) -> list[Config]:
    found = []
    for codec in ("prores_ks", "prores_aw"):
        found += [Config(codec, 1, 1), Config(codec, 0, 1)]
        if cores > 1:
            found.append(Config(codec, 1, cores))
    return found


def measure(video: Path, sizes: Sequence[int], repeat: int, cores: int) -> dict[str, Any]:
    """Median encode-only fps of every configuration per size, and each encoder's quality."""
    out: dict[str, Any] = {}
    for height in sizes:
        count = max(3, round(12 * (720 / height) ** 2))
        source = source_frames(video, height, count)
        frames = to_yuva(source)
        runs: dict[str, list[float]] = {}
        movs: dict[str, bytes] = {}
        for _ in range(repeat):
            for config in configs(cores):
                seconds, mov = encode(config, frames)
                runs.setdefault(config.label, []).append(len(frames) / seconds)
                movs.setdefault(config.codec, mov)
        out[f"{height}p"] = {
            "frames": len(frames),
            "fps": {label: round(statistics.median(v), 2) for label, v in runs.items()},
            "fps_runs": {label: [round(x, 2) for x in v] for label, v in runs.items()},
            "quality": {codec: quality(mov, source) for codec, mov in movs.items()},
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.machine import command, load_average, system_info, versions
    from trt_modnet.job.threads import available_cores

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    p.add_argument("--sizes", type=int, nargs="+", default=[720, 1080, 2160])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    cores = available_cores()
    load_before = load_average()
    result = {
        "command": command(),
        "method": METHOD,
        "system": system_info(),
        "versions": versions(),
        "cores": cores,
        "encoders": measure(args.video, args.sizes, args.repeat, cores),
        "load_average_before_after": [load_before, load_average()],
    }
    if args.json:
        write_result(args.json, result)
    else:
        import json

        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
