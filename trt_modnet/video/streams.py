"""Streams: standard input and output, network URLs and capture devices, read and written with PyAV.

A stream has no index and no known length: it is read once, in order, and written once, in order. The
reader demuxes the video and the first audio stream from one container (standard input cannot be opened
twice, as `AudioPassthrough` does for files) and hands the audio packets to the writer through an
`AudioTap`, which muxes them in step with the video. Standard input is read through `PipeInput`, which
waits for data with `select` so that a source that stops sending (`idle_timeout`) or a stop request ends
the stream as an end of file would, and the output is closed properly.

Output formats for streams are those whose muxers never seek back: NUT (rawvideo RGBA or gray, H.264 for
composites), Matroska (FFV1, as the file format) and MPEG-TS (H.264, no alpha).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import BinaryIO

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from trt_modnet.errors import MattingError
from trt_modnet.video.audio import AudioPassthrough
from trt_modnet.video.colour import SWSCALE_THREADS
from trt_modnet.video.info import Colour, Frame, VideoInfo
from trt_modnet.video.reader import _UPRIGHT, _audio_streams, _rotation, pick_video_stream
from trt_modnet.video.staging import Staging

log = logging.getLogger("trt_modnet")

STDIO = "-"
#: URL schemes read as live streams (what the bundled FFmpeg's protocols take).
SCHEMES = ("udp", "rtp", "rtsp", "rtmp", "rtmps", "srt", "tcp", "http", "https")
#: Capture devices: `v4l2:/dev/video0`, `avfoundation:0`, `dshow:video=NAME` (libavdevice formats).
DEVICES = ("v4l2", "avfoundation", "dshow")
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_POLL_S = 0.1


def stream_kind(text: str) -> str | None:
    """ "stdin", "url" or "device" for a stream input, None for a file; an unknown scheme is an error."""
    if text == STDIO:
        return "stdin"
    match = _URL.match(text)
    if match:
        if match.group(1).lower() not in SCHEMES:
            raise MattingError(f"{text}: unsupported scheme {match.group(1)!r}; use {', '.join(SCHEMES)}")
        return "url"
    prefix, sep, _ = text.partition(":")
    if sep and prefix in DEVICES:
        return "device"
    return None


@dataclass(frozen=True)
class StreamFormat:
    """A container that streams (never seeks back) and the encoder and pixel format per content."""

    name: str
    muxer: str
    codecs: MappingProxyType
    audio_fallback: str


_H264 = ("libx264", "yuv420p")
STREAM_FORMATS = MappingProxyType(
    {
        "nut": StreamFormat(
            "nut",
            "nut",
            MappingProxyType(
                {"rgba": ("rawvideo", "rgba"), "alpha": ("rawvideo", "gray"), "composite": _H264}
            ),
            "flac",
        ),
        "mkv": StreamFormat(
            "mkv",
            "matroska",
            MappingProxyType(
                {"rgba": ("ffv1", "bgra"), "alpha": ("ffv1", "gray"), "composite": ("ffv1", "bgr0")}
            ),
            "flac",
        ),
        "ts": StreamFormat("ts", "mpegts", MappingProxyType({"alpha": _H264, "composite": _H264}), "aac"),
    }
)
_SUFFIXES = {".nut": "nut", ".mkv": "mkv", ".ts": "ts"}
#: Formats that need a seekable file (an index written at the end, or a folder of images).
SEEKING_FORMATS = ("mov", "mp4", "webm", "png")
_CODEC_OPTIONS = {"libx264": {"preset": "veryfast", "tune": "zerolatency", "crf": "18"}, "ffv1": {"g": "1"}}


def stream_format(path: Path, format: str | None, content: str) -> StreamFormat | None:
    """The streaming format for an output, None when it is a file format (`video.formats`)."""
    stdout = str(path) == STDIO
    name = format or (_SUFFIXES.get(path.suffix.lower()) if not stdout else "nut")
    if name in SEEKING_FORMATS and stdout:
        raise MattingError(
            f"-: --format {name} needs a seekable file; standard output takes {', '.join(STREAM_FORMATS)}"
        )
    if name not in STREAM_FORMATS:
        return None
    fmt = STREAM_FORMATS[name]
    if content not in fmt.codecs:
        raise MattingError(f"{path}: {name} (H.264) has no alpha channel for {content}; use nut or mkv")
    return fmt


class PipeInput:
    """Standard input for FFmpeg's demuxer: waits for data with `select`, so that a stop request or a
    source silent for `idle_timeout` seconds reads as the end of the file."""

    def __init__(self, fd: int, idle_timeout: float, stop: threading.Event) -> None:
        self._fd = fd
        self._idle = idle_timeout
        self._stop = stop
        self.idle = False

    def read(self, size: int) -> bytes:
        waited = 0.0
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], _POLL_S)
            if ready:
                return os.read(self._fd, size)
            waited += _POLL_S
            if waited >= self._idle:
                self.idle = True
                break
        return b""


class PipeOutput:
    """Standard output (a duplicate of fd 1) for FFmpeg's muxer; remembers a reader that closed it."""

    def __init__(self, fd: int) -> None:
        self._file: BinaryIO = os.fdopen(fd, "wb", buffering=0)
        self.broken = False

    def write(self, data: bytes) -> int:
        try:
            view = memoryview(data)
            while view:
                view = view[self._file.write(view) or 0 :]
            return len(data)
        except BrokenPipeError:
            self.broken = True
            raise

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()


