"""Fidelity of the deployment graph: parity with the official procedure, FP16 drift, cost of the resize.

    python -m benchmarks.parity                    # stand-in model: results/parity_synthetic.json
    python -m benchmarks.parity --random-weights   # stress case:    results/parity_random.json

Parity: on the shared portraits and on frames of every shared video, |alpha(deployment graph in ONNX
Runtime) - alpha(official procedure, `official.official_matte`)| per input, in 1/255 units. Beside it, the
resizes the graph could have used instead, emulated with OpenCV around the same network (cv2 INTER_LINEAR
computes what ONNX Resize linear/half_pixel without antialias does): bilinear both ways, INTER_AREA down
and bilinear up, and INTER_AREA both ways rounded instead of the official truncation to uint8.

FP16: the FP16 deployment graph run by a faithful FP16 executor (the ONNX reference evaluator, see
`trt_modnet.graph.fp16`) against the FP32 graph in ONNX Runtime, plus what ONNX Runtime's CPU provider reports
for the same FP16 graph (it computes convolutions in FP32, so it understates the drift). With
`--fp16-ablation`, the same with InstanceNormalization converted to FP16 too.

Resize cost: the down-resize as two dense MatMuls against the taps form the graph uses, and the whole
wrapper (everything but MODNet) around a 1x1-convolution stand-in network.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import av
import cv2
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from trt_modnet.cli import run_main
from trt_modnet.errors import MattingError
from trt_modnet.graph import fp16
from trt_modnet.graph.deploy import NETWORK_MATTE, DeploySpec, build, size_feeds
from trt_modnet.graph.modelfile import load_modnet
from trt_modnet.graph.official import (
    DEFAULT_REF_SIZE,
    RawModnet,
    inference_size,
    official_matte,
    session_options,
)
from trt_modnet.graph.resize import area_taps, area_weights
from trt_modnet.runtime.onnxrt import OnnxRuntimeRunner

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CHECKPOINT = ROOT.parent / "shared" / "models" / "modnet_synthetic.ckpt"
RESULTS = ROOT / "benchmarks" / "results"

Inputs = list[tuple[str, np.ndarray]]


def shared_inputs(frames_per_video: int) -> Inputs:
    """The shared portraits, then `frames_per_video` frames spread over each shared video."""
    images = sorted((DATA / "images" / "p3m" / "original").glob("*.jpg"))
    images += sorted((DATA / "images" / "portraits").glob("*.*"))
    found: Inputs = [(p.name, cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)) for p in images]
    for video in sorted((DATA / "videos").glob("*.*")):
        frames = read_frames(video)
        picks = np.linspace(0, len(frames) - 1, frames_per_video).round().astype(int)
        found += [(f"{video.name}#{i}", frames[i]) for i in picks]
    if not found:
        raise MattingError(f"{DATA}: no shared images or videos found")
    return found


def read_frames(video: Path) -> list[np.ndarray]:
    with av.open(str(video)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    delta = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return {
        "mean": round(float(delta.mean()), 4),
        "p99": float(np.percentile(delta, 99)),
        "max": int(delta.max()),
    }


def float_resize(x: np.ndarray, width: int, height: int, interpolation: int) -> np.ndarray:
    return cv2.resize(x, (width, height), interpolation=interpolation)


def to_byte(x: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)


def alternatives(raw: RawModnet, rgb: np.ndarray, ref_size: int) -> dict[str, np.ndarray]:
    """Mattes of the resizes the graph could use, emulated with OpenCV in float around the same network."""
    h, w = rgb.shape[:2]
    ih, iw = inference_size(h, w, ref_size)
    normalised = (rgb - 127.5) / 127.5

    def net(interpolation: int) -> np.ndarray:
        x = float_resize(normalised, iw, ih, interpolation)
        return raw(np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32))[0, 0] * 255.0

    area, linear = net(cv2.INTER_AREA), net(cv2.INTER_LINEAR)
    return {
        "bilinear_both_ways": to_byte(float_resize(linear, w, h, cv2.INTER_LINEAR)),
        "area_down_bilinear_up": to_byte(float_resize(area, w, h, cv2.INTER_LINEAR)),
        "area_both_ways_rounded": to_byte(float_resize(area, w, h, cv2.INTER_AREA)),
    }


def parity(model: Path, inputs: Inputs, ref_size: int) -> list[dict]:
    raw = RawModnet(model)
    deploy = build(load_modnet(model), DeploySpec(outputs=("alpha",), ref_size=ref_size))
    rows = []
    with OnnxRuntimeRunner(deploy) as runner:
        for name, rgb in inputs:
            h, w = rgb.shape[:2]
            runner.prepare(h, w, 1)
            alpha = runner.result(runner.submit({"frames": rgb[None]}))["alpha"][0]
            official = official_matte(raw, rgb, ref_size)
            row = {
                "input": name,
                "size": [w, h],
                "inference_size": list(inference_size(h, w, ref_size)[::-1]),
            }
            row["graph"] = stats(alpha, official)
            row.update({k: stats(v, official) for k, v in alternatives(raw, rgb, ref_size).items()})
            rows.append(row)
            print(f"parity {name:28s} {row['graph']}", file=sys.stderr)
    return rows


def fp16_drift(modnet: onnx.ModelProto, inputs: Inputs, ref_size: int, ablation: bool) -> list[dict]:
    spec = DeploySpec(outputs=("alpha",), ref_size=ref_size)
    fp32 = build(modnet, spec)
    variants = {"recipe": build(modnet, DeploySpec(outputs=("alpha",), ref_size=ref_size, fp16=True))}
    if ablation:
        blocked = [op for op in fp16.OP_BLOCK_LIST if op != "InstanceNormalization"]
        without_in = fp16.convert_network(modnet, op_block_list=blocked)
        variants["instance_norm_fp16_too"] = build(without_in, spec)
    ort_fp16 = ort.InferenceSession(
        variants["recipe"].SerializeToString(), providers=["CPUExecutionProvider"]
    )
    ort_fp32 = ort.InferenceSession(fp32.SerializeToString(), providers=["CPUExecutionProvider"])
    rows = []
    for name, rgb in inputs:
        h, w = rgb.shape[:2]
        feeds = {"frames": rgb[None], **size_feeds(spec, h, w)}
        row: dict = {"input": name, "inference_size": list(inference_size(h, w, ref_size)[::-1])}
        for label, graph in variants.items():
            start = time.perf_counter()
            d = fp16.drift(fp32, graph, feeds, NETWORK_MATTE)
            row[f"reference_evaluator_{label}"] = {
                "mean": round(d.mean, 4),
                "max": d.max,
                "nonfinite": d.nonfinite,
                "seconds": round(time.perf_counter() - start, 1),
            }
        row["onnxruntime_cpu_recipe"] = stats(ort_fp16.run(None, feeds)[0], ort_fp32.run(None, feeds)[0])
        rows.append(row)
        print(f"fp16 {name:28s} {row}", file=sys.stderr)
    return rows


def timed(session: ort.InferenceSession, feeds: dict[str, np.ndarray], repeats: int = 5) -> float:
    """Best of `repeats` runs in ms (the machine is shared, so the minimum is the least noisy)."""
    session.run(None, feeds)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feeds)
        best = min(best, time.perf_counter() - start)
    return round(best * 1e3, 1)


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(
        model.SerializeToString(), session_options(2), providers=["CPUExecutionProvider"]
    )


def _model(nodes: list[onnx.NodeProto], inputs: list[tuple[str, int, list]]) -> onnx.ModelProto:
    values = [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs]
    axis = helper.make_tensor("axis3", TensorProto.INT64, [1], [3])
    out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    graph = helper.make_graph(nodes, "resize", values, out, initializer=[axis])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def dense_down() -> onnx.ModelProto:
    """uint8 NHWC -> float NCHW at the inference size with two dense MatMuls."""
    n = helper.make_node
    nodes = [
        n("Cast", ["f"], ["x"], to=TensorProto.FLOAT),
        n("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
        n("MatMul", ["ah", "t"], ["a"]),
        n("MatMul", ["a", "awt"], ["y"]),
    ]
    u8, f32 = TensorProto.UINT8, TensorProto.FLOAT
    return _model(nodes, [("f", u8, ["N", "H", "W", 3]), ("ah", f32, ["IH", "H"]), ("awt", f32, ["W", "IW"])])


def taps_down() -> onnx.ModelProto:
    """The same with taps, as `graph._Nodes.normalised_input` lays it out."""
    n = helper.make_node
    nodes = [
        n("Cast", ["f"], ["x"], to=TensorProto.FLOAT),
        n("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
        n("Gather", ["t", "hi"], ["g1"], axis=2),
        n("Mul", ["g1", "hw"], ["m1"]),
        n("ReduceSum", ["m1", "axis3"], ["s1"], keepdims=0),
        n("Transpose", ["s1"], ["t1"], perm=[0, 1, 3, 2]),
        n("Gather", ["t1", "wi"], ["g2"], axis=2),
        n("Mul", ["g2", "ww"], ["m2"]),
        n("ReduceSum", ["m2", "axis3"], ["s2"], keepdims=0),
        n("Transpose", ["s2"], ["y"], perm=[0, 1, 3, 2]),
    ]
    u8, f32, i32 = TensorProto.UINT8, TensorProto.FLOAT, TensorProto.INT32
    taps = [
        ("wi", i32, ["IW", "K"]),
        ("ww", f32, ["IW", "K", 1]),
        ("hi", i32, ["IH", "L"]),
        ("hw", f32, ["IH", "L", 1]),
    ]
    return _model(nodes, [("f", u8, ["N", "H", "W", 3]), *taps])


def stand_in_network() -> onnx.ModelProto:
    """A MODNet-shaped 1x1 convolution + sigmoid: the deployment graph around it is all wrapper."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1, 3, 1, 1], [0.3, 0.3, 0.3])
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"]), helper.make_node("Sigmoid", ["c"], ["output"])]
    dims = ["N", None, "H", "W"]
    graph = helper.make_graph(
        nodes,
        "stand_in",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [d or 3 for d in dims])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [d or 1 for d in dims])],
        initializer=[weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def resize_cost(sizes: Sequence[tuple[int, int]], ref_size: int) -> list[dict]:
    dense, taps = _session(dense_down()), _session(taps_down())
    wrappers = {
        o: _session(build(stand_in_network(), DeploySpec(outputs=(o,), ref_size=ref_size)))
        for o in ("alpha", "rgba")
    }
    rows = []
    for h, w in sizes:
        ih, iw = inference_size(h, w, ref_size)
        frames = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
        ah, awt = area_weights(h, ih).astype(np.float32), area_weights(w, iw).T.astype(np.float32)
        th, tw = area_taps(h, ih), area_taps(w, iw)
        feeds = {
            "f": frames,
            "wi": tw.index,
            "ww": tw.weight[..., None],
            "hi": th.index,
            "hw": th.weight[..., None],
        }
        row = {
            "frame": [w, h],
            "inference": [iw, ih],
            "down_dense_matmul_ms": timed(dense, {"f": frames, "ah": ah, "awt": awt}),
            "down_taps_ms": timed(taps, feeds),
        }
        for output, session in wrappers.items():
            full = {"frames": frames, **size_feeds(DeploySpec(ref_size=ref_size), h, w)}
            row[f"whole_wrapper_{output}_ms"] = timed(session, full)
        rows.append(row)
        print(f"resize cost {row}", file=sys.stderr)
    return rows


def summary(rows: list[dict], key: str) -> dict[str, float]:
    means = [r[key]["mean"] for r in rows]
    return {
        "mean_of_means": round(float(np.mean(means)), 4),
        "worst_mean": max(means),
        "worst_p99": max(r[key]["p99"] for r in rows),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.parity", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="MODNet ONNX (default: the stand-in checkpoint, exported)")
    p.add_argument("--random-weights", action="store_true", help="seeded random weights (stress case)")
    p.add_argument("--ref-size", type=int, default=DEFAULT_REF_SIZE)
    p.add_argument("--frames-per-video", type=int, default=3)
    p.add_argument("--fp16-inputs", type=int, default=3, help="inputs for the FP16 check (0: skip it)")
    p.add_argument("--fp16-ablation", action="store_true", help="also convert InstanceNormalization")
    p.add_argument(
        "-o", "--output", type=Path, help="JSON to write (default benchmarks/results/parity_*.json)"
    )
    return p.parse_args(argv)


def write_result(output: Path, result: dict) -> None:
    """A benchmark's JSON, its folder made if needed; says where on stderr."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {output}", file=sys.stderr)


def export_model(folder: Path, random_weights: bool) -> Path:
    from trt_modnet.modnet.checkpoint import load_checkpoint
    from trt_modnet.modnet.export import export_onnx, random_model

    path = folder / "modnet.onnx"
    if random_weights:
        export_onnx(random_model(7), path, random_seed=7)
    else:
        export_onnx(load_checkpoint(CHECKPOINT), path)
    return path


def fp16_subset(inputs: Inputs, count: int) -> Inputs:
    """One portrait, then one frame of each video (the first of its picks), up to `count`."""
    seen: set[str] = set()
    picked = []
    for name, rgb in inputs:
        source = name.split("#")[0] if "#" in name else "portraits"
        if source not in seen:
            seen.add(source)
            picked.append((name, rgb))
    return picked[:count]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    label = "random" if args.random_weights else ("synthetic" if args.model is None else args.model.stem)
    output = args.output or RESULTS / f"parity_{label}.json"
    inputs = shared_inputs(args.frames_per_video)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or export_model(Path(tmp), args.random_weights)
        rows = parity(model, inputs, args.ref_size)
        drift = fp16_drift(
            load_modnet(model), fp16_subset(inputs, args.fp16_inputs), args.ref_size, args.fp16_ablation
        )
    result = {
        "command": "python -m benchmarks.parity " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": label,
        "ref_size": args.ref_size,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "versions": {"onnxruntime": ort.__version__, "opencv": cv2.__version__, "onnx": onnx.__version__},
        "units": "1/255 (alpha bytes)",
        "parity_vs_official": {
            "summary": {k: summary(rows, k) for k in rows[0] if isinstance(rows[0][k], dict)},
            "inputs": rows,
        },
        "fp16_vs_fp32": {"recipe": json.loads(fp16.RECIPE), "inputs": drift},
        "resize_cost": resize_cost([(720, 1280), (1080, 1920)], args.ref_size),
    }
    write_result(output, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
