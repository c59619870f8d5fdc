"""`--ray` on a local Ray instance (2 CPUs): the plain job's outputs; a dead worker is retried; one video
in keyframe-aligned pieces (`--segment-seconds`) joined into the unsplit run's frames, pts and audio."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from tests.boxes import ebml_elements, ebml_problems
from tests.conftest import VIDEOS, need
from tests.test_process import audio_packets, decode, interrupt_while_writing
from trt_modnet.cli import run_main
from trt_modnet.distributed.segments import cuts, frame_times
from trt_modnet.distributed.worker import DIE_ONCE_ENV
from trt_modnet.process import main

# --threads 1: two single-thread workers on the 2 CPUs, so units really run side by side.
FAST = ["--ref-size", "128", "--backend", "onnxruntime", "--threads", "1", "--duration", "0.2"]
BATCH = ("carphone_qcif.mp4", "pancake_240p.mkv", "chaplin_360p.mp4")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local Ray instance for the module; yields the file whose presence makes one worker die mid-unit."""
    ray = pytest.importorskip("ray")
    trigger = tmp_path_factory.mktemp("die") / "die-once"
    os.environ[DIE_ONCE_ENV] = str(trigger)  # inherited by the workers Ray starts
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield trigger
    ray.shutdown()
    del os.environ[DIE_ONCE_ENV]


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("batch")
    for name in BATCH:
        shutil.copy(need(VIDEOS / name), folder / name)
    return folder


@pytest.fixture(autouse=True)
def fresh_log_handler() -> Iterator[None]:
    """The CLI's log handler keeps the stderr it first saw: drop it so each test's capture gets the lines."""
    yield
    logger = logging.getLogger("trt_modnet")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)


def job(*args: str | Path) -> int:
    return run_main(main, [str(a) for a in args])


def run_both(batch: Path, out: Path, model: Path, fmt: str) -> tuple[Path, Path]:
    plain, dist = out / f"plain-{fmt}", out / f"ray-{fmt}"
    assert job(batch, "-o", plain, "--model", model, "--format", fmt, *FAST, "-q") == 0
    assert job(batch, "-o", dist, "--model", model, "--format", fmt, *FAST, "-q", "--ray", "auto") == 0
    names = sorted(p.name for p in plain.iterdir())
    assert names == sorted(p.name for p in dist.iterdir()) and len(names) == len(BATCH)
    assert sorted(p.name for p in batch.iterdir()) == sorted(BATCH)  # the inputs alone
    return plain, dist


def test_batch_on_ray_gives_the_plain_jobs_png_frames(
    cluster: Path, batch: Path, synthetic_onnx: Path, tmp_path: Path
) -> None:
    plain, dist = run_both(batch, tmp_path, synthetic_onnx, "png")
    for folder in plain.iterdir():
        frames = sorted(p.name for p in folder.iterdir())
        assert frames and frames == sorted(p.name for p in (dist / folder.name).iterdir())
        assert all((folder / f).read_bytes() == (dist / folder.name / f).read_bytes() for f in frames)


@pytest.mark.slow
def test_batch_on_ray_gives_the_plain_jobs_prores_timing_and_audio(
    cluster: Path, batch: Path, synthetic_onnx: Path, tmp_path: Path
) -> None:
    plain, dist = run_both(batch, tmp_path, synthetic_onnx, "mov")
    for file in plain.iterdir():
        assert decode(file)[1] == decode(dist / file.name)[1]
        assert audio_packets(file) == audio_packets(dist / file.name)


