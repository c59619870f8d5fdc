"""One input file through an open runner to its outputs: the unit of work, in one process and on Ray."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from trt_modnet.errors import MattingError
from trt_modnet.graph.deploy import DeploySpec
from trt_modnet.graph.official import inference_size
from trt_modnet.job.background import open_background
from trt_modnet.job.ofd import SmoothedOutputs
from trt_modnet.job.pipeline import Pipeline, PipelineSettings
from trt_modnet.job.plan import FilePlan
from trt_modnet.job.preview import ContactSheet
from trt_modnet.job.resources import bounded_batch, warn_if_large_frame, warn_if_low_space
from trt_modnet.job.settings import JobSettings
from trt_modnet.job.summary import FileResult
from trt_modnet.job.threads import decoder_for, thread_budget
from trt_modnet.runtime.base import Runner
from trt_modnet.runtime.select import open_runner
from trt_modnet.video import Frame, open_reader, open_writer

log = logging.getLogger("trt_modnet")

#: `progress(file, frames done, frames expected or None)`, called from the job's threads as frames are
#: written.
ProgressCallback = Callable[[Path, int, "int | None"], None]


@dataclass(frozen=True)
class FileHooks:
    """What the caller of one process (the Python API) watches a file with; never sent to Ray workers."""

    #: True: a tqdm bar per file on stderr; a callable: called as frames are written; False: nothing.
    progress: bool | ProgressCallback = False
    #: Set: stop within about a batch, remove the partial outputs, status "cancelled".
    cancel: threading.Event | None = None


class Cancelled(Exception):
    """`FileHooks.cancel` was set: raised in the decode thread so the pipeline stops and cleans up."""


def open_job_runner(
    job: JobSettings, model: Path, spec: DeploySpec, *, note: str = ""
) -> AbstractContextManager[Runner]:
    """The runner the job's options ask for: one per job here, one per worker on Ray; `note` is added
    to the line that names the backend."""
    budget = thread_budget(threads=job.threads)
    return open_runner(
        job.backend,
        model,
        spec,
        precision=job.precision,
        threads=budget.inference,
        streams=budget.streams,
        engines_dir=job.engines,
        note=note,
    )


def process_file(
    job: JobSettings,
    runner: Runner | None,
    plan: FilePlan,
    on_frames: Callable[[int], None] | None = None,
    hooks: FileHooks | None = None,
) -> FileResult:
    """One input to its outputs with an open runner: the unit of work, here and on Ray workers."""
    path = plan.input
    hooks = hooks or FileHooks(progress=not job.quiet)
    if hooks.cancel is not None and hooks.cancel.is_set():
        return FileResult(path, 0, 0.0, plan.todo_paths[0] if plan.todo_paths else path, "cancelled")
    if plan.problem is not None:
        log.error("%s", plan.problem)
        return FileResult(path, 0, 0.0, path, f"failed: {plan.problem}")
    if not plan.todo_paths:
        shown = plan.existing[0] if plan.existing else path
        return FileResult(path, 0, 0.0, shown, "skipped (output exists; --overwrite replaces it)")
    assert runner is not None
    first = plan.todo_paths[0]
    started = time.perf_counter()
    try:
        frames = _run_file(job, runner, plan, on_frames, hooks)
    except Cancelled:
        return FileResult(path, 0, 0.0, first, "cancelled")
    except MattingError as exc:
        log.error("%s", exc)
        return FileResult(path, 0, 0.0, first, f"failed: {exc}")
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # a bug, not bad input: show it, then go on with the batch
        log.exception("%s: unexpected %s", path, type(exc).__name__)
        return FileResult(path, 0, 0.0, first, f"failed: internal error {type(exc).__name__}: {exc}")
    elapsed = time.perf_counter() - started
    fps = frames / elapsed if elapsed > 0 else 0.0
    return FileResult(path, frames, fps, first, "ok", outputs=tuple(plan.todo_paths))


def _run_file(
    job: JobSettings,
    runner: Runner,
    plan: FilePlan,
    on_frames: Callable[[int], None] | None,
    hooks: FileHooks,
) -> int:
    path, specs = plan.input, plan.outputs
    with ExitStack() as stack:
        reader = stack.enter_context(
            open_reader(
                path,
                stream_index=job.stream,
                start=job.start,
                duration=job.duration,
                decoder=decoder_for(job),
            )
        )
        info = reader.info
        expected = reader.expected_frames
        _check_size(path, info.height, info.width, job.ref_size)
        warn_if_large_frame(path, info.height, info.width, tuple(s.content for s in specs))
        background = None
        if any(s.content == "composite" for s in specs):
            background = stack.enter_context(open_background(job.background))
        writers = [(s.content, stack.enter_context(open_writer(s, reader))) for s in specs]
        warn_if_low_space(specs, expected, info.height, info.width)  # the writers checked the folders
        sheet = ContactSheet(frame_count=expected) if plan.preview else None
        bar = stack.enter_context(
            tqdm(total=expected, desc=path.name, unit="frame", disable=hooks.progress is not True)
        )
        if on_frames is None:
            on_frames = (
                bar.update if not callable(hooks.progress) else _reporter(path, expected, hooks.progress)
            )
        pipeline = Pipeline(
            runner,
            writers,
            settings=PipelineSettings(
                batch=bounded_batch(job.batch, expected, info.height, info.width, path)
            ),
            background=background,
            smoother=SmoothedOutputs(tuple(s.content for s in specs)) if job.ofd else None,
            on_batch=sheet.offer_batch if sheet else None,
            on_frames=on_frames,
        )
        frames = reader if hooks.cancel is None else _until(hooks.cancel, reader)
        count = pipeline.run(frames, info.height, info.width)
        if count == 0:
            raise MattingError(f"{path}: no frames to process (check --start and --duration)")
        if sheet is not None and plan.preview is not None:
            sheet.save(plan.preview, overwrite=job.overwrite)
        return count


def _reporter(path: Path, expected: int | None, progress: ProgressCallback) -> Callable[[int], None]:
    done = 0

    def report(count: int) -> None:
        nonlocal done
        done += count
        progress(path, done, expected)

    return report


def _until(cancel: threading.Event, frames: Iterable[Frame]) -> Iterator[Frame]:
    """The frames until `cancel` is set; then Cancelled, which stops every stage of the pipeline."""
    for frame in frames:
        if cancel.is_set():
            raise Cancelled
        yield frame
    if cancel.is_set():  # set while the last batch was decoded: the outputs must not be finished
        raise Cancelled


def _check_size(path: Path, height: int, width: int, ref_size: int) -> None:
    try:
        inference_size(height, width, ref_size)
    except MattingError as exc:
        raise MattingError(f"{path}: {exc}") from None
