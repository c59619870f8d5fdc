"""`python -m trt_modnet.process INPUT... [options]`: the main job (also the `trt-modnet` command)."""

from __future__ import annotations

import argparse
import logging
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trt_modnet.cli import positive_int, run_main, setup_logging
from trt_modnet.errors import MattingError
from trt_modnet.graph.deploy import OUTPUTS
from trt_modnet.graph.official import DEFAULT_REF_SIZE, SIZE_MULTIPLE
from trt_modnet.graph.precision import PRECISIONS
from trt_modnet.job.api import process, settings_from
from trt_modnet.job.live import DROPS, is_stream_job
from trt_modnet.job.settings import JobSettings
from trt_modnet.job.summary import FileResult, print_summary
from trt_modnet.models import MODEL_ENV
from trt_modnet.models.registry import DEFAULT_MODEL, MODELS
from trt_modnet.runtime.select import BACKENDS
from trt_modnet.video import FORMATS
from trt_modnet.video.formats import TIMESTAMPS
from trt_modnet.video.streams import STREAM_FORMATS


def parse_args(argv: Sequence[str] | None) -> JobSettings:
    """The job the command line asks for, checked as `trt_modnet.process` checks its keywords."""
    return settings_from(parse_keywords(argv))


def parse_keywords(argv: Sequence[str] | None) -> dict[str, Any]:
    """The keywords of `trt_modnet.process` that the command line asks for."""
    args = _parser().parse_args(argv)
    return dict(
        inputs=list(args.inputs),
        output=args.output,
        mode=args.mode,
        rgba=args.rgba,
        alpha=args.alpha,
        composite=args.composite,
        format=args.format,
        background=args.background,
        model=args.model,
        backend=args.backend,
        precision=args.precision,
        batch=args.batch,
        ref_size=args.ref_size,
        threads=args.threads,
        start=args.start,
        duration=args.duration,
        preview=args.preview,
        overwrite=args.overwrite,
        recursive=args.recursive,
        quiet=args.quiet,
        progress=not args.quiet,
        audio=not args.no_audio,
        audio_out=args.audio_out,
        timestamps=args.timestamps,
        codec_options=tuple(_key_value(kv) for kv in args.codec_opt),
        encoder=args.encoder,
        decoder=args.decoder,
        stream=args.stream,
        engines=args.engines,
        ofd=args.ofd,
        ray=args.ray,
        segment_seconds=args.segment_seconds,
        live=args.live,
        drop=args.drop,
        max_latency=args.max_latency,
        idle_timeout=args.idle_timeout,
        input_format=args.input_format,
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trt_modnet.process",
        description="Portrait matting for video and images with MODNet: writes the person with a real alpha "
        "channel (ProRes 4444 .mov by default), the matte, or a composite over a colour, image or video, "
        "keeping audio and frame timing.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video or image files, folders, or globs")
    p.add_argument("-o", "--output", help="output file (one input) or folder (several inputs)")
    p.add_argument(
        "--mode",
        type=_modes,
        help="what to write: rgba (default; ProRes 4444 .mov), alpha (the matte; .mp4), composite "
        "(over --background; .mp4); a comma list writes several in one pass. "
        "Images default to rgba,alpha PNGs",
    )
    for mode in OUTPUTS:
        p.add_argument(f"--{mode}", type=Path, metavar="PATH", help=f"also write the {mode} output to PATH")
    p.add_argument(
        "--format",
        choices=(*FORMATS, *STREAM_FORMATS),
        help="container/codec, instead of the output's extension (nut, ts: streams, e.g. -o -)",
    )
    p.add_argument(
        "--background", help="composite background: colour name, #RRGGBB, image or video (default green)"
    )
    p.add_argument(
        "--model",
        help=f"{', '.join(MODELS)}, a MODNet .onnx or .ckpt, or a URL (#sha256=HEX pins it); default: "
        f"${MODEL_ENV}, else {DEFAULT_MODEL} (downloaded and cached on first use)",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="auto (default): TensorRT on a usable NVIDIA GPU, else the fastest faithful CPU backend",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto (default): fp16 on TensorRT, on CPUs with native bf16 the recipe the precision gate "
        "measured for the model (OpenVINO, docs/cpu.md), else fp32",
    )
    p.add_argument("--batch", type=positive_int, default=4, help="frames per inference batch (default 4)")
    p.add_argument("--ref-size", type=_ref_size, default=DEFAULT_REF_SIZE, help="MODNet ref size (512)")
    p.add_argument(
        "--threads", type=positive_int, help="inference threads (default: all cores, shared with the codecs)"
    )
    p.add_argument("--start", type=_seconds, help="start at this time (seconds or [HH:]MM:SS[.ms])")
    p.add_argument("--duration", type=_seconds, help="process only this long (seconds or [HH:]MM:SS)")
    p.add_argument("--preview", type=Path, metavar="PNG", help="also write a contact sheet to PNG")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip)")
    p.add_argument("-r", "--recursive", action="store_true", help="look into subfolders of folder inputs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    p.add_argument("--no-audio", action="store_true", help="drop the audio")
    p.add_argument("--audio-out", type=Path, help="for PNG sequences: write the audio to this file")
    p.add_argument(
        "--timestamps",
        choices=TIMESTAMPS,
        help="keep the source's times (default for .mov, .mkv, PNG) or start at 0 (default for .mp4, .webm)",
    )
    p.add_argument(
        "--codec-opt", action="append", default=[], metavar="KEY=VALUE", help="encoder option (repeatable)"
    )
    p.add_argument(
        "--encoder",
        default="auto",
        metavar="NAME|auto",
        help="the video encoder: auto (default: each format's own, NVENC for .mp4 beside a GPU, CPU if "
        "it does not open), or a name: prores_ks, prores_aw (.mov), libx264, h264_nvenc, hevc_nvenc (.mp4)",
    )
    p.add_argument(
        "--decoder",
        choices=("auto", "cpu", "nvdec"),
        default="auto",
        help="auto (default): NVDEC for H.264/HEVC beside a GPU, else the CPU; nvdec falls back in one line",
    )
    p.add_argument(
        "--ofd", action="store_true", help="one-frame-delay smoothing against matte flicker (MODNet paper)"
    )
    p.add_argument("--stream", type=int, help="video stream index (default: the first)")
    p.add_argument("--engines", type=Path, default=Path("engines"), help="TensorRT engine cache folder")
    p.add_argument(
        "--ray",
        metavar="local|auto|ADDRESS",
        help="run the files on Ray workers: local starts Ray on this machine, auto or ADDRESS joins a "
        "cluster (needs the ray extra)",
    )
    p.add_argument(
        "--segment-seconds",
        type=_positive_seconds,
        metavar="N",
        help="with --ray: split each video at keyframes into pieces of about N seconds that run in "
        "parallel, joined losslessly into one output (.mov, .mkv, .mp4, PNG)",
    )
    _stream_arguments(p)
    return p


def _modes(text: str) -> str:
    bad = [m for m in text.split(",") if m not in OUTPUTS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown mode {bad[0]!r}: choose from {', '.join(OUTPUTS)}")
    return text


def _ref_size(text: str) -> int:
    value = positive_int(text)
    if value < SIZE_MULTIPLE:
        raise argparse.ArgumentTypeError(
            f"must be at least {SIZE_MULTIPLE} (MODNet's smallest input), got {value}"
        )
    return value


def _seconds(text: str) -> float:
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (seconds or [HH:]MM:SS[.ms])") from None
    value = 0.0
    for part in parts:
        value = value * 60 + part
    if value < 0 or len(parts) > 3:
        raise argparse.ArgumentTypeError(f"not a time: {text!r}")
    return value


def _stream_arguments(p: argparse.ArgumentParser) -> None:
    """Streams, URLs and cameras (trt_modnet.job.live, docs/streams.md)."""
    p.add_argument("--input-format", metavar="NAME", help="FFmpeg demuxer for - or a URL (default: probed)")
    p.add_argument(
        "--live",
        action=argparse.BooleanOptionalAction,
        help="a live source: latency budget, frames dropped when late (default for URLs and cameras)",
    )
    p.add_argument("--drop", choices=DROPS, help="late (default when live): drop frames over --max-latency")
    p.add_argument(
        "--max-latency", type=_positive_seconds, default=0.5, metavar="S", help="live latency budget (0.5 s)"
    )
    p.add_argument(
        "--idle-timeout",
        type=_positive_seconds,
        default=10.0,
        metavar="S",
        help="end a stream that sends nothing for S seconds (10)",
    )


def _positive_seconds(text: str) -> float:
    negative = text.strip().startswith("-")
    value = _seconds(text.strip().removeprefix("-"))
    if negative or not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return value


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise MattingError(f"--codec-opt {text!r}: expected KEY=VALUE")
    return key, value


def main(argv: Sequence[str] | None = None) -> int:
    keywords = parse_keywords(argv)
    setup_logging(logging.WARNING if keywords["quiet"] else logging.INFO)
    results = process(**keywords)
    if not keywords["quiet"] and not is_stream_job(settings_from(keywords)):  # streams say their own
        print_summary(results)
    failed = [r for r in results if r.failed]
    if any("internal error" in r.status for r in failed):
        return 1
    return 2 if failed else 0


def console_main() -> None:
    raise SystemExit(run_main(main))


class _CallableModule(types.ModuleType):
    """`import trt_modnet.process` rebinds the package's `process` to this module: keep it callable, so
    that `trt_modnet.process(...)` is the API function whichever was imported first."""

    def __call__(self, *args: Any, **kwargs: Any) -> list[FileResult]:
        return process(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    console_main()
