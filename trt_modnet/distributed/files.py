"""The driver of `--ray`: file units handed to idle workers, one progress bar, results in input order."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from pathlib import Path
from typing import Any

from tqdm import tqdm

from trt_modnet.distributed.cluster import connect, import_ray, placement
from trt_modnet.distributed.worker import FileWorker, FrameCounter, remove_partial
from trt_modnet.errors import MattingError
from trt_modnet.graph import DeploySpec
from trt_modnet.plan import FilePlan
from trt_modnet.process import JobSettings, process_file
from trt_modnet.summary import FileResult
from trt_modnet.threads import thread_budget
from trt_modnet.video import open_reader

log = logging.getLogger("trt_modnet")

#: A worker that dies mid-unit is restarted and its unit run again, this many times.
RETRIES = 2
_POLL_S = 0.5

Plans = list[FilePlan]


def run_on_ray(job: JobSettings, model: Path, spec: DeploySpec, plans: Plans) -> list[FileResult]:
    """Every file a unit on a Ray worker; the same results (and node) as the plain job. Ctrl-C propagates."""
    ray = import_ray()
    started = connect(job.ray or "local")
    try:
        return _run(ray, job, model, spec, plans)
    finally:
        if started:
            ray.shutdown()


def _run(ray: Any, job: JobSettings, model: Path, spec: DeploySpec, plans: Plans) -> list[FileResult]:
    # Without --threads, each CPU worker takes this machine's budget (trt_modnet.threads).
    threads = job.threads or thread_budget().inference
    where = placement(ray.cluster_resources(), backend=job.backend, threads=threads, units=len(plans))
    if where.num_gpus == 0:
        job = dataclasses.replace(job, threads=threads)
    # Named, so that workers find it themselves: an actor handle among the constructor arguments would
    # go through the object store, and a restarted worker could lose it.
    name = f"trt_modnet-frames-{uuid.uuid4().hex}"
    counter = ray.remote(num_cpus=0)(FrameCounter).options(name=name).remote()
    actor = ray.remote(max_restarts=RETRIES, max_task_retries=RETRIES)(FileWorker)
    options = {"num_cpus": where.num_cpus, "num_gpus": where.num_gpus}
    workers = [actor.options(**options).remote(job, model, spec, name) for _ in range(where.workers)]
    try:
        _check_reachable(ray, workers, plans)
        return _dispatch(ray, job, workers, counter, plans)
    except BaseException:
        for w in workers:
            ray.kill(w, no_restart=True)
        # Killed workers cannot clean up: remove their temporary outputs (never a final name).
        for plan in plans:
            for final in plan.todo_paths:
                remove_partial(final)
        raise


def _check_reachable(ray: Any, workers: list[Any], plans: Plans) -> None:
    work = [plan for plan in plans if _has_work(plan)]
    inputs = [plan.input for plan in work]
    folders = sorted({final.parent for plan in work for final in plan.todo_paths})
    for problems in ray.get([w.check.remote(inputs, folders) for w in workers]):
        if problems:
            raise MattingError(
                f"{problems[0]}: with --ray, inputs and outputs must be on storage every node can reach"
            )


def _dispatch(ray: Any, job: JobSettings, workers: list[Any], counter: Any, plans: Plans) -> list[FileResult]:
    # Refused inputs and existing outputs need no worker: the same function reports them here.
    results = {i: process_file(job, None, plan) for i, plan in enumerate(plans) if not _has_work(plan)}
    todo = [(i, plan) for i, plan in enumerate(plans) if _has_work(plan)][::-1]
    running: dict[Any, tuple[int, Any]] = {}
    idle = list(workers)
    with tqdm(total=_expected_frames(job, plans), unit="frame", desc="ray", disable=job.quiet) as bar:
        while todo or running:
            while todo and idle:
                index, plan = todo.pop()
                worker = idle.pop()
                running[worker.run.remote(plan)] = (index, worker)
            done, _ = ray.wait(list(running), num_returns=1, timeout=_POLL_S)
            for ref in done:
                index, worker = running.pop(ref)
                results[index] = _result(ray, ref, plans[index])
                idle.append(worker)
            bar.update(ray.get(counter.value.remote()) - bar.n)
    return [results[i] for i in range(len(plans))]


def _result(ray: Any, ref: Any, plan: FilePlan) -> FileResult:
    path = plan.input
    try:
        result, node = ray.get(ref)
    except ray.exceptions.RayError as exc:  # the worker died more often than it is retried
        status = f"failed: internal error: the Ray worker died {RETRIES + 1} times ({type(exc).__name__})"
        log.error("%s: %s", path, status.removeprefix("failed: "))
        return FileResult(path, 0, 0.0, plan.todo_paths[0], status, node="?")
    if result.failed:
        log.error("%s", result.status.removeprefix("failed: "))
    return dataclasses.replace(result, node=node)


def _expected_frames(job: JobSettings, plans: Plans) -> int | None:
    total = 0
    for plan in filter(_has_work, plans):
        try:
            reader = open_reader(plan.input, stream_index=job.stream, start=job.start, duration=job.duration)
            with reader:
                total += reader.expected_frames or 0
        except MattingError:
            continue  # the worker reports it
    return total or None


def _has_work(plan: FilePlan) -> bool:
    return bool(plan.todo_paths) and plan.problem is None
