"""Backend choice, and the one clear failure of the TensorRT paths on a machine without TensorRT or a GPU."""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, VIDEOS, need
from trt_modnet.errors import MattingError
from trt_modnet.runtime import select

REASON = select.tensorrt_unavailable_reason()
needs_no_tensorrt = pytest.mark.skipif(REASON is None, reason="TensorRT and a GPU are usable here")


@needs_no_tensorrt
def test_the_reason_is_one_line_saying_what_is_missing_and_how_to_install() -> None:
    assert REASON is not None and "\n" not in REASON
    assert "TensorRT is not installed" in REASON or "TensorRT does not load" in REASON
    assert "pip install 'trt_modnet[trt]'" in REASON


@dataclass(frozen=True)
class Spec:
    """Stands in for graph.DeploySpec where the graph is never built."""

    outputs: tuple[str, ...] = ("rgba",)
    ref_size: int = 512
    fp16: bool = False


def test_unknown_backend_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        MattingError, match="unknown backend 'cuda'; choose from auto, onnxruntime, openvino, tensorrt"
    ):
        select.open_runner("cuda", tmp_path / "m.onnx", Spec())  # type: ignore[arg-type]


@needs_no_tensorrt
def test_tensorrt_backend_without_tensorrt_fails_before_reading_the_model(tmp_path: Path) -> None:
    with pytest.raises(
        MattingError, match=r"^--backend tensorrt is unavailable: .*pip install 'trt_modnet\[trt\]'"
    ):
        select.open_runner("tensorrt", tmp_path / "absent.onnx", Spec())  # type: ignore[arg-type]


@needs_no_tensorrt
def test_auto_falls_back_to_onnx_runtime_without_openvino_and_says_why(
    synthetic_onnx: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = pytest.importorskip("trt_modnet.graph.deploy")
    onnxrt = pytest.importorskip("trt_modnet.runtime.onnxrt")
    monkeypatch.setattr(select, "openvino_unavailable_reason", lambda: "OpenVINO is not installed")
    with caplog.at_level(logging.INFO, logger="trt_modnet"):
        runner = select.open_runner("auto", synthetic_onnx, graph.DeploySpec(outputs=("alpha",)))
    with runner:
        assert isinstance(runner, onnxrt.OnnxRuntimeRunner)
        assert runner.spec.host_input  # on the CPU, OpenCV makes MODNet's input
    assert "backend: ONNX Runtime fp32 on the CPU (no TensorRT: TensorRT is not installed" in caplog.text
    assert "OpenVINO is not installed (pip install openvino)" in caplog.text


def test_auto_picks_tensorrt_with_the_fp16_graph_when_usable(
    synthetic_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = pytest.importorskip("trt_modnet.graph.deploy")
    chosen: dict[str, object] = {}
    tensorrt_runner = object()

    def fake_tensorrt_runner(deploy: object, spec: object, **kw: object) -> object:
        chosen.update(deploy=deploy, spec=spec, **kw)
        return tensorrt_runner

    monkeypatch.setattr(select, "missing_for_tensorrt", list)
    monkeypatch.setattr(select, "_tensorrt_runner", fake_tensorrt_runner)
    spec = graph.DeploySpec(outputs=("rgba", "alpha"))
    assert select.open_runner("auto", synthetic_onnx, spec, engines_dir=Path("e")) is tensorrt_runner
    assert chosen["spec"] == graph.DeploySpec(outputs=("rgba", "alpha"), fp16=True)
    assert chosen["engines_dir"] == Path("e")
    assert graph.spec_of(chosen["deploy"]).fp16


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


@needs_no_tensorrt
def test_build_engine_cli_fails_with_one_clear_line(tmp_path: Path) -> None:
    done = _run("build_engine.py", str(tmp_path / "modnet.onnx"), "--engines", str(tmp_path / "engines"))
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: cannot build TensorRT engines here: TensorRT is not installed")
    assert "pip install 'trt_modnet[trt]'" in line and not (tmp_path / "engines").exists()


@needs_no_tensorrt
def test_process_with_tensorrt_backend_fails_with_one_clear_line(
    synthetic_onnx: Path, tmp_path: Path
) -> None:
    pytest.importorskip("trt_modnet.graph.deploy")
    video = need(VIDEOS / "carphone_qcif.mp4")
    out = tmp_path / "out.mov"
    done = _run(
        "-m",
        "trt_modnet.process",
        str(video),
        "-o",
        str(out),
        "--model",
        str(synthetic_onnx),
        "--backend",
        "tensorrt",
    )
    assert done.returncode == 2, done.stderr
    assert "error: --backend tensorrt is unavailable: TensorRT is not installed" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists() and not list(tmp_path.iterdir())


def test_auto_warns_loudly_when_a_gpu_is_present_but_unusable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(select, "missing_for_tensorrt", lambda: ["TensorRT is not installed"])
    monkeypatch.setattr(select, "nvidia_device_nodes", lambda: ["/dev/nvidia0"])
    with caplog.at_level(logging.INFO, logger="trt_modnet"), pytest.raises(MattingError):
        select.open_runner("auto", tmp_path / "absent.onnx", Spec())  # type: ignore[arg-type]
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "an NVIDIA GPU is present (/dev/nvidia0) but TensorRT cannot use it" in record.getMessage()
    assert "far slower" in record.getMessage()
