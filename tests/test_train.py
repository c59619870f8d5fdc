"""Supervised training: the losses follow the trimap, a handful of pairs is overfitted, the CLI resumes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

from tests.conftest import KEYS_FILE, Cli, need  # noqa: E402
from trt_modnet.cli import run_main  # noqa: E402
from trt_modnet.modnet.checkpoint import load_checkpoint  # noqa: E402
from trt_modnet.modnet.data import normalise, synthetic_pair  # noqa: E402
from trt_modnet.modnet.losses import semantic_target, supervised_losses, trimap_from_matte  # noqa: E402
from trt_modnet.modnet.model import MODNet  # noqa: E402
from trt_modnet.modnet.train import TrainSettings, derived_trimap, make_optimizer, supervised_step  # noqa: E402
from trt_modnet.training.train import main as train_main  # noqa: E402


def synthetic_batch(count: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    pairs = [synthetic_pair(rng, size, size) for _ in range(count)]
    images = torch.stack([normalise(rgb) for rgb, _ in pairs])
    mattes = torch.stack([torch.from_numpy(m).float()[None] / 255 for _, m in pairs])
    return images, mattes


def mean_abs_error(model: MODNet, images: torch.Tensor, mattes: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(images, inference=True)[2] - mattes).abs().mean())


def test_training_overfits_a_handful_of_synthetic_pairs() -> None:
    torch.manual_seed(0)
    model = MODNet()
    images, mattes = synthetic_batch(4, 64, seed=0)
    before = mean_abs_error(model, images, mattes)
    optimizer, _ = make_optimizer(model, TrainSettings())  # the official SGD, lr 0.01, momentum 0.9
    totals = [float(supervised_step(model, optimizer, images, mattes).total) for _ in range(40)]
    after = mean_abs_error(model, images, mattes)
    assert np.isfinite(totals).all()
    assert np.mean(totals[-5:]) < 0.3 * np.mean(totals[:5])
    assert after < 0.25 * before, (before, after)


def test_derived_trimap_marks_a_band_around_the_edge() -> None:
    matte = torch.zeros(1, 1, 16, 64)
    matte[..., :32] = 1.0
    trimap = trimap_from_matte(matte, band=3)
    row = trimap[0, 0, 5]
    # Within 3 columns of the edge (columns 29..34) is unknown; the rest keeps the matte's value.
    assert torch.equal(row[:29], torch.ones(29))
    assert torch.equal(row[29:35], torch.full((6,), 0.5))
    assert torch.equal(row[35:], torch.zeros(29))


def test_derived_trimap_covers_every_soft_pixel() -> None:
    _, matte_u8 = synthetic_pair(np.random.default_rng(3), 128, 128)
    matte = torch.from_numpy(matte_u8).float()[None, None] / 255
    trimap = derived_trimap(matte)
    assert set(trimap.unique().tolist()) == {0.0, 0.5, 1.0}
    soft = (matte > 0) & (matte < 1)
    assert soft.any() and (trimap[soft] == 0.5).all()
    assert (matte[trimap == 1] == 1).all() and (matte[trimap == 0] == 0).all()


def test_detail_loss_looks_only_at_the_unknown_band() -> None:
    images, mattes = synthetic_batch(1, 64, seed=1)
    trimap = derived_trimap(mattes)
    semantic = semantic_target(mattes)
    detail = torch.full_like(mattes, 0.3)
    band = trimap == 0.5

    def losses(d: torch.Tensor) -> tuple[float, float]:
        out = supervised_losses((semantic, d, mattes.clone()), images, trimap, mattes)
        return float(out.detail), float(out.matte)

    base = losses(detail)
    assert base[1] == 0  # a perfect matte costs nothing
    assert losses(torch.where(band, detail, torch.rand_like(detail)))[0] == pytest.approx(base[0], abs=1e-7)
    assert losses(torch.where(band, torch.rand_like(detail), detail))[0] != pytest.approx(base[0], abs=1e-4)


def test_semantic_target_keeps_a_flat_matte_flat() -> None:
    target = semantic_target(torch.full((1, 1, 64, 96), 0.7))
    assert target.shape == (1, 1, 4, 6)
    assert torch.allclose(target, torch.full_like(target, 0.7), atol=1e-6)


def write_pairs(folder: Path, count: int, size: int) -> tuple[Path, Path]:
    images, mattes = folder / "images", folder / "mattes"
    images.mkdir()
    mattes.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        # Not square and not the training size: the dataset scales and crops.
        rgb, matte = synthetic_pair(rng, size + 16, size + 40)
        cv2.imwrite(str(images / f"p{i}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(mattes / f"p{i}.png"), matte)
    return images, mattes


def official_key_names() -> set[str]:
    return {
        line.split()[0] for line in need(KEYS_FILE).read_text().splitlines() if line.startswith("module.")
    }


def test_train_cli_writes_official_checkpoints_and_resumes(cli: Cli, tmp_path: Path) -> None:
    images, mattes = write_pairs(tmp_path, 4, 64)
    run = tmp_path / "run"
    args = [str(images), str(mattes), "-o", str(run), "--size", "64", "--batch", "4", "--save-every", "1"]
    proc = cli(*args, "--epochs", "1", main=train_main)
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1/1: mean losses semantic" in proc.stdout
    raw = torch.load(run / "modnet.ckpt", map_location="cpu", weights_only=True)
    assert set(raw) - {k for k in raw if k.endswith("num_batches_tracked")} <= official_key_names()
    assert all(k.startswith("module.") for k in raw) and len(raw) > 700
    first = load_checkpoint(run / "epoch_001.ckpt").state_dict()

    assert run_main(train_main, [*args, "--epochs", "2", "--resume"]) == 0
    resumed = torch.load(run / "resume.pt", map_location="cpu", weights_only=True)
    assert resumed["epoch"] == 2 and resumed["optimizer"]["state"]
    second = load_checkpoint(run / "modnet.ckpt").state_dict()
    assert any(not torch.equal(first[k], second[k]) for k in first)
    assert sorted(p.name for p in run.iterdir()) == [
        "epoch_001.ckpt",
        "epoch_002.ckpt",
        "modnet.ckpt",
        "resume.pt",
    ]


@pytest.mark.parametrize("case", ["unpaired", "existing_run", "nothing_to_resume"])
def test_train_cli_bad_input(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    images, mattes = write_pairs(tmp_path, 2, 64)
    run = tmp_path / "run"
    resume = []
    if case == "unpaired":
        (mattes / "p1.png").unlink()
    elif case == "existing_run":
        run.mkdir()
        (run / "resume.pt").write_bytes(b"an earlier run")
    else:
        resume = ["--resume"]
    argv = [str(images), str(mattes), "-o", str(run), "--size", "64", "--epochs", "1", *resume]
    assert run_main(train_main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
    named = {"unpaired": images, "existing_run": run, "nothing_to_resume": run / "resume.pt"}[case]
    assert str(named) in err[0]
    if case == "unpaired":
        assert "p1" in err[0]
    assert not (run / "modnet.ckpt").exists()
