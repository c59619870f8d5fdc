"""Decode-only, inference-only and encode-only fps, each measured alone in this process."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness.settings import BenchSettings
from benchmarks.memory import output_path
from trt_modnet.errors import MattingError
from trt_modnet.runtime.base import Runner
from trt_modnet.video import Frame, OutputSpec, open_reader, open_writer

WHITE = (255, 255, 255)


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
