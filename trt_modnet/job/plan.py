"""Every output of a run, named and checked before the first frame: no two inputs share an output.

Names follow `default_output_path` (or `-o`). When two inputs would write the same output, each of
them is renamed, never silently merged: under a `-o` folder the inputs' folders are mirrored
(`out/a/clip.matte.mov`, `out/b/clip.matte.mov`); inputs in one folder that differ only by extension
keep it in the name (`clip.mp4.matte.mov`, `clip.mov.matte.mov`). One line says so for each.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trt_modnet.errors import MattingError
from trt_modnet.graph.deploy import OUTPUTS
from trt_modnet.job.inputs import is_image
from trt_modnet.job.ofd import SmoothedOutputs
from trt_modnet.job.threads import beside_gpu, encoder_instances
from trt_modnet.video import OutputSpec, default_output_path
from trt_modnet.video.formats import check_parent_folder, resolve_format
from trt_modnet.video.staging import remove_stale

if TYPE_CHECKING:
    from trt_modnet.job.settings import JobSettings

log = logging.getLogger("trt_modnet")


@dataclass(frozen=True)
class FilePlan:
    """One input and what to write for it; `todo` and `preview` left out when they exist already."""

    input: Path
    outputs: tuple[OutputSpec, ...]
    preview: Path | None
    problem: str | None = None  # set: the input fails with this message before any work
    #: Outputs left alone because they exist (without --overwrite), for the summary's output column.
    existing: tuple[Path, ...] = ()

    @property
    def todo_paths(self) -> list[Path]:
        return [s.path for s in self.outputs] + ([self.preview] if self.preview else [])


@dataclass(frozen=True)
class _Naming:
    mirror: Path | None = None  # the input's folder relative to the inputs' common folder
    tagged: bool = False  # the input's extension kept in the output name


def plan_run(job: JobSettings, inputs: list[Path]) -> list[FilePlan]:
    """The outputs of every input, renamed where they would collide; raises on a bad option."""
    _check_options(job, inputs)
    total = len(inputs)
    namings = {path: _Naming() for path in inputs}
    for fix in (_mirrored, _tagged):
        for path in _colliding(job, inputs, namings, total):
            namings[path] = fix(namings[path], path, inputs, job)
    if _colliding(job, inputs, namings, total):
        raise MattingError("two inputs would write the same output; name the outputs with -o per input")
    plans = [_plan_file(job, path, namings[path], total, inputs) for path in inputs]
    if job.audio_out is not None and not any(s.audio_out for plan in plans for s in plan.outputs):
        raise MattingError(f"{job.audio_out}: --audio-out is for PNG sequences; the outputs carry the audio")
    for plan, naming in zip(plans, namings.values(), strict=True):
        if naming != _Naming() and plan.outputs:
            log.info("%s: another input has the same name; writing %s", plan.input, plan.outputs[0].path)
    return plans


def prepare_destinations(job: JobSettings, plans: list[FilePlan]) -> None:
    """Create the `-o` folder (and mirrored subfolders); remove partial outputs of dead runs there."""
    folders = {path.parent for plan in plans for path in plan.todo_paths}
    out = job.output
    if out is not None and _output_is_folder(job, len(plans)):
        for folder in folders:
            if folder == out or out in folder.parents:
                folder.mkdir(parents=True, exist_ok=True)
    remove_stale(folders)


def _check_options(job: JobSettings, inputs: list[Path]) -> None:
    if job.extra_outputs and len(inputs) > 1:
        raise MattingError("--rgba/--alpha/--composite PATH name one file: use them with a single input")
    out = job.output
    if out is not None and len(inputs) > 1 and out.exists() and not out.is_dir():
        raise MattingError(f"{out}: with several inputs -o must be a folder")
    repeated = [m for m, n in Counter(job.modes).items() if n > 1]
    if repeated:
        raise MattingError(f"--mode {','.join(job.modes)}: {repeated[0]} is named twice")
    if out is not None and job.format is not None and not _output_is_folder(job, len(inputs)):
        suffix = resolve_format(OutputSpec(out, format=job.format)).suffix
        if out.suffix and suffix and out.suffix.lower() != suffix:
            raise MattingError(f"{out}: --format {job.format} writes {suffix} files, not {out.suffix}")
    if job.preview is not None:
        _check_preview(job.preview)


def _check_preview(preview: Path) -> None:
    if preview.suffix.lower() != ".png":
        raise MattingError(f"{preview}: the preview is a PNG image; name it .png")
    if preview.is_dir():
        raise MattingError(f"{preview}: is a folder; the preview needs a file name")
    check_parent_folder(preview)


def _colliding(job: JobSettings, inputs: list[Path], namings: dict[Path, _Naming], total: int) -> list[Path]:
    """Inputs whose outputs (or preview) another input also writes."""
    owners: dict[Path, set[Path]] = {}
    for path in inputs:
        plan = _plan_file(job, path, namings[path], total, inputs, all_outputs=True)
        for target in plan.todo_paths:
            owners.setdefault(_key(target), set()).add(path)
    return sorted({p for owner in owners.values() if len(owner) > 1 for p in owner})


def _mirrored(naming: _Naming, path: Path, inputs: list[Path], job: JobSettings) -> _Naming:
    if job.output is None or not _output_is_folder(job, len(inputs)) or len(inputs) < 2:
        return naming
    common = Path(os.path.commonpath([p.parent for p in inputs]))
    return _Naming(mirror=path.parent.relative_to(common), tagged=naming.tagged)


def _tagged(naming: _Naming, path: Path, inputs: list[Path], job: JobSettings) -> _Naming:
    return _Naming(mirror=naming.mirror, tagged=True)


def _plan_file(
    job: JobSettings,
    path: Path,
    naming: _Naming,
    total: int,
    inputs: list[Path],
    *,
    all_outputs: bool = False,
) -> FilePlan:
    modes = job.modes
    if is_image(path) and not job.modes_given:
        modes = ("rgba", "alpha")  # as the official demo: the cut-out and the matte
    targets = [(m, _output_path(job, path, m, total, naming, primary=i == 0)) for i, m in enumerate(modes)]
    targets.extend(job.extra_outputs)
    preview = None if job.preview is None else _preview_path(job.preview, path, naming, total)
    specs = tuple(_spec(job, target, mode) for mode, target in targets)
    if all_outputs:
        return FilePlan(path, specs, preview)
    own = [s.path for s in specs] + ([preview] if preview else [])
    problem = _own_problem(own, inputs)
    if problem:
        return FilePlan(path, specs, preview, problem)
    todo = tuple(s for s in specs if job.overwrite or not os.path.lexists(s.path))
    existing = tuple(s.path for s in specs if s not in todo)
    if preview is not None and not job.overwrite and os.path.lexists(preview):
        existing += (preview,)
        preview = None
    return FilePlan(path, todo, preview, existing=existing)


def _own_problem(own: list[Path], inputs: list[Path]) -> str | None:
    keys = [_key(p) for p in own]
    sources = {_key(p) for p in inputs}
    for path, key in zip(own, keys, strict=True):
        if key in sources:
            return f"{path}: is an input; refusing to overwrite it"
        if keys.count(key) > 1:
            return f"{path}: two outputs of this input (or the preview) have the same name"
    return None


def _spec(job: JobSettings, target: Path, mode: str) -> OutputSpec:
    return OutputSpec(
        path=target,
        content=mode,
        format=job.format,
        codec_options=dict(job.codec_options),
        encoder=job.encoder,
        gpu=beside_gpu(job),
        instances=encoder_instances(job),
        audio=job.audio,
        replace=job.overwrite,
        timestamps=job.timestamps,
        # Only a PNG sequence has no place for audio inside it; the other outputs carry it.
        audio_out=job.audio_out
        if resolve_format(OutputSpec(target, format=job.format)).name == "png"
        else None,
    )


def _output_path(
    job: JobSettings, path: Path, mode: str, total: int, naming: _Naming, *, primary: bool
) -> Path:
    source = path.with_name(f"{path.name}{path.suffix}") if naming.tagged and path.suffix else path
    default = default_output_path(source, mode, job.format)
    out = job.output
    if out is None:
        return default
    if _output_is_folder(job, total):
        return out / (naming.mirror or Path()) / default.name
    return out if primary else out.parent / default.name


def _output_is_folder(job: JobSettings, total: int) -> bool:
    out = job.output
    return out is not None and (total > 1 or out.is_dir() or job.output_folder)


def _preview_path(preview: Path, path: Path, naming: _Naming, total: int) -> Path:
    if total == 1:
        return preview
    name = path.name if naming.tagged else path.stem
    if naming.mirror is not None and naming.mirror != Path():
        name = f"{'.'.join(naming.mirror.parts)}.{name}"
    return preview.with_name(f"{preview.stem}.{name}{preview.suffix}")


def _key(path: Path) -> Path:
    return Path(os.path.abspath(path)).resolve()


def graph_outputs(job: JobSettings, plans: list[FilePlan]) -> tuple[str, ...]:
    wanted = {s.content for plan in plans for s in plan.outputs}
    if job.ofd:
        wanted = SmoothedOutputs.graph_outputs(wanted)
    if job.preview is not None and not wanted & {"alpha", "rgba"}:
        wanted.add("alpha")
    return tuple(o for o in OUTPUTS if o in wanted)
