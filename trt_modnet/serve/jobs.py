"""The job queue: one folder and one atomically written JSON state per job, one job at a time.

A job's folder holds `state.json` and `files/`: the inputs under names the server chose (`input0.mp4`,
or a symlink to an allowed shared file) and, written by `trt_modnet.process` next to them, the outputs.
Everything in `files/` that is not an input is therefore an output, and the names served are that list.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import trt_modnet

log = logging.getLogger("trt_modnet.serve")

ACTIVE = ("queued", "running")
RESTARTED = "server restarted"
#: Every job writes its contact sheet (`job.preview.png`, or `job.preview.input0.png` per input).
PREVIEW_STEM = "job.preview"
#: Progress is written to the state file at most this often (seconds): the page polls it.
_SAVE_EVERY = 0.5


@dataclass(frozen=True)
class JobState:
    id: str
    state: str = "queued"  # queued | running | done | failed | cancelled
    created: float = field(default_factory=time.time)
    names: tuple[str, ...] = ()  # what the user called the inputs (shown only, never used as paths)
    inputs: tuple[str, ...] = ()  # the inputs' names under files/
    options: dict[str, Any] = field(default_factory=dict)
    frames_done: int = 0
    frames_total: int | None = None
    fps: float = 0.0
    started: float | None = None
    finished: float | None = None
    outputs: tuple[str, ...] = ()
    error: str | None = None

    @classmethod
    def load(cls, path: Path) -> JobState:
        data = json.loads(path.read_text())
        for key in ("names", "inputs", "outputs"):
            data[key] = tuple(data.get(key, ()))
        return cls(**data)


def new_job_id() -> str:
    return uuid.uuid4().hex[:16]


class JobStore:
    """The jobs on disk and in memory; every change goes through `save` (tempfile + os.replace)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._jobs: dict[str, JobState] = {}

    def folder(self, job_id: str) -> Path:
        return self.root / job_id

    def files(self, job_id: str) -> Path:
        return self.root / job_id / "files"

    def get(self, job_id: str) -> JobState | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[JobState]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created)

    def active(self) -> int:
        with self._lock:
            return sum(j.state in ACTIVE for j in self._jobs.values())

    def save(self, job: JobState) -> JobState:
        folder = self.folder(job.id)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".state.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(asdict(job), f, indent=1)
            os.replace(tmp, folder / "state.json")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with self._lock:
            self._jobs[job.id] = job
        return job

    def update(self, job_id: str, **changes: Any) -> JobState:
        job = self.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return self.save(replace(job, **changes))

    def remove(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def load(self) -> list[str]:
        """Read the jobs left by an earlier run: running ones failed, their outputs removed; queued ones
        are returned to be queued again."""
        requeue = []
        for state_file in sorted(self.root.glob("*/state.json")):
            try:
                job = JobState.load(state_file)
            except (OSError, ValueError, TypeError) as e:
                log.warning("%s: unreadable job state, ignored (%s)", state_file, e)
                continue
            with self._lock:
                self._jobs[job.id] = job
            if job.state == "running":
                self.remove_outputs(job)
                self.update(job.id, state="failed", error=RESTARTED, finished=time.time(), outputs=())
            elif job.state == "queued":
                requeue.append(job.id)
        return requeue

    def remove_outputs(self, job: JobState) -> None:
        files = self.files(job.id)
        for path in files.iterdir() if files.is_dir() else ():
            if path.name not in job.inputs:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()

    def list_outputs(self, job: JobState) -> tuple[str, ...]:
        files = self.files(job.id)
        if not files.is_dir():
            return ()
        found = [
            p.relative_to(files).as_posix()
            for p in sorted(files.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.relative_to(files).parts[0] not in job.inputs
        ]
        return tuple(found)


class JobQueue:
    """One worker thread running one job at a time through the server's one `Matter`."""

    def __init__(self, store: JobStore, matter: Any) -> None:
        self.store = store
        self.matter = matter
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._cancels: dict[str, threading.Event] = {}
        self._thread = threading.Thread(target=self._work, name="trt_modnet-serve-jobs", daemon=True)

    def start(self, requeue: list[str]) -> None:
        for job_id in requeue:
            self.submit(job_id)
        self._thread.start()

    def submit(self, job_id: str) -> None:
        self._cancels[job_id] = threading.Event()
        self._queue.put(job_id)

    def cancel(self, job_id: str) -> JobState | None:
        """A queued job is cancelled at once; a running one stops within about a batch."""
        job = self.store.get(job_id)
        event = self._cancels.get(job_id)
        if event is not None:
            event.set()
        if job is not None and job.state == "queued":
            job = self.store.update(job_id, state="cancelled", finished=time.time())
        return job

    def stop(self, timeout: float = 30.0) -> None:
        for event in self._cancels.values():
            event.set()
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _work(self) -> None:
        while (job_id := self._queue.get()) is not None:
            job = self.store.get(job_id)
            event = self._cancels.get(job_id)
            if job is None or job.state != "queued" or event is None or event.is_set():
                continue
            try:
                self._run(job, event)
            except Exception as e:  # a full disk or a bug fails the job, never the server
                log.exception("job %s failed", job_id)
                self._finish(job_id, "failed", f"{type(e).__name__}: {e}")
            finally:
                self._cancels.pop(job_id, None)

    def _run(self, job: JobState, cancel: threading.Event) -> None:
        files = self.store.files(job.id)
        started = time.monotonic()
        self.store.update(job.id, state="running", started=time.time())
        progress = _Progress(self.store, job.id, started)
        try:
            # Into files/ (a folder: the trailing separator, as the CLI's -o), also for inputs that are
            # links to shared storage, which is never written to.
            results = trt_modnet.process(
                [str(files / name) for name in job.inputs],
                f"{files}{os.sep}",
                **{"preview": files / f"{PREVIEW_STEM}.png", **job.options},
                matter=self.matter,
                progress=progress,
                cancel=cancel,
                quiet=True,
            )
        except trt_modnet.MattingError as e:
            self._finish(job.id, "failed", str(e))
            return
        progress.flush()
        self._finish(job.id, *_outcome(results, cancel))

    def _finish(self, job_id: str, state: str, error: str | None = None) -> None:
        job = self.store.get(job_id)
        if job is None:  # removed meanwhile
            return
        if state == "cancelled":
            self.store.remove_outputs(job)
        outputs = self.store.list_outputs(job)
        self.store.update(job_id, state=state, error=error, outputs=outputs, finished=time.time())


def _outcome(results: list[Any], cancel: threading.Event) -> tuple[str, str | None]:
    if cancel.is_set() or any(r.status == "cancelled" for r in results):
        return "cancelled", None
    failed = [r for r in results if str(r.status).startswith("failed")]
    if failed:
        return "failed", " ".join(_one_line(r) for r in failed)
    return "done", None


def _one_line(result: Any) -> str:
    """The CLI's reason, with the server's own file name left out (the page names the job)."""
    text = result.error or str(result.status).removeprefix("failed: ")
    return text.replace(f"{result.path}: ", "").replace(str(result.path), Path(result.path).name)


class _Progress:
    """The `progress` callback: frames over all files of the job, fps since it started."""

    def __init__(self, store: JobStore, job_id: str, started: float) -> None:
        self.store, self.job_id, self.started = store, job_id, started
        self.done: dict[str, int] = {}
        self.totals: dict[str, int | None] = {}
        self.saved = 0.0

    def __call__(self, file: Path, done: int, total: int | None) -> None:
        self.done[str(file)], self.totals[str(file)] = done, total
        now = time.monotonic()
        if now - self.saved >= _SAVE_EVERY:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.saved = now
        done = sum(self.done.values())
        totals = list(self.totals.values())
        total = None if not totals or None in totals else sum(t or 0 for t in totals)
        fps = done / (now - self.started) if now > self.started else 0.0
        if self.store.get(self.job_id) is not None:
            self.store.update(self.job_id, frames_done=done, frames_total=total, fps=round(fps, 2))
