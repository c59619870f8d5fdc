"""`--ray` on a local Ray instance (2 CPUs): the plain job's outputs; a dead worker is retried."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import VIDEOS, need
from tests.test_process import audio_packets, decode, interrupt_while_writing
from trt_modnet.cli import run_main
from trt_modnet.distributed.worker import DIE_ONCE_ENV
from trt_modnet.process import main

# --threads 1: two single-thread workers on the 2 CPUs, so units really run side by side.
FAST = ["--ref-size", "256", "--backend", "onnxruntime", "--threads", "1", "--duration", "0.2"]
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
