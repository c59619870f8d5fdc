"""Decode-only, inference-only and encode-only fps, each measured alone in this process."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness.settings import BenchSettings
from benchmarks.memory import output_path
from trt_modnet.errors import MattingError
from trt_modnet.runtime.base import Runner
from trt_modnet.video import Frame, OutputSpec, open_reader, open_writer

WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Rate:
    """A steady-state speed: frames per second, and the CPU time each frame cost (every thread of the
    process that did the work, user + system): the share of the cores a stage takes from the others."""

    fps: float
    cpu_ms: float


class _Clock:
    """Wall and CPU time from start to `stop()`, this process's threads all counted."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def measure_decode(video: Path, *, warmup: int, frames: int) -> tuple[Rate, list[Frame]]:
    """Decode-only speed over `frames` frames after `warmup`; also returns all the decoded frames."""
    kept: list[Frame] = []
    with open_reader(video) as reader:
        it = iter(reader)
        kept.extend(_take(it, warmup, video, warmup + frames))
        clock = _Clock()
        kept.extend(_take(it, frames, video, warmup + frames))
        wall, cpu = clock.stop()
    return Rate(frames / wall, 1000 * cpu / frames), kept


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
) -> tuple[Rate, list[np.ndarray]]:
    """Inference-only speed: the runner fed frames from memory, `depth` batches in flight, as the pipeline.

    Returns the speed over the frames after the warm-up batches, and the runner's output for every frame.
    """
    images = np.stack([f.image for f in frames])
    height, width = images.shape[1:3]
    runner.prepare(height, width, batch)
    chunks = [images[i : i + batch] for i in range(0, len(images), batch)]
    first = math.ceil(warmup / batch)
    background = _white(height, width) if content == "composite" else None
    outputs = _run_batches(runner, chunks[:first], depth=depth, content=content, background=background)
    clock = _Clock()
    outputs += _run_batches(runner, chunks[first:], depth=depth, content=content, background=background)
    wall, cpu = clock.stop()
    timed = sum(len(c) for c in chunks[first:])
    return Rate(timed / wall, 1000 * cpu / timed), [image for out in outputs for image in out]


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
) -> Rate:
    """Encode-only speed of the chosen format on the runner's own outputs: N / (t(W+N) - t(W))."""

    def encode(count: int) -> tuple[float, float]:
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
            clock = _Clock()
            with open_writer(spec, reader) as writer:
                for image, frame in zip(images[:count], frames[:count], strict=True):
                    writer.write(image, frame)
            return clock.stop()

    return _differential("encode-only", encode, s.warmup, s.warmup + s.frames)


def _differential(what: str, run: Callable[[int], tuple[float, float]], short: int, long: int) -> Rate:
    """The speed from two runs of `run(frames) -> (wall, cpu seconds)` that share the same fixed costs."""
    (t_short, cpu_short), (t_long, cpu_long) = run(short), run(long)
    if t_long <= t_short:
        raise MattingError(
            f"{what}: {long} frames took no longer than {short} ({t_long:.2f} s vs {t_short:.2f} s): "
            "start-up noise swamps the work; raise --frames"
        )
    return Rate((long - short) / (t_long - t_short), 1000 * (cpu_long - cpu_short) / (long - short))
