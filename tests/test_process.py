"""The main job end to end on the shared videos, outputs read back with PyAV: the real CLI in a subprocess
where the process matters (start-up, signals, environment), else its entry point in this process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import onnx
import pytest

from tests.conftest import IMAGES, VIDEOS, Cli, need
from trt_modnet.graph.deploy import DeploySpec, build
from trt_modnet.runtime.onnxrt import OnnxRuntimeRunner

FAST = ["--ref-size", "256", "--backend", "onnxruntime", "--quiet"]


def process(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "trt_modnet.process", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def decode(path: Path, fmt: str = "rgb24", codec: str | None = None) -> tuple[list[np.ndarray], list[float]]:
    """Frames and times (s) of the first video stream (libvpx for VP9 alpha: the native decoder drops it)."""
    images, times = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if codec is None:
            frames = container.decode(stream)
        else:
            ctx = av.CodecContext.create(codec, "r")
            frames = (f for p in container.demux(stream) if p.size for f in ctx.decode(p))
        for frame in frames:
            images.append(frame.to_ndarray(format=fmt))
            times.append(float(frame.pts * stream.time_base) if codec is None else frame.pts / 1000)
    return images, times


def runner_mattes(model: Path, frames: list[np.ndarray], ref_size: int = 256) -> np.ndarray:
    """The matte the ONNX Runtime runner produces for these frames, one at a time, given the graph the
    job gives it (MODNet's input made on the host)."""
    spec = DeploySpec(outputs=("alpha",), ref_size=ref_size, host_input=True)
    deploy = build(onnx.load(str(model)), spec)
    h, w = frames[0].shape[:2]
    with OnnxRuntimeRunner(deploy) as runner:
        runner.prepare(h, w, 1)
        return np.stack([runner.result(runner.submit({"frames": f[None]}))["alpha"][0] for f in frames])


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def test_rgba_mov_keeps_frames_timing_audio_colour_and_matte(synthetic_onnx: Path, tmp_path: Path) -> None:
    src = need(VIDEOS / "chaplin_360p.mp4")
    out = tmp_path / "chaplin.matte.mov"
    proc = process(src, "-o", out, "--model", synthetic_onnx, "--duration", "0.2", *FAST)
    assert proc.returncode == 0, proc.stderr

    source, source_times = decode(src)
    rgba, times = decode(out, "rgba")
    n = len(rgba)
    assert n == 5  # 0.2 s at 25 fps, frames whose pts fall inside the segment
    assert np.allclose(times, source_times[:n], rtol=0, atol=1e-9)
    colour_error = np.abs(np.stack(rgba)[..., :3].astype(int) - np.stack(source[:n])).mean()
    assert colour_error < 1.0  # ProRes 4444 at its default quality
    expected = runner_mattes(synthetic_onnx, source[:n])
    assert np.abs(np.stack(rgba)[..., 3].astype(int) - expected).max() <= 1  # alpha is lossless (10 bit)
    assert audio_packets(out), "the source's audio is missing"


@pytest.mark.parametrize(
    ("mode", "name", "pix", "codec"),
    [
        ("rgba", "out.webm", "rgba", "libvpx-vp9"),
        ("rgba", "out.mkv", "rgba", None),
        ("alpha", "out.mp4", "gray", None),
        ("composite", "out.mp4", "rgb24", None),
    ],
)
def test_each_mode_and_format_keeps_every_frame_and_pts(
    cli: Cli,
    synthetic_onnx: Path,
    tmp_path: Path,
    mode: str,
    name: str,
    pix: str,
    codec: str | None,
) -> None:
    src = need(VIDEOS / "carphone_qcif.mp4")
    out = tmp_path / name
    proc = cli(src, "-o", out, "--mode", mode, "--model", synthetic_onnx, "--duration", "0.2", *FAST)
    assert proc.returncode == 0, proc.stderr
    source, source_times = decode(src)
    images, times = decode(out, pix, codec)
    assert len(images) == 6
    # Matroska and WebM store milliseconds: the exact rescale of the source's pts, rounded.
    tolerance = 0.0005 if name.endswith((".mkv", ".webm")) else 1e-9
    assert np.allclose(times, source_times[:6], rtol=0, atol=tolerance)
    assert images[0].shape[:2] == source[0].shape[:2]
    if mode == "alpha":
        expected = runner_mattes(synthetic_onnx, source[:6])
        assert np.abs(np.stack(images).astype(int) - expected).mean() < 2  # H.264 crf on a matte


def test_png_sequence_is_lossless(cli: Cli, synthetic_onnx: Path, tmp_path: Path) -> None:
    src = need(VIDEOS / "pancake_240p.mkv")
    out = tmp_path / "frames"
    proc = cli(src, "-o", out, "--format", "png", "--model", synthetic_onnx, "--duration", "0.1", *FAST)
    assert proc.returncode == 0, proc.stderr
    pngs = sorted(out.glob("*.png"))
    source, _ = decode(src)
    assert len(pngs) == 3
    expected = runner_mattes(synthetic_onnx, source[:3])
    for i, png in enumerate(pngs):
        (rgba,), _ = decode(png, "rgba")
        assert np.array_equal(rgba[..., :3], source[i])
        assert np.array_equal(rgba[..., 3], expected[i])


def test_still_image_gives_cutout_and_matte_pngs(cli: Cli, synthetic_onnx: Path, tmp_path: Path) -> None:
    src = tmp_path / "astronaut.png"
    shutil.copy(need(IMAGES / "portraits" / "astronaut.png"), src)
    proc = cli(src, "--model", synthetic_onnx, *FAST)
    assert proc.returncode == 0, proc.stderr
    (rgba,), _ = decode(tmp_path / "astronaut.matte.png", "rgba")
    (matte,), _ = decode(tmp_path / "astronaut.alpha.png", "gray")
    assert rgba.shape == (512, 512, 4) and np.array_equal(rgba[..., 3], matte)


def test_default_name_sits_beside_the_input_and_existing_output_is_skipped(
    cli: Cli, synthetic_onnx: Path, tmp_path: Path
) -> None:
    src = tmp_path / "clip.mp4"
    shutil.copy(need(VIDEOS / "carphone_qcif.mp4"), src)
    before = src.read_bytes()
    args = ("--model", synthetic_onnx, "--duration", "0.1", "--format", "mkv", *FAST)
    assert cli(src, *args).returncode == 0
    out = tmp_path / "clip.matte.mkv"
    stamp = out.stat().st_mtime_ns
    again = cli(src, *args[:-1])  # not quiet: the summary says it was skipped
    assert again.returncode == 0 and "skipped" in again.stdout
    assert out.stat().st_mtime_ns == stamp
    assert cli(src, *args, "--overwrite").returncode == 0
    assert out.stat().st_mtime_ns != stamp
    assert src.read_bytes() == before


def test_batch_with_a_corrupted_file_finishes_the_others(
    cli: Cli, synthetic_onnx: Path, tmp_path: Path
) -> None:
    good = need(VIDEOS / "carphone_qcif.mp4")
    for name in ("a.mp4", "c.mp4"):
        shutil.copy(good, tmp_path / name)
    (tmp_path / "b.mp4").write_bytes(good.read_bytes()[:4000])  # truncated: header, no frames
    out = tmp_path / "out"
    args = ("-o", out, "--model", synthetic_onnx, "--duration", "0.1", "--format", "mkv", *FAST[:-1])
    proc = cli(tmp_path, *args)
    assert proc.returncode != 0
    assert sorted(p.name for p in out.iterdir()) == ["a.matte.mkv", "c.matte.mkv"]
    assert "b.mp4" in proc.stdout and "failed" in proc.stdout
    assert "Traceback" not in proc.stderr


def interrupt_while_writing(folder: Path, *args: str | Path) -> None:
    """Run the job, press Ctrl-C once its temporary output exists: exit 130, nothing left, no traceback."""
    cmd = [sys.executable, "-m", "trt_modnet.process", *map(str, args)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(folder.glob(".*")) and time.monotonic() < deadline:  # the temporary output exists
        time.sleep(0.2)
    time.sleep(1.0)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    assert list(folder.iterdir()) == []
    assert "Traceback" not in stderr


def test_ctrl_c_removes_the_partial_output(synthetic_onnx: Path, tmp_path: Path) -> None:
    src = need(VIDEOS / "juggle_720p.mp4")
    out = tmp_path / "juggle.matte.mov"
    # One small batch in flight: Ctrl-C waits for the one running, however long it takes.
    interrupt_while_writing(tmp_path, src, "-o", out, "--model", synthetic_onnx, *FAST[:-1], "--batch", "1")


@pytest.mark.parametrize("case", ["missing_input", "onto_input", "no_model", "alpha_into_mp4"])
def test_bad_input_is_one_clear_line(synthetic_onnx: Path, tmp_path: Path, case: str) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    src = work / "clip.mp4"
    shutil.copy(need(VIDEOS / "carphone_qcif.mp4"), src)
    before = src.read_bytes()
    args: list[str | Path] = {
        "missing_input": [work / "absent.mp4", "--model", synthetic_onnx],
        "onto_input": [src, "-o", src, "--model", synthetic_onnx, "--format", "mov"],
        "no_model": [src],
        "alpha_into_mp4": [src, "-o", work / "x.mp4", "--mode", "rgba", "--model", synthetic_onnx],
    }[case]
    proc = subprocess.run(
        [sys.executable, "-m", "trt_modnet.process", *map(str, args), *FAST],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=work,
        # No TRT_MODNET_MODEL, _HOME or _MIRROR; PYTHONPATH kept so that a worktree tests its own code.
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert sorted(p.name for p in work.iterdir()) == ["clip.mp4"]
    assert src.read_bytes() == before
    if case == "no_model":  # the default model is fetched; offline, the user learns where to put it
        cached = home / ".cache" / "trt_modnet" / "models" / "modnet_photographic_portrait_matting.ckpt"
        assert "storage.openvinotoolkit.org" in errors[0] and f"to {cached} by hand" in errors[0]
        assert not cached.exists()


def test_composite_over_a_video_background_with_ofd_and_preview(
    cli: Cli, synthetic_onnx: Path, tmp_path: Path
) -> None:
    from trt_modnet.job.background import cover

    src, bg_video = need(VIDEOS / "carphone_qcif.mp4"), need(VIDEOS / "chaplin_360p.mp4")
    out, preview = tmp_path / "out", tmp_path / "sheet.png"
    out.mkdir()  # an existing folder: each output inside it under its default name
    args = ("--mode", "composite,alpha", "--format", "mkv", "--background", bg_video, "--ofd", "--preview")
    proc = cli(src, "-o", out, *args, preview, "--model", synthetic_onnx, "--duration", "0.2", *FAST)
    assert proc.returncode == 0, proc.stderr
    source, _ = decode(src)
    background, _ = decode(bg_video)
    composite, _ = decode(out / "carphone_qcif.composite.mkv", "rgb24")
    alpha, _ = decode(out / "carphone_qcif.alpha.mkv", "gray")
    assert len(composite) == len(alpha) == 6
    for i in range(6):
        a = alpha[i][..., None].astype(np.float64) / 255
        plate = cover(background[i], *source[i].shape[:2])
        blend = source[i] * a + plate * (1 - a)
        assert np.abs(composite[i].astype(np.float64) - blend).max() <= 1.0
    (sheet,), _ = decode(preview)
    assert sheet.shape[1] > 3 * 300  # input | matte | composite side by side


def test_a_missing_preview_is_made_for_outputs_that_exist(
    cli: Cli, synthetic_onnx: Path, tmp_path: Path
) -> None:
    src = need(VIDEOS / "carphone_qcif.mp4")
    out, first, second = tmp_path / "clip.mov", tmp_path / "first.png", tmp_path / "second.png"
    common = ("--model", synthetic_onnx, "--duration", "0.2", *FAST)
    assert cli(src, "-o", out, "--preview", first, *common).returncode == 0
    made = out.stat().st_mtime_ns, out.read_bytes()

    again = cli(src, "-o", out, "--preview", second, *common)  # only the preview is missing
    assert again.returncode == 0, again.stderr
    assert second.read_bytes() == first.read_bytes()
    assert (out.stat().st_mtime_ns, out.read_bytes()) == made  # the existing output left alone

    summary = [a for a in common if a != "--quiet"]
    skipped = cli(src, "-o", out, "--preview", second, *summary)
    assert skipped.returncode == 0
    (row,) = [line for line in skipped.stdout.splitlines() if "skipped (" in line]
    assert "clip.mov" in row  # names the output that exists, not the input
