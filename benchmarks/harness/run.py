"""One throughput run: every measurement, `repeat` times each, configurations interleaved."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness.jobs import measure_job, measure_naive
from benchmarks.harness.report import Measured, report
from benchmarks.harness.settings import BenchSettings, label
from benchmarks.harness.stages import measure_decode, measure_encode, measure_inference
from benchmarks.machine import load_average
from benchmarks.memory import JobOptions, measure_memory
from trt_modnet.errors import MattingError
from trt_modnet.graph.deploy import DeploySpec
from trt_modnet.job.threads import available_cores, thread_budget
from trt_modnet.runtime.select import open_runner
from trt_modnet.video import Frame, open_reader

log = logging.getLogger("trt_modnet.benchmarks")


def run_benchmark(s: BenchSettings, work: Path) -> dict[str, Any]:
    """Every measurement, `repeat` times each, configurations interleaved (medians reported)."""
    m = Measured(load_at_start=load_average())
    frames: list[Frame] = []
    for _ in range(s.repeat):
        rate, frames = measure_decode(s.video, warmup=s.warmup, frames=s.frames)
        m.record("decode", rate)
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
                key = f"{label(config)}/end_to_end_b{batch}"
                rate, m.commands[key] = measure_job(s.video, s.job(batch, config), s, m.rate, work)
                m.record(key, rate)
        if s.naive:
            _comparison(s, work, m)
    if s.memory_long_seconds is not None:
        log.info("memory: the main job on one copy of the input and on a %.0f s input", s.memory_long_seconds)
        m.memory = measure_memory(s.video, _memory_job(s), long_seconds=s.memory_long_seconds, work=work)
    return report(s, m)


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
            rate, outs = measure_inference(
                runner, frames, batch=batch, warmup=s.warmup, depth=s.depth, content=s.content
            )
            m.record(f"{label(config)}/inference_b{batch}", rate)
            images = images or outs
        return type(runner).__name__, images


def _comparison(s: BenchSettings, work: Path, m: Measured) -> None:
    """The naive loop, and our job writing the like-for-like output: composite over white, H.264 .mp4."""
    rate, m.commands["naive"] = measure_naive(s.video, s, work)
    m.record("naive", rate)
    if (s.content, s.format) == ("composite", "mp4"):
        return  # the primary job already is the like-for-like one
    for config in s.configs:
        like = replace(s.job(s.compare_batch, config), content="composite", format="mp4")
        key = f"{label(config)}/end_to_end_composite"
        rate, m.commands[key] = measure_job(s.video, like, s, m.rate, work)
        m.record(key, rate)


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
