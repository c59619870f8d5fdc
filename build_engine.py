"""`python build_engine.py MODEL.onnx`: MODNet ONNX -> FP16 deployment graph -> TensorRT engine in engines/.

Needs TensorRT (10.12+ or 11.x) and an NVIDIA GPU: `pip install 'trt_modnet[trt]'`. `--validate` runs the
engine on real frames and compares it with the FP32 graph in ONNX Runtime.
"""

from __future__ import annotations

import argparse
import logging
import re
import time
from argparse import Namespace
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from trt_modnet.cli import run_main
from trt_modnet.errors import MattingError
from trt_modnet.graph.official import DEFAULT_REF_SIZE
from trt_modnet.runtime.base import Runner
from trt_modnet.tensorrt import (
    DEFAULT_BATCH,
    MATTE,
    PRESETS,
    BuildSettings,
    EngineLoader,
    EngineRecord,
    FixedEngine,
    FrameProfile,
    FrameShape,
    input_ranges,
    profile_taps,
    tensorrt_unavailable_reason,
)

if TYPE_CHECKING:
    import onnx

    from trt_modnet.graph.deploy import DeploySpec

log = logging.getLogger("trt_modnet")

OUTPUT_CHOICES = ("alpha", "rgba", "composite")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
#: Validation fails above this mean |delta| (in 1/255) between the engine and the FP32 graph.
DEFAULT_MAX_MEAN_DELTA = 1.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python build_engine.py",
        description="Build a TensorRT engine of the FP16 deployment graph of a MODNet ONNX (official "
        "export or `python -m trt_modnet.export`) into the engines folder, named by a cache key and "
        "described by a JSON beside it. An existing engine with the same key is reused. Needs TensorRT "
        "10.12+ or 11.x and an NVIDIA GPU: pip install 'trt_modnet[trt]'.",
        epilog="Frame shapes are NxHxW (batch x height x width). Without --profile or --min/--opt/--max the "
        f"engine covers 1080p landscape frames in batches of 1 to {DEFAULT_BATCH}. "
        f"Presets: {', '.join(PRESETS)}.",
    )
    p.add_argument(
        "model",
        nargs="?",
        help="a model name (photographic, webcam), a MODNet .onnx or .ckpt, or a URL (#sha256=HEX pins it); "
        "default: $TRT_MODNET_MODEL, else photographic (downloaded and cached on first use)",
    )
    p.add_argument(
        "--outputs",
        type=_outputs,
        default=("rgba",),
        help="comma list of graph outputs: alpha, rgba, composite (default rgba); must match what "
        "`process` asks for, or it builds its own engine",
    )
    p.add_argument(
        "--ref-size", type=int, default=DEFAULT_REF_SIZE, help="MODNet reference size (default 512)"
    )
    p.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="NAME",
        help=f"a preset optimisation profile, repeatable: {', '.join(PRESETS)} "
        "(exactly that frame size, batches of 1 to --batch)",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_BATCH,
        help=f"largest batch of the presets, and the one they are tuned for (default {DEFAULT_BATCH})",
    )
    p.add_argument(
        "--min", type=FrameShape.from_text, metavar="NxHxW", help="explicit profile: smallest frames"
    )
    p.add_argument(
        "--opt", type=FrameShape.from_text, metavar="NxHxW", help="explicit profile: frames tuned for"
    )
    p.add_argument(
        "--max", type=FrameShape.from_text, metavar="NxHxW", help="explicit profile: largest frames"
    )
    p.add_argument(
        "--workspace",
        type=parse_bytes,
        default="4G",
        help="builder workspace limit, e.g. 4G or 512M (default 4G)",
    )
    p.add_argument(
        "--opt-level",
        type=int,
        default=3,
        choices=range(6),
        help="TensorRT builder optimisation level (default 3)",
    )
    p.add_argument("--engines", type=Path, default=Path("engines"), help="engine folder (default engines/)")
    p.add_argument("--rebuild", action="store_true", help="build even if an engine with the same key exists")
    p.add_argument(
        "--print-profiles",
        action="store_true",
        help="print the min/opt/max shape of every engine input for the profiles asked for, then exit "
        "(no build; needs neither TensorRT nor a GPU)",
    )
    p.add_argument(
        "--validate",
        nargs="+",
        type=Path,
        metavar="MEDIA",
        help="videos or images: run the engine on their frames (resized to each profile's opt size) and "
        "compare with the FP32 graph in ONNX Runtime; prints mean/max |delta| and NaN/Inf counts",
    )
    p.add_argument("--frames", type=int, default=8, help="frames read from each --validate file (default 8)")
    p.add_argument(
        "--max-mean-delta",
        type=float,
        default=DEFAULT_MAX_MEAN_DELTA,
        help=f"validation fails (exit 1) above this mean |delta| in 1/255 (default {DEFAULT_MAX_MEAN_DELTA})",
    )
    args = p.parse_args(argv)
    explicit = (args.min, args.opt, args.max)
    if any(explicit) and not all(explicit):
        p.error("--min, --opt and --max go together")
    if args.batch < 1 or args.frames < 1:
        p.error("--batch and --frames must be at least 1")
    return args


