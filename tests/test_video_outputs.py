"""What editors and browsers read in our outputs: tags, aspect, audio and timelines, parsed as they do."""

from __future__ import annotations

import itertools
import logging
import struct
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.boxes import (
    colr,
    ebml_elements,
    ebml_problems,
    elst,
    fiel,
    mp4_boxes,
    pasp,
    png_chunks,
    prores_frame_colour,
    top_level,
)
from tests.conftest import VIDEOS, need
from tests.test_video_media import audio_packets, make_clip, pattern, video_pts
from tests.test_video_writers import _write, aac_clip, av_clip  # noqa: F401 (fixtures)
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


def _outputs(tmp_path: Path, stem: str) -> dict[str, OutputSpec]:
    """One output of each format (rgba where the format holds it, else the composite)."""
    paths = {f: tmp_path / f"{stem}.{f}" for f in ("mov", "mp4", "mkv", "webm")} | {"png": tmp_path / stem}
    return {f: OutputSpec(path=p, content="composite" if f == "mp4" else "rgba") for f, p in paths.items()}


@pytest.mark.parametrize(
    ("source", "tags"),
    [("hd", (1, 1, 1)), ("sd", (6, 6, 6))],  # BT.709 source; untagged SD gets BT.601 (SMPTE 170M)
)
def test_colour_tags_agree_in_container_and_bitstream(tmp_path: Path, source: str, tags: tuple) -> None:
    path = (
        need(VIDEOS / "juggle_720p.mp4")
        if source == "hd"
        else make_clip(tmp_path / "sd.mp4", [pattern(48, 64, i) for i in range(2)])
    )
    outputs = _outputs(tmp_path, "out")
    if source == "hd":  # VP9 and FFV1 at 720p cost seconds; the SD case checks their tags
        outputs = {f: outputs[f] for f in ("mov", "mp4")}
    _write(path, outputs, duration=0.05)
    primaries, transfer, matrix = tags
    mov = outputs["mov"].path
    assert [colr(b) for b in mp4_boxes(mov)[b"colr"]] == [(b"nclc", primaries, transfer, matrix)]
    assert prores_frame_colour(mov) == tags
    assert [colr(b)[1:] for b in mp4_boxes(outputs["mp4"].path)[b"colr"]] == [tags]
    for fmt in set(outputs) & {"mkv", "webm"}:
        found = ebml_elements(outputs[fmt].path, {0x55BB: "primaries", 0x55BA: "transfer"})
        assert (found["primaries"], found["transfer"]) == ([primaries], [transfer]), fmt


def _anamorphic(path: Path) -> Path:
    """PAL 16:9 DV in miniature: 64x48 stored, sample aspect 64:45, shown 91x48 (display aspect 16:9)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(64, 45)
        stream.time_base = stream.codec_context.time_base = Fraction(1, 25)
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(pattern(48, 64, i), format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("sar", [Fraction(1), Fraction(64, 45)])
def test_field_order_and_pixel_aspect_reach_every_format(tmp_path: Path, sar: Fraction) -> None:
    """fiel and pasp in QuickTime/MP4, pHYs in PNG, DisplayWidth/DisplayHeight in Matroska and WebM
    as FFmpeg's CLI writes them; FFmpeg reads the display aspect back."""
    if sar == 1:
        source = make_clip(tmp_path / "square.mp4", [pattern(48, 64, i) for i in range(2)])
    else:
        source = _anamorphic(tmp_path / "anamorphic.mp4")
    outputs = _outputs(tmp_path, "out")
    _write(source, outputs)
    for fmt in ("mov", "mp4"):
        found = mp4_boxes(outputs[fmt].path)
        assert [pasp(b) for b in found[b"pasp"]] == [(sar.numerator, sar.denominator)], fmt
        if fmt == "mov":
            assert [fiel(b) for b in found[b"fiel"]] == [(1, 0)]  # progressive
    phys = png_chunks(outputs["png"].path / "000000.png")[b"pHYs"]
    assert struct.unpack(">IIB", phys) == (sar.numerator, sar.denominator, 0)  # unit 0: aspect only
    display = {0x54B0: "width", 0x54BA: "height", 0x54B2: "unit"}
    shown = {
        "mkv": {"width": [], "height": [], "unit": []},  # 1:1 is Matroska's default: nothing written
        "webm": {"width": [], "height": [], "unit": []},
    }
    if sar != 1:  # Matroska: the display aspect (unit 3); WebM: pixels, the width stretched by the SAR
        shown = {
            "mkv": {"width": [256], "height": [135], "unit": [3]},
            "webm": {"width": [91], "height": [48], "unit": []},
        }
    for fmt in ("mkv", "webm"):
        assert ebml_elements(outputs[fmt].path, display) == shown[fmt], fmt
        assert ebml_problems(outputs[fmt].path) == [], fmt  # CRC-32s and SeekHead still right
    read_back = {"mov": sar, "mp4": sar, "mkv": sar, "webm": Fraction(91, 64) if sar != 1 else sar}
    for fmt, expected in read_back.items():
        with av.open(str(outputs[fmt].path)) as container:
            video = container.streams.video[0]
            assert video.sample_aspect_ratio == expected, fmt
            assert (video.codec_context.width, video.codec_context.height) == (64, 48), fmt
            assert sum(1 for _ in container.decode(video)) == 2, fmt


