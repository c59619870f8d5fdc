"""Reading video with PyAV: upright RGB frames with the source's own timestamps.

One reader owns one input container. Frames come out in presentation order (the decoder's output
order), converted to rgb24 whatever the source's pixel format (4:2:0, 4:4:4, 10-bit, grayscale, RGB),
with the YUV matrix the source is tagged with (see `colour`), and turned upright when the stream carries
a rotation (display matrix), so that what the pipeline sees, mattes and writes is what a player shows.
Outputs are written upright with no rotation tag, which every player and editor shows the same way.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import av.stream
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from trt_modnet.errors import MattingError
from trt_modnet.video.colour import SWSCALE_THREADS, sws_name, yuv_matrix
from trt_modnet.video.info import AudioInfo, Colour, Frame, VideoInfo
from trt_modnet.video.limits import DecodeWatchdog, check_frame_size, plausible_frame_count, plausible_rate
from trt_modnet.video.timeline import Timeline, seconds_to_pts

log = logging.getLogger("trt_modnet")

# Counter-clockwise rotation of the display matrix -> the OpenCV rotation that stands the frame upright.
_UPRIGHT = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


#: `--decoder`: "cpu" (FFmpeg's own decoders) or "nvdec"; the job turns "auto" into one of them.
DECODERS = ("cpu", "nvdec")
NVDEC = {"h264": "h264_cuvid", "hevc": "hevc_cuvid"}


class VideoReader:
    """Decodes one video stream of a file. Use as a context manager; iterate once; `close()` is idempotent.

    `start` and `duration` (seconds from the first frame) select a segment: frames whose presentation
    time falls in [start, start + duration), keeping their original pts. `threads` is FFmpeg's decoder
    thread count (0: one per core). `decoder` "nvdec" decodes H.264 and HEVC with the GPU's NVDEC
    (`h264_cuvid`, `hevc_cuvid`), falling back to FFmpeg's CPU decoder in one line when it does not open.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        stream_index: int | None = None,
        start: float | None = None,
        duration: float | None = None,
        threads: int = 0,
        decoder: str = "cpu",
    ) -> None:
        if decoder not in DECODERS:
            raise MattingError(f"{path}: unknown decoder {decoder!r}; one of {', '.join(DECODERS)}")
        self.path = Path(path)
        self.start = start
        self.duration = duration
        self._closed = False
        self._iterated = False
        self._reformatter = VideoReformatter()
        self._container = open_input(self.path)
        try:
            self._stream = pick_video_stream(self._container, self.path, stream_index)
            ctx = self._stream.codec_context
            if ctx.width or ctx.height:  # a header's size, refused before a frame is allocated
                check_frame_size(self.path, ctx.width, ctx.height)
            self._stream.codec_context.thread_type = "AUTO"
            self._stream.codec_context.thread_count = threads
            self._nvdec = open_nvdec(self._stream, self.path) if decoder == "nvdec" else None
            self._decoded = self._decode()
            self._first = next(self._decoded, None)
            if self._first is None:
                where = " in the requested segment" if start or duration else ""
                raise MattingError(f"{self.path}: no video frames{where}")
            first = self._first[0]
            check_frame_size(self.path, first.width, first.height)
            rotation = _rotation(first, self.path)
            self._rotate = _UPRIGHT.get(rotation)
            self._size = (first.width, first.height)
            self._matrix = _decode_matrix(first)
            self.info = self._describe(first, rotation)
        except BaseException:
            self._container.close()
            raise

    @property
    def expected_frames(self) -> int | None:
        """How many frames iteration will yield, when known (an estimate from the rate for a segment)."""
        info = self.info
        if self.start is None and self.duration is None:
            return info.frame_count
        if info.average_rate is None:
            return None
        total = info.duration if info.duration is not None else math.inf
        remaining = max(0.0, total - (self.start or 0.0))
        span = min(remaining, self.duration) if self.duration is not None else remaining
        return None if math.isinf(span) else round(span * info.average_rate)

    def __iter__(self) -> Iterator[Frame]:
        if self._closed:
            raise RuntimeError(f"reader of {self.path} is closed")
        if self._iterated:
            raise RuntimeError(f"reader of {self.path} can be iterated only once")
        self._iterated = True
        return self._frames()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._decoded.close()
            self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _frames(self) -> Iterator[Frame]:
        assert self._first is not None
        frame, pts = self._first
        self._first = None
        index = 0
        time_base = self.info.time_base
        while True:
            yield Frame(self._to_rgb(frame, index), pts, time_base, index)
            index += 1
            item = next(self._decoded, None)
            if item is None:
                break
            frame, pts = item
        self._check_complete(index)

    def _decode(self) -> Iterator[tuple[av.VideoFrame, int]]:
        """Decoded frames of the selected segment with repaired timestamps; decoding errors named."""
        stream = self._stream
        time_base = stream.time_base
        origin = stream.start_time or 0
        first = origin + seconds_to_pts(self.start, time_base) if self.start else None
        end = origin + seconds_to_pts((self.start or 0) + self.duration, time_base) if self.duration else None
        # A demuxer that knows no start time (raw H.264) cannot seek by timestamp: read from the top.
        if first is not None and stream.start_time is not None:
            self._seek(first)
        timeline = Timeline(start=origin, step=_default_step(stream))
        yielded = 0
        try:
            for frame in self._checked_frames():
                pts = timeline.fix(frame.pts, frame.duration)
                if first is not None and pts < first:
                    continue
                if end is not None and pts >= end:
                    break
                yield frame, pts
                yielded += 1
        except (av.FFmpegError, _IncompletePacket) as exc:
            after = "" if timeline.last is None else f" (after {float(timeline.last * time_base):.3f} s)"
            reason = exc.strerror if isinstance(exc, av.FFmpegError) else "a packet is cut short or corrupt"
            raise MattingError(
                f"{self.path}: damaged or truncated: decoding failed at frame {yielded}{after}: {reason}"
            ) from None
        if timeline.repaired:
            log.warning(
                "%s: %d frames had missing or out-of-order timestamps; filled in from the frame rate",
                self.path,
                timeline.repaired,
            )

    def _checked_frames(self) -> Iterator[av.VideoFrame]:
        """Decoded frames, stopping at a packet the demuxer marks corrupt (a truncated file's last one):
        frame-threaded decoding drops such a packet silently where a single thread raises."""
        nvdec = self._nvdec
        watchdog = DecodeWatchdog(self.path)
        for packet in self._container.demux(self._stream):
            if packet.is_corrupt:
                raise _IncompletePacket
            watchdog.packet()
            if nvdec is None:
                frames = packet.decode()
            elif packet.size:
                frames = nvdec.decode(packet)
            else:
                continue
            for frame in frames:
                watchdog.frame()
                yield frame
        if nvdec is not None:
            yield from nvdec.decode(None)

    def _seek(self, pts: int) -> None:
        try:
            self._container.seek(pts, stream=self._stream, backward=True, any_frame=False)
        except av.FFmpegError:
            log.debug("%s: seeking failed; decoding from the start", self.path)

    def _describe(self, first: av.VideoFrame, rotation: int) -> VideoInfo:
        stream, container = self._stream, self._container
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90_000)
        sar = stream.codec_context.sample_aspect_ratio
        return VideoInfo(
            path=self.path,
            width=width,
            height=height,
            frame_count=plausible_frame_count(stream.frames),
            average_rate=plausible_rate(stream.average_rate),
            real_rate=plausible_rate(stream.base_rate),
            time_base=time_base,
            duration=_duration(stream, container),
            rotation=rotation,
            colour=Colour(first.color_range, first.colorspace, first.color_primaries, first.color_trc),
            audio=_audio_streams(container),
            is_image=False,
            stream_index=stream.index,
            codec=stream.codec_context.name,
            pixel_format=first.format.name,
            sample_aspect_ratio=Fraction(sar) if sar else None,
            field_order=stream.codec_context.field_order,
        )

    def _to_rgb(self, frame: av.VideoFrame, index: int) -> np.ndarray:
        if (frame.width, frame.height) != self._size:
            raise MattingError(
                f"{self.path}: the frame size changes at frame {index} "
                f"({self._size[0]}x{self._size[1]} to {frame.width}x{frame.height}); not supported"
            )
        matrix = {} if self._matrix is None else {"src_colorspace": self._matrix}
        rgb = self._reformatter.reformat(frame, format="rgb24", threads=SWSCALE_THREADS, **matrix)
        image = rgb.to_ndarray()
        if self._rotate is not None:
            return cv2.rotate(image, self._rotate)
        return np.ascontiguousarray(image)  # rows of odd widths come padded

    def _check_complete(self, count: int) -> None:
        expected = self.info.frame_count
        if self.start is None and self.duration is None and expected and count < expected:
            log.warning(
                "%s: decoded %d of the %d frames the file declares; it may be truncated",
                self.path,
                count,
                expected,
            )