def _outputs(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in OUTPUT_CHOICES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"outputs must be among {', '.join(OUTPUT_CHOICES)}, got {text!r}")
    return names


def parse_bytes(text: str) -> int:
    """'4G', '512M', '1.5G' or a plain number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected e.g. 4G, 512M or a number of bytes")
    scale = 1 << (10 * " KMGT".index(match.group(2).upper() or " "))
    return int(float(match.group(1)) * scale)


def frame_profiles(args: argparse.Namespace) -> list[FrameProfile]:
    profiles = [FrameProfile.preset(name, args.batch) for name in args.profile]
    if args.min is not None:
        profiles.append(FrameProfile(args.min, args.opt, args.max))
    return profiles or [FrameProfile.preset("1080p", args.batch)]


def print_profiles(profiles: Sequence[FrameProfile], spec: DeploySpec) -> None:
    """What an engine built for these profiles will accept, input by input."""
    from trt_modnet.graph.deploy import size_feeds

    for index, profile in enumerate(profiles):
        ranges = input_ranges(spec, profile, size_feeds)
        taps = profile_taps(ranges["frames"], spec.ref_size)
        print(f"profile {index}: {profile} (every resize axis padded to {taps} taps)")
        for name, r in ranges.items():
            print(f"  {name:14s} min {list(r.min)}  opt {list(r.opt)}  max {list(r.max)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.print_profiles:
        from trt_modnet.graph.deploy import DeploySpec

        print_profiles(
            frame_profiles(args), DeploySpec(outputs=args.outputs, ref_size=args.ref_size, fp16=True)
        )
        return 0
    reason = tensorrt_unavailable_reason()
    if reason is not None:
        raise MattingError(f"cannot build TensorRT engines here: {reason}")
    from trt_modnet.graph.deploy import DeploySpec, build
    from trt_modnet.graph.modelfile import load_modnet
    from trt_modnet.models import resolve_model

    profiles = frame_profiles(args)
    modnet = load_modnet(resolve_model(args.model))
    spec = DeploySpec(outputs=args.outputs, ref_size=args.ref_size, fp16=True)
    loader = EngineLoader(
        build(modnet, spec),
        spec,
        engines_dir=args.engines,
        settings=BuildSettings(workspace_bytes=args.workspace, opt_level=args.opt_level),
    )
    try:
        ranges = [loader.ranges(p) for p in profiles]
        record = None if args.rebuild else loader.cached(ranges)
        if record is None:
            log.info(
                "building a TensorRT %s engine on %s for %s (minutes)",
                loader.target.tensorrt,
                loader.target.gpu,
                "; ".join(map(str, profiles)),
            )
            record = loader.build(ranges)
        else:
            log.info("up to date (same key): reusing it")
        print(loader.store.engine_path(record))
        if args.validate:
            reference = build(modnet, replace(spec, fp16=False))
            return 0 if validate(loader, record, reference, args) else 1
        return 0
    finally:
        loader.close()


@dataclass(frozen=True)
class Delta:
    """|engine - reference| over one output, in units of 1/255 for uint8 outputs."""

    name: str
    mean: float
    max: float
    p999: float


def compare(engine: np.ndarray, reference: np.ndarray, name: str) -> Delta:
    delta = np.abs(engine.astype(np.float32) - reference.astype(np.float32))
    return Delta(name, float(delta.mean()), float(delta.max()), float(np.percentile(delta, 99.9)))


def nonfinite(values: np.ndarray) -> tuple[int, int]:
    """(NaN count, Inf count)."""
    return int(np.isnan(values).sum()), int(np.isinf(values).sum())


def validate(loader: EngineLoader, record: EngineRecord, reference: onnx.ModelProto, args: Namespace) -> bool:
    """Every profile at its opt size on real frames: engine vs FP32 graph in ONNX Runtime: pass or fail."""
    from trt_modnet.runtime.onnxrt import OnnxRuntimeRunner
    from trt_modnet.tensorrt import TensorRTRunner

    media = read_frames(args.validate, args.frames)
    ok = True
    for index, ranges in enumerate(record.profiles):
        batch, height, width, _ = ranges["frames"].opt
        frames = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in media])
        frames = with_partial_batch(frames, batch)
        outputs = (*record.outputs, MATTE) if record.matte else record.outputs
        started = time.perf_counter()
        with TensorRTRunner(FixedEngine(loader, record, index), outputs=outputs, depth=2) as runner:
            ours = run_all(runner, frames, batch)
        seconds = time.perf_counter() - started
        with TensorRTRunner(FixedEngine(loader, record, index), outputs=outputs, depth=1) as runner:
            one_at_a_time = run_all(runner, frames, batch)
        with OnnxRuntimeRunner(reference, threads=2, depth=1) as runner:
            theirs = run_all(runner, frames, batch)
        print(
            f"profile {index}: {len(frames)} frames at {width}x{height}, batches of {batch}, two in flight "
            f"({seconds:.1f} s)"
        )
        ok &= report_same(ours, one_at_a_time)
        ok &= report(ours, theirs, record.outputs, max_mean_delta=args.max_mean_delta)
    print(
        "validation passed"
        if ok
        else f"validation FAILED (mean |delta| > {args.max_mean_delta}/255 or NaN/Inf)"
    )
    return ok


def report(
    ours: dict[str, np.ndarray],
    theirs: dict[str, np.ndarray],
    outputs: Sequence[str],
    *,
    max_mean_delta: float,
) -> bool:
    """Print one comparison's figures; True when each mean |delta| is within bounds and nothing is NaN/Inf."""
    ok = True
    for name in outputs:
        d = compare(ours[name], theirs[name], name)
        print(f"  {name:10s} mean |delta| {d.mean:.3f}/255  max {d.max:.0f}/255  99.9% {d.p999:.0f}/255")
        ok &= d.mean <= max_mean_delta
    if MATTE in ours:
        nans, infs = nonfinite(ours[MATTE])
        print(f"  {MATTE:10s} (float, network size) NaN {nans}  Inf {infs}")
        ok &= nans == infs == 0
    else:
        print(f"  {MATTE:10s} NaN/Inf not checked: the engine does not expose MODNet's float matte")
    return ok


