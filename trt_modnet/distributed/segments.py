"""`--segment-seconds N`: one video as keyframe-aligned pieces on Ray workers, joined into one output.

The driver reads the video's packet times (demuxing only, nothing decoded) and cuts it at the first
keyframe at or after every N seconds. Each piece is a unit of work: a worker runs it through the same
per-file function as a whole file, reading it as a `--start/--duration` segment whose bounds fall
halfway between two frames, and its writers keep only the piece's own frames (`formats.Piece`), without
audio, under a hidden temporary name. With `--ofd` a piece reads one frame more on each side, so its
first and last frames are smoothed with the same neighbours as in the unsplit run. When every piece of a
file is done the driver joins them by stream copy (`video.join`), the audio muxed once from the source,
and renames the output into place.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from trt_modnet.errors import MattingError
from trt_modnet.job.inputs import is_image
from trt_modnet.job.plan import FilePlan
from trt_modnet.job.summary import FileResult
from trt_modnet.video import VideoInfo, open_reader, validate_output
from trt_modnet.video.formats import OutputSpec, Piece, resolve_format
from trt_modnet.video.join import JOINABLE, join_pieces
from trt_modnet.video.reader import open_input, pick_video_stream
from trt_modnet.video.staging import remove_partial

if TYPE_CHECKING:
    from trt_modnet.job.settings import JobSettings

log = logging.getLogger("trt_modnet")


def check_segments(job: JobSettings, plans: Sequence[FilePlan]) -> None:
    """Refuse what `--segment-seconds` cannot do, with one line, before any work."""
    seconds = job.segment_seconds
    if seconds is None:
        return
    if not seconds > 0:
        raise MattingError(f"--segment-seconds must be more than 0 seconds, got {seconds}")
    if job.ray is None:
        raise MattingError(
            "--segment-seconds runs the pieces on Ray workers: add --ray local (or auto, ADDRESS)"
        )
    if job.start is not None or job.duration is not None:
        raise MattingError("--segment-seconds splits whole files: leave out --start and --duration")
    for plan in plans:
        if plan.preview is not None:
            raise MattingError(f"{plan.preview}: --preview cannot be combined with --segment-seconds")
        for spec in plan.outputs:
            _check_joinable(spec)


def _check_joinable(spec: OutputSpec) -> None:
    fmt = resolve_format(spec)
    if fmt.name not in JOINABLE:
        joinable = ", ".join(JOINABLE)
        raise MattingError(f"{spec.path}: --segment-seconds cannot join {fmt.suffix} outputs; use {joinable}")
    if spec.audio_out is not None:
        raise MattingError(f"{spec.audio_out}: --audio-out cannot be combined with --segment-seconds")


@dataclass(frozen=True)
class FrameTimes:
    """A video stream's frame times from its packets: every pts in presentation order, the keyframes'."""

    time_base: Fraction
    origin: int  # the stream's start time, what --start counts from
    pts: tuple[int, ...]
    keyframes: frozenset[int]


def frame_times(path: Path, stream_index: int | None) -> FrameTimes | None:
    """Demuxed, not decoded; None when the container gives no timestamps to cut at (raw H.264)."""
    with open_input(path) as container:
        stream = pick_video_stream(container, path, stream_index)
        if stream.start_time is None or not stream.time_base:
            return None
        pts, keyframes = [], set()
        for packet in container.demux(stream):
            if not packet.size:
                continue  # the demuxer's flush packet
            if packet.pts is None:
                return None
            pts.append(packet.pts)
            if packet.is_keyframe:
                keyframes.add(packet.pts)
    return FrameTimes(Fraction(stream.time_base), stream.start_time, tuple(sorted(pts)), frozenset(keyframes))


def cuts(times: FrameTimes, seconds: float) -> list[int]:
    """Where pieces start (indexes into `times.pts`): 0, then the first keyframe N seconds or more on."""
    step = Fraction(repr(float(seconds))) / times.time_base
    starts = [0]
    for i, pts in enumerate(times.pts):
        if pts in times.keyframes and pts >= times.pts[starts[-1]] + step:
            starts.append(i)
    return starts


@dataclass(frozen=True)
class Window:
    """What a unit reads, as `--start/--duration` seconds."""

    start: float | None
    duration: float | None


def window(times: FrameTimes, first: int, last: int) -> Window:
    """The segment that reads exactly frames `first`..`last`: its bounds fall halfway between two frames."""
    pts = times.pts

    def seconds(a: int) -> float:
        return float((Fraction(pts[a] + pts[a + 1], 2) - times.origin) * times.time_base)

    start = None if first == 0 else seconds(first - 1)
    end = None if last == len(pts) - 1 else seconds(last)
    return Window(start, None if end is None else end - (start or 0.0))


@dataclass(frozen=True)
class Unit:
    """One unit of work: a whole file (`window` None) or a piece of one."""

    index: int
    plan: FilePlan
    window: Window | None = None


def split_units(job: JobSettings, index: int, plan: FilePlan) -> SplitFile | None:
    """The file's pieces when `--segment-seconds` cuts it in two or more; None: one whole-file unit."""
    if job.segment_seconds is None or is_image(plan.input) or plan.input.is_dir():
        return None
    try:
        times = frame_times(plan.input, job.stream)
        with open_reader(plan.input, stream_index=job.stream) as reader:
            info = reader.info
    except MattingError:
        return None  # the worker reports it, as for a whole file
    if times is None:
        log.info("%s: no timestamps to cut at; processed as one unit", plan.input)
        return None
    starts = cuts(times, job.segment_seconds)
    if len(starts) < 2:
        return None
    return SplitFile(index, plan, info, times, starts, ofd=job.ofd)


