"""The throughput harness: every stage alone, the main job end to end, and the naive loop, on one input.

`python -m benchmarks.throughput [--video V] [--model M.onnx] [--backend B ...] [--precision P ...]
[--batch 1 4] [--json OUT]` (or `python benchmarks/throughput.py ...`). See benchmarks/README.md for what
each figure means. Every backend and precision this machine can run is measured, side by side in one run
(repeats interleaved), unless `--backend`/`--precision` narrow the set; the first configuration is the
headline one (`figures`), every configuration is under `figures.configs`.

Method: throughput is steady-state, measured the same way for every contender. Fixed costs (process
start, imports, model load, graph build, session or engine creation, encoder start and flush) are
excluded. Decode-only and inference-only run the first W frames untimed (W = the largest batch times the
batches in flight, so that every slot's first run, which allocates, is untimed), then time the next N.
Encode-only, the main job and the naive loop are timed over W and over W+N frames, each from scratch, and
fps = N / (t(W+N) - t(W)), which cancels their fixed costs. The main job and the naive loop each run in a
fresh process (so their peak memory is theirs alone), one after the other.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as `python benchmarks/throughput.py`: make `benchmarks` importable as with -m
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import datetime as dt
import json
import logging
import math
import statistics
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import av
import numpy as np

from benchmarks.machine import command, load_average, system_info, versions
from benchmarks.memory import REPO, JobOptions, job_argv, measure_memory, output_path, run_child
from trt_modnet.cli import positive_int, run_main
from trt_modnet.errors import MattingError
from trt_modnet.graph.deploy import DeploySpec
from trt_modnet.graph.modelfile import load_modnet
from trt_modnet.graph.official import DEFAULT_REF_SIZE, inference_size
from trt_modnet.job.threads import available_cores, thread_budget
from trt_modnet.runtime.base import Runner
from trt_modnet.runtime.select import BACKEND_PRECISIONS, choose, open_runner
from trt_modnet.video import FORMATS, Frame, OutputSpec, open_reader, open_writer

log = logging.getLogger("trt_modnet.benchmarks")

SHARED = REPO.parent / "shared"
DEFAULT_VIDEO = SHARED / "data" / "videos" / "juggle_720p.mp4"
DEFAULT_CHECKPOINT = SHARED / "models" / "modnet_synthetic.ckpt"
WHITE = (255, 255, 255)
METHOD = " ".join(__doc__.split("Method: ", 1)[1].split()) if __doc__ else ""  # recorded in the JSON


@dataclass(frozen=True)
class BenchSettings:
    video: Path
    model: Path
    #: (backend, precision) pairs, the headline one first.
    configs: tuple[tuple[str, str], ...] = (("onnxruntime", "fp32"),)
    batches: tuple[int, ...] = (1, 4)
    ref_size: int = DEFAULT_REF_SIZE
    content: str = "rgba"
    format: str | None = None
    frames: int = 40
    repeat: int = 1
    #: None: the main job's thread budget (the naive loop then takes every core).
    threads: int | None = None
    depth: int = 2
    engines: Path = Path("engines")
    naive: bool = True
    #: Length of the long input of the memory check; None skips it.
    memory_long_seconds: float | None = 60.0
    memory_ref_size: int = 128
    memory_content: str = "alpha"
    memory_format: str | None = "mp4"
    #: `--encoder` of the encode-only stage and the main job ("auto": the format's own).
    encoder: str = "auto"

    @property
    def warmup(self) -> int:
        return max(self.batches) * self.depth

    @property
    def compare_batch(self) -> int:
        """The batch size of the headline comparisons (naive loop, memory)."""
        return max(self.batches)

    def job(self, batch: int, config: tuple[str, str] | None = None) -> JobOptions:
        backend, precision = config or self.configs[0]
        return JobOptions(
            model=self.model,
            backend=backend,
            precision=precision,
            batch=batch,
            ref_size=self.ref_size,
            content=self.content,
            format=self.format,
            threads=self.threads,
            engines=self.engines,
            encoder=self.encoder,
        )


# ---------------------------------------------------------------------------------------------- stages


def measure_decode(video: Path, *, warmup: int, frames: int) -> tuple[float, list[Frame]]:
    """Decode-only fps over `frames` frames after `warmup`; also returns all the decoded frames."""
    kept: list[Frame] = []
    with open_reader(video) as reader:
        it = iter(reader)
        kept.extend(_take(it, warmup, video, warmup + frames))
        started = time.perf_counter()
        kept.extend(_take(it, frames, video, warmup + frames))
        elapsed = time.perf_counter() - started
    return frames / elapsed, kept


def _take(it: Any, count: int, video: Path, needed: int) -> list[Frame]:
    out = []
    for _ in range(count):
        frame = next(it, None)
        if frame is None:
            raise MattingError(f"{video}: too few frames: the benchmark needs {needed} (--frames + warm-up)")
        out.append(frame)
    return out


def measure_inference(
    runner: Runner, frames: list[Frame], *, batch: int, warmup: int, depth: int, content: str
) -> tuple[float, list[np.ndarray]]:
    """Inference-only fps: the runner fed frames from memory, `depth` batches in flight, as the pipeline.

    Returns the fps over the frames after the warm-up batches, and the runner's output for every frame.
    """
    images = np.stack([f.image for f in frames])
    height, width = images.shape[1:3]
    runner.prepare(height, width, batch)
    chunks = [images[i : i + batch] for i in range(0, len(images), batch)]
    first = math.ceil(warmup / batch)
    background = _white(height, width) if content == "composite" else None
    outputs = _run_batches(runner, chunks[:first], depth=depth, content=content, background=background)
    started = time.perf_counter()
    outputs += _run_batches(runner, chunks[first:], depth=depth, content=content, background=background)
    elapsed = time.perf_counter() - started
    timed = sum(len(c) for c in chunks[first:])
    return timed / elapsed, [image for out in outputs for image in out]


def _white(height: int, width: int) -> np.ndarray:
    plate = np.empty((1, height, width, 3), np.uint8)
    plate[...] = WHITE
    return plate


def _run_batches(
    runner: Runner, chunks: list[np.ndarray], *, depth: int, content: str, background: np.ndarray | None
) -> list[np.ndarray]:
    pending: deque[int] = deque()
    outputs = []
    for chunk in chunks:
        feeds = {"frames": chunk} if background is None else {"frames": chunk, "background": background}
        pending.append(runner.submit(feeds))
        if len(pending) >= depth:
            outputs.append(runner.result(pending.popleft())[content])
    while pending:
        outputs.append(runner.result(pending.popleft())[content])
    return outputs


def measure_encode(
    video: Path, frames: list[Frame], images: list[np.ndarray], s: BenchSettings, work: Path
) -> float:
    """Encode-only fps of the chosen format on the runner's own outputs: N / (t(W+N) - t(W))."""

    def encode(count: int) -> float:
        target = output_path(work / f"encode_{count}", video, s.content, s.format)
        with open_reader(video) as reader:
            # replace: a repeated measurement (--repeat) writes the same file again
            spec = OutputSpec(
                path=target,
                content=s.content,
                format=s.format,
                audio=False,
                replace=True,
                encoder=s.encoder,
            )
            started = time.perf_counter()
            with open_writer(spec, reader) as writer:
                for image, frame in zip(images[:count], frames[:count], strict=True):
                    writer.write(image, frame)
            return time.perf_counter() - started

    return _differential("encode-only", encode, s.warmup, s.warmup + s.frames)


