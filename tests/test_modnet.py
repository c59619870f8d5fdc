"""MODNet in PyTorch: official checkpoints load, the export matches PyTorch, bad input is refused."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.conftest import CHECKPOINT, KEYS_FILE, Cli, need  # noqa: E402
from trt_modnet.cli import setup_logging  # noqa: E402
from trt_modnet.errors import MattingError  # noqa: E402
from trt_modnet.graph.modelfile import load_modnet  # noqa: E402
from trt_modnet.graph.official import RawModnet  # noqa: E402
from trt_modnet.modnet.checkpoint import load_checkpoint  # noqa: E402
from trt_modnet.modnet.export import random_model  # noqa: E402
from trt_modnet.modnet.model import MODNet  # noqa: E402
from trt_modnet.training import export  # noqa: E402


def official_keys() -> dict[str, tuple[int, ...]]:
    keys = {}
    for line in need(KEYS_FILE).read_text().splitlines():
        m = re.match(r"module\.(\S+) \((.*)\) torch", line)
        if m:
            keys[m.group(1)] = tuple(int(x) for x in m.group(2).split(",") if x.strip())
    return keys


def test_state_dict_matches_the_official_key_list() -> None:
    ours = {k: tuple(v.shape) for k, v in MODNet().state_dict().items()}
    assert ours == official_keys()


def test_stand_in_checkpoint_loads_with_its_weights() -> None:
    model = load_checkpoint(need(CHECKPOINT))
    raw = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)
    ours = model.state_dict()
    for key, value in raw.items():
        assert torch.equal(ours[key.removeprefix("module.")], value), key


@pytest.mark.parametrize("variant", ["plain", "wrapped", "no_batches_tracked", "one_backbone_copy"])
def test_checkpoint_variants_load_the_same_weights(tmp_path: Path, variant: str) -> None:
    raw = torch.load(need(CHECKPOINT), map_location="cpu", weights_only=True)
    plain = {k.removeprefix("module."): v for k, v in raw.items()}
    state: object = {
        "plain": plain,
        "wrapped": {"state_dict": raw, "epoch": 3},
        "no_batches_tracked": {k: v for k, v in raw.items() if "num_batches_tracked" not in k},
        "one_backbone_copy": {k: v for k, v in plain.items() if not k.startswith("lr_branch.backbone.")},
    }[variant]
    path = tmp_path / "variant.ckpt"
    torch.save(state, path)
    ref = load_checkpoint(CHECKPOINT).state_dict()
    got = load_checkpoint(path).state_dict()
    for key in ref:
        if "num_batches_tracked" not in key:
            assert torch.equal(ref[key], got[key]), key


def test_other_network_is_refused_naming_the_keys(tmp_path: Path) -> None:
    raw = torch.load(need(CHECKPOINT), map_location="cpu", weights_only=True)
    raw["module.extra.weight"] = torch.zeros(2)
    del raw["module.f_branch.conv_f.1.layers.0.bias"]
    path = tmp_path / "other.ckpt"
    torch.save(raw, path)
    with pytest.raises(MattingError, match=r"f_branch\.conv_f\.1\.layers\.0\.bias.*extra\.weight") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


# MODNet sees the inference size in the deployment graph, ref_size on the short side: 1080p at the default
# 512 is 512x896, the largest case here; the others only vary the aspect and the batch, and cost less small.
@pytest.mark.parametrize(("shape", "batch"), [((256, 256), 1), ((160, 288), 2), ((512, 896), 1)])
def test_export_matches_pytorch(random_onnx: Path, shape: tuple[int, int], batch: int) -> None:
    model = random_model(7)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (batch, 3, *shape)).astype(np.float32))
    with torch.no_grad():
        ref = model(x, inference=True)[2].numpy()
    got = RawModnet(random_onnx)(x.numpy())
    assert got.shape == (batch, 1, *shape)
    assert np.abs(got - ref).max() < 1e-4


def test_exported_graph_has_the_official_signature(synthetic_onnx: Path) -> None:
    import onnx

    model = onnx.load(str(synthetic_onnx))
    assert model.opset_import[0].version >= 17
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert inp.name == "input" and out.name == "output"
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) for d in (dims[0], dims[2], dims[3]))


def test_size_not_multiple_of_32_is_a_clear_error(synthetic_onnx: Path) -> None:
    with pytest.raises(MattingError, match="multiples of 32"):
        RawModnet(synthetic_onnx)(np.zeros((1, 3, 500, 512), np.float32))


def test_random_weights_are_marked_and_warned_about(
    random_onnx: Path, fresh_cli_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging()
    load_modnet(random_onnx)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "RANDOM weights" in lines[0] and lines[0].startswith("warning:")


def test_export_cli_writes_a_model(synthetic_onnx: Path) -> None:
    """The `synthetic_onnx` fixture is `python -m trt_modnet.export CKPT -o FILE`: one file, no temp files."""
    assert synthetic_onnx.is_file()
    assert [p.name for p in synthetic_onnx.parent.iterdir()] == [synthetic_onnx.name]


@pytest.mark.parametrize("case", ["missing", "not_a_checkpoint", "missing_folder"])
def test_export_cli_bad_input(cli: Cli, tmp_path: Path, case: str) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint at all")
    ckpt, out = {
        "missing": (tmp_path / "absent.ckpt", tmp_path / "m.onnx"),
        "not_a_checkpoint": (junk, tmp_path / "m.onnx"),
        "missing_folder": (need(CHECKPOINT), tmp_path / "no" / "m.onnx"),
    }[case]
    proc = cli(ckpt, "-o", out, main=export.main)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert str(ckpt if case != "missing_folder" else out) in lines[0]
    assert not out.exists()
