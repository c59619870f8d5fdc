"""e-ASPP: a MODNet with the paper's low-resolution module builds, trains, saves, exports, deploys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

from tests.conftest import CHECKPOINT, VIDEOS, need  # noqa: E402
from trt_modnet.graph.deploy import DeploySpec, build  # noqa: E402
from trt_modnet.graph.official import RawModnet, official_matte  # noqa: E402
from trt_modnet.modnet.checkpoint import load_checkpoint, read_state_dict, save_checkpoint  # noqa: E402
from trt_modnet.modnet.data import (  # noqa: E402
    normalise,
    synthetic_pair,
    video_frames,
)
from trt_modnet.modnet.model import MODNet  # noqa: E402
from trt_modnet.modnet.train import TrainSettings, make_optimizer, supervised_step  # noqa: E402
from trt_modnet.runtime.onnxrt import OnnxRuntimeRunner  # noqa: E402
from trt_modnet.training.export import main as export_main  # noqa: E402


@pytest.fixture(scope="module")
def trained_easpp() -> MODNet:
    """An e-ASPP MODNet after two training steps, so that its batch norms hold real statistics."""
    torch.manual_seed(0)
    model = MODNet(lr_module="easpp")
    rng = np.random.default_rng(0)
    pairs = [synthetic_pair(rng, 64, 96) for _ in range(2)]
    images = torch.stack([normalise(rgb) for rgb, _ in pairs])
    mattes = torch.stack([torch.from_numpy(m).float()[None] / 255 for _, m in pairs])
    optimizer, _ = make_optimizer(model, TrainSettings(lr_module="easpp"))
    before = {k: v.clone() for k, v in model.lr_branch.easpp.state_dict().items()}
    for _ in range(2):
        losses = supervised_step(model, optimizer, images, mattes)
        assert all(torch.isfinite(loss) for loss in losses)
    after = model.lr_branch.easpp.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before if k.endswith("weight"))
    return model.eval()


def test_easpp_replaces_only_the_se_block() -> None:
    se = {k: v.shape for k, v in MODNet().state_dict().items()}
    easpp = {k: v.shape for k, v in MODNet(lr_module="easpp").state_dict().items()}
    assert {k for k in se if "se_block" in k} == set(se) - set(easpp)
    assert all(k.startswith("lr_branch.easpp.") for k in set(easpp) - set(se))
    assert all(se[k] == easpp[k] for k in se if k in easpp)
    # A quarter of the 1280 channels, depth-wise at each rate, one point-wise fusion back to 1280.
    assert easpp["lr_branch.easpp.reduce.0.weight"] == (320, 1280, 1, 1)
    assert easpp["lr_branch.easpp.atrous.0.0.weight"] == (320, 1, 3, 3)
    fuse = easpp["lr_branch.easpp.fuse.0.weight"]
    assert fuse[0] == 1280 and fuse[1] % 320 == 0 and fuse[1] > 320


def test_easpp_model_trains_and_predicts_every_head(trained_easpp: MODNet) -> None:
    x = torch.zeros(1, 3, 64, 96).uniform_(-1, 1)
    with torch.no_grad():
        semantic, detail, matte = trained_easpp(x, inference=False)
    assert semantic.shape == (1, 1, 4, 6) and detail.shape == matte.shape == (1, 1, 64, 96)


@pytest.fixture(scope="module")
def easpp_files(trained_easpp: MODNet, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Its checkpoint, and the ONNX that `python -m trt_modnet.export` makes of that checkpoint."""
    folder = tmp_path_factory.mktemp("easpp")
    ckpt, onnx_path = folder / "easpp.ckpt", folder / "easpp.onnx"
    save_checkpoint(trained_easpp, ckpt)
    assert export_main([str(ckpt), "-o", str(onnx_path)]) == 0
    return ckpt, onnx_path


def test_easpp_checkpoint_round_trips_and_exports(
    trained_easpp: MODNet, easpp_files: tuple[Path, Path]
) -> None:
    ckpt, onnx_path = easpp_files
    loaded = load_checkpoint(ckpt)
    assert loaded.lr_branch.lr_module == "easpp"
    ours = trained_easpp.state_dict()
    assert all(torch.equal(v, ours[k]) for k, v in loaded.state_dict().items())

    runner = RawModnet(onnx_path)
    for shape, batch in (((64, 96), 2), ((160, 288), 1)):
        x = torch.zeros(batch, 3, *shape).uniform_(-1, 1)
        with torch.no_grad():
            ref = trained_easpp(x, inference=True)[2].numpy()
        got = runner(x.numpy())
        assert got.shape == (batch, 1, *shape)
        assert np.abs(got - ref).max() < 1e-4


def test_easpp_model_runs_in_the_deployment_graph(easpp_files: tuple[Path, Path]) -> None:
    _, onnx_path = easpp_files
    frames = video_frames(need(VIDEOS / "carphone_qcif.mp4"), 2)
    deploy = build(onnx.load(str(onnx_path)), DeploySpec(outputs=("alpha",), ref_size=128))
    with OnnxRuntimeRunner(deploy) as runner:
        runner.prepare(*frames[0].shape[:2], 2)
        alpha = runner.result(runner.submit({"frames": np.stack(frames)}))["alpha"]
    assert alpha.shape == (2, 144, 176) and alpha.dtype == np.uint8
    raw = RawModnet(onnx_path)
    for got, rgb in zip(alpha, frames, strict=True):
        # The official procedure truncates where the graph rounds: within one step or two.
        diff = np.abs(got.astype(int) - official_matte(raw, rgb, 128))
        assert diff.mean() < 0.5 and diff.max() <= 2


def test_released_checkpoints_still_load_with_the_se_block() -> None:
    assert load_checkpoint(need(CHECKPOINT)).lr_branch.lr_module == "se"
    assert not any("easpp" in k for k in read_state_dict(CHECKPOINT))


def test_unknown_low_resolution_module_is_refused() -> None:
    with pytest.raises(ValueError, match="lr_module"):
        MODNet(lr_module="aspp")
