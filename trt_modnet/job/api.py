"""`trt_modnet.process(...)`: the main job as a function. The CLI, the web server and the stream tools are
thin layers over it (DESIGN.md principle 8: every door opens onto the same job)."""

from __future__ import annotations

import difflib
import inspect
import os
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trt_modnet.errors import MattingError
from trt_modnet.graph.deploy import OUTPUTS, DeploySpec
from trt_modnet.graph.official import DEFAULT_REF_SIZE, SIZE_MULTIPLE
from trt_modnet.graph.precision import PRECISIONS
from trt_modnet.job.file_job import FileHooks, ProgressCallback, open_job_runner, process_file
from trt_modnet.job.inputs import collect_inputs
from trt_modnet.job.live import DROPS, is_stream_job, run_stream_job
from trt_modnet.job.plan import graph_outputs, plan_run, prepare_destinations
from trt_modnet.job.settings import JobSettings
from trt_modnet.job.summary import FileResult
from trt_modnet.models import resolve_model
from trt_modnet.models.download import DownloadSettings
from trt_modnet.runtime.base import Runner
from trt_modnet.runtime.select import BACKENDS
from trt_modnet.video import FORMATS
from trt_modnet.video.formats import TIMESTAMPS
from trt_modnet.video.streams import STREAM_FORMATS

if TYPE_CHECKING:
    from trt_modnet.job.matter import Matter

PathLike = str | os.PathLike[str]


def process(
    inputs: PathLike | Sequence[PathLike],
    output: PathLike | None = None,
    *,
    mode: str | Sequence[str] | None = None,
    format: str | None = None,
    background: str | None = None,
    model: PathLike | None = None,
    backend: str = "auto",
    precision: str = "auto",
    batch: int = 4,
    ref_size: int = DEFAULT_REF_SIZE,
    threads: int | None = None,
    start: float | None = None,
    duration: float | None = None,
    preview: PathLike | None = None,
    ofd: bool = False,
    overwrite: bool = False,
    recursive: bool = False,
    audio: bool = True,
    audio_out: PathLike | None = None,
    timestamps: str | None = None,
    codec_options: Sequence[tuple[str, str]] = (),
    encoder: str = "auto",
    decoder: str = "auto",
    rgba: PathLike | None = None,
    alpha: PathLike | None = None,
    composite: PathLike | None = None,
    stream: int | None = None,
    engines: PathLike = "engines",
    ray: str | None = None,
    segment_seconds: float | None = None,
    live: bool | None = None,
    drop: str | None = None,
    max_latency: float = 0.5,
    idle_timeout: float = 10.0,
    input_format: str | None = None,
    quiet: bool = True,
    progress: bool | ProgressCallback = False,
    matter: Matter | None = None,
    cancel: threading.Event | None = None,
    **unknown: Any,
) -> list[FileResult]:
    """Matte video and image files, as `python -m trt_modnet.process` does, byte for byte.

    Every keyword is the CLI option of the same name with the same default (docs/api.md). `mode` is
    "rgba", "alpha", "composite", a comma list or a sequence of them; None writes rgba (images: rgba
    and alpha PNGs), as the CLI without --mode. `output` ending in a path separator is a folder.
    `progress`: True shows tqdm bars on stderr; a callable gets `(file, frames_done, frames_total)`
    (total None when unknown) from the job's threads. `matter`: an open `Matter` whose model, backend,
    precision and runtime the job reuses. `cancel`: when set, the file in progress stops within about a
    batch, its partial outputs are removed, and it and every file not started report "cancelled".
    `quiet` silences the model download's progress.

    Returns one `FileResult` per input; a file that fails is a result, not an exception. A bad call (bad
    option values, an unknown keyword, no inputs) raises `MattingError`.
    """
    if unknown:  # a server passing options from JSON gets our error, not a TypeError
        raise MattingError(_unknown_keyword(next(iter(unknown))))
    job = job_settings(
        inputs,
        output,
        mode=mode,
        format=format,
        background=background,
        model=model,
        backend=backend,
        precision=precision,
        batch=batch,
        ref_size=ref_size,
        threads=threads,
        start=start,
        duration=duration,
        preview=preview,
        ofd=ofd,
        overwrite=overwrite,
        recursive=recursive,
        audio=audio,
        audio_out=audio_out,
        timestamps=timestamps,
        codec_options=codec_options,
        encoder=encoder,
        decoder=decoder,
        extra=(("rgba", rgba), ("alpha", alpha), ("composite", composite)),
        stream=stream,
        engines=engines,
        ray=ray,
        segment_seconds=segment_seconds,
        live=live,
        drop=drop,
        max_latency=max_latency,
        idle_timeout=idle_timeout,
        input_format=input_format,
        quiet=quiet,
    )
    if matter is not None:
        job = matter.job_settings(job)
    return run_job(job, FileHooks(progress=progress, cancel=cancel), matter=matter)


def _unknown_keyword(name: str) -> str:
    known = [p for p in inspect.signature(process).parameters if p not in ("inputs", "unknown")]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; the keywords are {', '.join(known)}"
    return f"process() got an unknown keyword {name!r}{hint}"


def settings_from(keywords: dict[str, Any]) -> JobSettings:
    """The JobSettings for `process`'s keywords, every one given (the CLI's parse; `progress` ignored)."""
    kw = {k: v for k, v in keywords.items() if k not in ("progress", "matter", "cancel")}
    extra = tuple((m, kw.pop(m)) for m in OUTPUTS)
    return job_settings(kw.pop("inputs"), kw.pop("output"), extra=extra, **kw)


