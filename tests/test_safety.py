"""Nothing lost, ever (issue 15): outputs planned up front, no collisions, no silent replacement, no
leftovers after signals or a full disk, one clear line for every refusal. Real files in a temporary folder."""

from __future__ import annotations

import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import IMAGES, VIDEOS, Cli, need, run_module
from trt_modnet.errors import MattingError
from trt_modnet.job import resources
from trt_modnet.job.background import open_background
from trt_modnet.job.inputs import collect_inputs
from trt_modnet.job.plan import plan_run
from trt_modnet.job.resources import bounded_batch, warn_if_large_frame
from trt_modnet.job.summary import FileResult, print_summary
from trt_modnet.process import parse_args
from trt_modnet.video.staging import Staging, remove_stale

FAST = ["--ref-size", "256", "--backend", "onnxruntime", "--quiet"]


def plans_for(*args: str | Path) -> list:
    job = parse_args([str(a) for a in args])
    return plan_run(job, collect_inputs(job.inputs, recursive=job.recursive))


def copy_to(src: Path, *targets: Path) -> None:
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, target)


def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    shutil.copy(need(next(iter(sorted((IMAGES / "portraits").iterdir())))), path)
    return path


# -- 1. the preview is an output like any other ------------------------------------------------------


def test_preview_onto_the_input_is_refused_and_the_input_kept(tmp_path: Path) -> None:
    src = photo(tmp_path)
    before = src.read_bytes()
    proc = run_module("trt_modnet.process", str(src), "--preview", str(src), *FAST)
    assert proc.returncode == 2, proc.stderr
    assert f"{src}: is an input; refusing to overwrite it" in proc.stderr and "Traceback" not in proc.stderr
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def test_an_existing_preview_is_skipped_unless_overwrite(tmp_path: Path) -> None:
    src, sheet = photo(tmp_path), tmp_path / "sheet.png"
    sheet.write_bytes(b"not mine")
    (plan,) = plans_for(src, "--preview", sheet)
    assert plan.preview is None
    (plan,) = plans_for(src, "--preview", sheet, "--overwrite")
    assert plan.preview == sheet


# -- 2. inputs that share a name ------------------------------------------------------------------------


def test_same_name_inputs_under_o_get_distinct_documented_outputs(tmp_path: Path) -> None:
    clip = need(VIDEOS / "carphone_qcif.mp4")
    a, b = tmp_path / "a", tmp_path / "b"
    copy_to(clip, a / "clip.mp4", b / "clip.mp4", a / "clip.mov")
    out = tmp_path / "out"
    plans = plans_for(a / "clip.mp4", b / "clip.mp4", a / "clip.mov", "-o", out)
    names = sorted(str(s.path.relative_to(out)) for p in plans for s in p.outputs)
    assert names == ["a/clip.mov.matte.mov", "a/clip.mp4.matte.mov", "b/clip.matte.mov"]


def test_same_stem_in_a_folder_run_keeps_the_extension_in_the_name(tmp_path: Path) -> None:
    copy_to(need(VIDEOS / "carphone_qcif.mp4"), tmp_path / "clip.mp4", tmp_path / "clip.mov")
    plans = plans_for(tmp_path, "--mode", "composite")
    assert sorted(s.path.name for p in plans for s in p.outputs) == [
        "clip.mov.composite.mp4",
        "clip.mp4.composite.mp4",
    ]
    # A second run over the folder does not take these outputs for inputs.
    for p in plans:
        p.outputs[0].path.write_bytes(b"")
    assert len(plans_for(tmp_path, "--mode", "composite")) == 2


# -- 3. two runs writing the same output ------------------------------------------------------------------


def test_moving_into_place_keeps_a_file_that_appeared_meanwhile(tmp_path: Path) -> None:
    final = tmp_path / "clip.matte.mov"
    staging = Staging(final)
    staging.temp.write_bytes(b"ours")
    final.write_bytes(b"the other run's")
    with pytest.raises(MattingError, match="appeared while this run was writing it"):
        staging.commit()
    staging.discard()
    assert final.read_bytes() == b"the other run's" and list(tmp_path.iterdir()) == [final]
    replacing = Staging(final, replace=True)
    replacing.temp.write_bytes(b"ours")
    replacing.commit()
    assert final.read_bytes() == b"ours" and list(tmp_path.iterdir()) == [final]