def test_tracks_are_default_and_mp4_starts_with_its_index(tmp_path: Path, av_clip: Path) -> None:  # noqa: F811
    outputs = _outputs(tmp_path, "out")
    del outputs["png"]
    _write(av_clip, outputs, duration=0.2)
    for fmt in ("mkv", "webm"):  # FlagDefault absent is 1; FFmpeg writes 0 for tracks not marked default
        assert ebml_elements(outputs[fmt].path, {0x88: "default"})["default"] == [], fmt
    order = top_level(outputs["mp4"].path)
    assert order.index(b"moov") < order.index(b"mdat")  # faststart: players need not fetch the end first


@pytest.mark.parametrize(("source", "fmt"), [("mp3", "mov"), ("opus", "mp4")])
def test_audio_editors_refuse_is_transcoded_to_aac(
    tmp_path: Path,
    av_clip: Path,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    source: str,
    fmt: str,
) -> None:
    """QuickTime and MP4 get AAC, PCM or ALAC only (what Premiere, Resolve and Final Cut import)."""
    path = av_clip if source == "mp3" else need(VIDEOS / "pancake_240p.mkv")
    out = tmp_path / f"out.{fmt}"
    with caplog.at_level(logging.INFO, logger="trt_modnet"):
        _write(path, {fmt: OutputSpec(path=out, content="composite")}, duration=0.2)
    with av.open(str(out)) as container:
        assert [s.codec_context.name for s in container.streams.audio] == ["aac"]
    said = [r.getMessage() for r in caplog.records if "transcoded to aac" in r.getMessage()]
    assert len(said) == 1 and source in said[0]


def _audio_edit(path: Path) -> list[tuple[int, int, float]]:
    """The audio track's edit list (the second trak: video first), in the movie's timescale."""
    return elst(mp4_boxes(path)[b"elst"][1])


@pytest.mark.parametrize("fmt", ["mov", "mp4"])
def test_segment_keeps_aac_priming_and_starts_on_its_sample(tmp_path: Path, aac_clip: Path, fmt: str) -> None:  # noqa: F811
    """From t=0 the priming packet (pts -1024) stays and the edit list skips exactly its 1024 samples;
    from t=2 the pre-roll packet stays and playback starts on sample 88200 (2 s at 44.1 kHz), at media
    time 0 (.mov keeps the source's time in a timecode track)."""
    source = audio_packets(aac_clip)
    first = tmp_path / f"first.{fmt}"
    _write(aac_clip, {fmt: OutputSpec(path=first, content="composite")}, duration=0.4)
    assert audio_packets(first)[0] == source[0] and source[0][0] < 0
    assert _audio_edit(first)[-1][1] == 1024
    later = tmp_path / f"later.{fmt}"
    _write(aac_clip, {fmt: OutputSpec(path=later, content="composite")}, start=2.0, duration=0.4)
    packets = audio_packets(later)
    preroll = next(t for t, p in source if p == packets[0][1])
    preroll_sample = round(preroll * 44_100)
    assert preroll + 1024 / 44_100 <= 2.0 < preroll + 2048 / 44_100  # the packet before the first overlapping
    # No empty edit: media time skips to the segment's first sample, exact in the 44.1 kHz movie timescale.
    assert _audio_edit(later) == [(pytest.approx(0.4 * 44_100, abs=1100), 88_200 - preroll_sample, 1.0)]