def claim_stdout() -> int:
    """A private duplicate of standard output for the stream; fd 1 then points at stderr, so that no
    stray print can corrupt the stream and Python's exit flush cannot meet a closed pipe."""
    if os.isatty(1):
        raise MattingError("-: standard output is a terminal; pipe it into a program (| ffmpeg -i - ...)")
    fd = os.dup(1)
    sys.stdout.flush()
    os.dup2(2, 1)
    return fd


class AudioTap:
    """Audio packets from the reader to the writer, in order; thread-safe."""

    def __init__(self, stream: av.AudioStream) -> None:
        self.stream = stream
        self._packets: deque[av.Packet] = deque()
        self._lock = threading.Lock()

    def put(self, packet: av.Packet) -> None:
        with self._lock:
            self._packets.append(packet)

    def take(self, until: float) -> list[av.Packet]:
        """Packets that start before `until` seconds (all with inf)."""
        out = []
        with self._lock:
            while self._packets and (
                self._packets[0].pts is None
                or float(self._packets[0].pts * self._packets[0].time_base) < until
            ):
                out.append(self._packets.popleft())
        return out


class StreamReader:
    """Upright RGB frames from a stream (standard input, a URL, a device), with the stream's timestamps,
    or wall-clock ones when it has none. The same surface as `VideoReader`: `info`, iterate once,
    `close()`. `stop` ends it at the next frame, as an end of stream."""

    start: float | None = None

    def __init__(
        self,
        name: str,
        *,
        input_format: str | None = None,
        idle_timeout: float = 10.0,
        duration: float | None = None,
        audio: bool = True,
        stdin_fd: int = 0,
    ) -> None:
        self.name = name
        self.duration = duration
        self.stop = threading.Event()
        self.ended = "end of stream"
        self._idle_timeout = idle_timeout
        self._pipe: PipeInput | None = None
        self._container = self._open(name, input_format, stdin_fd)
        try:
            self._stream = pick_video_stream(self._container, Path(name), None)
            self._stream.codec_context.thread_type = "AUTO"
            audio_streams = self._container.streams.audio if audio else ()
            self.tap = AudioTap(audio_streams[0]) if audio_streams else None
            self._decoded = self._decode()
            first = next(self._decoded, None)
            if first is None:
                raise MattingError(f"{name}: no video frames in the stream")
            self._first: av.VideoFrame | None = first
            self._rotate = _UPRIGHT.get(_rotation(first, Path(name)))
            self.info = self._describe(first)
        except BaseException:
            self._container.close()
            raise

    expected_frames: int | None = None

    def _open(self, name: str, input_format: str | None, stdin_fd: int) -> av.container.InputContainer:
        kind = stream_kind(name)
        try:
            if kind == "stdin":
                self._check_stdin(stdin_fd)
                self._pipe = PipeInput(stdin_fd, self._idle_timeout, self.stop)
                return av.open(self._pipe, format=input_format, metadata_errors="replace")
            if kind == "device":
                device, _, target = name.partition(":")
                return av.open(target, format=device, timeout=self._idle_timeout)
            # UDP: a burst the pipeline cannot take yet is lost in FFmpeg's buffer, not the whole stream.
            options = {"overrun_nonfatal": "1"} if name.lower().startswith("udp:") else {}
            timeout = (self._idle_timeout, self._idle_timeout)
            return av.open(name, format=input_format, options=options, timeout=timeout)
        except av.FFmpegError as exc:
            what = "empty, or not a video stream" if kind == "stdin" else "cannot open it"
            raise MattingError(f"{name}: {what} ({exc.strerror})") from None
        except ValueError as exc:  # an unknown --input-format
            raise MattingError(f"{name}: {exc}") from None

    def _check_stdin(self, fd: int) -> None:
        if os.isatty(fd):
            raise MattingError(
                "-: standard input is a terminal; pipe a stream into it (ffmpeg ... -f nut - |)"
            )
        ready, _, _ = select.select([fd], [], [], self._idle_timeout)
        if not ready:
            raise MattingError(f"-: nothing arrived on standard input in {self._idle_timeout:g} s")
        if _pending_bytes(fd) == 0:  # readable with nothing in it: the writer closed it (or /dev/null)
            raise MattingError("-: standard input is empty")

    def _describe(self, first: av.VideoFrame) -> VideoInfo:
        stream = self._stream
        width, height = first.width, first.height
        if self._rotate in (cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE):
            width, height = height, width
        sar = stream.codec_context.sample_aspect_ratio
        return VideoInfo(
            path=Path(self.name),
            width=width,
            height=height,
            frame_count=None,
            average_rate=stream.average_rate,
            real_rate=stream.base_rate,
            time_base=Fraction(stream.time_base) if stream.time_base else Fraction(1, 90_000),
            duration=None,
            colour=Colour(first.color_range, first.colorspace, first.color_primaries, first.color_trc),
            audio=_audio_streams(self._container) if self.tap else (),
            stream_index=stream.index,
            codec=stream.codec_context.name,
            pixel_format=first.format.name,
            sample_aspect_ratio=Fraction(sar) if sar else None,
        )

    def __iter__(self) -> Iterator[Frame]:
        reformatter = VideoReformatter()
        tb = self.info.time_base
        clock0, last, index = time.monotonic(), None, 0
        origin: int | None = None
        frame = self._first
        self._first = None
        while frame is not None and not self.stop.is_set():
            pts = frame.pts
            if pts is None:  # no timestamps in the stream: the wall clock, on the stream's time base
                pts = round((time.monotonic() - clock0) / tb)
            if last is not None and pts <= last:
                pts = last + 1
            origin = pts if origin is None else origin
            if self.duration is not None and (pts - origin) * tb >= self.duration:
                self.ended = "--duration reached"
                break
            image = reformatter.reformat(frame, format="rgb24", threads=SWSCALE_THREADS).to_ndarray()
            if self._rotate is not None:
                image = cv2.rotate(image, self._rotate)
            yield Frame(np.ascontiguousarray(image), pts, tb, index)
            last, index = pts, index + 1
            frame = next(self._decoded, None)
        if self.stop.is_set() and self.ended == "end of stream":
            self.ended = "stopped"

    def _decode(self) -> Iterator[av.VideoFrame]:
        streams = [self._stream] + ([self.tap.stream] if self.tap else [])
        received = time.monotonic()
        try:
            for packet in self._container.demux(*streams):
                received = time.monotonic()
                if self.tap is not None and packet.stream is self.tap.stream:
                    if packet.pts is not None:
                        self.tap.put(packet)
                    continue
                yield from packet.decode()
        except av.FFmpegError as exc:
            if self.stop.is_set():  # interrupted on purpose
                return
            idle = isinstance(exc, av.ExitError) or time.monotonic() - received >= self._idle_timeout * 0.9
            if not idle and not self.stop.is_set():
                raise MattingError(f"{self.name}: reading the stream failed: {exc.strerror}") from None
            self._pipe_idle()
        if self._pipe is not None and self._pipe.idle:
            self._pipe_idle()

    def _pipe_idle(self) -> None:
        self.ended = f"nothing received for {self._idle_timeout:g} s (--idle-timeout)"
        log.info("%s: %s; ending", self.name, self.ended)

    def interrupt(self) -> None:
        """End the stream from any thread: standard input stops waiting at its next poll; a URL at its
        next packet, or when its read times out (PyAV offers no way to cut a waiting read short)."""
        self.stop.set()

    def close(self) -> None:
        self.stop.set()
        try:
            self._decoded.close()
        except ValueError:  # still running in a reader thread that did not stop in time: leave it be
            log.debug("%s: the reader thread is still reading; not closing its container", self.name)
            return
        self._container.close()

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _pending_bytes(fd: int) -> int | None:
    """Bytes waiting on a pipe or left in a file (FIONREAD); None where it cannot tell."""
    import fcntl
    import termios

    buf = bytearray(4)
    try:
        fcntl.ioctl(fd, termios.FIONREAD, buf)
    except OSError:
        return None
    return int.from_bytes(buf, sys.byteorder)