def _differential(what: str, run: Callable[[int], float], short: int, long: int) -> float:
    """fps from two runs of `run(frames) -> seconds` that share the same fixed costs."""
    t_short, t_long = run(short), run(long)
    if t_long <= t_short:
        raise MattingError(
            f"{what}: {long} frames took no longer than {short} ({t_long:.2f} s vs {t_short:.2f} s): "
            "start-up noise swamps the work; raise --frames"
        )
    return (long - short) / (t_long - t_short)


def count_frames(path: Path) -> int:
    """Frames in an output: files in a PNG folder, else video packets (demux only, no decode)."""
    if path.is_dir():
        return sum(1 for p in path.iterdir() if p.suffix.lower() == ".png")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.dts is not None)


# ------------------------------------------------------------------------------ whole jobs in processes


def measure_job(
    video: Path, job: JobOptions, s: BenchSettings, rate: float, work: Path
) -> tuple[float, list[str]]:
    """End-to-end fps of `python -m trt_modnet.process`, from runs over W and W+N frames."""
    name = f"{job.content}_{job.format or 'default'}_b{job.batch}"
    commands: list[str] = []

    def run(count: int) -> tuple[float, int]:
        target = output_path(work / f"job_{name}_{count}", video, job.content, job.format)
        # Half a frame short of `count` frames, so that no rounding can take one more; frames are counted.
        argv = job_argv(video, target, job, duration=(count - 0.5) / rate)
        commands.append(" ".join(argv))
        child = run_child(argv, log=work / f"job_{name}_{count}.log")
        return child.seconds, count_frames(target)

    return _counted_differential(f"end-to-end {name}", run, s), commands


