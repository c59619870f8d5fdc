"""The source's audio, carried into an output: copied packet for packet, or transcoded where it must be.

Each audio stream is copied bit-exactly when the output's muxer accepts it as it is (asked of FFmpeg
itself: a header is written to memory with the stream, see `_muxer_accepts`) and, for .mov and .mp4,
when editors import it there (`formats.EDITOR_AUDIO`: AAC, ALAC, PCM); otherwise it is transcoded to the
format's fallback encoder, with one line saying so: Opus for WebM (which takes only Opus and Vorbis),
AAC for .mov and .mp4 (MP3, Opus, Vorbis, FLAC, AC-3). Timestamps stay the source's, so picture and
sound stay in sync.

The audio is read from its own demuxer of the input file and fed to the output's muxer in step with the
video (`feed(until)` after each video frame), so the muxer can interleave both without buffering a
whole file. A segment (`--start/--duration`) gets the audio packets that overlap the written frames and
the one before them: AAC's priming packet (pts -1024, which also starts a segment at t=0), or the packet
whose overlap the decoder needs for its first samples; the muxer's edit list (.mov/.mp4) or codec delay
(Matroska) starts playback at the segment's first sample. `offset` seconds are taken off every timestamp
(`--timestamps zero`).
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from trt_modnet.errors import MattingError
from trt_modnet.video.info import AudioInfo
from trt_modnet.video.reader import open_input

log = logging.getLogger("trt_modnet")


_SEEK_MARGIN = 1.0


@dataclass
class _Route:
    source: av.AudioStream
    target: av.AudioStream
    transcode: bool
    next_sample: int | None = None  # where the next decoded frame starts, counted in samples


class AudioPassthrough:
    """Audio of `source` into `output` (whose streams this adds). Call `begin`, `feed`..., `finish`.

    Owns its input container: `close()` (idempotent) releases it; the output belongs to the caller.
    """

    def __init__(
        self,
        source: Path,
        streams: Sequence[AudioInfo],
        output: av.container.OutputContainer,
        *,
        fallback: str,
        codecs: frozenset[str] = frozenset(),
    ) -> None:
        self.source = source
        self._output = output
        self._input = open_input(source)
        self._packets: Iterator[av.Packet] | None = None
        self._pending: av.Packet | None = None
        self._preroll: dict[int, av.Packet] = {}  # per stream: the last packet before the segment
        self._start = -math.inf
        self._offset = 0.0
        try:
            self._routes = {info.index: self._route(info, fallback, codecs) for info in streams}
        except BaseException:
            self._input.close()
            raise

    @property
    def transcoded(self) -> list[str]:
        return [r.source.codec_context.name for r in self._routes.values() if r.transcode]

    def begin(self, start: float | None = None, offset: float = 0.0) -> None:
        """Read from the top, or (a segment) from the packets that end after `start` seconds.

        `offset` seconds are subtracted from the output's timestamps.
        """
        self._offset = offset
        if start is not None:
            self._start = start
            # A second early, so the packet before the segment (the decoder's pre-roll) is read too;
            # near the top, from the top, so AAC's priming packet (before t=0) is not skipped.
            if start > _SEEK_MARGIN:
                self._input.seek(int((start - _SEEK_MARGIN) * av.time_base), backward=True)
        self._packets = iter(self._input.demux(*(r.source for r in self._routes.values())))

    def feed(self, until: float) -> None:
        """Mux every packet that starts before `until` seconds."""
        if self._packets is None:
            self.begin()
        try:
            while (packet := self._next()) is not None:
                start, end = _span(packet)
                if start >= until:
                    self._pending = packet
                    return
                if end > self._start or start >= self._start:
                    preroll = self._preroll.pop(packet.stream.index, None)
                    if preroll is not None:
                        self._mux(preroll)
                    self._mux(packet)
                else:
                    self._preroll[packet.stream.index] = packet
        except av.FFmpegError as exc:
            raise MattingError(f"{self.source}: carrying the audio over failed: {exc.strerror}") from None

    def finish(self, end: float = math.inf) -> None:
        """Mux the packets that start before `end` seconds, then flush the transcoders."""
        self.feed(end)
        for route in self._routes.values():
            if route.transcode:
                for frame in route.source.codec_context.decode(None):
                    self._output.mux(route.target.encode(frame))
                self._output.mux(route.target.encode(None))

    def close(self) -> None:
        self._input.close()

    def _next(self) -> av.Packet | None:
        if self._pending is not None:
            packet, self._pending = self._pending, None
            return packet
        assert self._packets is not None
        for packet in self._packets:
            if packet.dts is not None or packet.pts is not None:  # skip the demuxer's flush packets
                return packet
        return None

    def _mux(self, packet: av.Packet) -> None:
        route = self._routes[packet.stream.index]
        if not route.transcode:
            shift = _ticks(self._offset, packet.time_base)
            packet.stream = route.target
            if shift:
                packet.pts = None if packet.pts is None else packet.pts - shift
                packet.dts = None if packet.dts is None else packet.dts - shift
            self._output.mux(packet)
            return
        for frame in packet.decode():
            self._count_samples(route, frame)
            self._output.mux(route.target.encode(frame))

    def _count_samples(self, route: _Route, frame: av.AudioFrame) -> None:
        """Give a decoded frame its pts in samples: one after the other, as the encoder's frames are.

        A coarse time base (Matroska's milliseconds) rounds each frame's start; rescaled, AAC's 1024-sample
        packets would step 1008/1024/1056. The source's time only (re)starts the count: first, after a gap.
        """
        if frame.pts is None:
            return
        at = round((frame.pts * Fraction(frame.time_base) - Fraction(self._offset)) * frame.sample_rate)
        if route.next_sample is None or abs(at - route.next_sample) > frame.samples:
            route.next_sample = at
        frame.pts, frame.time_base = route.next_sample, Fraction(1, frame.sample_rate)
        route.next_sample += frame.samples

    def _route(self, info: AudioInfo, fallback: str, codecs: frozenset[str]) -> _Route:
        source = self._input.streams[info.index]
        muxer = self._output.format.name
        if _listed(source.codec_context.name, codecs) and _muxer_accepts(muxer, source):
            target = self._output.add_stream_from_template(source)
            transcode = False
        else:
            rate = _rate(fallback, info.sample_rate)
            target = self._output.add_stream(fallback, rate=rate, layout=info.layout)
            transcode = True
            why = "editors do not import it there" if codecs else "the container cannot hold it"
            log.info(
                "%s: audio stream %d (%s) transcoded to %s for %s: %s",
                self.source, info.index, info.codec, fallback, muxer, why,
            )  # fmt: skip
        if info.language:
            target.metadata["language"] = info.language
        return _Route(source, target, transcode)


def _span(packet: av.Packet) -> tuple[float, float]:
    """Start and end of a packet in seconds."""
    ts = packet.pts if packet.pts is not None else packet.dts
    start = float(ts * packet.time_base)
    return start, start + float((packet.duration or 0) * packet.time_base)


def _ticks(seconds: float, time_base: Fraction) -> int:
    return round(Fraction(seconds) / time_base)


def _listed(codec: str, codecs: frozenset[str]) -> bool:
    return not codecs or codec in codecs or ("pcm" in codecs and codec.startswith("pcm_"))


def _muxer_accepts(muxer: str, stream: av.AudioStream) -> bool:
    """Whether `muxer` writes a header with this stream copied as it is (FFmpeg's own answer)."""
    try:
        with av.open(io.BytesIO(), "w", format=muxer) as probe:
            probe.add_stream_from_template(stream)
            probe.start_encoding()
    except (av.FFmpegError, ValueError):
        return False
    return True


def _rate(codec: str, rate: int) -> int:
    """The source rate when the encoder takes it, else 48 kHz (Opus) or its highest."""
    rates = av.Codec(codec, "w").audio_rates
    if not rates or rate in rates:
        return rate
    return 48_000 if 48_000 in rates else max(rates)