def with_partial_batch(frames: np.ndarray, batch: int) -> np.ndarray:
    """The frames, plus some again when needed so that the last batch is a partial one (batch > 1)."""
    if batch == 1 or len(frames) % batch:
        return frames
    return np.concatenate([frames, frames[: batch - 1]])


def report_same(ours: dict[str, np.ndarray], one_at_a_time: dict[str, np.ndarray]) -> bool:
    """Batches in flight must give the bytes of batches run one at a time (slots, streams, events)."""
    different = [name for name in ours if not np.array_equal(ours[name], one_at_a_time[name], equal_nan=True)]
    verdict = f"DIFFERENT in {', '.join(different)}" if different else "identical"
    print(f"  two batches in flight vs one at a time: {verdict}")
    return not different


def run_all(runner: Runner, frames: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    """Every frame through a runner, `batch` at a time, with as many batches in flight as the runner
    takes (a mid-grey background for composites)."""
    n, height, width, _ = frames.shape
    runner.prepare(height, width, batch)
    grey = np.full((1, height, width, 3), 128, np.uint8)
    parts: dict[str, list[np.ndarray]] = {}
    tickets: deque[int] = deque()

    def collect() -> None:
        for name, value in runner.result(tickets.popleft()).items():
            parts.setdefault(name, []).append(value)

    for start in range(0, n, batch):
        feeds = {"frames": frames[start : start + batch]}
        if "composite" in runner.outputs:
            feeds["background"] = grey
        if len(tickets) == runner.inflight.depth:
            collect()
        tickets.append(runner.submit(feeds))
    while tickets:
        collect()
    return {name: np.concatenate(values) for name, values in parts.items()}


def read_frames(paths: Sequence[Path], count: int) -> list[np.ndarray]:
    """Up to `count` RGB frames from each video, or the image itself."""
    frames: list[np.ndarray] = []
    for path in paths:
        if not path.is_file():
            raise MattingError(f"{path}: no such file")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise MattingError(f"{path}: not a readable image")
            frames.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        else:
            frames.extend(_video_frames(path, count))
    return frames


def _video_frames(path: Path, count: int) -> list[np.ndarray]:
    import av

    try:
        with av.open(str(path)) as container:
            frames = []
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == count:
                    break
    except (av.FFmpegError, IndexError) as exc:
        raise MattingError(f"{path}: not a readable video ({exc})") from None
    if not frames:
        raise MattingError(f"{path}: no video frames")
    return frames


if __name__ == "__main__":
    raise SystemExit(run_main(main))
