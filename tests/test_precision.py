"""Precision recipes, the drift gate for defaults, and the backend/precision choice on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.conftest import VIDEOS, need
from trt_modnet.cli import run_main
from trt_modnet.errors import MattingError
from trt_modnet.graph import gate, precision
from trt_modnet.graph.deploy import NETWORK_INPUT, NETWORK_MATTE, DeploySpec, build
from trt_modnet.process import main as process_main
from trt_modnet.runtime import select
from trt_modnet.runtime.openvino import supports_bf16


@pytest.fixture
def no_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(select, "missing_for_tensorrt", lambda: ["TensorRT is not installed"])


def test_auto_leaves_the_recipe_to_the_gate_only_where_the_cpu_has_bf16(
    no_tensorrt: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(select, "openvino_unavailable_reason", lambda: None)
    monkeypatch.setattr(select, "supports_bf16", lambda: True)
    choice = select.choose("auto")
    assert (choice.backend, choice.precision) == ("openvino", "auto")
    assert "no TensorRT" in choice.reason and "the CPU has bf16" in choice.reason
    for forced in ("bf16", "bf16-all", "bf16-head", "fp32"):
        assert select.choose("openvino", forced).precision == forced
    monkeypatch.setattr(select, "supports_bf16", lambda: False)
    assert select.choose("auto").precision == "fp32"
    assert "no native bf16" in select.choose("auto").reason
    monkeypatch.setattr(select, "openvino_unavailable_reason", lambda: "OpenVINO is not installed")
    assert (select.choose("auto").backend, select.choose("auto").precision) == ("onnxruntime", "fp32")


@pytest.mark.parametrize(
    ("backend", "wanted", "message"),
    [
        ("onnxruntime", "fp16", "fp16 is TensorRT's"),
        ("openvino", "fp16", "fp16 is TensorRT's"),
        ("onnxruntime", "bf16", "use --backend openvino"),
    ],
)
def test_a_precision_the_backend_cannot_run_is_one_clear_error(
    no_tensorrt: None, backend: str, wanted: str, message: str
) -> None:
    with pytest.raises(MattingError, match=message):
        select.choose(backend, wanted)


def test_bf16_on_a_cpu_without_it_says_what_to_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(select, "supports_bf16", lambda: False)
    with pytest.raises(MattingError, match=r"no native bf16 .* use --precision fp32"):
        select.choose("openvino", "bf16")


def test_the_main_job_refuses_with_exit_2_and_one_line(
    no_tensorrt: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    video = str(need(VIDEOS / "carphone_qcif.mp4"))
    model = str(tmp_path / "unused.onnx")  # the choice fails before any model is read
    cases = [
        (["--backend", "onnxruntime", "--precision", "fp16"], "fp16 is TensorRT's"),
        (["--precision", "fp16"], "TensorRT"),
    ]
    monkeypatch.setattr(select, "openvino_unavailable_reason", lambda: "OpenVINO is not installed")
    cases.append((["--backend", "openvino"], "--backend openvino is unavailable: OpenVINO is not installed"))
    for args, message in cases:
        code = run_main(process_main, [video, "--model", model, "-o", str(tmp_path / "o"), *args])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, (args, err)
        assert len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_the_bf16_recipe_keeps_pixels_backbone_and_the_detail_entry_in_fp32(synthetic_onnx: Path) -> None:
    deploy = build(onnx.load(str(synthetic_onnx)), DeploySpec(outputs=("rgba",)))
    parts = precision.stages(deploy, "bf16")
    # Three stages whatever the node order: every boundary costs a copy and a layout change.
    assert [s.precision for s in parts] == ["f32", "bf16", "f32"]
    ops = [{n.op_type for n in s.model.graph.node} for s in parts]
    pixel_ops = {"Gather", "ReduceSum", "Floor", "Clip", "Cast"}
    assert not ops[1] & pixel_ops
    assert parts[0].inputs[0] == "frames" and parts[-1].outputs == ("rgba",)
    assert NETWORK_INPUT in parts[0].outputs and parts[1].outputs == (NETWORK_MATTE,)
    names = [[n.name for n in s.model.graph.node if n.name.startswith("modnet/")] for s in parts]
    assert any("backbone" in n for n in names[0]) and any("conv_enc2x" in n for n in names[0])
    assert all("backbone" in n or "hr_branch" in n for n in names[0])
    assert not any(m in n for n in names[0] for m in ("conv_hr4x", "conv_hr2x", "f_branch"))
    assert "GlobalAveragePool" in ops[1] and not any("backbone" in n for n in names[1])
    for module in ("lr_branch", "conv_enc4x", "conv_hr4x", "conv_hr2x", "f_branch"):
        assert any(module in n for n in names[1]), module
    assert not names[2]  # the last stage is pixel work only
    # Every stage's inputs are graph inputs or outputs of an earlier stage.
    known = {i.name for i in deploy.graph.input}
    for s in parts:
        assert set(s.inputs) <= known, set(s.inputs) - known
        known |= set(s.outputs)


@pytest.mark.skipif(not supports_bf16(), reason="this CPU has no native bf16 (AVX512_BF16 or AMX)")
def test_the_bf16_recipe_stays_close_to_fp32_on_a_real_frame(synthetic_onnx: Path) -> None:
    import av

    from trt_modnet.runtime.openvino import OpenVinoRunner, OpenVinoSettings

    deploy = build(onnx.load(str(synthetic_onnx)), DeploySpec(outputs=("alpha",), ref_size=256))
    with av.open(str(need(VIDEOS / "chaplin_360p.mp4"))) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")[None]
    mattes = {}
    for name in ("fp32", "bf16"):
        with OpenVinoRunner(deploy, OpenVinoSettings(name)) as runner:
            runner.prepare(*frame.shape[1:3], 1)
            mattes[name] = runner.result(runner.submit({"frames": frame}))["alpha"].astype(int)
    delta = np.abs(mattes["bf16"] - mattes["fp32"])
    # The whole graph in bf16 drifts 0.85/255 on average here; the recipe stays under the default bound.
    assert 0 < delta.mean() <= precision.MAX_DEFAULT_MEAN, delta.mean()


def test_the_torch_free_conversion_gets_the_same_recipe() -> None:
    from tests.conftest import CHECKPOINT
    from trt_modnet.models.convert import checkpoint_to_model

    deploy = build(checkpoint_to_model(need(CHECKPOINT)), DeploySpec(outputs=("alpha",)))
    parts = precision.stages(deploy, "bf16")
    assert [s.precision for s in parts] == ["f32", "bf16", "f32"]
    assert any("conv_enc2x" in o for n in parts[0].model.graph.node for o in n.output)


def test_auto_falls_back_to_fp32_for_a_model_it_cannot_cut(
    synthetic_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from trt_modnet.runtime.openvino import OpenVinoRunner

    model = onnx.load(str(synthetic_onnx))
    # An export without module scopes, as old PyTorch versions wrote.
    renamed = {o: o.replace("conv_enc2x", "b") for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        node.name = ""
        for names in (node.input, node.output):
            for i, name in enumerate(names):
                names[i] = renamed.get(name, name)
    unscoped = tmp_path / "unscoped.onnx"
    onnx.save(model, str(unscoped))
    deploy = build(model, DeploySpec(outputs=("alpha",)))
    assert "module-scoped node names" in (precision.unavailable_reason(deploy, "bf16") or "")
    assert precision.unavailable_reason(deploy, "bf16-all") is None  # needs no module names
    monkeypatch.setattr(select, "missing_for_tensorrt", lambda: ["TensorRT is not installed"])
    monkeypatch.setattr(select, "supports_bf16", lambda: True)
    monkeypatch.setenv("TRT_MODNET_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(gate, "candidates", lambda: ["bf16-head", "bf16"])
    with caplog.at_level(logging.INFO, logger="trt_modnet"):
        runner = select.open_runner("auto", unscoped, DeploySpec(outputs=("alpha",), ref_size=64))
    with runner:
        assert isinstance(runner, OpenVinoRunner) and runner.settings.precision == "fp32"
    assert "precision gate: fp32" in caplog.text and "none tried" in caplog.text
    with pytest.raises(MattingError, match="module-scoped node names"):
        select.open_runner("openvino", unscoped, DeploySpec(outputs=("alpha",)), precision="bf16")
