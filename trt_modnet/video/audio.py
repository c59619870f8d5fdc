"""The source's audio, carried into an output: copied packet for packet, or transcoded where it must be.

Each audio stream is copied bit-exactly when the output's muxer accepts it as it is (asked of FFmpeg
itself: a header is written to memory with the stream, see `_muxer_accepts`) and, for .mov and .mp4,
when editors import it there (`formats.EDITOR_AUDIO`: AAC, ALAC, PCM); otherwise it is transcoded to the
format's fallback encoder, with one line saying so: Opus for WebM (which takes only Opus and Vorbis),
AAC for .mov and .mp4 (MP3, Opus, Vorbis, FLAC, AC-3). Timestamps stay the source's, so picture and
sound stay in sync.

The audio is read from its own demuxer of the input file and fed to the output's muxer in step with the
video (`feed(until)` after each video frame), so the muxer can interleave both without buffering a
whole file. A segment (`--start/--duration`) gets the audio packets that overlap the written frames.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av

from trt_modnet.errors import MattingError
from trt_modnet.video.info import AudioInfo
from trt_modnet.video.reader import open_input

log = logging.getLogger("trt_modnet")


@dataclass
class _Route:
    source: av.AudioStream
    target: av.AudioStream
    transcode: bool


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
        self._start = -math.inf
        try:
            self._routes = {info.index: self._route(info, fallback, codecs) for info in streams}
        except BaseException:
            self._input.close()
            raise

    @property
    def transcoded(self) -> list[str]:
        return [r.source.codec_context.name for r in self._routes.values() if r.transcode]

    def begin(self, start: float | None = None) -> None:
        """Read from the top, or (a segment) from the packets that end after `start` seconds."""
        if start is not None:
            self._start = start
            self._input.seek(max(0, int(start * av.time_base)), backward=True)
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
                    self._mux(packet)
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
            packet.stream = route.target
            self._output.mux(packet)
            return
        for frame in packet.decode():
            self._output.mux(route.target.encode(frame))

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