def test_killed_worker_is_retried_and_the_output_is_complete(
    cluster: Path, batch: Path, synthetic_onnx: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    src = batch / "chaplin_360p.mp4"
    plain, dist = tmp_path / "plain.mkv", tmp_path / "ray.mkv"
    assert job(src, "-o", plain, "--model", synthetic_onnx, *FAST, "-q") == 0
    cluster.touch()
    assert job(src, "-o", dist, "--model", synthetic_onnx, *FAST, "--ray", "auto") == 0
    assert not cluster.exists()  # a worker died mid-unit
    a, b = decode(plain, fmt="rgba"), decode(dist, fmt="rgba")  # FFV1: bit-identical frames, same pts
    assert a[1] == b[1] and all((x == y).all() for x, y in zip(a[0], b[0], strict=True))
    assert audio_packets(plain) == audio_packets(dist)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.mkv", "ray.mkv"]  # no temporary left
    assert "1 done, 0 failed" in capfd.readouterr().out


def test_bad_file_fails_alone_and_the_summary_names_the_node(
    cluster: Path, synthetic_onnx: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    good = need(VIDEOS / "carphone_qcif.mp4")
    for name in ("a.mp4", "c.mp4"):
        shutil.copy(good, tmp_path / name)
    (tmp_path / "b.mp4").write_bytes(good.read_bytes()[:4000])  # header, no frames
    out = tmp_path / "out"
    assert job(tmp_path, "-o", out, "--model", synthetic_onnx, "--format", "mkv", *FAST, "--ray", "auto") == 2
    assert sorted(p.name for p in out.iterdir()) == ["a.matte.mkv", "c.matte.mkv"]
    captured = capfd.readouterr()
    assert "Traceback" not in captured.out + captured.err
    table = captured.out.splitlines()
    assert "node" in table[0] and "2 done, 1 failed" in table[-1]
    assert any(row.startswith("b.mp4") and "failed: " in row for row in table)
    # A second run skips what exists and retries only the bad file.
    assert job(tmp_path, "-o", out, "--model", synthetic_onnx, "--format", "mkv", *FAST, "--ray", "auto") == 2
    assert "0 done, 1 failed, 2 skipped" in capfd.readouterr().out


def test_ctrl_c_cancels_the_job_and_leaves_nothing(
    cluster: Path, synthetic_onnx: Path, tmp_path: Path
) -> None:
    src = need(VIDEOS / "juggle_720p.mp4")
    out = tmp_path / "juggle.matte.mov"
    args = ("-o", out, "--model", synthetic_onnx, "--backend", "onnxruntime", "--ray", "auto")
    interrupt_while_writing(tmp_path, src, *args)  # the worker's temporary output removed by the driver


def test_without_ray_the_option_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, synthetic_onnx: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as when it is not installed
    src = tmp_path / "clip.mp4"
    shutil.copy(need(VIDEOS / "carphone_qcif.mp4"), src)
    assert job(src, "--model", synthetic_onnx, "--ray", "local") == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err == ["error: --ray needs Ray, which is not installed: pip install 'trt_modnet[ray]'"]
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


# Pieces of 0.4 s: the clip's keyframes, every 10 frames at 25 fps, cut it in three.
PIECES = ["--segment-seconds", "0.4"]


@pytest.fixture(scope="module")
def keyframed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1.2 s of the 360p shared video with its audio, small and with a keyframe every 0.4 s."""
    src = need(VIDEOS / "chaplin_360p.mp4")
    out = tmp_path_factory.mktemp("keyframed") / "clip.mp4"
    with av.open(str(src)) as inp, av.open(str(out), "w") as dst:
        video, audio = inp.streams.video[0], inp.streams.audio[0]
        options = {"g": "10", "keyint_min": "10", "sc_threshold": "0", "preset": "ultrafast"}
        encoder = dst.add_stream("libx264", rate=video.average_rate, options=options)
        encoder.width, encoder.height, encoder.pix_fmt, encoder.time_base = (
            160,
            96,
            "yuv420p",
            video.time_base,
        )
        copied = dst.add_stream_from_template(audio)
        for packet in inp.demux(video, audio):
            if packet.pts is None or packet.pts * packet.time_base >= 2:
                continue  # the decoder's B-frame delay: frames before 1.2 s come out of later packets
            if packet.stream is audio and packet.pts * packet.time_base < 1.2:
                packet.stream = copied
                dst.mux(packet)
            frames = packet.decode() if packet.stream is video else []
            for frame in (f for f in frames if f.pts * f.time_base < 1.2):
                small = frame.reformat(width=160, height=96, format="yuv420p")
                small.pts, small.time_base = frame.pts, frame.time_base
                dst.mux(encoder.encode(small))
        dst.mux(encoder.encode(None))
    times = frame_times(out, None)
    assert times is not None and len(cuts(times, 0.4)) == 3
    return out


def plain_and_pieces(src: Path, out: Path, model: Path, *args: str | Path) -> tuple[Path, Path]:
    """Folders with the plain job's outputs and the ones joined from pieces on Ray, and nothing else."""
    plain, joined = out / "plain", out / "pieces"
    for folder, extra in ((plain, ()), (joined, ("--ray", "auto", *PIECES))):
        folder.mkdir()
        named = [folder / a if isinstance(a, Path) else a for a in args]
        assert job(src, "--model", model, *FAST[:-2], *named, *extra, "-q") == 0
    assert sorted(p.name for p in joined.iterdir()) == sorted(p.name for p in plain.iterdir())
    return plain, joined


def same_ffv1(a: Path, b: Path) -> None:
    x, y = decode(a, fmt="rgba"), decode(b, fmt="rgba")  # FFV1: lossless
    assert len(x[0]) == 30 and x[1] == y[1]
    assert all(np.array_equal(p, q) for p, q in zip(x[0], y[0], strict=True))
    assert audio_packets(a) == audio_packets(b) != []
    # The track header as the plain run's writer left it (square pixels: no DisplayUnit 4, "unknown").
    display = {0x54B0: "width", 0x54BA: "height", 0x54B2: "unit"}
    assert ebml_elements(a, display) == ebml_elements(b, display) == {"width": [], "height": [], "unit": []}
    assert ebml_problems(b) == []


def video_packets(path: Path) -> tuple[list[tuple[int, int, int]], bytes | None]:
    """(pts, dts, duration) of every video packet, and the stream's global header (SPS/PPS for H.264)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        header = stream.codec_context.extradata
        return [(p.pts, p.dts, p.duration) for p in container.demux(stream) if p.size], header


def test_one_video_in_three_pieces_gives_the_unsplit_ffv1_frames_pts_and_audio(
    cluster: Path, keyframed: Path, synthetic_onnx: Path, tmp_path: Path
) -> None:
    cluster.touch()  # and a worker dies in its first piece: the piece runs again
    plain, joined = plain_and_pieces(keyframed, tmp_path, synthetic_onnx, "-o", Path("clip.mkv"))
    assert not cluster.exists()
    same_ffv1(plain / "clip.mkv", joined / "clip.mkv")


def test_pieces_with_ofd_join_into_the_unsplit_frames_in_every_joinable_format(
    cluster: Path, keyframed: Path, synthetic_onnx: Path, tmp_path: Path
) -> None:
    # One pass writes ProRes .mov (rgba), H.264 .mp4 (alpha), FFV1 .mkv and a PNG sequence.
    outputs = (
        "--mode",
        "rgba,alpha",
        "-o",
        Path("clip.mov"),
        "--rgba",
        Path("clip.mkv"),
        "--alpha",
        Path("png"),
    )
    plain, joined = plain_and_pieces(keyframed, tmp_path, synthetic_onnx, *outputs, "--ofd")
    same_ffv1(plain / "clip.mkv", joined / "clip.mkv")  # OFD across the seams as in one piece
    names = sorted(p.name for p in (plain / "png").iterdir())
    assert len(names) == 30 and names == sorted(p.name for p in (joined / "png").iterdir())
    assert all((plain / "png" / n).read_bytes() == (joined / "png" / n).read_bytes() for n in names)
    mov, mp4 = (
        [plain / "clip.mov", joined / "clip.mov"],
        [plain / "clip.alpha.mp4", joined / "clip.alpha.mp4"],
    )
    assert video_packets(mov[0]) == video_packets(mov[1])  # ProRes: intra-only, packet for packet
    (packets, header), (joined_packets, joined_header) = map(video_packets, mp4)
    assert header == joined_header  # the pieces' H.264 encoders wrote the same SPS/PPS
    assert len(joined_packets) == 30 and sorted(p[0] for p in packets) == sorted(p[0] for p in joined_packets)
    assert decode(mp4[0])[1] == decode(mp4[1])[1]  # every frame decodes, at the unsplit run's times
    for pair in (mov, mp4):
        assert audio_packets(pair[0]) == audio_packets(pair[1]) != []


@pytest.mark.parametrize("seconds", ["0", "-2"])
def test_bad_segment_seconds_is_one_clear_error(
    keyframed: Path, synthetic_onnx: Path, capfd: pytest.CaptureFixture[str], seconds: str
) -> None:
    with pytest.raises(SystemExit) as exit:
        job(keyframed, "--model", synthetic_onnx, "--ray", "auto", "--segment-seconds", seconds)
    err = capfd.readouterr().err.strip().splitlines()
    assert exit.value.code == 2
    assert err[-1].endswith(f"argument --segment-seconds: must be more than 0 seconds, got '{seconds}'")


def test_an_output_that_cannot_be_joined_is_refused_in_one_line(
    keyframed: Path, synthetic_onnx: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "clip.webm"
    assert job(keyframed, "-o", out, "--model", synthetic_onnx, "--ray", "auto", *PIECES) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err == [f"error: {out}: --segment-seconds cannot join .webm outputs; use mov, mkv, mp4, png"]
    assert list(tmp_path.iterdir()) == []
