"""Drift and speed of the CPU precision recipes against the FP32 deployment graph.

    python -m benchmarks.precision                  # stand-in model: results/precision_synthetic.json
    python -m benchmarks.precision --random-weights # stress case:    results/precision_random.json

On the shared portraits and on frames of every shared video: |alpha(recipe) - alpha(FP32 graph in ONNX
Runtime)| in 1/255 (mean, p99, max) per input, for OpenVINO FP32 and for each lower-precision recipe this
CPU runs (`trt_modnet.graph.precision`), and the worst over all inputs, which `precision.RECIPES` records
and the default choice is gated on (mean <= 0.5, p99 <= 3 on every input). Speed: seconds per frame of each
recipe at the first 720p input, one batch of 4, best of 3 (inference alone; `benchmarks.throughput` gives
the end-to-end figures).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from benchmarks.machine import system_info
from benchmarks.parity import RESULTS, export_model, shared_inputs, stats, write_result
from trt_modnet.cli import run_main
from trt_modnet.graph.deploy import DeploySpec, build
from trt_modnet.graph.modelfile import load_modnet
from trt_modnet.graph.official import DEFAULT_REF_SIZE
from trt_modnet.runtime.base import Runner
from trt_modnet.runtime.onnxrt import OnnxRuntimeRunner
from trt_modnet.runtime.openvino import OpenVinoRunner, OpenVinoSettings, supports_bf16

SPEED_BATCH = 4


def alpha_of(runner: Runner, rgb: np.ndarray) -> np.ndarray:
    runner.prepare(*rgb.shape[:2], 1)
    return runner.result(runner.submit({"frames": rgb[None]}))["alpha"][0]


def seconds_per_frame(runner: Runner, rgb: np.ndarray) -> float:
    frames = np.repeat(rgb[None], SPEED_BATCH, axis=0)
    runner.prepare(*rgb.shape[:2], SPEED_BATCH)
    runner.result(runner.submit({"frames": frames}))  # compile and warm up
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        runner.result(runner.submit({"frames": frames}))
        best = min(best, time.perf_counter() - started)
    return round(best / SPEED_BATCH, 4)


def recipes() -> list[str]:
    return ["fp32", "bf16"] if supports_bf16() else ["fp32"]


def measure(deploy: onnx.ModelProto, inputs: list[tuple[str, np.ndarray]], threads: int) -> dict:
    reference = OnnxRuntimeRunner(deploy, threads=threads)
    runners = {
        f"openvino-{name}": OpenVinoRunner(deploy, OpenVinoSettings(name, threads=threads))
        for name in recipes()
    }
    rows = []
    with reference:
        for name, rgb in inputs:
            want = alpha_of(reference, rgb)
            rows.append(
                {"input": name, "size": list(rgb.shape[:2])}
                | {label: stats(alpha_of(r, rgb), want) for label, r in runners.items()}
            )
        speed_input = next((rgb for _, rgb in inputs if rgb.shape[:2] == (720, 1280)), inputs[0][1])
        speed = {"onnxruntime-fp32": seconds_per_frame(reference, speed_input)}
    for label, runner in runners.items():
        with runner:
            speed[label] = seconds_per_frame(runner, speed_input)
    worst = {
        label: {
            "mean": max(r[label]["mean"] for r in rows),
            "p99": max(r[label]["p99"] for r in rows),
            "max": max(r[label]["max"] for r in rows),
        }
        for label in runners
    }
    return {"inputs": rows, "worst": worst, "seconds_per_frame_720p_batch4": speed}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.precision", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="MODNet ONNX (default: the stand-in checkpoint, exported)")
    p.add_argument("--random-weights", action="store_true", help="seeded random weights (stress case)")
    p.add_argument("--ref-size", type=int, default=DEFAULT_REF_SIZE)
    p.add_argument("--frames-per-video", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-o", "--output", type=Path, help="JSON to write (default results/precision_*.json)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    label = "random" if args.random_weights else ("synthetic" if args.model is None else args.model.stem)
    output = args.output or RESULTS / f"precision_{label}.json"
    inputs = shared_inputs(args.frames_per_video)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or export_model(Path(tmp), args.random_weights)
        deploy = build(load_modnet(model), DeploySpec(outputs=("alpha",), ref_size=args.ref_size))
        figures = measure(deploy, inputs, args.threads)
    import openvino

    result = {
        "command": "python -m benchmarks.precision " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": label,
        "ref_size": args.ref_size,
        "units": "1/255 (alpha bytes), against the FP32 graph in ONNX Runtime",
        "system": system_info(),
        "machine": platform.machine(),
        "versions": {"onnxruntime": ort.__version__, "openvino": openvino.__version__},
        **figures,
    }
    write_result(output, result)
    print(json.dumps({"worst": figures["worst"], "speed": figures["seconds_per_frame_720p_batch4"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
