"""The Ray side: a file worker holding one runner for all its units, and the job's frame counter."""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from trt_modnet.graph.deploy import DeploySpec
from trt_modnet.job.file_job import open_job_runner, process_file
from trt_modnet.job.plan import FilePlan
from trt_modnet.job.settings import JobSettings
from trt_modnet.job.summary import FileResult
from trt_modnet.video.staging import remove_partial

if TYPE_CHECKING:
    from trt_modnet.distributed.segments import Window

#: Tests only: a worker that finds this file deletes it and dies at once (os._exit) after its first frames.
DIE_ONCE_ENV = "TRT_MODNET_RAY_DIE_ONCE"
#: Tests only: while this file exists a worker waits after its frames, so a test can remove its node then.
HOLD_ENV = "TRT_MODNET_RAY_HOLD"


class FrameCounter:
    """Frames done across every worker (a Ray actor): the driver's one progress bar reads it."""

    def __init__(self) -> None:
        self.done = 0

    def add(self, frames: int) -> None:
        self.done += frames

    def value(self) -> int:
        return self.done


class FileWorker:
    """A Ray actor: opens the runner once (engine built or loaded once per worker) and runs file units."""

    def __init__(self, job: JobSettings, model: Path, spec: DeploySpec, counter: str) -> None:
        # Per-file bars and tracebacks belong to the driver; the worker only counts frames.
        self.job = dataclasses.replace(job, quiet=True)
        import ray  # on the worker only: without the extra, --ray stops at its install hint first

        self.counter = ray.get_actor(counter)
        self.node = socket.gethostname()
        # Nodes on one machine share a host name: the driver names a node from its id (files.node_names).
        self.node_id = ray.get_runtime_context().get_node_id()
        self._stack = ExitStack()
        self.runner = self._stack.enter_context(open_job_runner(job, model, spec))

    def check(self, inputs: list[Path], folders: list[Path]) -> tuple[str, list[str]]:
        """This node's id, and what it cannot reach: inputs it cannot read, folders it cannot write."""
        problems = [f"{p}: cannot read it" for p in inputs if not os.access(p, os.R_OK)]
        problems += [f"{d}: cannot write there" for d in folders if not os.access(d, os.W_OK | os.X_OK)]
        return self.node_id, [f"{p} on Ray node {self.node}" for p in problems]

    def run(self, plan: FilePlan, window: Window | None = None) -> tuple[FileResult, str]:
        """A whole file, or (`window`, --segment-seconds) the segment of it that holds one piece."""
        for final in plan.todo_paths:
            remove_partial(final)  # a retried unit: what the dead attempt left under temporary names
        job = self.job
        if window is not None:
            job = dataclasses.replace(job, start=window.start, duration=window.duration)
        result = process_file(job, self.runner, plan, on_frames=self._frames)
        return result, self.node_id

    def _frames(self, count: int) -> None:
        self.counter.add.remote(count)
        _maybe_die()
        _maybe_hold()


def _maybe_die() -> None:
    trigger = os.environ.get(DIE_ONCE_ENV)
    if not trigger:
        return
    try:
        os.remove(trigger)
    except FileNotFoundError:
        return
    os._exit(1)


def _maybe_hold() -> None:
    hold = os.environ.get(HOLD_ENV)
    while hold and os.path.exists(hold):
        time.sleep(0.05)
