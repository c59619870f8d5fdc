"""Writing frames: one `Writer` per output, for every format (`formats.FORMATS`).

A writer validates its output (`validate_output`), opens the encoder and writes the header before the
first frame, so a bad request fails before any long work. It writes under a temporary name and renames
into place on `close()`; `abort()` (or any failure) removes the temporary output.

Timing: frames keep the source's pts in the source's time base; the muxer stores them exactly or
rescales them (ProRes .mov/.mp4: the track timescale is the time base's denominator, times a power of 2
below 10000, an exact rescale; Matroska and WebM store milliseconds, rounded, which is all they can).

Pixels: the pipeline's uint8 arrays become the encoder's pixel format in one swscale call from a
zero-copy frame (`from_numpy_buffer` + one reused `VideoReformatter`): 4.9 ms for RGB to 4:2:0 at 1080p
on this machine, against 12-14 ms through `from_ndarray` and a reformatter per frame. OpenCV's I420
conversion is 10x faster but has only the BT.601 matrix; swscale converts with (and the output is
tagged with) the matrix the source was decoded with (`colour`). PNG and FFV1 gray take the arrays as
they are. Encoders run their own threads (frame or slice threading, or libx264's/libvpx's own).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Protocol

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from trt_modnet.errors import MattingError
from trt_modnet.video.audio import AudioPassthrough
from trt_modnet.video.colour import SWSCALE_THREADS, output_tags, sws_name
from trt_modnet.video.formats import AUDIO_FILES, OutputPlan, OutputSpec, Piece, validate_output
from trt_modnet.video.info import FIELD_PROGRESSIVE, RANGE_LIMITED, Frame, VideoInfo
from trt_modnet.video.matroska import (
    MATROSKA_MUXERS,
    MatroskaLayoutError,
    start_duration_at,
    write_display_aspect,
)
from trt_modnet.video.parallel import ParallelEncoder, prepare_instance
from trt_modnet.video.pcm import DECODED_SUFFIXES, DecodedAudio
from trt_modnet.video.staging import Staging
from trt_modnet.video.timeline import Grid

log = logging.getLogger("trt_modnet")

_YUV_PREFIXES = ("yuv", "yuva")
_CHANNELS = {"rgba": 4, "rgb24": 3, "gray": 1}


class Source(Protocol):
    """What a writer needs of a reader: the input's description and the segment it reads."""

    info: VideoInfo
    start: float | None
    duration: float | None


class _State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"
    ABORTED = "aborted"


def open_writer(spec: OutputSpec, reader: Source) -> Writer:
    """Validate `spec` for `reader`'s input and open the output (temporary name) ready for frames."""
    return Writer(validate_output(spec, reader.info), reader)


