"""MODNet's input made on the host (OpenCV) against the whole graph (in-graph INTER_AREA taps), on the CPU.

Per CPU backend and precision, both graphs run in one process, alternated round by round (composite
output, batch 4, two batches in flight, the runners' own settings); the JSON keeps every round. Also:
OpenCV's cost per frame (`official.network_input`), and where OpenVINO spends one thread's time in the
whole FP32 graph (`PERF_COUNT`: the wrapper's nodes against MODNet's).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx

from benchmarks.machine import system_info, versions
from benchmarks.parity import RESULTS, export_model, write_result
from trt_modnet.cli import run_main
from trt_modnet.graph.deploy import BACKGROUND, FRAMES, WRAPPER_PREFIX, DeploySpec, build, size_feeds
from trt_modnet.graph.modelfile import load_modnet
from trt_modnet.graph.official import inference_size, network_input
from trt_modnet.runtime.base import Runner
from trt_modnet.runtime.onnxrt import OnnxRuntimeRunner
from trt_modnet.runtime.openvino import OpenVinoRunner, OpenVinoSettings, supports_bf16

BATCH = 4
DEPTH = 2


def configs() -> list[str]:
    return [*(["openvino-bf16"] if supports_bf16() else []), "openvino-fp32", "onnxruntime-fp32"]


def runner(config: str, deploy: onnx.ModelProto, threads: int) -> Runner:
    if config == "onnxruntime-fp32":
        return OnnxRuntimeRunner(deploy, threads=threads, depth=DEPTH)
    precision = config.split("-")[1]
    return OpenVinoRunner(deploy, OpenVinoSettings(precision, threads, 2), depth=DEPTH)


def ms_per_frame(r: Runner, feeds: dict[str, np.ndarray], rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        tickets = [r.submit(feeds) for _ in range(DEPTH)]
        for ticket in tickets:
            r.result(ticket)
    return (time.perf_counter() - started) * 1000 / (rounds * DEPTH * BATCH)


def alternated(modnet: onnx.ModelProto, feeds: dict, threads: int, repeats: int) -> dict:
    h, w = feeds[FRAMES].shape[1:3]
    figures = {}
    for config in configs():
        runners = {}
        for host in (False, True):
            r = runner(config, build(modnet, DeploySpec(outputs=("composite",), host_input=host)), threads)
            r.prepare(h, w, BATCH)
            ms_per_frame(r, feeds, 2)  # compiled, allocated, warm
            runners["host_input" if host else "whole_graph"] = r
        samples: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(repeats):
            for name, r in runners.items():
                samples[name].append(ms_per_frame(r, feeds, 3))
        for r in runners.values():
            r.close()
        figures[config] = {
            name: {"best": min(v), "median": statistics.median(v), "samples": v}
            for name, v in samples.items()
        }
        print(config, {n: round(f["median"], 1) for n, f in figures[config].items()}, file=sys.stderr)
    return figures


def opencv_ms(frames: np.ndarray) -> float:
    out = np.empty((len(frames), 3, *inference_size(*frames.shape[1:3])), np.float32)
    times = []
    for _ in range(8):
        started = time.perf_counter()
        network_input(frames, out)
        times.append((time.perf_counter() - started) * 1000 / len(frames))
    return min(times)


def openvino_profile(modnet: onnx.ModelProto, feeds: dict) -> dict[str, float]:
    """ms per frame on one thread in the whole FP32 graph: the wrapper's nodes and MODNet's."""
    import openvino as ov

    spec = DeploySpec(outputs=("composite",))
    inputs = {**feeds, **size_feeds(spec, *feeds[FRAMES].shape[1:3])}
    core = ov.Core()
    model = core.read_model(build(modnet, spec).SerializeToString(), b"")
    model.reshape({name: list(array.shape) for name, array in inputs.items()})
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1, "PERF_COUNT": True}
    request = core.compile_model(model, "CPU", config).create_infer_request()
    for _ in range(2):
        request.infer(inputs)
    split = {"wrapper": 0.0, "modnet": 0.0}
    for node in request.profiling_info:
        part = "wrapper" if WRAPPER_PREFIX in node.node_name else "modnet"
        split[part] += node.real_time.total_seconds() * 1000 / BATCH
    return split


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.host_input", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="MODNet ONNX (default: the stand-in checkpoint, exported)")
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=4, help="alternated rounds per graph")
    p.add_argument("-o", "--output", type=Path, help="JSON to write (default results/host_input_*.json)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    output = args.output or RESULTS / f"host_input_{args.height}p.json"
    rng = np.random.default_rng(0)
    feeds = {
        FRAMES: rng.integers(0, 256, (BATCH, args.height, args.width, 3), dtype=np.uint8),
        BACKGROUND: np.full((1, args.height, args.width, 3), 255, np.uint8),
    }
    with tempfile.TemporaryDirectory() as tmp:
        modnet = load_modnet(args.model or export_model(Path(tmp), random_weights=False))
    result = {
        "command": "python -m benchmarks.host_input " + " ".join(argv if argv is not None else sys.argv[1:]),
        "frame_size": [args.height, args.width],
        "batch": BATCH,
        "units": "ms per frame; composite output, ref_size 512; both graphs alternated in one process",
        "alternated": alternated(modnet, feeds, args.threads, args.repeats),
        "opencv_network_input_ms": opencv_ms(feeds[FRAMES]),
        "openvino_fp32_one_thread_ms": openvino_profile(modnet, feeds),
        "system": system_info(),
        "versions": versions(),
    }
    write_result(output, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