class _IncompletePacket(Exception):
    pass


def open_nvdec(stream: av.VideoStream, path: Path) -> av.CodecContext | None:
    """The stream's NVDEC decoder, opened; None (said in one line) where there is none or it does not
    open (no NVIDIA driver or GPU): the CPU decoder then decodes, with the same frames and timestamps."""
    source = stream.codec_context
    name = NVDEC.get(source.name)
    if name is None:
        log.info("%s: NVDEC does not decode %s; decoding on the CPU", path, source.name)
        return None
    try:
        ctx = av.CodecContext.create(name, "r")
        ctx.extradata = source.extradata
        ctx.width, ctx.height = source.width, source.height
        ctx.open()
    except av.FFmpegError as exc:
        log.warning("%s: %s did not open (%s); decoding on the CPU", path, name, exc.strerror)
        return None
    log.info("%s: decoding with %s", path, name)
    return ctx


def open_input(path: Path) -> av.container.InputContainer:
    """Open a media file for reading, with one clear error when that is not possible."""
    if not path.exists():
        raise MattingError(f"{path}: no such file")
    if not path.is_file():
        raise MattingError(f"{path}: not a file")
    try:
        return av.open(str(path), metadata_errors="replace")
    except av.FFmpegError as exc:
        raise MattingError(f"{path}: not a video or image file, or damaged ({exc.strerror})") from None


