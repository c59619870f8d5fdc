"""The precision gate's verdict per model, the drift of every recipe, the gate's cost, and each recipe's
speed, side by side.

    python -m benchmarks.gate --json benchmarks/results/gate_epyc_zen4.json

For the stand-ins (modnet_synthetic.ckpt, modnet_people.ckpt) and seeded random weights: every recipe's
worst per-frame drift on the shipped calibration frames (`trt_modnet.graph.gate.measure`, exhaustive),
the cost
of the gate as a first use runs it (it stops at the first recipe within the bounds), and inference alone
per recipe on one 720p batch of 4 (the first frames of juggle_720p), the recipes interleaved round after
round, medians: ratios hold on a loaded machine where absolute figures do not.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from itertools import islice
from pathlib import Path

import av
import numpy as np
import onnx

from benchmarks.machine import load_average, system_info
from benchmarks.parity import RESULTS, ROOT, write_result
from trt_modnet.cli import run_main
from trt_modnet.graph import gate
from trt_modnet.graph.deploy import DeploySpec, build
from trt_modnet.graph.modelfile import load_modnet
from trt_modnet.graph.official import DEFAULT_REF_SIZE
from trt_modnet.graph.precision import MAX_DEFAULT_MEAN, MAX_DEFAULT_P99
from trt_modnet.models.convert import onnx_from_checkpoint
from trt_modnet.runtime.openvino import OpenVinoRunner, OpenVinoSettings

SHARED = ROOT.parent / "shared"
MODELS = {
    "synthetic": SHARED / "models" / "modnet_synthetic.ckpt",
    "people": SHARED / "models" / "modnet_people.ckpt",
}
VIDEO = SHARED / "data" / "videos" / "juggle_720p.mp4"
BATCH = 4


def model_of(label: str, folder: Path) -> onnx.ModelProto:
    if label == "random":
        from trt_modnet.modnet.export import export_onnx, random_model

        path = folder / "random.onnx"
        export_onnx(random_model(7), path, random_seed=7)
        return load_modnet(path)
    return load_modnet(onnx_from_checkpoint(MODELS[label]))


def video_batch() -> np.ndarray:
    with av.open(str(VIDEO)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in islice(container.decode(video=0), BATCH)]
    return np.stack(frames)


def speeds(modnet: onnx.ModelProto, recipes: Sequence[str], rounds: int, threads: int) -> dict[str, float]:
    """Median seconds per frame of each recipe, interleaved round after round."""
    frames = video_batch()
    deploy = build(modnet, DeploySpec(outputs=("alpha",), host_input=True))
    runners = {r: OpenVinoRunner(deploy, OpenVinoSettings(r, threads=threads)) for r in recipes}
    times: dict[str, list[float]] = {r: [] for r in recipes}
    try:
        for runner in runners.values():
            runner.prepare(*frames.shape[1:3], BATCH)
            runner.result(runner.submit({"frames": frames}))  # compile and warm up
        for _ in range(rounds):
            for r, runner in runners.items():
                started = time.perf_counter()
                runner.result(runner.submit({"frames": frames}))
                times[r].append((time.perf_counter() - started) / BATCH)
    finally:
        for runner in runners.values():
            runner.close()
    return {r: round(statistics.median(t), 4) for r, t in times.items()}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gate", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="synthetic,people,random")
    p.add_argument("--ref-size", type=int, default=DEFAULT_REF_SIZE)
    p.add_argument("--rounds", type=int, default=3, help="interleaved speed rounds (0: no speed)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=RESULTS / "gate.json")
    args = p.parse_args(argv)
    recipes = gate.candidates()
    result: dict = {
        "command": "python -m benchmarks.gate " + " ".join(argv if argv is not None else sys.argv[1:]),
        "system": system_info(),
        "load_average_before": load_average(),
        "cpu_class": gate.cpu_class(),
        "ref_size": args.ref_size,
        "bounds_per_frame": {"mean": MAX_DEFAULT_MEAN, "p99": MAX_DEFAULT_P99},
        "units": "|delta alpha| in 1/255 against OpenVINO FP32, worst frame of the calibration set",
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for label in args.models.split(","):
            modnet = model_of(label, Path(tmp))
            full = gate.measure(modnet, args.ref_size, recipes, threads=args.threads, exhaustive=True)
            first_use = gate.measure(modnet, args.ref_size, recipes, threads=args.threads)
            entry = {
                "verdict": full.recipe,
                "drift": {r: vars(d) for r, d in full.drift.items()},
                "first_use_seconds": first_use.seconds,
                "exhaustive_seconds": full.seconds,
            }
            if args.rounds:
                every = [*recipes, "fp32"]
                entry["seconds_per_frame_720p_batch4"] = speeds(modnet, every, args.rounds, args.threads)
            result["models"][label] = entry
            print(label, full.line(), entry.get("seconds_per_frame_720p_batch4"), file=sys.stderr)
    result["load_average_after"] = load_average()
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