def measure_naive(video: Path, s: BenchSettings, work: Path) -> tuple[float, list[str]]:
    """End-to-end fps of the official-demo-style loop (benchmarks/naive.py), same method as the job."""
    commands: list[str] = []

    def run(count: int) -> tuple[float, int]:
        target = work / f"naive_{count}.mp4"
        argv = [sys.executable, "-m", "benchmarks.naive", str(video), "-o", str(target)]
        threads = s.threads or available_cores()
        argv += ["--model", str(s.model), "--ref-size", str(s.ref_size), "--threads", str(threads)]
        argv += ["--frames", str(count)]
        commands.append(" ".join(argv))
        child = run_child(argv, log=work / f"naive_{count}.log")
        return child.seconds, count_frames(target)

    return _counted_differential("naive loop", run, s), commands


def _counted_differential(what: str, run: Callable[[int], tuple[float, int]], s: BenchSettings) -> float:
    # The short run twice, the faster kept: start-up varies by over a second on a 2-core machine (5.2
    # against 6.6 s for the same 8-frame job, back to back), and a slow short run taken off the long one
    # made the bf16 composite job read 5.2 fps where its inference alone ran at 3.8.
    (t_short, n_short) = min(run(s.warmup), run(s.warmup))
    t_long, n_long = run(s.warmup + s.frames)
    if n_long <= n_short or t_long <= t_short:
        raise MattingError(
            f"{what}: {n_long} frames in {t_long:.2f} s against {n_short} in {t_short:.2f} s: "
            "start-up noise swamps the work; raise --frames"
        )
    return (n_long - n_short) / (t_long - t_short)


# ------------------------------------------------------------------------------------------ the run


@dataclass
class Measured:
    """What one benchmark run collected, before it becomes the JSON document."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)
    memory: dict[str, Any] | None = None
    runner: str = ""
    frame_size: tuple[int, int] = (0, 0)
    rate: float = 0.0
    load_at_start: list[float] | None = None

    def record(self, key: str, value: float) -> None:
        self.samples.setdefault(key, []).append(value)
        log.info("%-24s %8.2f fps", key, value)


def run_benchmark(s: BenchSettings, work: Path) -> dict[str, Any]:
    """Every measurement, `repeat` times each, configurations interleaved (medians reported)."""
    m = Measured(load_at_start=load_average())
    frames: list[Frame] = []
    for _ in range(s.repeat):
        fps, frames = measure_decode(s.video, warmup=s.warmup, frames=s.frames)
        m.record("decode", fps)
    m.frame_size = frames[0].image.shape[:2]
    images: list[np.ndarray] = []
    for _ in range(s.repeat):
        for config in s.configs:
            runner, outs = _inference_stage(s, config, frames, m)
            m.runner = m.runner or runner
            images = images or outs
    for _ in range(s.repeat):
        m.record("encode", measure_encode(s.video, frames, images, s, work))
    del images
    m.rate = _frame_rate(s.video)
    for _ in range(s.repeat):
        for config in s.configs:
            for batch in s.batches:
                key = f"{_label(config)}/end_to_end_b{batch}"
                fps, m.commands[key] = measure_job(s.video, s.job(batch, config), s, m.rate, work)
                m.record(key, fps)
        if s.naive:
            _comparison(s, work, m)
    if s.memory_long_seconds is not None:
        log.info("memory: the main job on one copy of the input and on a %.0f s input", s.memory_long_seconds)
        m.memory = measure_memory(s.video, _memory_job(s), long_seconds=s.memory_long_seconds, work=work)
    return report(s, m)


def _label(config: tuple[str, str]) -> str:
    return "-".join(config)


def _inference_stage(
    s: BenchSettings, config: tuple[str, str], frames: list[Frame], m: Measured
) -> tuple[str, list[np.ndarray]]:
    """Inference-only fps of one configuration for each batch size, and its outputs (for encode-only)."""
    images: list[np.ndarray] = []
    spec = DeploySpec(outputs=(s.content,), ref_size=s.ref_size)
    backend, precision = config
    threads = s.threads or available_cores()
    with open_runner(
        backend,
        s.model,
        spec,
        precision=precision,
        threads=threads,
        streams=thread_budget(threads=threads).streams,
        depth=s.depth,
        engines_dir=s.engines,
    ) as runner:
        for batch in s.batches:
            fps, outs = measure_inference(
                runner, frames, batch=batch, warmup=s.warmup, depth=s.depth, content=s.content
            )
            m.record(f"{_label(config)}/inference_b{batch}", fps)
            images = images or outs
        return type(runner).__name__, images


def _comparison(s: BenchSettings, work: Path, m: Measured) -> None:
    """The naive loop, and our job writing the like-for-like output: composite over white, H.264 .mp4."""
    fps, m.commands["naive"] = measure_naive(s.video, s, work)
    m.record("naive", fps)
    if (s.content, s.format) == ("composite", "mp4"):
        return  # the primary job already is the like-for-like one
    for config in s.configs:
        like = replace(s.job(s.compare_batch, config), content="composite", format="mp4")
        key = f"{_label(config)}/end_to_end_composite"
        fps, m.commands[key] = measure_job(s.video, like, s, m.rate, work)
        m.record(key, fps)


def _memory_job(s: BenchSettings) -> JobOptions:
    return replace(
        s.job(s.compare_batch), ref_size=s.memory_ref_size, content=s.memory_content, format=s.memory_format
    )


def _frame_rate(video: Path) -> float:
    with open_reader(video) as reader:
        rate = reader.info.average_rate
    if not rate:
        raise MattingError(f"{video}: no average frame rate; the benchmark needs a constant-rate video")
    return float(rate)


# ---------------------------------------------------------------------------------------------- report


def report(s: BenchSettings, m: Measured) -> dict[str, Any]:
    """The JSON document: figures (medians), derived ratios, samples, commands, settings and the system."""
    med = {k: round(statistics.median(v), 3) for k, v in m.samples.items()}
    height, width = m.frame_size
    return {
        "benchmark": "trt_modnet throughput",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command(),
        "input": {
            "video": str(s.video),
            "width": width,
            "height": height,
            "frame_rate": round(m.rate, 4),
            "inference_size": list(inference_size(height, width, s.ref_size)),
        },
        "runner": m.runner,
        "figures": figures(s, med, m.memory),
        "samples": m.samples,
        "memory": m.memory,
        "settings": {**{k: _plain(v) for k, v in asdict(s).items()}, "warmup_frames": s.warmup},
        "method": METHOD,
        "naive_loop": "benchmarks/naive.py: OpenCV capture, official ONNX preprocessing per frame, "
        "ONNX Runtime (CPU) on the raw MODNet model, full-size matte (INTER_AREA), float composite over "
        "white, mp4v",
        "like_for_like": "our job with --mode composite --background white --format mp4 (H.264)",
        "child_commands": m.commands,
        "system": {
            **system_info(),
            "load_average_at_start": m.load_at_start,
            "load_average_at_end": load_average(),
        },
        "versions": versions(),
    }


def figures(s: BenchSettings, med: dict[str, float], memory: dict[str, Any] | None) -> dict[str, Any]:
    """The headline figures (the first configuration), and every configuration's under `configs`."""
    configs = {_label(c): _config_figures(s, _label(c), med) for c in s.configs}
    out: dict[str, Any] = {
        "decode_fps": med["decode"],
        "encode_fps": med["encode"],
        **configs[_label(s.configs[0])],
        "configs": configs,
    }
    if memory is not None:
        out["peak_rss_short_mb"] = memory["short"]["peak_rss_mb"]
        out["peak_rss_long_mb"] = memory["long"]["peak_rss_mb"]
        out["memory_ratio_long_short"] = memory["ratio_long_short"]
    return out


