"""The driver of `--ray`: file units handed to idle workers, one progress bar, results in input order."""

from __future__ import annotations

import dataclasses
import logging
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from trt_modnet.distributed.cluster import Placement, connect, import_ray, placement
from trt_modnet.distributed.segments import SplitFile, Unit, split_units
from trt_modnet.distributed.worker import FileWorker, FrameCounter
from trt_modnet.errors import MattingError
from trt_modnet.graph.deploy import DeploySpec
from trt_modnet.job.file_job import process_file
from trt_modnet.job.plan import FilePlan
from trt_modnet.job.settings import JobSettings
from trt_modnet.job.summary import FileResult
from trt_modnet.job.threads import thread_budget
from trt_modnet.video import open_reader
from trt_modnet.video.staging import remove_partial

log = logging.getLogger("trt_modnet")

#: A unit whose worker dies (killed, out of memory, node lost) goes back to the queue, this many times.
RETRIES = 2
_POLL_S = 0.5
#: How long the job waits for a replacement worker when none is left alive.
_START_S = 60.0
_SHARED = "with --ray, inputs and outputs must be on storage every node can reach"

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
    # Without --threads, each CPU worker takes this machine's budget (trt_modnet.job.threads).
    threads = job.threads or thread_budget().inference
    splits = {i: s for i, plan in enumerate(plans) if _has_work(plan) and (s := split_units(job, i, plan))}
    units = len(plans) + sum(len(s.units) - 1 for s in splits.values())
    where = placement(ray.cluster_resources(), backend=job.backend, threads=threads, units=units)
    if where.num_gpus == 0:
        job = dataclasses.replace(job, threads=threads)
    # Named, so that workers find it themselves: an actor handle among the constructor arguments would
    # go through the object store. Pinned to the driver's node: it lives as long as the job does.
    name = f"trt_modnet-frames-{uuid.uuid4().hex}"
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # Ray: an optional extra

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    counter = ray.remote(num_cpus=0)(FrameCounter).options(name=name, scheduling_strategy=here).remote()
    work = [plan for plan in plans if _has_work(plan)]
    reach = ([plan.input for plan in work], sorted({f.parent for plan in work for f in plan.todo_paths}))
    pool = Pool(ray, ray.remote(FileWorker), where, (job, model, spec, name), reach)
    try:
        pool.start(where.workers)
        return _dispatch(ray, job, pool, counter, plans, splits)
    except BaseException as exc:
        for split in splits.values():
            split.discard()
        if not isinstance(exc, HeadLost):  # without the head Ray cannot reach the workers
            pool.kill()
        # Killed workers cannot clean up: remove their temporary outputs (never a final name).
        for plan in plans:
            for final in plan.todo_paths:
                remove_partial(final)
        raise


class HeadLost(MattingError):
    """The Ray head (its GCS) stopped answering: no worker can be reached or started."""


class Pool:
    """The file workers: those starting (their reachability check pending), the idle, the dead dropped.

    Workers are not restarted by Ray (`max_restarts` would tie a unit to one actor, and Ray does not
    restart an actor whose node was drained on purpose): a dead one is dropped, its unit goes back to the
    job's queue, and a replacement is started; it joins once the cluster has room for it.
    """

    def __init__(self, ray: Any, actor: Any, where: Placement, args: tuple[Any, ...], reach: Any) -> None:
        self.ray = ray
        self.actor = actor
        self.options = {"num_cpus": where.num_cpus, "num_gpus": where.num_gpus, "max_restarts": 0}
        self.args = args
        self.reach = reach
        self.starting: dict[Any, Any] = {}  # the check's ref -> the worker
        self.idle: list[Any] = []
        self.node: dict[Any, str] = {}  # worker -> its node's id
        self.names = NodeNames(ray)
        self._prefix = f"trt_modnet-worker-{uuid.uuid4().hex[:8]}"
        self._made = 0
        self._gcs = ray.get_runtime_context().gcs_address

    def start(self, count: int) -> None:
        """Start `count` workers and wait for them: a node that cannot reach the files stops the job."""
        for _ in range(count):
            self.add()
        while self.starting:
            self.poll(timeout=_POLL_S, strict=True)
        if not self.idle:
            raise MattingError("no Ray worker could start: every node was lost")

    def add(self) -> None:
        # Named, so that a test (or an operator) can find and kill one.
        self._made += 1
        options = dict(self.options, name=f"{self._prefix}-{self._made}")
        worker = self.actor.options(**options).remote(*self.args)
        self.starting[worker.check.remote(*self.reach)] = worker

    def poll(self, timeout: float = 0, *, strict: bool = False) -> None:
        """Workers whose check came back join the idle ones; `strict`: a node's problem stops the job."""
        self.head_alive()
        if not self.starting:
            return
        ready, _ = self.ray.wait(list(self.starting), num_returns=len(self.starting), timeout=timeout)
        for ref in ready:
            worker = self.starting.pop(ref)
            try:
                node, problems = self.ray.get(ref)
            except self.ray.exceptions.RayError as exc:
                log.warning("a Ray worker died while starting (%s)", type(exc).__name__)
                continue
            if problems:
                if strict:
                    raise MattingError(f"{problems[0]}: {_SHARED}")
                log.warning("%s: that node's worker is not used", problems[0])
                self.ray.kill(worker, no_restart=True)
                continue
            self.node[worker] = node
            self.idle.append(worker)

    def lost(self, worker: Any) -> str:
        """Drop a dead worker and start its replacement; the name of the node it was on."""
        self.head_alive()  # a lost head takes every worker with it: nothing to replace
        self.ray.kill(worker, no_restart=True)  # a worker Ray only marked unavailable: gone for good
        self.add()
        return self.names.name(self.node.pop(worker, ""))

    def head_alive(self) -> None:
        """A Ray driver without its head waits a minute, then exits with Ray's own error: say it at once."""
        host, _, port = self._gcs.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as exc:
            raise HeadLost(
                f"--ray: the Ray head at {self._gcs} was lost ({exc.strerror or exc}); "
                "the files not done are left to do"
            ) from None

    def kill(self) -> None:
        for worker in [*self.idle, *self.starting.values(), *self.node]:
            self.ray.kill(worker, no_restart=True)


