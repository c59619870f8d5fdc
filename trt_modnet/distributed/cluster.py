"""Joining Ray (`--ray local|auto|ADDRESS`) and sizing the workers to what the cluster holds."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import ModuleType

from trt_modnet.errors import MattingError

_INSTALL = "--ray needs Ray, which is not installed: pip install 'trt_modnet[ray]'"


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise MattingError(_INSTALL) from None
    return ray


def connect(address: str) -> bool:
    """Start (`local`) or join (`auto`, ADDRESS) Ray; True when this call started it and must shut it down.

    A process that already called `ray.init` (a test, a notebook) keeps its own instance.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            # Workers' own lines would interleave with the one progress bar; their failures come back
            # as results and are reported by the driver.
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise MattingError(f"--ray {address}: cannot start or join Ray: {exc}") from None
    return True


@dataclass(frozen=True)
class Placement:
    """How many file workers, and what each one reserves."""

    workers: int
    num_cpus: float
    num_gpus: float


def placement(resources: dict[str, float], *, backend: str, threads: int, units: int) -> Placement:
    """One worker per GPU; without GPUs (or with a CPU backend) one per `threads` CPUs."""
    gpus = int(resources.get("GPU", 0))
    if gpus > 0 and backend in ("auto", "tensorrt"):
        return Placement(workers=max(1, min(gpus, units)), num_cpus=1, num_gpus=1)
    slots = max(1, int(resources.get("CPU", 1)) // threads)
    return Placement(workers=max(1, min(slots, units)), num_cpus=threads, num_gpus=0)
