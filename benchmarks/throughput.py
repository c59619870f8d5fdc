"""The throughput harness: every stage alone, the main job end to end, and the naive loop, on one input.

`python -m benchmarks.throughput [--video V] [--model M.onnx] [--backend B ...] [--precision P ...]
[--batch 1 4] [--json OUT]` (or `python benchmarks/throughput.py ...`). See benchmarks/README.md for what
each figure means. Every backend and precision this machine can run is measured, side by side in one run
(repeats interleaved), unless `--backend`/`--precision` narrow the set; the first configuration is the
headline one (`figures`), every configuration is under `figures.configs`. This module is the command;
the measurements and their method are in benchmarks/harness/.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as `python benchmarks/throughput.py`: make `benchmarks` importable as with -m
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import logging
import tempfile
from collections.abc import Sequence
from typing import Any

from benchmarks.harness.run import run_benchmark
from benchmarks.harness.settings import DEFAULT_CHECKPOINT, DEFAULT_VIDEO, BenchSettings, default_model
from trt_modnet.cli import positive_int, run_main
from trt_modnet.errors import MattingError
from trt_modnet.graph.modelfile import load_modnet
from trt_modnet.graph.official import DEFAULT_REF_SIZE
from trt_modnet.job.threads import available_cores
from trt_modnet.runtime.select import BACKEND_PRECISIONS, choose
from trt_modnet.video import FORMATS

log = logging.getLogger("trt_modnet.benchmarks")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.throughput",
        description="Measure decode-only, inference-only, encode-only and end-to-end fps of trt_modnet on "
        "one video, the official-demo-style naive loop, and the main job's peak memory on a short and a "
        "long input.",
    )
    p.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="input video (default: shared 720p)")
    p.add_argument("--model", type=Path, help="MODNet ONNX (default: export --checkpoint into a temp folder)")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="used when --model is absent")
    p.add_argument(
        "--backend",
        nargs="+",
        choices=tuple(b for b in BACKEND_PRECISIONS),
        help="backends to measure (default: every one this machine can run)",
    )
    p.add_argument(
        "--precision", nargs="+", help="precisions to measure (default: every one each backend can run here)"
    )
    p.add_argument("--batch", type=positive_int, nargs="+", default=[1, 4], help="batch sizes (default 1 4)")
    p.add_argument("--ref-size", type=positive_int, default=DEFAULT_REF_SIZE, help="MODNet ref size (512)")
    p.add_argument("--content", choices=("rgba", "alpha", "composite"), default="rgba", help="output (rgba)")
    p.add_argument("--format", choices=tuple(FORMATS), help="output format (default: the content's default)")
    p.add_argument("--frames", type=positive_int, default=40, help="timed frames per measurement (40)")
    p.add_argument("--repeat", type=positive_int, default=1, help="repeat each measurement; medians reported")
    p.add_argument("--threads", type=positive_int, help="inference threads (default: the job's budget)")
    p.add_argument("--engines", type=Path, default=Path("engines"), help="TensorRT engine cache folder")
    p.add_argument("--no-naive", action="store_true", help="skip the naive loop and the like-for-like run")
    p.add_argument("--no-memory", action="store_true", help="skip the short/long peak memory runs")
    p.add_argument("--memory-long-seconds", type=float, default=60.0, help="long input length (60 s)")
    p.add_argument("--memory-ref-size", type=positive_int, default=128, help="ref size of memory runs (128)")
    p.add_argument("--memory-content", choices=("rgba", "alpha", "composite"), default="alpha")
    p.add_argument("--memory-format", choices=tuple(FORMATS), default="mp4", help="memory runs' format (mp4)")
    p.add_argument("--encoder", default="auto", help="the job's --encoder (default auto: the format's own)")
    p.add_argument(
        "--encoders",
        type=positive_int,
        nargs="*",
        metavar="HEIGHT",
        help="also measure encode-only fps of each ProRes encoder, threads and instances at these heights "
        "(benchmarks.encoders; none given: 720)",
    )
    p.add_argument("--json", type=Path, metavar="OUT", help="write the results here")
    p.add_argument("--plot", type=Path, metavar="PNG", help="draw fps by stage and by batch size")
    p.add_argument("--workdir", type=Path, help="keep outputs and child logs here (default: a temp folder)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="trt_modnet_bench_") as tmp:
        work = (args.workdir or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        model = args.model.resolve() if args.model else default_model(args.checkpoint.resolve(), work)
        load_modnet(model)  # a bad model fails now, not after the first measurements
        settings = BenchSettings(
            video=args.video.resolve(),
            model=model,
            configs=available_configs(args.backend, args.precision),
            batches=tuple(dict.fromkeys(args.batch)),
            ref_size=args.ref_size,
            content=args.content,
            format=args.format,
            frames=args.frames,
            repeat=args.repeat,
            threads=args.threads,
            engines=args.engines.resolve(),
            naive=not args.no_naive,
            memory_long_seconds=None if args.no_memory else args.memory_long_seconds,
            memory_ref_size=args.memory_ref_size,
            memory_content=args.memory_content,
            memory_format=args.memory_format,
            encoder=args.encoder,
        )
        result = run_benchmark(settings, work)
        if args.encoders is not None:
            from benchmarks.encoders import measure as measure_encoders

            heights = args.encoders or [720]
            result["encoders"] = measure_encoders(args.video, heights, args.repeat, available_cores())
    if argv is not None:  # called as a function: sys.orig_argv is the caller's, not this command
        result["command"] = ["python", "-m", "benchmarks.throughput", *argv]
    _write_outputs(result, args.json, args.plot)
    return 0


def available_configs(
    backends: Sequence[str] | None, precisions: Sequence[str] | None
) -> tuple[tuple[str, str], ...]:
    """Every (backend, precision) asked for that this machine runs; the faster CPU ones first."""
    order = ("tensorrt", "openvino", "onnxruntime")
    found = []
    for backend in order:
        if backends and backend not in backends:
            continue
        for precision in BACKEND_PRECISIONS[backend]:
            if precisions and precision not in precisions:
                continue
            try:
                choose(backend, precision)
            except MattingError as exc:
                log.info("not measured: %s %s (%s)", backend, precision, exc)
                continue
            found.append((backend, precision))
    if not found:
        raise MattingError("no backend and precision asked for can run on this machine")
    return tuple(found)


def _write_outputs(result: dict[str, Any], json_path: Path | None, plot_path: Path | None) -> None:
    text = json.dumps(result, indent=2)
    if json_path is None:
        print(text)
    else:
        json_path.write_text(text + "\n")
        log.info("wrote %s", json_path)
    if plot_path is not None:
        from benchmarks.plot import plot_results  # matplotlib: a benchmark-only dependency

        plot_results(result, plot_path)
        log.info("wrote %s", plot_path)


if __name__ == "__main__":
    raise SystemExit(run_main(main))