class NodeNames:
    """A node's name for the summary: its host name, with the id's start where nodes share one host."""

    def __init__(self, ray: Any) -> None:
        self.ray = ray
        self.names: dict[str, str] = {}

    def name(self, node_id: str) -> str:
        if node_id not in self.names:
            nodes = self.ray.nodes()
            hosts = [n["NodeManagerHostname"] for n in nodes]
            for n, host in zip(nodes, hosts, strict=True):
                shared = hosts.count(host) > 1
                self.names[n["NodeID"]] = f"{host}:{n['NodeID'][:6]}" if shared else host
        return self.names.get(node_id, "?")


@dataclass
class Attempt:
    """A unit on its way: the nodes whose workers died running it."""

    unit: Unit
    lost: list[str] = field(default_factory=list)


def _dispatch(
    ray: Any, job: JobSettings, pool: Pool, counter: Any, plans: Plans, splits: dict[int, SplitFile]
) -> list[FileResult]:
    # Refused inputs and existing outputs need no worker: the same function reports them here.
    results = {i: process_file(job, None, plan) for i, plan in enumerate(plans) if not _has_work(plan)}
    todo = [Attempt(u) for i, p in enumerate(plans) if _has_work(p) for u in _units(i, p, splits)][::-1]
    retried: dict[int, list[str]] = {}
    running: dict[Any, tuple[Attempt, Any]] = {}
    alone_since: float | None = None
    with tqdm(total=_expected_frames(job, plans), unit="frame", desc="ray", disable=job.quiet) as bar:
        while todo or running:
            pool.poll()
            while todo and pool.idle:
                attempt, worker = todo.pop(), pool.idle.pop()
                running[worker.run.remote(attempt.unit.plan, attempt.unit.window)] = (attempt, worker)
            alone_since = _check_workers(pool, running, alone_since)
            done, _ = ray.wait(list(running), num_returns=1, timeout=_POLL_S)
            for ref in done:
                attempt, worker = running.pop(ref)
                unit = attempt.unit
                try:
                    result, node = ray.get(ref)
                except _died(ray) as exc:
                    attempt.lost.append(f"{pool.lost(worker)} ({type(exc).__name__})")
                    retried.setdefault(unit.index, []).append(attempt.lost[-1])
                    if len(attempt.lost) <= RETRIES:
                        for final in unit.plan.todo_paths:
                            remove_partial(final)  # what the dead attempt left, before the rerun
                        todo.append(attempt)  # next, on the next live worker
                        continue
                    result = _gave_up(unit.plan, attempt.lost)
                else:
                    result = _result(result, pool.names.name(node))
                    pool.idle.append(worker)
                _finished(results, splits, unit, result)
            bar.update(_frames_done(ray, counter) - bar.n)
    return [_with_retries(results[i], retried.get(i, [])) for i in range(len(plans))]


def _died(ray: Any) -> tuple[type[Exception], ...]:
    """The errors that say the worker (not the file) failed: its process or node is gone."""
    e = ray.exceptions
    return (e.RayActorError, e.WorkerCrashedError, e.NodeDiedError, e.OutOfMemoryError)


def _check_workers(pool: Pool, running: dict[Any, Any], since: float | None) -> float | None:
    """With no worker alive, wait for a replacement a while, then stop: every worker gone."""
    if running or pool.idle:
        return None
    now = time.monotonic()
    if since is None:
        return now
    if not pool.starting or now - since > _START_S:
        raise MattingError(
            f"--ray: every Ray worker is gone and none could start in {_START_S:.0f} s "
            "(nodes lost?); the files not done are left to do"
        )
    return since


def _frames_done(ray: Any, counter: Any) -> int:
    try:
        return ray.get(counter.value.remote(), timeout=5)
    except ray.exceptions.RayError:
        return 0  # the bar only; a lost counter is no reason to stop the job


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


def _result(result: FileResult, node: str) -> FileResult:
    if result.failed:
        log.error("%s", result.status.removeprefix("failed: "))
    return dataclasses.replace(result, node=node)


def _gave_up(plan: FilePlan, lost: list[str]) -> FileResult:
    status = f"failed: internal error: the Ray worker running it died {len(lost)} times ({lost[-1]})"
    log.error("%s: %s", plan.input, status.removeprefix("failed: "))
    return FileResult(plan.input, 0, 0.0, plan.todo_paths[0], status, node="?")


def _with_retries(result: FileResult, lost: list[str]) -> FileResult:
    return dataclasses.replace(result, retried=tuple(lost)) if lost else result


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