class SplitFile:
    """One input's pieces: the units to run, then, as each is `finished`, the join into the outputs."""

    def __init__(
        self, index: int, plan: FilePlan, info: VideoInfo, times: FrameTimes, starts: list[int], *, ofd: bool
    ) -> None:
        self.plan = plan
        self.info = info
        self.origin = Fraction(times.pts[0]) * times.time_base
        count = len(times.pts)
        context = 1 if ofd else 0  # OFD smooths a frame with both neighbours
        self.units: list[Unit] = []
        for first, stop in zip(starts, [*starts[1:], count], strict=True):
            piece = Piece(
                origin=times.pts[0], start=times.pts[first], end=times.pts[stop] if stop < count else None
            )
            outputs = tuple(_piece_spec(s, piece) for s in plan.outputs)
            read = window(times, max(0, first - context), min(count - 1, stop - 1 + context))
            self.units.append(Unit(index, FilePlan(plan.input, outputs, None), read))
        self._results: dict[Path, FileResult] = {}
        self._nodes: set[str] = set()
        self._started = time.perf_counter()

    def finished(self, unit: Unit, result: FileResult) -> FileResult | None:
        """Take a piece's result; the file's, once every piece is in: the outputs joined, or the failure."""
        self._results[unit.plan.outputs[0].path] = result
        if result.node:
            self._nodes.add(result.node)
        if len(self._results) < len(self.units):
            return None
        try:
            failed = next((r for r in self._results.values() if r.failed), None)
            return (
                self._join()
                if failed is None
                else dataclasses.replace(failed, output=self.plan.todo_paths[0])
            )
        finally:
            self.discard()

    def discard(self) -> None:
        """Remove every piece and what a worker left of one."""
        for unit in self.units:
            for spec in unit.plan.outputs:
                remove_partial(spec.path)
                if spec.path.is_dir():
                    shutil.rmtree(spec.path, ignore_errors=True)
                else:
                    spec.path.unlink(missing_ok=True)

    def _join(self) -> FileResult:
        path, first = self.plan.input, self.plan.todo_paths[0]
        node = ",".join(sorted(self._nodes)) or None
        try:
            frames = 0
            for k, spec in enumerate(self.plan.outputs):
                pieces = [unit.plan.outputs[k].path for unit in self.units]
                joined = join_pieces(validate_output(spec, self.info), self.info, pieces, self.origin)
                frames = frames or joined
        except MattingError as exc:
            log.error("%s", exc)
            return FileResult(path, 0, 0.0, first, f"failed: {exc}", node=node)
        elapsed = time.perf_counter() - self._started
        return FileResult(
            path,
            frames,
            frames / elapsed if elapsed > 0 else 0.0,
            first,
            "ok",
            node=node,
            outputs=tuple(self.plan.todo_paths),
        )


def _piece_spec(spec: OutputSpec, piece: Piece) -> OutputSpec:
    """A piece of `spec`: a hidden temporary name beside it (cleaned up as one), no audio (joined once)."""
    final = spec.path
    path = final.parent / f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.part"
    fmt = resolve_format(spec).name  # the name no longer says it
    return dataclasses.replace(
        spec, path=path, format=fmt, audio=False, audio_out=None, replace=False, piece=piece
    )