class Writer:
    """Encodes frames into one output. `write(image, frame)`, then `close()`; `abort()` on failure.

    Not thread-safe: one thread writes and then closes or aborts. `write` keeps no reference to `image`.
    """

    def __init__(self, plan: OutputPlan, source: Source) -> None:
        self.plan = plan
        self.path = plan.path
        self._info = source.info
        self._segment = source.start is not None or source.duration is not None
        rate = source.info.average_rate or source.info.real_rate
        grid_rate = source.info.real_rate or rate  # the stream's frame rate, not its frame count / duration
        tb = source.info.time_base
        self._grid = Grid(grid_rate, tb) if grid_rate and Grid.needed(grid_rate, tb) else None
        self._time_base = self._grid.time_base if self._grid else tb
        self._state = _State.OPEN
        self._written = 0
        self._last_pts: int | None = None
        self._first_time = Fraction(0)  # of the first frame as written, in seconds
        self._offset: int | None = None  # subtracted from every pts: the first frame's with --timestamps zero
        if plan.piece is not None and self._grid is not None:
            self._grid.origin = Fraction(plan.piece.origin) * tb  # the unsplit run's grid
        self._last_step = _frame_step(rate, self._time_base)
        self._reformatter = VideoReformatter()
        self._audio: AudioPassthrough | DecodedAudio | None = None
        self._stagings: list[Staging] = []
        self._containers: list[av.container.OutputContainer] = []
        self._resources = contextlib.ExitStack()
        self._parallel: ParallelEncoder | None = None
        try:
            self._open()
        except BaseException:
            self.abort()
            raise

    def write(self, image: np.ndarray, frame: Frame) -> None:
        """Encode `image` (uint8 [H,W,4] rgba, [H,W] or [H,W,1] alpha, [H,W,3] composite) at `frame`'s pts."""
        if self._state is not _State.OPEN:
            raise RuntimeError(f"writer of {self.path} is {self._state.value}")
        piece = self.plan.piece
        if piece is not None and frame.pts is not None and not piece.holds(frame.pts):
            return  # context for --ofd, written by the neighbouring piece
        try:
            pts = self._pts(frame)
            video = self._video_frame(image)
            if self._offset is None:
                self._offset = self._first_offset(pts if piece is None else self._origin_pts(piece))
            video.pts, video.time_base = pts - self._offset, self._time_base
            if self._written == 0:
                self._first_time = video.pts * self._time_base
            for name, value in self._frame_tags.items():
                setattr(video, name, value)
            with self._errors(f"writing frame {frame.index}"):
                self._container.mux(self._encode(video))
                if self._audio is not None:
                    time = float(pts * self._time_base)
                    if self._written == 0:
                        # A decoded side file starts with the first frame; a container keeps the lead-in.
                        decoded = isinstance(self._audio, DecodedAudio)
                        offset = float(self._offset * self._time_base)
                        self._audio.begin(time if self._segment or decoded else None, offset)
                    self._audio.feed(time)
            self._written += 1
        except BaseException:
            self.abort()
            raise

    def close(self) -> None:
        """Flush the encoder, finish the audio, and rename the output into place. Idempotent."""
        if self._state is not _State.OPEN:
            return
        try:
            if self._written == 0:
                raise MattingError(f"{self.path}: no frames were written")
            with self._errors("finishing the output"):
                self._container.mux(self._parallel.flush() if self._parallel else self._stream.encode(None))
                if self._audio is not None:
                    assert self._last_pts is not None
                    end = float((self._last_pts + self._last_step) * self._time_base)
                    self._audio.finish(end if self._segment else math.inf)
                for container in self._containers:
                    container.close()
            if self.plan.format.muxer in MATROSKA_MUXERS:
                self._finish_matroska()
            for staging in self._stagings:
                staging.commit()
            self._state = _State.CLOSED
            self._resources.close()
        except BaseException:
            self.abort()
            raise

    def _finish_matroska(self) -> None:
        """What PyAV cannot tell FFmpeg's Matroska muxer: the pixel aspect, and a segment's duration
        counted from its first frame."""
        muxer = self.plan.format.muxer
        say_display_aspect(self._target, self._sar, muxer, self.path)
        if self._segment and self.plan.timestamps == "source" and self._first_time > 0:
            try:
                start_duration_at(self._target, self._first_time)
            except MatroskaLayoutError as exc:
                log.warning("%s: the duration counts from 0 (%s)", self.path, exc)

    def abort(self) -> None:
        """Remove the temporary output. Idempotent; does nothing after a successful `close()`."""
        if self._state is not _State.OPEN:
            return
        self._state = _State.ABORTED
        with contextlib.ExitStack() as cleanup:
            for staging in self._stagings:
                cleanup.callback(staging.discard)
            cleanup.callback(self._close_quietly)

    def _close_quietly(self) -> None:
        # The output is being thrown away: a full disk failing the container's last write again must
        # not hide the error that made us abort.
        try:
            self._resources.close()
        except (av.FFmpegError, OSError) as exc:
            log.debug("%s: closing the discarded output: %s", self.path, exc)

    def __enter__(self) -> Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- opening -----------------------------------------------------------------------------------

    def _open(self) -> None:
        plan, info = self.plan, self._info
        staging = Staging(plan.path, folder=plan.folder, replace=plan.replace)
        self._stagings.append(staging)
        target, options = container_target(plan, staging.temp, info)
        self._target = Path(target)
        self._container = self._open_container(target, plan.format.muxer, options)
        self._timecode_track = timecode_track(plan, info)
        self._stream = self._add_video_stream()
        audio = info.audio if plan.audio and not info.is_image else ()
        if audio and not plan.folder and plan.format.audio_fallback:
            self._audio = self._add_audio(
                self._container, plan.format.audio_fallback, plan.format.audio_codecs
            )
        elif plan.audio_out is not None:
            self._open_audio_file(plan.audio_out)
        with self._errors("creating the output"):
            for container in self._containers:
                mark_default(container)
                # With a timecode track the header waits for the first frame, whose time it holds; the
                # file is created now all the same, so that a destination that takes none fails up front.
                if container is self._container and self._timecode_track:
                    Path(target).touch()
                else:
                    container.start_encoding()
        if (plan.width, plan.height) != (info.width, info.height):
            log.warning(
                "%s: H.264 4:2:0 needs an even size: %dx%d padded to %dx%d by repeating the last pixels",
                self.path,
                info.width,
                info.height,
                plan.width,
                plan.height,
            )

    def _open_container(
        self, target: Path | str, muxer: str, options: dict[str, str]
    ) -> av.container.OutputContainer:
        try:
            container = av.open(str(target), "w", format=muxer, container_options=options)
        except av.FFmpegError as exc:
            raise MattingError(f"{self.path}: cannot create the output ({exc.strerror})") from None
        self._resources.callback(container.close)
        self._containers.append(container)
        return container

    def _add_video_stream(self) -> av.VideoStream:
        plan, info = self.plan, self._info
        stream = self._container.add_stream(plan.encoder, options=dict(plan.options))
        ctx = stream.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = plan.width, plan.height, plan.pixel_format
        stream.time_base = ctx.time_base = self._time_base
        if info.average_rate:
            ctx.framerate = info.average_rate
        self._sar = ctx.sample_aspect_ratio = pixel_aspect(info)
        ctx.field_order = info.field_order or FIELD_PROGRESSIVE
        if plan.instances > 1:
            prepare_instance(ctx)  # the cores go to the instances (`parallel`)
        else:
            ctx.thread_type = "AUTO"
            ctx.thread_count = 0
        c = info.colour
        matrix, primaries, transfer = output_tags(c.space, c.primaries, c.transfer, info.width, info.height)
        ctx.color_primaries, ctx.color_trc = primaries, transfer
        # Encoders that tag their own bitstream (ProRes frame headers) read the tags off each frame.
        self._frame_tags = {"color_primaries": primaries, "color_trc": transfer}
        self._colour_args: dict[str, object] = {}
        if plan.pixel_format.startswith(_YUV_PREFIXES):
            ctx.colorspace, ctx.color_range = matrix, RANGE_LIMITED
            self._frame_tags |= {"colorspace": matrix, "color_range": RANGE_LIMITED}
            self._colour_args = {"dst_colorspace": sws_name(matrix), "dst_color_range": "MPEG"}
        with self._errors(f"opening the {plan.encoder} encoder"):
            ctx.open()
            if plan.instances > 1:
                self._parallel = ParallelEncoder(stream, plan.instances, plan.options)
                self._resources.callback(self._parallel.close)
        return stream

    def _encode(self, video: av.VideoFrame) -> list[av.Packet]:
        if self._parallel is not None:
            return self._parallel.encode(video)
        return self._stream.encode(video)

    def _add_audio(
        self, container: av.container.OutputContainer, fallback: str, codecs: frozenset[str] = frozenset()
    ) -> AudioPassthrough:
        audio = AudioPassthrough(
            self._info.path, self._info.audio, container, fallback=fallback, codecs=codecs
        )
        self._resources.callback(audio.close)
        return audio

    def _open_audio_file(self, path: Path) -> None:
        if not self._info.audio or self._info.is_image:
            log.warning("%s: has no audio; nothing written to %s", self._info.path, path)
            return
        staging = Staging(path, replace=self.plan.replace)
        self._stagings.append(staging)
        muxer, fallback = AUDIO_FILES[path.suffix.lower()]
        container = self._open_container(staging.temp, muxer, {})
        if path.suffix.lower() in DECODED_SUFFIXES:
            self._audio = DecodedAudio(self._info.path, self._info.audio, container, fallback)
            self._resources.callback(self._audio.close)
        else:
            self._audio = self._add_audio(container, fallback)

    # -- writing -----------------------------------------------------------------------------------

    def _pts(self, frame: Frame) -> int:
        """The frame's pts in the output time base; strictly increasing."""
        if frame.pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + self._last_step
        elif self._grid is not None:
            pts = self._grid.pts(frame.pts * Fraction(frame.time_base))
        elif frame.time_base == self._time_base:
            pts = frame.pts
        else:
            pts = round(frame.pts * Fraction(frame.time_base) / self._time_base)
        if self._last_pts is not None:
            if pts <= self._last_pts:
                raise ValueError(f"frame {frame.index}: pts {pts} does not follow {self._last_pts}")
            self._last_step = pts - self._last_pts
        self._last_pts = pts
        return pts

    def _origin_pts(self, piece: Piece) -> int:
        """The unsplit run's first pts: a piece's timestamps (and timecode) are that run's."""
        return round(Fraction(piece.origin) * self._info.time_base / self._time_base)

    def _first_offset(self, pts: int) -> int:
        """What every pts loses: the first frame's with --timestamps zero, or when a timecode track says
        where the first frame sat in the source."""
        if self.plan.timestamps == "zero":
            return pts
        if not self._timecode_track:
            return 0
        rate = self._info.average_rate
        assert rate is not None  # no timecode without a frame rate
        if pts > 0:
            self._stream.metadata["timecode"] = timecode(pts * self._time_base, rate)
        self._container.start_encoding()
        return max(pts, 0)

    def _video_frame(self, image: np.ndarray) -> av.VideoFrame:
        plan = self.plan
        source = plan.source_pixel_format
        image = self._checked(image)
        if (plan.width, plan.height) != (image.shape[1], image.shape[0]):
            image = cv2.copyMakeBorder(
                image, 0, plan.height - image.shape[0], 0, plan.width - image.shape[1], cv2.BORDER_REPLICATE
            )
        if source == plan.pixel_format:
            return av.VideoFrame.from_ndarray(image, format=source)  # a copy: the caller may reuse its array
        zero_copy = av.VideoFrame.from_numpy_buffer(image, format=source)
        return self._reformatter.reformat(
            zero_copy, format=plan.pixel_format, threads=SWSCALE_THREADS, **self._colour_args
        )

    def _checked(self, image: np.ndarray) -> np.ndarray:
        channels = _CHANNELS[self.plan.source_pixel_format]
        shape = (self._info.height, self._info.width) + ((channels,) if channels > 1 else ())
        if channels == 1 and image.ndim == 3 and image.shape[2] == 1:  # the graph's [N,H,W,1] alpha
            image = image[..., 0]
        if image.dtype != np.uint8 or image.shape != shape:
            raise ValueError(
                f"{self.plan.content} frames for {self.path} must be uint8 {list(shape)}, "
                f"got {image.dtype}{list(image.shape)}"
            )
        return np.ascontiguousarray(image)

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (av.FFmpegError, OSError) as exc:  # a full disk, a lost mount: the user's to act on
            raise MattingError(f"{self.path}: {doing} failed: {exc.strerror or exc}") from None


