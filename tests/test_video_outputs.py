"""What editors and browsers read in our outputs: tags, aspect, audio and timelines, parsed as they do."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np
import pytest

from tests.test_video_writers import _write, av_clip  # noqa: F401 (a fixture)
from trt_modnet.video import OutputSpec


def _decoded_s16(path: Path) -> tuple[int, np.ndarray]:
    """The first audio stream decoded as FFmpeg plays it: (sample at which it starts, s16 samples)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout=stream.layout, rate=stream.rate)
        chunks, start = [], None
        for frame in container.decode(stream):
            if start is None:
                start = round(frame.pts * frame.time_base * stream.rate)
            chunks += [f.to_ndarray().reshape(-1, stream.channels) for f in resampler.resample(frame)]
    return start or 0, np.concatenate(chunks)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_side_audio_is_decoded_and_cut_sample_exact(tmp_path: Path, av_clip: Path, suffix: str) -> None:  # noqa: F811
    """WAV holds PCM that `wave` reads, FLAC holds FLAC; sample 0 plays with the first PNG (t=1.0)."""
    side = tmp_path / f"seq{suffix}"
    _write(av_clip, {"png": OutputSpec(path=tmp_path / "seq", audio_out=side)}, start=1.0, duration=0.2)
    start, source = _decoded_s16(av_clip)
    rate = 44_100
    expected = source[round(1.0 * rate) - start : round(1.2 * rate) - start]
    if suffix == ".wav":
        with wave.open(str(side)) as wav:
            assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (rate, 2, source.shape[1])
            got = np.frombuffer(wav.readframes(wav.getnframes()), np.int16).reshape(-1, source.shape[1])
    else:
        with av.open(str(side)) as flac:
            assert flac.streams.audio[0].codec_context.name == "flac"
        got = _decoded_s16(side)[1]
    assert len(got) == len(expected)
    np.testing.assert_array_equal(got, expected)
