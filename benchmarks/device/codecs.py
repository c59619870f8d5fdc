"""NVENC and NVDEC through PyAV: encoders and decoders that open, their fps at 1080p, outputs that decode."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.device.report import Skip


def _nvidia_codecs() -> Any:
    try:
        import av
    except ImportError as exc:
        raise Skip(f"PyAV is not installed ({exc}); place its wheel beside device_check.sh") from None
    return av


#: 1080p frames encoded and decoded by the NVENC/NVDEC steps.
_CODEC_FRAMES, _CODEC_SIZE = 120, (1920, 1080)


def _codec_frames(av: Any) -> list[Any]:
    width, height = _CODEC_SIZE
    yy, xx = np.mgrid[0:height, 0:width]
    frames = []
    for i in range(_CODEC_FRAMES):
        rgb = np.dstack([(xx + 4 * i) % 256, (yy + 2 * i) % 256, (xx + yy) % 256]).astype(np.uint8)
        frames.append(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p"))
    return frames


def _encode_with(av: Any, codec: str, frames: list[Any], path: Path, options: dict[str, str]) -> float:
    """fps of encoding `frames` with `codec` into an .mp4 at `path` (opening the encoder not timed)."""
    from fractions import Fraction

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=25, options=options)
        stream.width, stream.height, stream.pix_fmt = *_CODEC_SIZE, "yuv420p"
        stream.codec_context.open()
        started = time.perf_counter()
        for i, frame in enumerate(frames):
            frame.pts, frame.time_base = i, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        return len(frames) / (time.perf_counter() - started)


def _decoded_frames(av: Any, path: Path, decoder: str | None = None) -> tuple[int, float, list[int]]:
    """Frames decoded from `path` (by `decoder`, else FFmpeg's default), the fps, and their pts."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if decoder is not None:
            ctx = av.CodecContext.create(decoder, "r")
            ctx.extradata = stream.codec_context.extradata
            ctx.open()
        started = time.perf_counter()
        pts = [f.pts for p in container.demux(stream) if p.size for f in ctx.decode(p)]
        pts += [f.pts for f in ctx.decode(None)]
        return len(pts), len(pts) / (time.perf_counter() - started), sorted(p for p in pts if p is not None)


def nvenc() -> dict[str, Any]:
    """h264/hevc/av1_nvenc through PyAV: fps at 1080p and an output the CPU decoder reads back whole;
    an encoder that does not open is reported (GPUs without NVENC, e.g. H100/H200, have none)."""
    av = _nvidia_codecs()
    frames = _codec_frames(av)
    folder = Path(os.environ.get("OUT") or "/tmp")
    figures: dict[str, Any] = {}
    cpu_fps = _encode_with(av, "libx264", frames, folder / "libx264.mp4", {"preset": "veryfast"})
    figures["libx264_veryfast_fps"] = round(cpu_fps, 1)
    opened = 0
    for codec in ("h264_nvenc", "hevc_nvenc", "av1_nvenc"):
        path = folder / f"{codec}.mp4"
        try:
            fps = _encode_with(av, codec, frames, path, {"preset": "p4", "rc": "vbr", "cq": "19", "b": "0"})
        except av.FFmpegError as exc:
            figures[codec] = f"does not open: {exc.strerror}"
            continue
        count, _, _ = _decoded_frames(av, path)
        if count != len(frames):
            raise AssertionError(f"{codec}: {count} of {len(frames)} frames decode back")
        figures[f"{codec}_fps"] = round(fps, 1)
        figures[f"{codec}_decodes"] = f"{count} frames, {path.stat().st_size} bytes"
        opened += 1
    figures["nvenc_encoders_opened"] = opened
    return figures


def nvdec() -> dict[str, Any]:
    """h264_cuvid/hevc_cuvid through PyAV on a 1080p clip: fps against the CPU decoder, same frame count
    and pts; then the project's reader with decoder="nvdec" (its one-line fallback where it fails)."""
    av = _nvidia_codecs()
    folder = Path(os.environ.get("OUT") or "/tmp")
    frames = _codec_frames(av)[:60]  # libx265 makes the HEVC input on the CPU
    figures: dict[str, Any] = {}
    for codec, decoder in (("libx264", "h264_cuvid"), ("libx265", "hevc_cuvid")):
        path = folder / f"nvdec_{codec}.mp4"
        try:
            _encode_with(av, codec, frames, path, {"preset": "ultrafast"})
        except (av.FFmpegError, ValueError) as exc:
            figures[decoder] = f"no {codec} to make the input: {exc}"
            continue
        cpu_count, cpu_fps, cpu_pts = _decoded_frames(av, path)
        try:
            count, fps, pts = _decoded_frames(av, path, decoder)
        except av.FFmpegError as exc:
            figures[decoder] = f"does not open: {exc.strerror}"
            continue
        if (count, pts) != (cpu_count, cpu_pts):
            raise AssertionError(f"{decoder}: {count} frames, the CPU decoder {cpu_count}, or pts differ")
        figures[f"{decoder}_fps"] = round(fps, 1)
        figures[f"{decoder}_cpu_decoder_fps"] = round(cpu_fps, 1)
    try:
        from trt_modnet.video.reader import open_nvdec
    except ImportError as exc:
        figures["project_reader"] = f"not importable here: {exc}"
        return figures
    with av.open(str(folder / "nvdec_libx264.mp4")) as container:
        ctx = open_nvdec(container.streams.video[0], Path("nvdec_libx264.mp4"))
        figures["project_reader_opens"] = ctx.name if ctx is not None else "CPU fallback"
    return figures
