"""The precision gate: it measures this model's recipes fastest first, takes the first within the bounds on
every calibration frame, caches the verdict by model, recipes, runtime and CPU, and a forced precision
bypasses it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import onnx
import pytest

from trt_modnet.graph import gate, precision
from trt_modnet.graph.deploy import DeploySpec
from trt_modnet.runtime import select
from trt_modnet.runtime.openvino import supports_bf16

needs_bf16 = pytest.mark.skipif(not supports_bf16(), reason="this CPU has no native bf16 (AVX512_BF16, AMX)")
# Low enough for seconds per gate, the calibration frames upscaled from 256 at the default 512.
REF_SIZE = 128


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRT_MODNET_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def bad_recipe(monkeypatch: pytest.MonkeyPatch) -> str:
    """A deliberately bad recipe: every node in bf16, the pixel work too."""
    monkeypatch.setitem(precision.LOW, "bad", "bf16")
    monkeypatch.setitem(precision.RECIPES, "bad", precision.Recipe("bad", "everything bf16", ()))
    real = precision._low_nodes
    monkeypatch.setattr(
        precision, "_low_nodes", lambda d, r: set(range(len(d.graph.node))) if r == "bad" else real(d, r)
    )
    return "bad"


def test_the_calibration_set_is_small_and_real() -> None:
    frames = gate.calibration_frames()
    assert frames.shape == (6, 256, 256, 3) and frames.dtype == "uint8"
    assert frames.std() > 40  # photographs, not flat test cards
    folder = Path(gate.__file__).parent / "calibration"
    assert sum(f.stat().st_size for f in folder.iterdir()) < 300_000


@needs_bf16
def test_the_gate_picks_the_first_recipe_in_bounds_and_caches_it(
    synthetic_onnx: Path, home: Path, bad_recipe: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gate, "candidates", lambda: [bad_recipe, "bf16"])
    modnet = onnx.load(str(synthetic_onnx))
    verdict = gate.verdict_for(synthetic_onnx, modnet, REF_SIZE)
    assert not verdict.cached and list(verdict.drift) == ["bad", "bf16"]
    assert not verdict.drift["bad"].within_default_bounds()  # rejected, measured
    assert verdict.recipe == "bf16" and verdict.drift["bf16"].within_default_bounds()
    assert "precision gate: bf16" in verdict.line() and "bad" in verdict.line()
    stored = json.loads(gate.verdict_path(gate.file_digest(synthetic_onnx, "sha256")).read_text())
    (entry,) = stored.values()
    assert entry["recipe"] == "bf16" and entry["key"]["cpu"] == gate.cpu_class()

    def no_measuring(*args: object, **kwargs: object) -> gate.Verdict:
        raise AssertionError("a cached verdict was measured again")

    monkeypatch.setattr(gate, "measure", no_measuring)
    again = gate.verdict_for(synthetic_onnx, modnet, REF_SIZE)
    assert again.cached and again.recipe == "bf16" and again.drift == verdict.drift
    assert "cached verdict" in again.line()


def test_a_change_of_key_runs_the_gate_again(
    synthetic_onnx: Path, home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    runs: list[str] = []

    def fake_measure(modnet: object, ref_size: int, names: object, **kwargs: object) -> gate.Verdict:
        runs.append(gate.cpu_class())
        return gate.Verdict("bf16", {"bf16": precision.Drift(0.1, 1.0, 3.0)}, 6, 1.0)

    monkeypatch.setattr(gate, "measure", fake_measure)
    monkeypatch.setattr(gate, "cpu_class", lambda: "AuthenticAMD family 25 model 17 avx512_bf16")
    modnet = onnx.load(str(synthetic_onnx))
    assert not gate.verdict_for(synthetic_onnx, modnet, REF_SIZE).cached
    assert gate.verdict_for(synthetic_onnx, modnet, REF_SIZE).cached
    assert len(runs) == 1
    changes = [
        lambda: monkeypatch.setattr(gate, "cpu_class", lambda: "GenuineIntel family 6 model 143 amx_bf16"),
        lambda: monkeypatch.setattr(gate, "RECIPE_VERSION", precision.RECIPE_VERSION + 1),
        lambda: monkeypatch.setattr(gate, "GATE_VERSION", gate.GATE_VERSION + 1),
        lambda: monkeypatch.setattr("openvino.__version__", "0.0-other"),
    ]
    for n, change in enumerate(changes, start=2):
        change()
        assert not gate.verdict_for(synthetic_onnx, modnet, REF_SIZE).cached
        assert len(runs) == n
    assert not gate.verdict_for(synthetic_onnx, modnet, REF_SIZE * 2).cached  # another ref size
    other = tmp_path / "other.onnx"  # another model: another digest
    onnx.save(modnet, str(other))
    other.write_bytes(other.read_bytes() + b"\0")  # same graph, other bytes: still judged on its own
    assert not gate.verdict_for(other, modnet, REF_SIZE).cached
    # What `verify --precision` does: measured again whatever is cached.
    assert not gate.verdict_for(synthetic_onnx, modnet, REF_SIZE, rerun=True).cached
    # Every CPU class keeps its verdict in the one file (a cache shared by a render farm's nodes).
    assert len(json.loads(gate.verdict_path(gate.file_digest(synthetic_onnx, "sha256")).read_text())) == 6


def test_auto_runs_the_gate_and_a_forced_precision_bypasses_it(
    synthetic_onnx: Path, home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Path] = []

    def fake_verdict(model_path: Path, *args: object, **kwargs: object) -> gate.Verdict:
        calls.append(model_path)
        return gate.Verdict("bf16-head", {"bf16-head": precision.Drift(0.2, 2.0, 9.0)}, 6, 4.2)

    monkeypatch.setattr(gate, "verdict_for", fake_verdict)
    monkeypatch.setattr(select, "missing_for_tensorrt", lambda: ["TensorRT is not installed"])
    monkeypatch.setattr(select, "supports_bf16", lambda: True)
    spec = DeploySpec(outputs=("alpha",), ref_size=64)
    caplog.set_level(logging.INFO, logger="trt_modnet")
    with select.open_runner("auto", synthetic_onnx, spec) as runner:
        assert runner.settings.precision == "bf16-head"
    assert calls == [synthetic_onnx]
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("backend:")]
    assert line.startswith("backend: OpenVINO bf16-head on the CPU (no TensorRT")
    assert "precision gate: bf16-head" in line and "0.20/2" in line and "measured in 4.2 s" in line
    for forced in ("fp32", "bf16", "bf16-all"):
        with select.open_runner("auto", synthetic_onnx, spec, precision=forced) as runner:
            assert runner.settings.precision == forced
    assert calls == [synthetic_onnx]  # never asked again


def test_models_verify_precision_measures_again(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import CHECKPOINT, need
    from trt_modnet.models.__main__ import main

    monkeypatch.setattr(gate, "candidates", lambda: ["bf16"] if supports_bf16() else [])
    args = ["verify", "--precision", "--model", str(need(CHECKPOINT)), "--ref-size", "64"]
    for _ in range(2):  # the second run measures again, though a verdict is cached
        assert main(args) == 0
        out = capsys.readouterr().out
        assert "precision gate: " in out and "measured in" in out, out
    assert len(list((home / "models" / "onnx").glob("*.precision.json"))) == 1