def container_target(plan: OutputPlan, temp: Path, info: VideoInfo) -> tuple[Path, dict[str, str]]:
    """Where FFmpeg writes and the muxer options: PNG sequences number frames from 0."""
    if plan.folder:
        return temp / "%06d.png", {"start_number": "0"}
    if plan.format.muxer == "image2":
        return temp, {"update": "1"}  # one still image
    options = dict(plan.format.muxer_options)
    if plan.format.muxer in ("mov", "mp4") and plan.audio and info.audio:
        # Edit lists count in the movie timescale (1000 by default): at the sample rate, a segment's
        # audio starts on its exact sample.
        options["movie_timescale"] = str(info.audio[0].sample_rate)
    return temp, options


def timecode_track(plan: OutputPlan, info: VideoInfo) -> bool:
    """Whether the output's media starts at 0 and a timecode track says where it sat in the source."""
    return plan.format.timecode and plan.timestamps == "source" and bool(info.average_rate)


def timecode(time: Fraction, rate: Fraction) -> str:
    """HH:MM:SS:FF of the frame at `time`, non-drop (frames counted at the rounded rate, as editors read
    a 29.97 fps non-drop timecode)."""
    fps = round(rate)
    seconds, frames = divmod(round(time * rate), fps)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{frames:02d}"


def _frame_step(rate: Fraction | None, time_base: Fraction) -> int:
    if not rate:
        return 1
    return max(1, round(1 / (rate * time_base)))


def pixel_aspect(info: VideoInfo) -> Fraction:
    """The output's pixel aspect: the source's, 1:1 when it has none (said so, as FFmpeg's CLI does);
    a rotated anamorphic source's pixels turn with it."""
    sar = info.sample_aspect_ratio or Fraction(1)
    return 1 / sar if info.rotation in (90, 270) else sar


def say_display_aspect(file: Path, sar: Fraction, muxer: str, output: Path) -> None:
    """Write the pixel aspect into a closed Matroska/WebM file (its muxer cannot be told it by PyAV)."""
    try:
        write_display_aspect(file, sar, webm=muxer == "webm")
    except MatroskaLayoutError as exc:
        log.warning("%s: the pixel aspect %s is not in the file (%s)", output, sar, exc)


def mark_default(container: av.container.OutputContainer) -> None:
    """The first stream of each kind plays by default (Matroska FlagDefault 1, as FFmpeg's CLI writes)."""
    seen = set()
    for stream in container.streams:
        if stream.type not in seen:
            stream.disposition = av.stream.Disposition.default
            seen.add(stream.type)
