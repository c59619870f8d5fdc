"""End-to-end fps of whole jobs, each run in a fresh process: the main job and the naive loop."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import av

from benchmarks.harness.settings import BenchSettings
from benchmarks.harness.stages import Rate
from benchmarks.memory import JobOptions, job_argv, output_path, run_child
from trt_modnet.errors import MattingError
from trt_modnet.job.threads import available_cores


def measure_job(
    video: Path, job: JobOptions, s: BenchSettings, rate: float, work: Path
) -> tuple[Rate, list[str]]:
    """End-to-end speed of `python -m trt_modnet.process`, from runs over W and W+N frames."""
    name = f"{job.content}_{job.format or 'default'}_b{job.batch}"
    commands: list[str] = []

    def run(count: int) -> tuple[float, float, int]:
        target = output_path(work / f"job_{name}_{count}", video, job.content, job.format)
        # Half a frame short of `count` frames, so that no rounding can take one more; frames are counted.
        argv = job_argv(video, target, job, duration=(count - 0.5) / rate)
        commands.append(" ".join(argv))
        child = run_child(argv, log=work / f"job_{name}_{count}.log")
        return child.seconds, child.cpu_seconds, count_frames(target)

    return _counted_differential(f"end-to-end {name}", run, s), commands


def measure_naive(video: Path, s: BenchSettings, work: Path) -> tuple[Rate, list[str]]:
    """End-to-end speed of the official-demo-style loop (benchmarks/naive.py), same method as the job."""
    commands: list[str] = []

    def run(count: int) -> tuple[float, float, int]:
        target = work / f"naive_{count}.mp4"
        argv = [sys.executable, "-m", "benchmarks.naive", str(video), "-o", str(target)]
        threads = s.threads or available_cores()
        argv += ["--model", str(s.model), "--ref-size", str(s.ref_size), "--threads", str(threads)]
        argv += ["--frames", str(count)]
        commands.append(" ".join(argv))
        child = run_child(argv, log=work / f"naive_{count}.log")
        return child.seconds, child.cpu_seconds, count_frames(target)

    return _counted_differential("naive loop", run, s), commands


def _counted_differential(
    what: str, run: Callable[[int], tuple[float, float, int]], s: BenchSettings
) -> Rate:
    # The short run twice, the faster kept: start-up varies by over a second on a 2-core machine (5.2
    # against 6.6 s for the same 8-frame job, back to back), and a slow short run taken off the long one
    # made the bf16 composite job read 5.2 fps where its inference alone ran at 3.8.
    # The same for the CPU time, taken on its own: start-up CPU varies too (ONNX Runtime's threads spin
    # while the session loads), and the least of the two is the nearer to the fixed cost.
    shorts = run(s.warmup), run(s.warmup)
    t_short, _, n_short = min(shorts)
    cpu_short = min(cpu for _, cpu, _ in shorts)
    t_long, cpu_long, n_long = run(s.warmup + s.frames)
    if n_long <= n_short or t_long <= t_short:
        raise MattingError(
            f"{what}: {n_long} frames in {t_long:.2f} s against {n_short} in {t_short:.2f} s: "
            "start-up noise swamps the work; raise --frames"
        )
    frames = n_long - n_short
    return Rate(frames / (t_long - t_short), 1000 * (cpu_long - cpu_short) / frames)


def count_frames(path: Path) -> int:
    """Frames in an output: files in a PNG folder, else video packets (demux only, no decode)."""
    if path.is_dir():
        return sum(1 for p in path.iterdir() if p.suffix.lower() == ".png")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.dts is not None)
