"""The driver of `--ray`: file units handed to idle workers, one progress bar, results in input order."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from pathlib import Path
from typing import Any

from tqdm import tqdm

from trt_modnet.distributed.cluster import connect, import_ray, placement
from trt_modnet.distributed.segments import SplitFile, Unit, split_units
from trt_modnet.distributed.worker import FileWorker, FrameCounter
from trt_modnet.errors import MattingError
from trt_modnet.file_job import process_file
from trt_modnet.graph import DeploySpec
from trt_modnet.job import JobSettings
from trt_modnet.plan import FilePlan
from trt_modnet.summary import FileResult
from trt_modnet.threads import thread_budget
from trt_modnet.video import open_reader
from trt_modnet.video.staging import remove_partial

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
    splits = {i: s for i, plan in enumerate(plans) if _has_work(plan) and (s := split_units(job, i, plan))}
    units = len(plans) + sum(len(s.units) - 1 for s in splits.values())
    where = placement(ray.cluster_resources(), backend=job.backend, threads=threads, units=units)
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
        return _dispatch(ray, job, workers, counter, plans, splits)
    except BaseException:
        for split in splits.values():
            split.discard()
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


def _dispatch(
    ray: Any, job: JobSettings, workers: list[Any], counter: Any, plans: Plans, splits: dict[int, SplitFile]
) -> list[FileResult]:
    # Refused inputs and existing outputs need no worker: the same function reports them here.
    results = {i: process_file(job, None, plan) for i, plan in enumerate(plans) if not _has_work(plan)}
    todo = [u for i, plan in enumerate(plans) if _has_work(plan) for u in _units(i, plan, splits)][::-1]
    running: dict[Any, tuple[Unit, Any]] = {}
    idle = list(workers)
    with tqdm(total=_expected_frames(job, plans), unit="frame", desc="ray", disable=job.quiet) as bar:
        while todo or running:
            while todo and idle:
                unit = todo.pop()
                worker = idle.pop()
                running[worker.run.remote(unit.plan, unit.window)] = (unit, worker)
            done, _ = ray.wait(list(running), num_returns=1, timeout=_POLL_S)
            for ref in done:
                unit, worker = running.pop(ref)
                _finished(results, splits, unit, _result(ray, ref, unit.plan))
                idle.append(worker)
            bar.update(ray.get(counter.value.remote()) - bar.n)
    return [results[i] for i in range(len(plans))]


def _units(index: int, plan: FilePlan, splits: dict[int, SplitFile]) -> list[Unit]:
    return splits[index].units if index in splits else [Unit(index, plan)]


def _finished(
    results: dict[int, FileResult], splits: dict[int, SplitFile], unit: Unit, result: FileResult
) -> None:
    """A unit's result: the file's own, or (a piece) the joined file's once its last piece is in."""
    if unit.index not in splits:
        results[unit.index] = result
    elif (joined := splits[unit.index].finished(unit, result)) is not None:
        results[unit.index] = joined


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
