"""INT8 recipes (NNCF, the `[int8]` extra): the gate measures them on the model that runs and refuses them
outside the bounds, a picked one is quantised once and cached per model, a forced one runs without the
gate, and without NNCF the gate says it did not try INT8 and a forced INT8 is a one-line error."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.conftest import VIDEOS, need
from trt_modnet.errors import MattingError
from trt_modnet.graph import gate, int8, precision
from trt_modnet.graph.deploy import DeploySpec
from trt_modnet.runtime import select

pytest.importorskip("nncf", reason="the [int8] extra (NNCF) is not installed")
# Seconds per quantisation on 2 cores: the calibration frames at MODNet's smallest useful size.
REF_SIZE = 128


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRT_MODNET_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(select, "missing_for_tensorrt", lambda: ["TensorRT is not installed"])
    monkeypatch.setattr(select, "supports_bf16", lambda: True)  # the gate runs (it measures INT8 only)
    monkeypatch.setattr(gate, "candidates", lambda: ["int8"])
    return tmp_path / "home"


def quantised_folders(home: Path) -> list[Path]:
    return sorted((home / "models" / "onnx").glob("*.int8"))


def a_frame() -> np.ndarray:
    import av

    with av.open(str(need(VIDEOS / "chaplin_360p.mp4"))) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")[None]


def matte(runner: object, frames: np.ndarray) -> np.ndarray:
    runner.prepare(*frames.shape[1:3], len(frames))  # type: ignore[attr-defined]
    return runner.result(runner.submit({"frames": frames}))["alpha"]  # type: ignore[attr-defined]


def test_the_gate_refuses_int8_outside_the_bounds_and_a_picked_one_is_quantised_once(
    synthetic_onnx: Path, home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    modnet = onnx.load(str(synthetic_onnx))
    refused = gate.verdict_for(synthetic_onnx, modnet, REF_SIZE)
    # The stand-in's INT8 matte drifts far past the bounds: measured, refused, FP32 kept.
    assert list(refused.drift) == ["int8"] and not refused.drift["int8"].within_default_bounds()
    assert refused.recipe == "fp32" and "int8 " in refused.line() and "(over)" in refused.line()
    assert quantised_folders(home) == []  # nothing kept for a recipe the job will not run

    # With bounds wide enough for it, the same measurement picks INT8 and caches its quantised stages.
    monkeypatch.setattr(precision, "MAX_DEFAULT_MEAN", 255.0)
    monkeypatch.setattr(precision, "MAX_DEFAULT_P99", 255.0)
    picked = gate.verdict_for(synthetic_onnx, modnet, REF_SIZE, rerun=True)
    assert picked.recipe == "int8" and picked.drift["int8"] == refused.drift["int8"]
    assert len(quantised_folders(home)) == 1

    def no_quantising(*args: object, **kwargs: object) -> None:
        raise AssertionError("quantised again")

    # The job after it: the cached verdict, the cached quantised stages, no measurement, no NNCF pass.
    monkeypatch.setattr(int8, "quantise", no_quantising)
    monkeypatch.setattr(gate, "measure", no_quantising)
    caplog.set_level(logging.INFO, logger="trt_modnet")
    frames = a_frame()
    spec = DeploySpec(outputs=("alpha",), ref_size=REF_SIZE)
    with select.open_runner("auto", synthetic_onnx, spec) as runner:
        assert runner.settings.precision == "int8"
        alpha = matte(runner, frames)
    assert "precision gate: int8" in caplog.text and "cached verdict" in caplog.text
    with select.open_runner("openvino", synthetic_onnx, spec, precision="fp32") as runner:
        reference = matte(runner, frames)
    delta = np.abs(alpha.astype(int) - reference.astype(int))
    assert 0 < delta.mean() < 40, delta.mean()  # quantised: not FP32's bytes, still a matte


def test_a_forced_int8_recipe_is_quantised_once_for_any_output(
    synthetic_onnx: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = DeploySpec(outputs=("rgba", "alpha"), ref_size=REF_SIZE)
    frames = a_frame()
    with select.open_runner("auto", synthetic_onnx, spec, precision="int8") as runner:
        first = matte(runner, frames)
    assert len(quantised_folders(home)) == 1
    monkeypatch.setattr(int8, "quantise", lambda *a, **k: pytest.fail("quantised again"))
    monkeypatch.setattr(gate, "verdict_for", lambda *a, **k: pytest.fail("a forced recipe ran the gate"))
    with select.open_runner("openvino", synthetic_onnx, spec, precision="int8") as runner:
        assert runner.settings.precision == "int8"
        assert np.array_equal(matte(runner, frames), first)


def test_without_nncf_the_gate_says_int8_was_not_tried_and_a_forced_one_is_refused(
    synthetic_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: object
) -> None:
    monkeypatch.setitem(sys.modules, "nncf", None)  # import nncf now raises ImportError
    monkeypatch.setattr(int8, "nncf_version", lambda: None)  # and its metadata is gone, as uninstalled
    monkeypatch.setattr(select, "missing_for_tensorrt", lambda: ["TensorRT is not installed"])
    assert int8.missing_reason() == 'NNCF is not installed (pip install "trt_modnet[int8]")'
    assert not any(precision.RECIPES[name].int8 for name in gate.candidates())
    verdict = gate.measure(onnx.load(str(synthetic_onnx)), REF_SIZE, [])
    assert 'INT8 not tried: the [int8] extra is missing, pip install "trt_modnet[int8]"' in verdict.line()
    needs = r'--precision int8 needs NNCF: .*pip install "trt_modnet\[int8\]"'
    with pytest.raises(MattingError, match=needs):
        select.choose("openvino", "int8")
    video = need(VIDEOS / "carphone_qcif.mp4")
    out = tmp_path / "out"
    result = cli(video, "--model", synthetic_onnx, "-o", out, "--precision", "int8")  # type: ignore[operator]
    assert result.returncode == 2 and 'pip install "trt_modnet[int8]"' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_a_read_only_cache_costs_a_quantisation_not_the_job(
    synthetic_onnx: Path, home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def read_only(path: Path) -> Path:
        raise MattingError(f"{path}: the model cache folder is not writable")

    monkeypatch.setattr(int8, "writable_dir", read_only)
    frames = a_frame()
    spec = DeploySpec(outputs=("alpha",), ref_size=REF_SIZE)
    caplog.set_level(logging.WARNING, logger="trt_modnet")
    with select.open_runner("openvino", synthetic_onnx, spec, precision="int8") as runner:
        assert matte(runner, frames).shape == frames.shape[:3]
    assert "cannot cache the quantised model" in caplog.text and quantised_folders(home) == []
