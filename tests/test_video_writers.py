"""Writers: alpha, timing, audio, rotation and colour survive the trip, read back with PyAV and OpenCV."""

from __future__ import annotations

import hashlib
import logging
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.conftest import IMAGES, VIDEOS, need
from tests.test_video_media import (
    audio_packets,
    leftovers,
    make_clip,
    matte,
    patches,
    pattern,
    read_gray,
    read_rgba,
    video_pts,
)
from trt_modnet.video import OutputSpec, default_output_path, open_reader, open_writer


def _write(source: Path, outputs: dict[str, OutputSpec], **read: object) -> dict[int, np.ndarray]:
    """Run `source` through writers for `outputs` (content from each spec); returns what was written."""
    written = {}
    with open_reader(source, **read) as reader:
        writers = {name: open_writer(spec, reader) for name, spec in outputs.items()}
        for frame in reader:
            h, w = frame.image.shape[:2]
            alpha = matte(h, w, frame.index)
            rgba = np.dstack([frame.image, alpha])
            written[frame.index] = rgba
            # alpha as [H,W,1], one of the shapes the deployment graph may give
            images = {"rgba": rgba, "alpha": alpha[..., None], "composite": frame.image}
            for writer in writers.values():
                writer.write(images[writer.plan.content], frame)
        for writer in writers.values():
            writer.close()
    return written