def _config_figures(s: BenchSettings, label: str, med: dict[str, float]) -> dict[str, Any]:
    inference = {str(b): med[f"{label}/inference_b{b}"] for b in s.batches}
    end_to_end = {str(b): med[f"{label}/end_to_end_b{b}"] for b in s.batches}
    out: dict[str, Any] = {
        "inference_fps": inference,
        "end_to_end_fps": end_to_end,
        "pipeline_efficiency": {
            b: round(end_to_end[b] / min(med["decode"], med["encode"], inference[b]), 3) for b in inference
        },
        # Like for like where encode is cheap: the target is >= 0.95.
        "end_to_end_over_inference": {b: round(end_to_end[b] / inference[b], 3) for b in inference},
    }
    if s.naive:
        naive = med["naive"]
        like = med.get(f"{label}/end_to_end_composite", end_to_end[str(s.compare_batch)])
        out.update(
            naive_fps=naive,
            composite_end_to_end_fps=like,
            speedup_like_for_like=round(like / naive, 3),
            speedup_default_output=round(end_to_end[str(s.compare_batch)] / naive, 3),
        )
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


# ------------------------------------------------------------------------------------------------ CLI


def default_model(checkpoint: Path, work: Path) -> Path:
    """The stand-in checkpoint exported with our exporter, as a user exports the official one."""
    try:
        from trt_modnet.modnet.checkpoint import load_checkpoint  # PyTorch: export only
        from trt_modnet.modnet.export import export_onnx
    except ImportError as exc:
        raise MattingError(
            f"exporting {checkpoint} needs PyTorch ({exc.name} is missing): pass --model MODEL.onnx"
        ) from None
    if not checkpoint.is_file():
        raise MattingError(f"{checkpoint}: no such checkpoint; pass --model MODEL.onnx or --checkpoint")
    out = work / f"{checkpoint.stem}.onnx"
    export_onnx(load_checkpoint(checkpoint), out)
    return out


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
