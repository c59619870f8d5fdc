"""The main job on a stream: standard input or output, a URL or a camera, with a latency budget.

A live source does not wait for us: its frames are read by their own thread into a bounded `Feed` as they
arrive. With `--drop late` the pipeline takes the newest frames and drops (and counts) those that would
leave later than `--max-latency` after they arrived, judged by the time the last frames took from being
taken to being written (the newest frame always goes on, so that the job never stalls); the feed never
holds more than the budget's worth of frames. With `--drop never` the feed is bounded all the same and
the reader waits: a pipe then slows its writer down, a network source may lose packets in the kernel.

Ending: the end of the stream, `--idle-timeout` seconds without data, `--duration`, Ctrl-C, SIGTERM or
SIGHUP end the input; the frames in flight are finished, the output is closed (a playable file, or a
complete stream on standard output), and a summary says the frames in, out and dropped and the latency.
A second signal aborts. A reader of our standard output that closes it (`| head`) ends the job, exit 0.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import statistics
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType

import numpy as np
from tqdm import tqdm

from trt_modnet.errors import MattingError
from trt_modnet.graph.deploy import DeploySpec
from trt_modnet.job.background import open_background
from trt_modnet.job.ofd import SmoothedOutputs
from trt_modnet.job.pipeline import Pipeline, PipelineSettings
from trt_modnet.job.preview import ContactSheet
from trt_modnet.job.settings import JobSettings
from trt_modnet.job.summary import FileResult
from trt_modnet.models import MODEL_ENV, resolve_model
from trt_modnet.models.download import DownloadSettings
from trt_modnet.runtime.base import Runner
from trt_modnet.video import Frame, OutputSpec, open_reader, open_writer
from trt_modnet.video.streams import (
    STDIO,
    AudioTap,
    OutputClosed,
    StreamReader,
    StreamWriter,
    claim_stdout,
    stream_format,
    stream_kind,
)

log = logging.getLogger("trt_modnet")

DROPS = ("late", "never")
LIVE_MODEL = "webcam"
_POLL_S = 0.05
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def is_stream_job(job: JobSettings) -> bool:
    """A job with a stream input or standard output: run by `run_stream_job`."""
    return any(stream_kind(i) for i in job.inputs) or str(job.output) == STDIO or job.live is True


def is_live(job: JobSettings) -> bool:
    """URLs and devices are live unless `--live` says no; standard input and files only with `--live`."""
    if job.live is not None:
        return job.live
    return any(stream_kind(i) in ("url", "device") for i in job.inputs)


def live_model(job: JobSettings, live: bool) -> tuple[str | Path | None, str]:
    """The model for a run and the note for the backend line: live sources default to `webcam` (the
    official advice), unless --model or $TRT_MODNET_MODEL names one."""
    if job.model or not live or os.environ.get(MODEL_ENV):
        return job.model, ""
    return LIVE_MODEL, f"model {LIVE_MODEL}, the default for live sources"


@dataclass
class Stats:
    """What a stream run counts: frames in (received), out (written), dropped, and the latency of each
    frame written, from its arrival to its encoding, in seconds."""

    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    latencies: list[float] = field(default_factory=list)

    def line(self, name: str, ended: str, budget: float | None, ofd_delay: float | None) -> str:
        text = f"{name}: {self.frames_in} frames in, {self.frames_out} out, {self.dropped} dropped"
        if self.latencies:
            lat = sorted(self.latencies)
            p95 = lat[min(len(lat) - 1, math.ceil(0.95 * len(lat)) - 1)]
            text += f"; latency median {statistics.median(lat):.3f} s, p95 {p95:.3f} s, max {lat[-1]:.3f} s"
            if budget is not None:
                text += f" (budget {budget:g} s"
                text += f", --ofd adds one frame: {ofd_delay:.3f} s)" if ofd_delay else ")"
        return f"{text}; ended: {ended}"


class Feed:
    """Frames of a live source, read by a thread of their own into a bounded queue (see the module)."""

    def __init__(
        self,
        frames: Iterator[Frame],
        *,
        drop_late: bool,
        max_latency: float,
        capacity: int,
        stats: Stats,
        in_flight: int | None = None,
    ) -> None:
        """`in_flight`: frames taken and not yet written at most (live: the pipeline's own queues would
        otherwise hold frames that age there, out of the budget's sight)."""
        self._frames = frames
        self._drop_late = drop_late
        self._in_flight = in_flight
        self._budget = max_latency
        self._capacity = max(1, capacity)
        self.stats = stats
        self._queue: deque[tuple[Frame, float]] = deque()
        self._cond = threading.Condition()
        self._done = False
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self.arrival: dict[int, float] = {}
        self._taken: dict[int, float] = {}
        # Seconds from taken to written of the last frames: the longest of them is what a frame taken
        # now should expect (a mean would let every other frame over the budget).
        self._service: deque[float] = deque(maxlen=8)
        self._thread = threading.Thread(target=self._read, name="stream-read", daemon=True)

    def start(self) -> Feed:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def _read(self) -> None:
        try:
            for frame in self._frames:
                if self._stop.is_set() or not self._offer(frame):
                    break
        except BaseException as exc:
            self.error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _offer(self, frame: Frame) -> bool:
        with self._cond:
            self.stats.frames_in += 1
            if self._drop_late:
                while len(self._queue) >= self._capacity:
                    self._drop()
            else:
                while len(self._queue) >= self._capacity and not self._stop.is_set():
                    self._cond.wait(_POLL_S)
            self._queue.append((frame, time.monotonic()))
            self._cond.notify_all()
        return not self._stop.is_set()

    def _drop(self) -> None:
        self._queue.popleft()
        self.stats.dropped += 1

    def __iter__(self) -> Iterator[Frame]:
        while True:
            with self._cond:
                while not self._stop.is_set() and (
                    (not self._queue and not self._done) or self._full_pipeline()
                ):
                    self._cond.wait(_POLL_S)
                if not self._queue or self._stop.is_set():
                    self.stats.dropped += len(self._queue)  # stopped: what waited is not processed
                    self._queue.clear()
                    break
                if self._drop_late:
                    now = time.monotonic()
                    while len(self._queue) > 1 and now - self._queue[0][1] + self._expected() > self._budget:
                        self._drop()
                frame, arrived = self._queue.popleft()
                self.arrival[frame.index] = arrived
                self._taken[frame.index] = time.monotonic()
                self._cond.notify_all()
            yield frame
        if self.error is not None:
            raise self.error

    def _expected(self) -> float:
        return max(self._service, default=0.0)

    def _full_pipeline(self) -> bool:
        return self._in_flight is not None and len(self._taken) >= self._in_flight

    def written(self, frame: Frame) -> None:
        """Called by the first output's encoder thread after each frame."""
        now = time.monotonic()
        arrived = self.arrival.pop(frame.index, None)
        taken = self._taken.pop(frame.index, None)
        if arrived is not None:
            self.stats.latencies.append(now - arrived)
        with self._cond:
            if taken is not None:
                self._service.append(now - taken)
            self.stats.frames_out += 1
            self._cond.notify_all()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class _Counted:
    """A writer whose frames report to the feed (the first output: what the latency figure measures)."""

    def __init__(self, writer: object, feed: Feed) -> None:
        self._writer = writer
        self._feed = feed

    def write(self, image: np.ndarray, frame: Frame) -> None:
        self._writer.write(image, frame)  # type: ignore[attr-defined]
        self._feed.written(frame)

    def close(self) -> None:
        self._writer.close()  # type: ignore[attr-defined]

    def abort(self) -> None:
        self._writer.abort()  # type: ignore[attr-defined]


def check_stream_job(job: JobSettings) -> None:
    """The options a stream takes; one line for each that it does not."""
    streams = [i for i in job.inputs if stream_kind(i)]
    name = streams[0] if streams else job.inputs[0]
    if len(job.inputs) > 1 and (streams or str(job.output) == STDIO):
        raise MattingError(f"{name}: a stream is one input; run one job per stream")
    if job.ray is not None or job.segment_seconds is not None:
        raise MattingError(f"{name}: --ray and --segment-seconds are for files, not streams")
    if job.start is not None and streams:
        raise MattingError(f"{name}: a stream cannot seek; --start is for files")
    if job.output is None and streams:
        raise MattingError(f"{name}: name the output with -o (a file, or - for standard output)")
    if str(job.output) == STDIO and (len(job.modes) > 1 or job.extra_outputs):
        raise MattingError("-: standard output carries one stream: one --mode, no --rgba/--alpha/--composite")
    if job.max_latency <= 0 or job.idle_timeout <= 0:
        raise MattingError(f"{name}: --max-latency and --idle-timeout must be more than 0 seconds")
    for mode, path in _output_specs(job):
        stream_format(path, job.format, mode)  # refuses what a pipe cannot take, before any work
        if str(path) != STDIO and os.path.lexists(path) and not job.overwrite:
            raise MattingError(f"{path}: exists; --overwrite replaces it")


def run_stream_job(job: JobSettings, *, runner: Runner | None = None) -> list[FileResult]:
    """The job on one stream (see the module); `runner` for tests and callers that hold one."""
    check_stream_job(job)
    live = is_live(job)
    model, note = live_model(job, live)
    name = job.inputs[0]
    outputs = _output_specs(job)
    needed = _graph_outputs(job, outputs)
    stats = Stats()
    started = time.perf_counter()
    with ExitStack() as stack:
        reader = stack.enter_context(_open_source(job, name))
        feed = _feed(job, reader, stats, live).start()  # reading from now on: a live source does not wait
        stack.callback(_stop_feed, feed, reader)
        if runner is None:
            from trt_modnet.job.file_job import open_job_runner

            path = resolve_model(model, DownloadSettings(progress=not job.quiet))
            spec = DeploySpec(outputs=needed, ref_size=job.ref_size)
            runner = stack.enter_context(open_job_runner(job, path, spec, note=note))
        ended = _run(job, runner, reader, feed, outputs, stack, live)
    elapsed = time.perf_counter() - started
    rate = reader.info.average_rate
    ofd_delay = float(1 / rate) if job.ofd and rate else None
    if live and stats.latencies and statistics.median(stats.latencies) > job.max_latency:
        log.warning(
            "%s: a frame takes %.2f s from arrival to output, over --max-latency %g s: only the newest "
            "frames go on; a faster backend, a smaller --ref-size or --batch 1 helps",
            name,
            statistics.median(stats.latencies),
            job.max_latency,
        )
    if not job.quiet:
        print(stats.line(name, ended, job.max_latency if live else None, ofd_delay), file=sys.stderr)
    output = outputs[0][1]
    fps = stats.frames_out / elapsed if elapsed > 0 else 0.0
    return [FileResult(Path(name), stats.frames_out, fps, output, "ok")]


def _open_source(job: JobSettings, name: str) -> StreamReader:
    if stream_kind(name) is None:
        return open_reader(name, stream_index=job.stream, duration=job.duration)  # type: ignore[return-value]
    return StreamReader(
        name,
        input_format=job.input_format,
        idle_timeout=job.idle_timeout,
        duration=job.duration,
        audio=job.audio,
    )


def _output_specs(job: JobSettings) -> list[tuple[str, Path]]:
    if job.output is None:  # a file input writing next to itself (standard output named elsewhere)
        from trt_modnet.video import default_output_path

        return [(m, default_output_path(Path(job.inputs[0]), m, job.format)) for m in job.modes]
    first = [(job.modes[0], job.output)]
    rest = [(m, job.output.parent / f"{job.output.stem}.{m}{job.output.suffix}") for m in job.modes[1:]]
    return first + rest + list(job.extra_outputs)


def _graph_outputs(job: JobSettings, outputs: list[tuple[str, Path]]) -> tuple[str, ...]:
    from trt_modnet.job.plan import FilePlan, graph_outputs

    specs = tuple(OutputSpec(path, content=mode) for mode, path in outputs)
    return graph_outputs(job, [FilePlan(Path(job.inputs[0]), specs, job.preview)])


def _feed(job: JobSettings, reader: StreamReader, stats: Stats, live: bool) -> Feed:
    drop_late = (job.drop or ("late" if live else "never")) == "late"
    rate = float(reader.info.average_rate or 30)
    # Live: no more than the budget's worth of frames (older ones would be late anyway).
    capacity = max(2 * job.batch, math.ceil(job.max_latency * rate) + 1) if live else 4 * job.batch
    return Feed(
        iter(reader),
        drop_late=drop_late,
        max_latency=job.max_latency,
        capacity=capacity,
        stats=stats,
        in_flight=_in_flight(job, drop_late) if live else None,
    )


def _in_flight(job: JobSettings, drop_late: bool) -> int:
    """Frames inside the pipeline at once on a live source: otherwise its own queues hold frames that
    age there, out of the budget's sight. Dropping: one batch, so that a frame taken never waits behind
    another and the time it will take is the last frames'. Keeping all: two, so that inference and
    encoding overlap. OFD holds one frame back."""
    return job.batch * (1 if drop_late else 2) + (1 if job.ofd else 0)


def _run(
    job: JobSettings,
    runner: Runner,
    reader: StreamReader,
    feed: Feed,
    outputs: list[tuple[str, Path]],
    stack: ExitStack,
    live: bool,
) -> str:
    info = reader.info
    tap = getattr(reader, "tap", None) if job.audio else None
    writers = []
    for mode, path in outputs:
        writer = _open_output(job, mode, path, reader, stack, tap)
        writers.append((mode, writer))
        if isinstance(writer, StreamWriter):
            tap = None  # the audio packets go to one output: the first in a streaming format
    writers[0] = (writers[0][0], _Counted(writers[0][1], feed))  # type: ignore[assignment]
    background = stack.enter_context(open_background(job.background)) if "composite" in job.modes else None
    sheet = ContactSheet(frame_count=None) if job.preview else None
    bar = stack.enter_context(tqdm(desc=Path(reader.info.path).name, unit="frame", disable=job.quiet))
    pipeline = Pipeline(
        runner,
        writers,  # type: ignore[arg-type]
        settings=PipelineSettings(batch=job.batch, depth=1, queue_batches=1)
        if live
        else PipelineSettings(job.batch),
        background=background,
        smoother=SmoothedOutputs(tuple(job.modes)) if job.ofd else None,
        on_batch=sheet.offer_batch if sheet else None,
        on_frames=bar.update,
    )
    ended = _pump(pipeline, feed, reader, info.height, info.width)
    if sheet is not None and job.preview is not None:
        sheet.save(job.preview, overwrite=job.overwrite)
    return ended


def _pump(pipeline: Pipeline, feed: Feed, reader: StreamReader, height: int, width: int) -> str:
    """Run the pipeline on the feed; a stop signal ends the input (a second one aborts)."""
    stopped: list[str] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stopped:
            for s in _SIGNALS:
                signal.signal(s, signal.SIG_DFL if s != signal.SIGINT else signal.default_int_handler)
            raise KeyboardInterrupt(signal.Signals(signum).name)
        stopped.append(signal.Signals(signum).name)
        log.info("%s: %s: finishing the frames in flight (again to abort)", reader.info.path, stopped[0])
        _stop_feed(feed, reader, wait=False)

    previous = {s: signal.signal(s, on_signal) for s in _SIGNALS}
    try:
        pipeline.run(feed, height, width)
    except OutputClosed:
        feed.stop()
        return "the reader of standard output closed it"
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        feed.stop()
        feed.join(1.0)
    if stopped:
        return stopped[0]
    return getattr(reader, "ended", "end of file")


def _stop_feed(feed: Feed, reader: StreamReader, *, wait: bool = True) -> None:
    """End the input (a file reader just stops being read); before closing the reader, its thread out."""
    feed.stop()
    if isinstance(reader, StreamReader):
        reader.interrupt()
    if wait:
        feed.join(2.0)


def _open_output(
    job: JobSettings, mode: str, path: Path, reader: StreamReader, stack: ExitStack, tap: AudioTap | None
) -> object:
    fmt = stream_format(path, job.format, mode)
    if fmt is not None:
        stdout = claim_stdout() if str(path) == STDIO else None
        writer = StreamWriter(
            path,
            fmt,
            mode,
            reader.info,
            tap=tap,
            stdout_fd=stdout,
            replace=job.overwrite,
            codec_options=dict(job.codec_options),
        )
        stack.callback(writer.abort)
        return writer
    if job.audio and stream_kind(job.inputs[0]):
        log.warning("%s: the audio of a stream is kept in .nut, .mkv and .ts outputs only", path)
    spec = OutputSpec(path, content=mode, format=job.format, codec_options=dict(job.codec_options))
    spec = replace(spec, audio=job.audio and not stream_kind(job.inputs[0]), replace=job.overwrite)
    return stack.enter_context(open_writer(spec, reader))