# -- 4. signals and leftovers ----------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_clean_up_like_ctrl_c(synthetic_onnx: Path, tmp_path: Path, signum: int) -> None:
    src = need(VIDEOS / "juggle_720p.mp4")
    out = tmp_path / "juggle.matte.mov"
    cmd = [
        sys.executable,
        "-m",
        "trt_modnet.process",
        str(src),
        "-o",
        str(out),
        "--model",
        str(synthetic_onnx),
    ]
    child = subprocess.Popen(
        [*cmd, *FAST, "--batch", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".*.part")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    child.send_signal(signum)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 128 + signum, stderr
    assert list(tmp_path.iterdir()) == [] and "Traceback" not in stderr


def test_stale_partial_outputs_of_dead_runs_are_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale_file = tmp_path / f".clip.matte.mov.{dead.pid}-0123abcd.part"
    stale_folder = tmp_path / f".clip.matte.{dead.pid}-89abcdef.part"
    live = tmp_path / f".other.matte.mov.{os.getppid()}-0123abcd.part"  # a running process's
    stale_file.write_bytes(b"x")
    stale_folder.mkdir()
    (stale_folder / "000000.png").write_bytes(b"x")
    live.write_bytes(b"x")
    (tmp_path / ".notes.part").write_bytes(b"not our naming")
    with caplog.at_level(logging.INFO, logger="trt_modnet"):
        remove_stale({tmp_path})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, ".notes.part"])
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path}: removed 2 partial output(s) left by an interrupted run"
    ]


# -- 5. a full disk -------------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a 1 MB tmpfs for a full disk (needs root): {mounted.stderr.decode().strip()}"
        )
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


def test_a_full_disk_is_one_line_naming_the_output(cli: Cli, synthetic_onnx: Path, tiny_disk: Path) -> None:
    out = tiny_disk / "juggle.matte.mov"
    src = need(VIDEOS / "juggle_720p.mp4")
    proc = cli(src, "-o", out, "--model", synthetic_onnx, "--duration", "1", *FAST)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {out}:") and "No space left" in errors[0]
    assert list(tiny_disk.iterdir()) == []


# -- 6. every output checked before the first frame --------------------------------------------------------


@pytest.mark.parametrize("preview", ["sheet.mp4", "missing/sheet.png", "."])
def test_a_bad_preview_fails_before_any_work(tmp_path: Path, preview: str) -> None:
    src = photo(tmp_path)
    with pytest.raises(MattingError, match=r"preview|does not exist|folder"):
        plans_for(src, "--preview", tmp_path / preview)


# -- 7. the batch is bounded ----------------------------------------------------------------------------


def test_batch_is_bounded_by_the_clip_and_by_memory(caplog: pytest.LogCaptureFixture) -> None:
    assert bounded_batch(1000, 3, 720, 1280, Path("clip.mp4")) == 3
    with caplog.at_level(logging.WARNING, logger="trt_modnet"):
        batch = bounded_batch(10**6, None, 6000, 8000, Path("big.png"))
    assert 1 <= batch < 10**6
    assert "big.png: --batch 1000000 does not fit in memory at 8000x6000; using " in caplog.text


