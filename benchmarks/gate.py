"""The precision gate's verdict per model, the drift of every recipe, the gate's cost, and each recipe's
speed, side by side.

    python -m benchmarks.gate --json benchmarks/results/gate_epyc_zen4.json

For the stand-ins (modnet_synthetic.ckpt, modnet_people.ckpt) and seeded random weights: every recipe's
worst per-frame drift on the shipped calibration frames (`trt_modnet.graph.gate.measure`, exhaustive:
every bf16 recipe this CPU runs and, with NNCF installed, every INT8 recipe, each quantised on the same
frames), the cost of the gate as a first use runs it (its candidates, stopping at the first within the
bounds), and inference alone per recipe on one 720p batch of 4 (the first frames of juggle_720p), the
recipes interleaved round after round, medians: ratios hold on a loaded machine where absolute figures
do not.
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
from trt_modnet.graph import gate, int8
from trt_modnet.graph.deploy import DeploySpec, build
from trt_modnet.graph.modelfile import load_modnet
from trt_modnet.graph.official import DEFAULT_REF_SIZE
from trt_modnet.graph.precision import LOW, MAX_DEFAULT_MEAN, MAX_DEFAULT_P99, RECIPES
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


def measured_recipes() -> list[str]:
    """Every lower-precision recipe this machine runs, in the gate's order."""
    from trt_modnet.runtime.openvino import supports_bf16

    with_int8, bf16 = int8.missing_reason() is None, supports_bf16()
    return [r for r in LOW if (with_int8 if RECIPES[r].int8 else bf16 and LOW[r] == "bf16")]


def speeds(
    modnet: onnx.ModelProto,
    recipes: Sequence[str],
    rounds: int,
    threads: int,
    quantised: dict[str, dict[int, object]],
) -> dict[str, float]:
    """Median seconds per frame of each recipe, interleaved round after round (INT8 recipes with the
    stages the drift was measured with)."""
    frames = video_batch()
    deploy = build(modnet, DeploySpec(outputs=("alpha",), host_input=True))
    runners = {
        r: OpenVinoRunner(
            deploy,
            OpenVinoSettings(r, threads=threads),
            models=int8.assemble(deploy, r, quantised[r]) if r in quantised else None,
        )
        for r in recipes
    }
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
    recipes = measured_recipes()
    result: dict = {
        "command": "python -m benchmarks.gate " + " ".join(argv if argv is not None else sys.argv[1:]),
        "system": system_info(),
        "load_average_before": load_average(),
        "cpu_class": gate.cpu_class(),
        "gate_candidates": gate.candidates(),
        "versions": versions(),
        "ref_size": args.ref_size,
        "bounds_per_frame": {"mean": MAX_DEFAULT_MEAN, "p99": MAX_DEFAULT_P99},
        "units": "|delta alpha| in 1/255 against OpenVINO FP32, worst frame of the calibration set",
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for label in args.models.split(","):
            modnet = model_of(label, Path(tmp))
            quantised: dict[str, dict[int, object]] = {}
            full = gate.measure(
                modnet, args.ref_size, recipes, threads=args.threads, exhaustive=True, quantised=quantised
            )
            first_use = gate.measure(modnet, args.ref_size, gate.candidates(), threads=args.threads)
            entry = {
                "verdict": first_use.recipe,
                "verdict_line": first_use.line(),
                "drift": {r: vars(d) for r, d in full.drift.items()},
                "within_bounds": [r for r, d in full.drift.items() if d.within_default_bounds()],
                "first_use_seconds": first_use.seconds,
                "exhaustive_seconds": full.seconds,
            }
            if args.rounds:
                every = [*recipes, "fp32"]
                entry["seconds_per_frame_720p_batch4"] = speeds(
                    modnet, every, args.rounds, args.threads, quantised
                )
            result["models"][label] = entry
            print(label, full.line(), entry.get("seconds_per_frame_720p_batch4"), file=sys.stderr)
    result["load_average_after"] = load_average()
    write_result(args.json, result)
    return 0


def versions() -> dict[str, str | None]:
    import openvino

    try:
        import nncf

        nncf_version: str | None = nncf.__version__
    except ImportError:
        nncf_version = None
    return {"openvino": openvino.__version__, "nncf": nncf_version}


if __name__ == "__main__":
    raise SystemExit(run_main(main))
