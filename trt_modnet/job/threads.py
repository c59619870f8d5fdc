"""The thread budget: inference, decode and encode threads chosen together from the usable cores.

On a small machine the stages share the cores, so their threads must not oversubscribe them. Measured on
2 cores (README, "CPU speed"): the inference runtime takes every core; OpenVINO runs one stream per core
with one thread each, so that a core taken by the encoder for a moment delays one batch rather than
stalling a parallel region on both cores.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trt_modnet.job.settings import JobSettings


@dataclass(frozen=True)
class ThreadBudget:
    #: Inference threads in all, and the streams (batches computed at once) they are split into.
    inference: int
    streams: int


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, which containers and `taskset` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def beside_gpu(job: JobSettings) -> bool:
    """Whether the job runs its inference on a GPU: `--backend tensorrt`, or `auto` with TensorRT usable."""
    if job.backend == "tensorrt":
        return True
    if job.backend != "auto":
        return False
    from trt_modnet.tensorrt.availability import missing_for_tensorrt  # imports nothing heavy, but late

    return not missing_for_tensorrt()


def encoder_instances(job: JobSettings, *, cores: int | None = None) -> int:
    """Intra-only encoder instances per output: every core beside a GPU; on the CPU the cores that
    `--threads` leaves to the encoder (none by default: the runtime takes them all, and FFmpeg's own
    encoder threads share them)."""
    cores = cores or available_cores()
    if beside_gpu(job):
        return cores
    return max(1, cores - (job.threads or cores))


def decoder_for(job: JobSettings) -> str:
    """`--decoder auto`: NVDEC beside a GPU, else FFmpeg's CPU decoders."""
    if job.decoder == "auto":
        return "nvdec" if beside_gpu(job) else "cpu"
    return job.decoder


def thread_budget(*, threads: int | None = None, cores: int | None = None) -> ThreadBudget:
    cores = cores or available_cores()
    inference = threads or cores
    return ThreadBudget(inference=inference, streams=_streams(inference))


def _streams(threads: int) -> int:
    return 2 if threads >= 2 else 1