@pytest.mark.parametrize(
    ("fmt", "mode", "first", "timecode"),
    [
        ("mp4", None, 0, None),
        ("webm", None, 0, None),
        ("mov", None, 0, "00:00:02:00"),
        ("mov", "zero", 0, None),
        ("mp4", "source", 2.0, None),
        ("mkv", None, 2.0, None),
    ],
)
def test_timestamps_source_or_zero(
    tmp_path: Path, fmt: str, mode: str | None, first: float, timecode: str | None
) -> None:
    """Defaults: .mp4/.webm start at 0 (browsers); .mov keeps the source's time for editors' timelines in
    a timecode track, its media from 0, so that its duration is the content's; .mkv keeps the source's
    timestamps and says the content's duration (FFmpeg's muxer would say the segment's end time)."""
    source = make_clip(tmp_path / "in.mp4", [pattern(48, 64, i) for i in range(75)])
    out = tmp_path / f"out.{fmt}"
    spec = OutputSpec(path=out, content="composite", timestamps=mode)
    _write(source, {fmt: spec}, start=2.0, duration=0.4)
    pts, time_base = video_pts(out)
    assert float(pts[0] * time_base) == pytest.approx(first, abs=0.002)
    with av.open(str(out)) as container:
        assert container.streams.video[0].metadata.get("timecode") == timecode
        # FFmpeg's duration (ffprobe's) is the content's in every mode
        assert container.duration / 1e6 == pytest.approx(0.4, abs=0.03)
    if fmt in ("webm", "mkv"):  # Info's Duration, in ticks of TimestampScale
        found = ebml_elements(out, {0x4489: "duration", 0x2AD7B1: "scale"})
        (ticks,) = struct.unpack(">d", found["duration"][0].to_bytes(8, "big"))
        assert ticks * found["scale"][0] / 1e9 == pytest.approx(0.4, abs=0.03)
        assert ebml_problems(out) == []
        return
    # the movie header's duration, which players and MediaInfo show
    timescale, length = struct.unpack(">II", mp4_boxes(out)[b"mvhd"][0][12:20])
    duration = length / timescale
    # zero: the content's 0.4 s (browsers' duration); source: the source's timeline up to the segment's end
    assert duration == pytest.approx(first + 0.4, abs=0.03)
    empty = [e for e in elst(mp4_boxes(out)[b"elst"][0]) if e[1] == -1]
    assert bool(empty) == (first > 0)


@pytest.mark.parametrize("fmt", ["mov", "mp4"])
def test_constant_rate_matroska_stays_constant_rate(tmp_path: Path, fmt: str) -> None:
    """30 fps stored in milliseconds (0, 33, 67, ...) goes out on its grid; Opus -> AAC steps 1024."""
    out = tmp_path / f"out.{fmt}"
    _write(need(VIDEOS / "pancake_240p.mkv"), {fmt: OutputSpec(path=out, content="composite")}, duration=0.3)
    pts, time_base = video_pts(out)
    assert {b - a for a, b in itertools.pairwise(pts)} == {Fraction(1, 30) / time_base}
    with av.open(str(out)) as container:
        audio = [p.pts for p in container.demux(audio=0) if p.size]
    assert {b - a for a, b in itertools.pairwise(audio)} == {1024}


def test_variable_rate_stays_variable_rate(tmp_path: Path) -> None:
    times = [0, 40, 100, 140, 240, 250]  # milliseconds, a capture's irregular frames
    source = make_clip(
        tmp_path / "vfr.mkv",
        [pattern(48, 64, i) for i in range(len(times))],
        time_base=Fraction(1, 1000),
        pts=times,
        container_format="matroska",
    )
    out = tmp_path / "out.mov"
    _write(source, {"mov": OutputSpec(path=out)})
    pts, time_base = video_pts(out)
    assert [p * time_base for p in pts] == [Fraction(t, 1000) for t in times]