class OutputClosed(Exception):
    """The program reading our standard output closed it (`| head`): the job ends, not fails."""


class StreamWriter:
    """One output in a streaming format, to standard output or to a file (a temporary name, renamed on
    `close()`). `write(image, frame)` / `close()` / `abort()`, as `video.Writer`."""

    def __init__(
        self,
        path: Path,
        fmt: StreamFormat,
        content: str,
        info: VideoInfo,
        *,
        tap: AudioTap | None = None,
        stdout_fd: int | None = None,
        replace: bool = False,
        codec_options: dict[str, str] | None = None,
    ) -> None:
        self.path = path
        self._content = content
        self._tap = tap
        self._staging: Staging | None = None
        self._pipe: PipeOutput | None = None
        self._passthrough: AudioPassthrough | None = None
        self._closed = False
        self.written = 0
        self._reformatter = VideoReformatter()
        self._time_base = info.time_base
        if stdout_fd is not None:
            self._pipe = PipeOutput(stdout_fd)
            target: object = self._pipe
        else:
            self._staging = Staging(path, replace=replace)
            target = str(self._staging.temp)
        try:
            self._container = av.open(target, "w", format=fmt.muxer)
            self._open_streams(fmt, info, codec_options or {})
        except av.FFmpegError as exc:
            self.abort()
            raise MattingError(f"{path}: cannot create the output ({exc.strerror})") from None
        except BaseException:
            self.abort()
            raise

    def _open_streams(self, fmt: StreamFormat, info: VideoInfo, options: dict[str, str]) -> None:
        codec, self._pix_fmt = fmt.codecs[self._content]
        self._even = codec == "libx264"
        stream = self._container.add_stream(codec, options={**_CODEC_OPTIONS.get(codec, {}), **options})
        ctx = stream.codec_context
        ctx.width = info.width + (info.width % 2 if self._even else 0)
        ctx.height = info.height + (info.height % 2 if self._even else 0)
        ctx.pix_fmt = self._pix_fmt
        stream.time_base = ctx.time_base = self._time_base
        if info.average_rate:
            ctx.framerate = info.average_rate
        self._stream = stream
        self._audio = None
        if self._tap is not None:
            self._audio = self._container.add_stream_from_template(self._tap.stream)
        elif info.audio and info.path.is_file():  # a file into a stream: its audio as for files
            self._passthrough = AudioPassthrough(
                info.path, info.audio, self._container, fallback=fmt.audio_fallback
            )
        self._container.start_encoding()
        if self._passthrough is not None:
            self._passthrough.begin(None, 0.0)

    def write(self, image: np.ndarray, frame: Frame) -> None:
        if self._closed:
            raise RuntimeError(f"writer of {self.path} is closed")
        video = self._video_frame(image)
        video.pts = (
            round(frame.pts * Fraction(frame.time_base) / self._time_base) if frame.pts is not None else None
        )
        video.time_base = self._time_base
        with self._errors(f"writing frame {frame.index}"):
            self._container.mux(self._stream.encode(video))
            self._mux_audio(frame.time if frame.time is not None else float("inf"))
        self.written += 1

    def _video_frame(self, image: np.ndarray) -> av.VideoFrame:
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[..., 0]
        if self._even and (image.shape[0] % 2 or image.shape[1] % 2):
            pad_h, pad_w = image.shape[0] % 2, image.shape[1] % 2
            image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
        source = "gray" if image.ndim == 2 else {3: "rgb24", 4: "rgba"}[image.shape[2]]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=source)
        if source == self._pix_fmt:
            return frame
        return self._reformatter.reformat(frame, format=self._pix_fmt, threads=SWSCALE_THREADS)

    def _mux_audio(self, until: float) -> None:
        if self._passthrough is not None:
            self._passthrough.feed(until)
        if self._tap is None or self._audio is None:
            return
        for packet in self._tap.take(until):
            packet.stream = self._audio
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and the audio, end the container, and put a file into place. Idempotent."""
        if self._closed:
            return
        try:
            with self._errors("finishing the output"):
                self._container.mux(self._stream.encode(None))
                self._mux_audio(float("inf"))
                if self._passthrough is not None:
                    self._passthrough.finish()
                    self._passthrough.close()
                self._container.close()
            if self._pipe is not None:
                self._pipe.close()
            if self._staging is not None:
                if self.written == 0:
                    raise MattingError(f"{self.path}: no frames were written")
                self._staging.commit()
            self._closed = True
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the output (a file's temporary name removed). Idempotent; nothing after `close()`."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(av.FFmpegError, OSError, AttributeError):
            if self._passthrough is not None:
                self._passthrough.close()
            self._container.close()
        if self._pipe is not None:
            self._pipe.close()
        if self._staging is not None:
            self._staging.discard()

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (av.FFmpegError, OSError) as exc:
            if self._pipe is not None and (self._pipe.broken or isinstance(exc, BrokenPipeError)):
                raise OutputClosed from None
            raise MattingError(
                f"{self.path}: {doing} failed: {getattr(exc, 'strerror', None) or exc}"
            ) from None