def job_settings(
    inputs: PathLike | Sequence[PathLike],
    output: PathLike | None,
    *,
    mode: str | Sequence[str] | None,
    extra: Sequence[tuple[str, PathLike | None]],
    codec_options: Sequence[tuple[str, str]],
    **options: object,
) -> JobSettings:
    """The JobSettings the keywords describe, checked as the CLI's parser checks them."""
    paths = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    if not paths:
        raise MattingError("no inputs: give at least one video, image, folder or glob")
    modes = _modes(mode)
    _check_options(options)
    pairs = tuple(codec_options)
    if any(not isinstance(p, tuple) or len(p) != 2 or not p[0] for p in pairs):
        raise MattingError(f"codec_options {pairs!r}: expected (KEY, VALUE) pairs")
    out = None if output is None else os.fspath(output)
    optional_paths = ("preview", "audio_out")
    for key in optional_paths:
        if options[key] is not None:
            options[key] = Path(os.fspath(options[key]))  # type: ignore[arg-type]
    options["engines"] = Path(os.fspath(options["engines"]))  # type: ignore[arg-type]
    return JobSettings(
        inputs=tuple(os.fspath(p) for p in paths),
        output=None if out is None else Path(out),
        output_folder=out is not None and out.endswith(("/", os.sep)),
        modes=modes or ("rgba",),
        modes_given=modes is not None,
        extra_outputs=tuple((m, Path(os.fspath(p))) for m, p in extra if p is not None),
        codec_options=tuple((str(k), str(v)) for k, v in pairs),
        **options,  # type: ignore[arg-type]
    )


def _modes(mode: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if mode is None:
        return None
    modes = tuple(mode.split(",")) if isinstance(mode, str) else tuple(mode)
    bad = [m for m in modes if m not in OUTPUTS]
    if bad or not modes:
        raise MattingError(f"unknown mode {bad[0] if bad else ''!r}: choose from {', '.join(OUTPUTS)}")
    return modes


def _check_options(o: dict[str, object]) -> None:
    """The values the CLI's parser would refuse, refused with the same words."""
    choices = {
        "backend": BACKENDS,
        "precision": PRECISIONS,
        "format": (*FORMATS, *STREAM_FORMATS),
        "timestamps": TIMESTAMPS,
        "drop": DROPS,
        "decoder": ("auto", "cpu", "nvdec"),
    }
    for key, allowed in choices.items():
        if o[key] is not None and o[key] not in allowed:
            raise MattingError(f"{key} {o[key]!r}: choose from {', '.join(allowed)}")
    if not _is_int(o["batch"]) or o["batch"] < 1:  # type: ignore[operator]
        raise MattingError(f"batch must be an integer of at least 1, got {o['batch']!r}")
    if not _is_int(o["ref_size"]) or o["ref_size"] < SIZE_MULTIPLE:  # type: ignore[operator]
        raise MattingError(
            f"ref_size must be an integer of at least {SIZE_MULTIPLE} (MODNet's smallest input), "
            f"got {o['ref_size']!r}"
        )
    if o["threads"] is not None and (not _is_int(o["threads"]) or o["threads"] < 1):  # type: ignore[operator]
        raise MattingError(f"threads must be an integer of at least 1, got {o['threads']!r}")
    for key in ("start", "duration"):
        value = o[key]
        if value is not None and (not isinstance(value, int | float) or value < 0):
            raise MattingError(f"{key} must be a number of seconds of at least 0, got {value!r}")
    for key in ("max_latency", "idle_timeout"):
        if not isinstance(o[key], int | float) or not o[key] > 0:
            raise MattingError(f"{key} must be more than 0 seconds, got {o[key]!r}")
    seconds = o["segment_seconds"]
    if seconds is not None and (not isinstance(seconds, int | float) or not seconds > 0):
        raise MattingError(f"segment_seconds must be more than 0 seconds, got {seconds!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def run_job(
    job: JobSettings, hooks: FileHooks | None = None, matter: Matter | None = None
) -> list[FileResult]:
    """Process every input; a failed file never stops the batch. Ctrl-C propagates."""
    if is_stream_job(job):  # standard input or output, a URL, a camera: trt_modnet.job.live
        if matter is not None:
            raise MattingError("a stream job opens its own runner (live: the webcam model): drop matter")
        return run_stream_job(job)
    hooks = hooks or FileHooks(progress=not job.quiet)
    inputs = collect_inputs(job.inputs, recursive=job.recursive)
    plans = plan_run(job, inputs)
    if job.segment_seconds is not None:
        from trt_modnet.distributed.segments import check_segments

        check_segments(job, plans)
    prepare_destinations(job, plans)
    needed = graph_outputs(job, plans)
    if not any(plan.todo_paths and plan.problem is None for plan in plans):
        return [process_file(job, None, plan, hooks=hooks) for plan in plans]  # nothing to compute
    spec = DeploySpec(outputs=needed, ref_size=job.ref_size)
    if job.ray is not None:
        if matter is not None:
            raise MattingError("ray runs the files on Ray workers, each with its own runner: drop matter")
        from trt_modnet.distributed.files import run_on_ray

        model = resolve_model(job.model, DownloadSettings(progress=not job.quiet))
        return run_on_ray(job, model, spec, plans)
    opened: AbstractContextManager[Runner]
    if matter is not None:
        opened = matter.job_runner(needed)
    else:
        model = resolve_model(job.model, DownloadSettings(progress=not job.quiet))
        opened = open_job_runner(job, model, spec)
    results: list[FileResult] = []
    with opened as runner:
        for plan in plans:
            results.append(process_file(job, runner, plan, hooks=hooks))
    return results