def pick_video_stream(
    container: av.container.InputContainer, path: Path, index: int | None
) -> av.VideoStream:
    videos = [
        s
        for s in container.streams.video
        if s.codec_context is not None and not s.disposition & av.stream.Disposition.attached_pic
    ]
    if not videos:
        raise MattingError(f"{path}: has no video stream")
    if index is None:
        return videos[0]
    for stream in videos:
        if stream.index == index:
            return stream
    found = ", ".join(str(s.index) for s in videos)
    raise MattingError(f"{path}: stream {index} is not a video stream (video streams: {found})")


def _rotation(frame: av.VideoFrame, path: Path) -> int:
    """The display matrix's counter-clockwise rotation as 0, 90, 180 or 270."""
    degrees = round(frame.rotation) % 360
    if degrees % 90:
        log.warning("%s: rotation of %d degrees is not a multiple of 90; ignored", path, degrees)
        return 0
    return degrees


def _decode_matrix(frame: av.VideoFrame) -> str | None:
    """The swscale matrix for a YUV frame (see `colour`); None for RGB, gray and palette formats."""
    fmt = frame.format
    if fmt.is_rgb or fmt.name.startswith(("gray", "ya", "pal", "mono")):
        return None
    return sws_name(yuv_matrix(frame.colorspace, frame.width, frame.height))


def _default_step(stream: av.VideoStream) -> int:
    rate = stream.average_rate or stream.base_rate
    if not rate or not stream.time_base:
        return 1
    return max(1, round(1 / (rate * stream.time_base)))


def _duration(stream: av.VideoStream, container: av.container.InputContainer) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def _audio_streams(container: av.container.InputContainer) -> tuple[AudioInfo, ...]:
    streams = []
    for s in container.streams.audio:
        ctx = s.codec_context
        if ctx is None or not s.time_base:
            continue
        if ctx.channels <= 0 or ctx.sample_rate <= 0:  # a damaged header's phantom (fuzz seed 27, case 180)
            log.warning(
                "%s: audio stream %d declares %d channels at %d Hz; not carried over (damaged header)",
                container.name, s.index, ctx.channels, ctx.sample_rate,
            )  # fmt: skip
            continue
        duration = float(s.duration * s.time_base) if s.duration else None
        streams.append(
            AudioInfo(
                index=s.index,
                codec=ctx.name,
                sample_rate=ctx.sample_rate,
                channels=ctx.channels,
                layout=ctx.layout.name,
                time_base=Fraction(s.time_base),
                duration=duration,
                language=s.language,
            )
        )
    return tuple(streams)
