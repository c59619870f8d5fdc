"""Side audio files that must hold decoded sound (WAV: PCM, FLAC: FLAC), cut sample-exact.

A WAV or FLAC file has no timeline of its own: its first sample plays with the first PNG of the
sequence. So the source's first audio stream is decoded (FFmpeg drops the MP3 or AAC encoder delay
and moves the frame's pts accordingly), placed on the video's clock by its pts, padded with silence
or trimmed so that sample 0 is the first written frame's instant, and re-encoded (`pcm_s16le`,
`flac`). Copying the packets instead (as `AudioPassthrough` does) writes MP3 or AAC into a WAV,
which Python's `wave` and FFmpeg's WAV demuxer refuse or play 25 ms late.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import numpy as np

from trt_modnet.errors import MattingError
from trt_modnet.video.info import AudioInfo
from trt_modnet.video.reader import open_input

log = logging.getLogger("trt_modnet")

# Side files that are always decoded and re-encoded (with `formats.AUDIO_FILES`' encoder).
DECODED_SUFFIXES = frozenset({".wav", ".flac"})


class DecodedAudio:
    """One audio stream of `source` decoded into `output` as `codec`. `begin`, `feed`..., `finish`."""

    def __init__(
        self, source: Path, streams: Sequence[AudioInfo], output: av.container.OutputContainer, codec: str
    ) -> None:
        self.source = source
        info = streams[0]
        if len(streams) > 1:
            log.warning("%s: %d audio streams; the side file takes the first", source, len(streams))
        self._input = open_input(source)
        self._stream = self._input.streams[info.index]
        self._rate = info.sample_rate
        # FLAC keeps 24/32-bit integer sources deep; float (MP3, AAC, Opus) and 16-bit sources go to 16 bits.
        deep = (self._stream.codec_context.format.name or "").startswith("s32")
        self._format = "s32" if codec == "flac" and deep else "s16"
        self._target = output.add_stream(codec, rate=self._rate, layout=info.layout)
        self._target.format = self._format
        self._resampler = av.AudioResampler(format=self._format, layout=info.layout, rate=self._rate)
        self._output = output
        self._frames: Iterator[av.AudioFrame] | None = None
        self._origin = 0  # source-clock sample that becomes sample 0 of the file
        self._written = 0  # samples written so far
        self._held: tuple[int, np.ndarray] | None = None  # decoded samples not yet due: (position, data)
        self._done = False
        log.info("%s: audio stream %d (%s) decoded into %s", source, info.index, info.codec, codec)

    @property
    def transcoded(self) -> list[str]:
        return [self._stream.codec_context.name]

    def begin(self, start: float | None = None, offset: float = 0.0) -> None:
        """Sample 0 of the file is `start` seconds on the source's clock (0 when None); `offset`: unused."""
        if start is not None:
            self._origin = round(start * self._rate)
            self._input.seek(max(0, int(start * av.time_base)), backward=True)
        self._frames = self._decoded()

    def feed(self, until: float) -> None:
        """Write every sample before `until` seconds."""
        if self._frames is None:
            self.begin()
        limit = math.inf if until == math.inf else round(until * self._rate)
        try:
            self._write_until(limit)
        except av.FFmpegError as exc:
            raise MattingError(f"{self.source}: decoding the audio failed: {exc.strerror}") from None

    def finish(self, end: float = math.inf) -> None:
        """Write the samples before `end` seconds (all of them: `inf`), then flush the encoder."""
        self.feed(end)
        self._output.mux(self._target.encode(None))

    def close(self) -> None:
        self._input.close()

    def _decoded(self) -> Iterator[av.AudioFrame]:
        for packet in self._input.demux(self._stream):
            for frame in packet.decode():
                yield from self._resampler.resample(frame)
        yield from self._resampler.resample(None)

    def _write_until(self, limit: float) -> None:
        assert self._frames is not None
        while self._origin + self._written < limit:
            if self._held is None:
                frame = next(self._frames, None)
                if frame is None:
                    return
                channels = len(frame.layout.channels)
                self._held = (self._position(frame), frame.to_ndarray().reshape(-1, channels))
            position, data = self._held
            now = self._origin + self._written
            if position + len(data) <= now:  # before the file's start (or already written)
                self._held = None
                continue
            if position > now:  # a gap (or audio starting after the picture): silence
                self._put(np.zeros((int(min(position, limit) - now), data.shape[1]), data.dtype))
                continue
            take = data[now - position :]
            if position + len(data) > limit:
                take = take[: int(limit - now)]
            self._put(take)

    def _position(self, frame: av.AudioFrame) -> int:
        """The frame's first sample on the source clock: its pts, or straight after the previous one."""
        if frame.pts is None or frame.time_base is None:
            return self._origin + self._written
        return round(frame.pts * frame.time_base * self._rate)

    def _put(self, samples: np.ndarray) -> None:
        if not len(samples):
            return
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples.reshape(1, -1)), format=self._format, layout=self._target.layout
        )
        frame.sample_rate = self._rate
        frame.pts = self._written
        self._output.mux(self._target.encode(frame))
        self._written += len(samples)
