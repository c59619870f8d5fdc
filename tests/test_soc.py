"""SOC: adaptation on real footage changes the weights, keeps the norm statistics, and exports."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

from tests.conftest import CHECKPOINT, IMAGES, VIDEOS, Cli, need  # noqa: E402
from trt_modnet.cli import run_main  # noqa: E402
from trt_modnet.graph.official import RawModnet, official_matte  # noqa: E402
from trt_modnet.modnet.checkpoint import load_checkpoint  # noqa: E402
from trt_modnet.modnet.data import network_input, sample_frames, video_frames  # noqa: E402
from trt_modnet.modnet.soc import SocSettings, adapt  # noqa: E402
from trt_modnet.training.adapt import main as adapt_main  # noqa: E402
from trt_modnet.training.export import main as export_main  # noqa: E402
from trt_modnet.video import open_reader  # noqa: E402

CARPHONE = VIDEOS / "carphone_qcif.mp4"
JUGGLE = VIDEOS / "juggle_720p.mp4"
NORM_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def test_soc_changes_weights_but_not_norm_statistics() -> None:
    model = load_checkpoint(need(CHECKPOINT))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    frames = [network_input(rgb, 64) for rgb in video_frames(need(JUGGLE), 3)]
    assert frames[0].shape == (1, 3, 64, 96)
    log: list[tuple[int, int, float, float]] = []
    adapt(model, frames, SocSettings(epochs=2), progress=lambda e, s, ls: log.append((e, s, *map(float, ls))))

    after = model.state_dict()
    assert all(torch.isfinite(v.float()).all() for v in after.values())
    stats = [k for k in before if k.endswith(NORM_STATISTICS)]
    assert stats and all(torch.equal(before[k], after[k]) for k in stats)
    changed = [k for k in before if k.endswith(("weight", "bias")) and not torch.equal(before[k], after[k])]
    assert len(changed) > 100
    assert [(e, s) for e, s, *_ in log] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert all(np.isfinite(x) for *_, sem, det in log for x in (sem, det))
    # The backup is taken at the start of every epoch: the first step of each matches it exactly.
    first_steps = [det for e, s, _, det in log if s == 0]
    later_steps = [det for e, s, _, det in log if s > 0]
    assert max(first_steps) < 1e-6 < min(later_steps)


def test_frames_are_sampled_at_evenly_spaced_times() -> None:
    path = need(CARPHONE)
    with open_reader(path) as reader:
        decoded = [(frame.pts, frame.image) for frame in reader]
        time_base, duration = reader.info.time_base, reader.info.duration
    origin = decoded[0][0]
    sampled = video_frames(path, 4)
    assert len(sampled) == 4
    for k, image in enumerate(sampled):
        at = duration * (k + 0.5) / 4
        expected = next(img for pts, img in decoded if (pts - origin) * time_base >= at)
        assert np.array_equal(image, expected), k


def test_images_form_one_pool_beside_the_videos() -> None:
    images = sorted(need(IMAGES / "davis_lucia" / "frames").glob("*.jpg"))[:3]
    frames = sample_frames([need(CARPHONE), *images], 4)
    assert [f.shape for f in frames] == [(144, 176, 3)] * 2 + [(480, 854, 3)] * 2
    # Two of the three images, evenly spread: the first and the last.
    for frame, image in zip(frames[2:], (images[0], images[2]), strict=True):
        assert np.array_equal(frame, cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB))


def test_adapt_cli_writes_a_checkpoint_that_exports_and_runs(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "adapted.ckpt"
    args = [need(CARPHONE), "--ckpt", need(CHECKPOINT), "-o", out, "--ref-size", "128"]
    proc = cli(*args, "--frames", "2", "--epochs", "1", main=adapt_main)
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1/1: mean losses semantic" in proc.stdout
    adapted, original = load_checkpoint(out).state_dict(), load_checkpoint(CHECKPOINT).state_dict()
    assert any(not torch.equal(adapted[k], original[k]) for k in original)

    onnx_path = tmp_path / "adapted.onnx"
    assert run_main(export_main, [str(out), "-o", str(onnx_path)]) == 0
    rgb = video_frames(CARPHONE, 1)[0]
    matte = official_matte(RawModnet(onnx_path), rgb, 128)
    assert matte.shape == rgb.shape[:2] and matte.dtype == np.uint8
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize("case", ["overwrite_input", "missing_video", "too_few_frames"])
def test_adapt_cli_bad_input(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "in.ckpt"
    shutil.copyfile(need(CHECKPOINT), ckpt)
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    video, out, frames = str(need(CARPHONE)), tmp_path / "out.ckpt", "2"
    if case == "overwrite_input":
        out = ckpt
    elif case == "missing_video":
        video = str(tmp_path / "absent.mp4")
    else:
        frames = "1"
    argv = [video, str(JUGGLE), "--ckpt", str(ckpt), "-o", str(out), "--frames", frames, "--ref-size", "64"]
    assert run_main(adapt_main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
    named = {"overwrite_input": str(ckpt), "missing_video": video, "too_few_frames": "2 sources"}[case]
    assert named in err[0]
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == digest
    assert case == "overwrite_input" or not out.exists()
