"""INT8 as a CPU precision candidate: NNCF post-training quantisation of the bf16 recipe's low stage.

    pip install nncf && python -m benchmarks.int8     # stand-in model: results/int8_synthetic.json

The bf16 recipe's stages (`trt_modnet.graph.precision`) with the low stage (MODNet but its backbone and the
detail branch's first block) quantised by NNCF, calibrated on frames of every shared video away from the
frames evaluated, then run with the rest in bf16. Drift: |alpha - alpha(FP32 graph in ONNX Runtime)| in
1/255 on the same 24 inputs as `benchmarks.precision`, for the bf16 recipe and each NNCF preset. Speed:
the low stage's seconds per frame at the first 720p input, batch 4, best of 5, each variant compiled the
same way. The backbone stays FP32: it does not survive even bf16 (`trt_modnet.graph.precision`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx

from benchmarks.machine import system_info
from benchmarks.parity import CHECKPOINT, DATA, RESULTS, read_frames, shared_inputs, stats, write_result
from trt_modnet.cli import run_main
from trt_modnet.errors import MattingError
from trt_modnet.graph.deploy import DeploySpec, build
from trt_modnet.graph.modelfile import load_modnet
from trt_modnet.models.convert import checkpoint_to_model
from trt_modnet.runtime.onnxrt import OnnxRuntimeRunner
from trt_modnet.runtime.openvino import OpenVinoRunner, OpenVinoSettings, supports_bf16

SPEED_BATCH = 4


class _LowStageSwapped(OpenVinoRunner):
    """The bf16 recipe's runner with its low stage replaced by another OpenVINO model of the same I/O."""

    def __init__(self, deploy: onnx.ModelProto, low: object | None = None) -> None:
        super().__init__(deploy, OpenVinoSettings("bf16", threads=2, streams=1))
        if low is not None:
            self._models[1] = low

    def stage_inputs(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        """What the low stage reads for one frame (the FP32 first stage's outputs): a calibration sample."""
        self.prepare(*rgb.shape[:2], 1)
        self.result(self.submit({"frames": rgb[None]}))
        first = self._chain(0, 1).requests[0]
        return {name: first.get_tensor(name).data.copy() for name in self._stages[1].inputs}

    def low_stage_seconds(self, rgb: np.ndarray) -> float:
        frames = {"frames": np.repeat(rgb[None], SPEED_BATCH, axis=0)}
        self.prepare(*rgb.shape[:2], SPEED_BATCH)
        self.result(self.submit(frames))  # compile and warm up
        low = self._chain(0, SPEED_BATCH).requests[1]
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            low.infer()
            best = min(best, time.perf_counter() - started)
        return round(best / SPEED_BATCH, 4)


def calibration_frames(per_video: int) -> list[np.ndarray]:
    """Frames spread over every shared video, 10 frames in from each end: never the evaluated ones."""
    frames = []
    for video in sorted((DATA / "videos").glob("*.*")):
        decoded = read_frames(video)
        picks = np.linspace(10, len(decoded) - 11, per_video).round().astype(int)
        frames += [decoded[i] for i in picks]
    return frames


def quantised(deploy: onnx.ModelProto, frames: list[np.ndarray], preset: str) -> object:
    import nncf

    with _LowStageSwapped(deploy) as runner:
        samples = [runner.stage_inputs(rgb) for rgb in frames]
        low = runner._models[1]  # still dynamic: each compile reshapes a clone
    return nncf.quantize(
        low, nncf.Dataset(samples), preset=nncf.QuantizationPreset(preset), subset_size=len(samples)
    )


def measure(deploy: onnx.ModelProto, calibration: list[np.ndarray], presets: Sequence[str]) -> dict:
    inputs = shared_inputs(1)
    variants = {"bf16": None} | {f"int8-{p}": quantised(deploy, calibration, p) for p in presets}
    speed_input = next((rgb for _, rgb in inputs if rgb.shape[:2] == (720, 1280)), inputs[0][1])
    reference = OnnxRuntimeRunner(deploy, threads=2)
    wants = []
    with reference:
        for _, rgb in inputs:
            reference.prepare(*rgb.shape[:2], 1)
            wants.append(reference.result(reference.submit({"frames": rgb[None]}))["alpha"][0])
    rows: list[dict] = [{"input": name, "size": list(rgb.shape[:2])} for name, rgb in inputs]
    speed = {}
    for label, low in variants.items():
        with _LowStageSwapped(deploy, low) as runner:
            for row, (_, rgb), want in zip(rows, inputs, wants, strict=True):
                runner.prepare(*rgb.shape[:2], 1)
                row[label] = stats(runner.result(runner.submit({"frames": rgb[None]}))["alpha"][0], want)
            speed[label] = runner.low_stage_seconds(speed_input)
    worst = {label: {k: max(r[label][k] for r in rows) for k in ("mean", "p99", "max")} for label in variants}
    return {"inputs": rows, "worst": worst, "low_stage_seconds_per_frame_720p_batch4": speed}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.int8", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="MODNet ONNX (default: the stand-in checkpoint, exported)")
    p.add_argument("--calibration-per-video", type=int, default=6)
    p.add_argument("--preset", nargs="+", default=["performance", "mixed"], choices=["performance", "mixed"])
    p.add_argument("-o", "--output", type=Path, help="JSON to write (default results/int8_*.json)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import nncf
    except ImportError:
        raise MattingError("benchmarks.int8 needs NNCF: pip install nncf") from None
    if not supports_bf16():
        raise MattingError("benchmarks.int8 compares against the bf16 recipe: this CPU has no native bf16")
    label = "synthetic" if args.model is None else args.model.stem
    output = args.output or RESULTS / f"int8_{label}.json"
    calibration = calibration_frames(args.calibration_per_video)
    # The torch-free conversion of the stand-in checkpoint: NNCF's environment needs no PyTorch.
    modnet = load_modnet(args.model) if args.model else checkpoint_to_model(CHECKPOINT)
    deploy = build(modnet, DeploySpec(outputs=("alpha",)))
    figures = measure(deploy, calibration, args.preset)
    import openvino

    result = {
        "command": "python -m benchmarks.int8 " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": label,
        "calibration_frames": len(calibration),
        "units": "1/255 (alpha bytes), against the FP32 graph in ONNX Runtime",
        "system": system_info(),
        "versions": {"openvino": openvino.__version__, "nncf": nncf.__version__},
        **figures,
    }
    write_result(output, result)
    speed = figures["low_stage_seconds_per_frame_720p_batch4"]
    print(json.dumps({"worst": figures["worst"], "speed": speed}))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