def test_a_large_still_says_what_it_costs_before_it_starts(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Measured: an 8000x6000 still peaks at 4.2 GB with rgba on ONNX Runtime, 2.6 GB with alpha only."""
    big = Path("big.png")
    with caplog.at_level(logging.INFO, logger="trt_modnet"):
        warn_if_large_frame(big, 720, 1280, ("rgba", "alpha"))
        assert caplog.records == []  # video sizes say nothing
        warn_if_large_frame(big, 6000, 8000, ("rgba", "alpha"))
        monkeypatch.setattr(resources, "_available_memory", lambda: 2 * 10**9)
        warn_if_large_frame(big, 6000, 8000, ("alpha",))
    info, warning = caplog.records
    assert info.levelno == logging.INFO and info.getMessage() == (
        "big.png: a 8000x6000 frame takes about 4.2 GB of memory on the CPU backends"
    )
    assert warning.levelno == logging.WARNING and warning.getMessage().startswith(
        "big.png: a 8000x6000 frame needs about 2.6 GB of memory on the CPU backends, 2.0 GB is available"
    )


# -- 8. a trailing separator names a folder ---------------------------------------------------------------


def test_o_with_a_trailing_separator_is_a_folder_of_outputs(tmp_path: Path) -> None:
    src = photo(tmp_path)
    (plan,) = plans_for(src, "-o", f"{tmp_path / 'new'}{os.sep}")
    assert sorted(s.path for s in plan.outputs) == [
        tmp_path / "new" / "photo.alpha.png",
        tmp_path / "new" / "photo.matte.png",
    ]


# -- 9. and 10. refusals name the file and the option -----------------------------------------------------


def test_frames_too_small_name_the_file(synthetic_onnx: Path, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.zeros((2, 2, 3), np.uint8))
    proc = run_module("trt_modnet.process", str(tiny), "--model", str(synthetic_onnx), *FAST)
    assert proc.returncode == 2
    assert f"error: {tiny}: frames of 2x2 are too small" in proc.stderr


def test_a_model_folder_is_named_a_folder(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "models.onnx"
    folder.mkdir()
    proc = cli(photo(tmp_path), "--model", folder, *FAST)
    assert proc.returncode == 2
    assert (
        proc.stderr == f"error: {folder}: is a folder; --model takes a .onnx or .ckpt file, a name or a URL\n"
    )


def test_a_missing_model_says_how_to_get_one(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "missing.onnx"
    proc = cli(photo(tmp_path), "--model", missing, *FAST)
    err = proc.stderr
    assert (
        proc.returncode == 2
        and err.startswith(f"error: {missing}: no such model file; ")
        and err.count("\n") == 1
    )
    assert "python -m trt_modnet.models lists" in err
    assert "python -m trt_modnet.export CKPT -o model.onnx" in err


def test_an_output_under_a_file_names_that_file(cli: Cli, synthetic_onnx: Path, tmp_path: Path) -> None:
    src, afile = photo(tmp_path), tmp_path / "afile"
    afile.write_text("notes")
    for out in (afile / "x.mov", afile / "sub" / "x.mov"):
        proc = cli(src, "-o", out, "--model", synthetic_onnx, *FAST)
        assert proc.returncode == 2 and proc.stderr == f"error: {out}: {afile} is a file, not a folder\n"
    assert afile.read_text() == "notes" and sorted(p.name for p in tmp_path.iterdir()) == [
        "afile",
        "photo.png",
    ]


@pytest.mark.parametrize("text", ["", "FOLDER"])
def test_a_bad_background_says_it_is_the_background(tmp_path: Path, text: str) -> None:
    with pytest.raises(MattingError, match="--background"):
        open_background(str(tmp_path) if text == "FOLDER" else text)


@pytest.mark.parametrize(
    "args",
    [
        ["--mode", "rgba,rgba"],
        ["-o", "x.webm", "--format", "mov"],
        ["-o", "x.mov", "--audio-out", "a.wav"],
    ],
)
def test_contradictory_options_are_refused(tmp_path: Path, args: list[str]) -> None:
    clip = tmp_path / "clip.mp4"
    shutil.copy(need(VIDEOS / "carphone_qcif.mp4"), clip)
    args = [str(tmp_path / a) if a.startswith(("x.", "a.")) else a for a in args]
    with pytest.raises(MattingError):
        plans_for(clip, *args)


def test_ref_size_has_one_minimum(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        parse_args(["clip.mp4", "--ref-size", "16"])
    assert exit.value.code == 2 and "must be at least 32" in capsys.readouterr().err
    assert parse_args(["clip.mp4", "--ref-size", "32"]).ref_size == 32


# -- 11. the summary keeps the reason whole -----------------------------------------------------------------


def test_summary_keeps_long_reasons_readable(tmp_path: Path) -> None:
    why = "frame 12: decoding failed: Invalid data found when processing input, the file is truncated"
    bad = tmp_path / "in" / "b" / "clip.mp4"
    results = [
        FileResult(tmp_path / "in/a/clip.mp4", 3, 2.0, tmp_path / "out/a/clip.matte.mov", "ok"),
        FileResult(bad, 0, 0.0, tmp_path / "out/b/clip.matte.mov", f"failed: {bad}: {why}"),
    ]
    text = io.StringIO()
    print_summary(results, text)
    lines = text.getvalue().splitlines()
    assert lines[-2] == f"outputs in {tmp_path / 'out'}"
    assert lines[2].split()[:5] == ["a/clip.mp4", "3", "2.00", "a/clip.matte.mov", "ok"]
    assert lines[3].split()[:5] == ["b/clip.mp4", "0", "0.00", "b/clip.matte.mov", "failed:"]
    assert f"failed: {why}" in " ".join(" ".join(lines[3:-2]).split())  # the whole reason, wrapped
    assert all(len(line) <= 110 for line in lines)