@pytest.fixture(scope="module")
def av_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic picture (64x48, 25 fps) with chaplin_360p's real MP3 audio copied in."""
    source = need(VIDEOS / "chaplin_360p.mp4")
    path = tmp_path_factory.mktemp("av") / "clip.mp4"
    with av.open(str(source)) as inp, av.open(str(path), "w") as out:
        audio_in = inp.streams.audio[0]
        video = out.add_stream("libx264", options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.time_base = video.codec_context.time_base = Fraction(1, 25)
        audio = out.add_stream_from_template(audio_in)
        for packet in inp.demux(audio_in):
            if packet.dts is not None:
                packet.stream = audio
                out.mux(packet)
        for i in range(100):  # 4 s: shorter than the audio, which is kept whole all the same
            frame = av.VideoFrame.from_ndarray(pattern(48, 64, i), format="rgb24").reformat(
                format="yuv420p", threads=1
            )
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


@pytest.fixture(scope="module")
def aac_clip(tmp_path_factory: pytest.TempPathFactory, av_clip: Path) -> Path:
    """`av_clip` with its MP3 transcoded to AAC (the audio editors take in .mov and .mp4), priming kept."""
    path = tmp_path_factory.mktemp("aac") / "clip.mp4"
    with av.open(str(av_clip)) as inp, av.open(str(path), "w") as out:
        video = out.add_stream_from_template(inp.streams.video[0])
        audio = out.add_stream("aac", rate=44_100, layout="stereo")
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = video
                out.mux(packet)
        inp.seek(0)
        for frame in inp.decode(audio=0):
            if frame.time > 4.2:  # as long as the picture
                break
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return path


@pytest.mark.parametrize("fmt", ["mov", "webm", "png", "mkv"])
def test_alpha_round_trips(tmp_path: Path, fmt: str) -> None:
    source = need(VIDEOS / "carphone_qcif.mp4")
    path = tmp_path / ("seq" if fmt == "png" else f"out.{fmt}")
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    written = _write(source, {fmt: OutputSpec(path=path, content="rgba")}, duration=0.2)
    back = read_rgba(path, decoder="libvpx-vp9" if fmt == "webm" else None)
    assert len(back) == len(written) == 6
    for i, image in enumerate(back):
        error = np.abs(image.astype(int) - written[i])
        rgb, alpha = error[..., :3], error[..., 3]
        if fmt in ("png", "mkv"):  # lossless
            assert error.max() == 0
        elif fmt == "mov":  # ProRes 4444 codes alpha losslessly; colour at 10 bits
            assert alpha.max() == 0 and rgb.mean() < 1
        else:  # VP9 at crf 30 on a 176x144 picture
            assert alpha.mean() < 1.5 and rgb.mean() < 4
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before
    assert leftovers(tmp_path) == []


def test_vp9_alpha_keeps_a_clean_background_and_a_solid_person(tmp_path: Path) -> None:
    """A portrait-like matte (a soft-edged figure over a zero background) comes back from VP9's alpha
    plane with its 0s and 255s exact, what a web compositor needs to show nothing where nobody is."""
    path = tmp_path / "out.webm"
    written = []
    with open_reader(need(VIDEOS / "pancake_240p.mkv"), duration=0.5) as reader:
        writer = open_writer(OutputSpec(path=path, content="rgba"), reader)
        for frame in reader:
            h, w = frame.image.shape[:2]
            figure = np.zeros((h, w), np.uint8)
            cv2.ellipse(figure, (w // 2 + 2 * frame.index, h // 2), (w // 6, h // 3), 0, 0, 360, 255, -1)
            alpha = cv2.GaussianBlur(figure, (0, 0), 3)
            written.append(alpha)
            writer.write(np.dstack([frame.image, alpha]), frame)
        writer.close()
    back = np.stack([image[..., 3] for image in read_rgba(path, decoder="libvpx-vp9")])
    truth = np.stack(written)
    for value in (0, 255):
        where = truth == value
        assert where.mean() > 0.05, value  # the matte has both, in quantity
        assert (back[where] == value).mean() >= 0.99, value


def test_writer_copies_the_array_it_is_given(tmp_path: Path) -> None:
    """A pipeline may reuse one buffer for every frame: the encoder must not read it later."""
    source = need(VIDEOS / "carphone_qcif.mp4")
    buffer = np.zeros((144, 176, 4), np.uint8)
    expected = []
    spec = OutputSpec(path=tmp_path / "seq", content="rgba")
    with open_reader(source, duration=0.2) as reader, open_writer(spec, reader) as writer:
        for frame in reader:
            buffer[..., :3] = frame.image
            buffer[..., 3] = matte(144, 176, frame.index)
            expected.append(buffer.copy())
            writer.write(buffer, frame)
            buffer[:] = 0
    assert all(np.array_equal(a, b) for a, b in zip(read_rgba(tmp_path / "seq"), expected, strict=True))


def test_alpha_and_composite_outputs(tmp_path: Path) -> None:
    source = need(VIDEOS / "carphone_qcif.mp4")
    outputs = {
        "alpha_mp4": OutputSpec(path=tmp_path / "a.mp4", content="alpha"),
        "alpha_mov": OutputSpec(path=tmp_path / "a.mov", content="alpha"),
        "alpha_mkv": OutputSpec(path=tmp_path / "a.mkv", content="alpha"),
        "composite_mp4": OutputSpec(path=tmp_path / "c.mp4", content="composite"),
    }
    written = _write(source, outputs, duration=0.2)
    for name, tolerance in (("alpha_mp4", 1.5), ("alpha_mov", 0.6), ("alpha_mkv", 0)):
        back = read_gray(outputs[name].path)
        errors = [np.abs(b.astype(int) - written[i][..., 3]).mean() for i, b in enumerate(back)]
        assert len(back) == 6 and max(errors) <= tolerance, name
    # H.264 crf 18, 4:2:0 on a 176x144 picture: chroma halved on small sharp details.
    composite = read_rgba(outputs["composite_mp4"].path)
    errors = [np.abs(c[..., :3].astype(int) - written[i][..., :3]).mean() for i, c in enumerate(composite)]
    assert len(composite) == 6 and max(errors) < 4


def _same_instants(
    out_pts: list[int], out_tb: Fraction, in_pts: list[int], in_tb: Fraction, fmt: str
) -> None:
    if fmt in ("mkv", "webm"):  # Matroska stores milliseconds
        assert out_pts == [round(p * in_tb * 1000) for p in in_pts] and out_tb == Fraction(1, 1000)
    else:  # an exact rescale
        assert [p * out_tb for p in out_pts] == [p * in_tb for p in in_pts]


@pytest.mark.parametrize("rate", ["constant", "variable"])
def test_timestamps_are_kept(tmp_path: Path, rate: str) -> None:
    if rate == "constant":
        source, read = need(VIDEOS / "carphone_qcif.mp4"), {"duration": 0.3}
    else:
        pts = [0, 3000, 4500, 9000, 10_000, 16_000, 16_900, 30_000, 33_003]
        images = [pattern(48, 64, i) for i in range(len(pts))]
        source = make_clip(tmp_path / "vfr.mp4", images, time_base=Fraction(1, 90_000), pts=pts)
        read = {}
    with open_reader(source, **read) as reader:
        in_pts, in_tb = [f.pts for f in reader], reader.info.time_base
    outputs = {
        fmt: OutputSpec(path=tmp_path / f"out.{fmt}", content="composite" if fmt == "mp4" else "rgba")
        for fmt in ("mov", "mp4", "mkv", "webm")
    }
    _write(source, outputs, **read)
    for fmt, spec in outputs.items():
        out_pts, out_tb = video_pts(spec.path)
        assert len(out_pts) == len(in_pts), fmt
        _same_instants(out_pts, out_tb, in_pts, in_tb, fmt)


@pytest.mark.parametrize("fmt", ["mov", "mp4", "mkv"])
def test_audio_is_copied_bit_exact(tmp_path: Path, av_clip: Path, aac_clip: Path, fmt: str) -> None:
    """AAC into QuickTime and MP4, MP3 into Matroska: each container's own, copied packet for packet."""
    clip = av_clip if fmt == "mkv" else aac_clip
    out = tmp_path / f"out.{fmt}"
    _write(clip, {fmt: OutputSpec(path=out, content="rgba" if fmt != "mp4" else "composite")})
    source, copied = audio_packets(clip), audio_packets(out)
    assert [p for _, p in copied] == [p for _, p in source]
    # The picture keeps its place against the sound (Matroska shifts both when audio starts before 0).
    shift = copied[0][0] - source[0][0]
    assert video_pts(out)[0][0] * video_pts(out)[1] == pytest.approx(shift, abs=0.001)
    if fmt != "mkv":
        assert [t for t, _ in copied] == pytest.approx([t for t, _ in source], abs=1e-9)


def test_webm_audio_is_opus_of_the_same_duration(tmp_path: Path, av_clip: Path) -> None:
    out = tmp_path / "out.webm"
    _write(av_clip, {"webm": OutputSpec(path=out)})
    with av.open(str(av_clip)) as inp, av.open(str(out)) as webm:
        assert webm.streams.audio[0].codec_context.name == "opus"
        source_end = max(float((p.pts + p.duration) * p.time_base) for p in inp.demux(audio=0) if p.size)
        opus_end = max(float((p.pts + p.duration) * p.time_base) for p in webm.demux(audio=0) if p.size)
    assert opus_end == pytest.approx(source_end, abs=0.03)  # one Opus (20 ms) or MP3 (26 ms) frame


def test_opus_goes_into_mov_as_aac(tmp_path: Path) -> None:
    """QuickTime cannot hold Opus: transcoded to AAC, everything else still copied."""
    source = need(VIDEOS / "pancake_240p.mkv")
    out = tmp_path / "out.mov"
    _write(source, {"mov": OutputSpec(path=out, content="alpha")}, duration=0.5)
    with av.open(str(out)) as mov:
        assert [s.codec_context.name for s in mov.streams.audio] == ["aac"]


def test_segment_keeps_pts_and_cuts_the_audio(tmp_path: Path, aac_clip: Path) -> None:
    out = tmp_path / "segment.mov"
    _write(aac_clip, {"mov": OutputSpec(path=out)}, start=2.0, duration=1.0)
    pts, tb = video_pts(out)
    # QuickTime: the media from 0 and the source's time in the timecode track (--timestamps source).
    assert [p * tb for p in pts] == [Fraction(i, 25) for i in range(25)]
    with av.open(str(out)) as container:
        assert container.streams.video[0].metadata["timecode"] == "00:00:02:00"
    source = audio_packets(aac_clip)
    with av.open(str(aac_clip)) as inp:
        durations = [float(p.duration * p.time_base) for p in inp.demux(audio=0) if p.size]
    first = next(i for i, ((t, _), d) in enumerate(zip(source, durations, strict=True)) if t + d > 2.0)
    # The packets that overlap the segment, and the one before: the decoder's pre-roll.
    kept = [p for (t, p), d in zip(source, durations, strict=True) if t + d > 2.0 and t < 3.0]
    assert [p for _, p in audio_packets(out)] == [source[first - 1][1], *kept]


def test_no_audio_and_audio_side_file(tmp_path: Path, av_clip: Path) -> None:
    outputs = {
        "silent": OutputSpec(path=tmp_path / "silent.mov", audio=False),
        "png": OutputSpec(path=tmp_path / "seq", audio_out=tmp_path / "seq.mka"),
    }
    _write(av_clip, outputs, duration=0.2)
    with av.open(str(outputs["silent"].path)) as silent:
        assert len(silent.streams.audio) == 0
    assert sorted(p.name for p in (tmp_path / "seq").iterdir()) == [f"{i:06d}.png" for i in range(5)]
    side = audio_packets(tmp_path / "seq.mka")
    assert [p for _, p in side] == [p for t, p in audio_packets(av_clip) if t < 0.2]


def test_rotated_source_gives_an_upright_output(tmp_path: Path) -> None:
    upright = [pattern(64, 48, i) for i in range(3)]
    stored = [np.ascontiguousarray(np.rot90(img, 1)) for img in upright]  # shown after 90 deg clockwise
    source = make_clip(tmp_path / "phone.mp4", stored, pix_fmt="yuv444p", rotation=-90, options={"qp": "0"})
    out = tmp_path / "out.mkv"
    _write(source, {"mkv": OutputSpec(path=out, content="composite")})
    capture = cv2.VideoCapture(str(out))  # a player
    shown = []
    while (item := capture.read())[0]:
        shown.append(cv2.cvtColor(item[1], cv2.COLOR_BGR2RGB))
    capture.release()
    assert len(shown) == 3
    for image, expected in zip(shown, upright, strict=True):
        assert image.shape == (64, 48, 3) and np.abs(image.astype(int) - expected).max() <= 3
    with av.open(str(out)) as container:
        assert next(container.decode(video=0)).rotation == 0


def test_odd_size_is_padded_for_h264_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = make_clip(
        tmp_path / "odd.mkv", [pattern(33, 41, i) for i in range(3)], codec="ffv1", pix_fmt="bgr0"
    )
    outputs = {
        fmt: OutputSpec(path=tmp_path / f"out.{fmt}", content="composite") for fmt in ("mp4", "mov", "webm")
    }
    with caplog.at_level(logging.WARNING, logger="trt_modnet"):
        written = _write(source, outputs)
    assert "padded to 42x34" in caplog.text
    for fmt, spec in outputs.items():
        back = read_rgba(spec.path)
        assert back[0].shape[:2] == ((34, 42) if fmt == "mp4" else (33, 41)), fmt
        assert np.abs(back[0][:33, :41, :3].astype(int) - written[0][..., :3]).mean() < 4, fmt


@pytest.mark.parametrize(("tag", "matrix"), [(1, 1), (None, 6)])  # BT.709; untagged SD, hence BT.601
def test_colour_matrix_and_tags_follow_the_source(tmp_path: Path, tag: int | None, matrix: int) -> None:
    """Saturated colours come back within a few levels only if encoding uses the decoding matrix
    (BT.601 against BT.709 moves them by tens of levels). Patch interiors: 4:2:0 smears the edges."""
    images = [patches(48, 64)] * 3
    source = make_clip(tmp_path / "src.mkv", images, codec="ffv1", pix_fmt="yuv444p", colorspace=tag)
    outputs = {fmt: OutputSpec(path=tmp_path / f"out.{fmt}", content="composite") for fmt in ("mp4", "mov")}
    _write(source, outputs)
    for fmt, spec in outputs.items():
        with av.open(str(spec.path)) as container:
            ctx = container.streams.video[0].codec_context
            assert (ctx.colorspace, ctx.color_range) == (matrix, 1), fmt
        for image in read_rgba(spec.path):
            error = np.abs(image[..., :3].astype(int) - images[0])
            interiors = [error[r : r + 16, c : c + 24] for r in (4, 28) for c in (4, 36)]
            assert max(e.max() for e in interiors) <= 8, fmt


def test_shared_hd_video_keeps_its_bt709_tags(tmp_path: Path) -> None:
    out = tmp_path / "out.mov"
    written = _write(
        need(VIDEOS / "juggle_720p.mp4"), {"mov": OutputSpec(path=out, content="composite")}, duration=0.1
    )
    with av.open(str(out)) as container:
        ctx = container.streams.video[0].codec_context
        assert (ctx.colorspace, ctx.color_range, ctx.color_primaries, ctx.color_trc) == (1, 1, 1, 1)
    # ProRes 422 HQ on this grainy footage: about 1.5 levels of luma error (0.8 before the codec).
    for i, image in enumerate(read_rgba(out)):
        assert np.abs(image[..., :3].astype(int) - written[i][..., :3]).mean() < 3


def test_codec_options_reach_the_encoder(tmp_path: Path) -> None:
    source = need(VIDEOS / "carphone_qcif.mp4")
    outputs = {
        "default": OutputSpec(path=tmp_path / "default.mp4", content="composite"),
        "small": OutputSpec(path=tmp_path / "small.mp4", content="composite", codec_options={"crf": "40"}),
    }
    _write(source, outputs, duration=0.3)
    assert outputs["small"].path.stat().st_size < outputs["default"].path.stat().st_size / 2


def test_still_image_gives_one_png(tmp_path: Path) -> None:
    source = need(IMAGES / "portraits" / "astronaut.png")
    out = tmp_path / default_output_path(source, "rgba").name
    assert out.name == "astronaut.matte.png"
    written = _write(source, {"png": OutputSpec(path=out)})
    assert out.is_file()
    assert np.array_equal(read_rgba(tmp_path)[0], written[0])


def test_default_output_paths(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    assert default_output_path(clip, "rgba") == tmp_path / "clip.matte.mov"
    assert default_output_path(clip, "alpha") == tmp_path / "clip.alpha.mp4"
    assert default_output_path(clip, "composite") == tmp_path / "clip.composite.mp4"
    assert default_output_path(clip, "rgba", "webm") == tmp_path / "clip.matte.webm"
    assert default_output_path(clip, "rgba", "png") == tmp_path / "clip.matte"
    assert default_output_path(tmp_path / "photo.jpg", "composite") == tmp_path / "photo.composite.png"
    (tmp_path / "frames").mkdir()
    assert default_output_path(tmp_path / "frames", "rgba") == tmp_path / "frames.matte"
    assert default_output_path(tmp_path / "x.matte.mov", "rgba") == tmp_path / "x.matte.matte.mov"
