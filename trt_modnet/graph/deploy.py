"""The deployment graph: any MODNet ONNX wrapped so that uint8 frames go in and uint8 results come out.

    frames uint8 [N,H,W,3] RGB ──cast──> INTER_AREA down to the inference size ──> (x - 127.5) / 127.5
      ──> MODNet ──> matte * 255 ──> INTER_AREA back to H x W ──> round ──> alpha / rgba / composite

ONNX Runtime runs it on the CPU and TensorRT compiles it, so both do every per-pixel operation the same
way (DESIGN.md, principle 1).

One exception, by measurement: on the CPU the host makes MODNet's input (`DeploySpec.host_input`, the
graph input `image`, made by `official.network_input` with OpenCV's own INTER_AREA, as the official
script does). The taps below cost OpenVINO 32 ms of one core per 720p frame (Gathers that run in its
reference kernel, and three full-size transposes), OpenCV 6 ms; with the bf16 recipe that made
inference 8% faster (284 against 307 ms per 720p frame, medians, composite, 2-core AMD EPYC,
alternated: `benchmarks.host_input`). The matte moves by at most one step against the whole graph (mean
3e-5). Everything after MODNet stays in the graph.

Resize. The official procedure resizes with OpenCV's INTER_AREA both ways. TensorRT's ONNX parser
supports Resize only in `nearest`/`linear` modes without antialiasing (onnx-tensorrt docs/operators.md),
so the graph applies OpenCV's own INTER_AREA weights (`trt_modnet.graph.resize`), per axis, as k taps: Gather
the k input rows of each output row, multiply by their weights, ReduceSum. Against the official matte
(stand-in model, 24 shared inputs, mean |delta alpha| in 1/255; `python -m benchmarks.parity`, results in
benchmarks/results/parity_synthetic.json):

    this graph (INTER_AREA taps, official truncation)   0.000-0.057   p99 <= 1, max <= 2
    INTER_AREA both ways, rounded once at the end        0.41-0.69    (the official truncation's bias)
    INTER_AREA down, bilinear up                         0.51-1.29
    bilinear both ways (ONNX Resize linear)              0.54-14.5    p99 up to 214

The matte is truncated to whole alpha steps at the inference size (Floor(matte * 255)), as the official
script's `astype(uint8)` does, then resized up in float and rounded once: that is what brings the
difference from ~0.5/255 down to OpenCV's fixed-point rounding of its uint8 upscale.

Cost on the CPU (ONNX Runtime 1.32, 2 threads, best of 5, on a shared 2-core machine; same benchmark):

    down-resize to 896x512            dense MatMul   taps
    from 1280x720                        38 ms         10 ms
    from 1920x1080                       72 ms         15 ms
    everything but MODNet (rgba)         25 ms at 720p, 46 ms at 1080p (MODNet: ~550 ms)

Of three tap layouts measured (1080p: 44, 60 and 104 ms under load), the fastest keeps the resized axis
away from the last one so that every Gather moves whole rows: NCHW, height first.

Shape arithmetic. The tap indices and weights are graph inputs computed on the host once per video
(`size_feeds`); their shapes carry the inference size, so the graph holds no shape arithmetic at all
(no Shape/Div/Floor on shape tensors) and TensorRT builds it with dynamic H and W. Gather, Mul,
ReduceSum (constant axes), Transpose, Unsqueeze/Squeeze (constant axes), Clip, Floor, Concat and Cast
to/from uint8 at the graph's edges are all on TensorRT's ONNX operator list.

Rounding. Every Cast to uint8 takes a value that is already an integer (Floor(Clip(x + 0.5, 0, 255))), so
ONNX Runtime and TensorRT give the same bytes whatever their float-to-int conversion does.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from trt_modnet.cli import run_main
from trt_modnet.errors import MattingError
from trt_modnet.graph import fp16
from trt_modnet.graph.modelfile import RANDOM_WEIGHTS_KEY, check_modnet_signature, load_modnet
from trt_modnet.graph.official import DEFAULT_REF_SIZE, SIZE_MULTIPLE, inference_size
from trt_modnet.graph.resize import area_taps

OUTPUTS = ("alpha", "rgba", "composite")
FRAMES = "frames"
BACKGROUND = "background"
#: MODNet's input prepared on the host (`DeploySpec.host_input`): float32 [N,3,IH,IW] in [-1,1].
IMAGE = "image"
DOWN_FEEDS = ("down_h_index", "down_h_weight", "down_w_index", "down_w_weight")
# Per axis: tap indices (int32) and weights (float32), both [out, k]; see trt_modnet.graph.resize.
SIZE_FEEDS = (
    "down_h_index",
    "down_h_weight",
    "down_w_index",
    "down_w_weight",
    "up_h_index",
    "up_h_weight",
    "up_w_index",
    "up_w_weight",
)
OPSET = 17  # the lowest opset with every op signature used here (ReduceSum/Squeeze axes as inputs)
MIN_IR_VERSION = 8  # the IR version of opset 17

_META = "trt_modnet.deploy."
META_OUTPUTS = _META + "outputs"
META_REF_SIZE = _META + "ref_size"
META_PRECISION = _META + "precision"
META_SOURCE = _META + "source_sha256"
META_FP16_RECIPE = _META + "fp16_recipe"
META_HOST_INPUT = _META + "host_input"

_PREFIX = "modnet/"
#: Every node the wrapper adds is named `deploy/...`; the network's nodes keep theirs (or none).
WRAPPER_PREFIX = "deploy/"
# MODNet's input and float matte inside the deployment graph, whatever the source model named them
# (the engine builder and the FP16 check look the matte up by this name).
NETWORK_INPUT = _PREFIX + "input"
NETWORK_MATTE = "matte"

log = logging.getLogger("trt_modnet")


@dataclass(frozen=True)
class DeploySpec:
    """What a deployment graph computes: its outputs (in order), the official rule's ref_size, precision,
    and whether the host prepares MODNet's input (`host_input`: the graph then takes `IMAGE`, made by
    `official.network_input`, instead of resizing the frames itself; the CPU runners' choice)."""

    outputs: tuple[str, ...] = ("rgba",)
    ref_size: int = DEFAULT_REF_SIZE
    fp16: bool = False
    host_input: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "outputs", tuple(self.outputs))  # hashable even when given a list
        unknown = [o for o in self.outputs if o not in OUTPUTS]
        if not self.outputs or unknown or len(set(self.outputs)) != len(self.outputs):
            raise MattingError(
                f"outputs {','.join(self.outputs) or '(none)'}: choose one or more of {', '.join(OUTPUTS)}"
            )
        if self.ref_size < SIZE_MULTIPLE:
            raise MattingError(f"ref_size {self.ref_size}: must be at least {SIZE_MULTIPLE}")


def input_names(spec: DeploySpec) -> tuple[str, ...]:
    """The graph's inputs in order: frames (unless only MODNet's input is fed and only alpha comes out),
    the background for composites, MODNet's input when the host prepares it, then the size feeds."""
    frames = not spec.host_input or set(spec.outputs) != {"alpha"}
    return (
        *((FRAMES,) if frames else ()),
        *((BACKGROUND,) if "composite" in spec.outputs else ()),
        *((IMAGE,) if spec.host_input else ()),
        *(f for f in SIZE_FEEDS if not (spec.host_input and f in DOWN_FEEDS)),
    )


def size_feeds(spec: DeploySpec, height: int, width: int, taps: int | None = None) -> dict[str, np.ndarray]:
    """The per-video inputs for frames of height x width: INTER_AREA taps down to the inference size
    of the official rule and back up.

    Their shapes are [inference or frame side, k], k the taps per output (2-6 depending on the scale).
    Neither the inference size nor k is monotonic in the frame size (the official rule keeps sizes near
    ref_size and scales the others), so a TensorRT profile covering a range of frame sizes must take the
    elementwise min and max of these shapes over the sizes it should serve, not only at its ends.
    `taps` pads every axis to that many taps (zero weights; ValueError when an axis needs more): TensorRT
    engines take a constant k (`tensorrt.profiles.profile_taps`); the CPU path keeps the natural k.
    """
    ih, iw = inference_size(height, width, spec.ref_size)
    axes = {
        "down_h": area_taps(height, ih, taps),
        "down_w": area_taps(width, iw, taps),
        "up_h": area_taps(ih, height, taps),
        "up_w": area_taps(iw, width, taps),
    }
    feeds: dict[str, np.ndarray] = {}
    for name, taps in axes.items():
        feeds[f"{name}_index"] = taps.index
        feeds[f"{name}_weight"] = taps.weight
    return {name: feeds[name] for name in input_names(spec) if name in feeds}


def build(modnet: onnx.ModelProto, spec: DeploySpec) -> onnx.ModelProto:
    """The deployment graph of a MODNet ONNX (FP16 network when `spec.fp16`, pixel arithmetic in FP32)."""
    check_modnet_signature(modnet, "MODNet model")
    _check_dynamic(modnet)
    network = _at_opset(modnet)
    if spec.fp16:
        network = fp16.convert_network(network)
    network = _renamed(onnx.compose.add_prefix(network, _PREFIX))

    nodes = _Nodes()
    takes = input_names(spec)
    frames = nodes.op("Cast", [FRAMES], to=TensorProto.FLOAT) if FRAMES in takes else ""
    if spec.host_input:
        nodes.nodes.append(
            helper.make_node("Identity", [IMAGE], [NETWORK_INPUT], name=f"{WRAPPER_PREFIX}image")
        )
    else:
        nodes.normalised_input(frames, NETWORK_INPUT)
    nodes.extend(network.graph.node)
    alpha = nodes.matte_to_alpha(NETWORK_MATTE)  # [N,H,W]
    if {"rgba", "composite"} & set(spec.outputs):
        alpha4 = nodes.op("Unsqueeze", [alpha, nodes.const_i64("axis3", [3])])  # [N,H,W,1]
    outputs = {
        "alpha": lambda: nodes.to_uint8(alpha),
        "rgba": lambda: nodes.to_uint8(nodes.op("Concat", [frames, alpha4], axis=3)),
        "composite": lambda: nodes.to_uint8(nodes.composite(frames, alpha4)),
    }
    for name in spec.outputs:
        nodes.rename(outputs[name](), name)

    graph = helper.make_graph(
        nodes.nodes,
        "trt_modnet_deploy",
        _graph_inputs(spec),
        _graph_outputs(spec),
        initializer=[*network.graph.initializer, *nodes.initializers],
        value_info=network.graph.value_info,
    )
    model = helper.make_model(
        graph,
        opset_imports=network.opset_import,
        ir_version=max(network.ir_version, MIN_IR_VERSION),
        producer_name="trt_modnet",
    )
    helper.set_model_props(model, _metadata(modnet, spec))
    onnx.checker.check_model(model)
    return model


def spec_of(deploy: onnx.ModelProto) -> DeploySpec:
    """Read back the spec a deployment graph was built with (from its metadata)."""
    props = {p.key: p.value for p in deploy.metadata_props}
    missing = [k for k in (META_OUTPUTS, META_REF_SIZE, META_PRECISION) if k not in props]
    if missing:
        raise MattingError(
            f"not a trt_modnet deployment graph: metadata {', '.join(missing)} missing "
            "(build one with python -m trt_modnet.graph.deploy)"
        )
    return DeploySpec(
        outputs=tuple(props[META_OUTPUTS].split(",")),
        ref_size=int(props[META_REF_SIZE]),
        fp16=props[META_PRECISION] == "fp16",
        host_input=props.get(META_HOST_INPUT) == "1",
    )


def _check_dynamic(modnet: onnx.ModelProto) -> None:
    """Batch, height and width must be free: the graph feeds any batch at the inference size."""
    value = _real_inputs(modnet)[0]
    dims = value.type.tensor_type.shape.dim
    fixed = {
        n: dims[i].dim_value for i, n in ((0, "batch"), (2, "height"), (3, "width")) if dims[i].dim_value
    }
    if fixed:
        found = ", ".join(f"{k} {v}" for k, v in fixed.items())
        raise MattingError(
            f"MODNet model input {value.name!r} has a fixed {found}: expected dynamic batch, height and "
            "width (export with dynamic axes, as the official export_onnx.py does)"
        )


def _renamed(network: onnx.ModelProto) -> onnx.ModelProto:
    """The network with its input and output tensors named NETWORK_INPUT and NETWORK_MATTE."""
    renames = {_real_inputs(network)[0].name: NETWORK_INPUT, network.graph.output[0].name: NETWORK_MATTE}
    for node in network.graph.node:
        for names in (node.input, node.output):
            for i, name in enumerate(names):
                names[i] = renames.get(name, name)
    return network


def _real_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializers = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def _at_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model at opset 17 or later, so that the wrapper's ops share one opset with it."""
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if version >= OPSET:
        return model
    try:
        return onnx.version_converter.convert_version(model, OPSET)
    except Exception as exc:  # the converter raises bare RuntimeErrors and ValidationErrors
        raise MattingError(
            f"MODNet model at opset {version}: cannot convert it to opset {OPSET} ({exc}); "
            f"re-export it with opset {OPSET} or later"
        ) from None


def _graph_inputs(spec: DeploySpec) -> list[onnx.ValueInfoProto]:
    u8, f32, i32 = TensorProto.UINT8, TensorProto.FLOAT, TensorProto.INT32
    shapes = {
        FRAMES: (u8, ["N", "H", "W", 3]),
        # One background per video ([1,...]) or one per frame ([N,...]): broadcast over the batch.
        BACKGROUND: (u8, ["NB", "H", "W", 3]),
        IMAGE: (f32, ["N", 3, "IH", "IW"]),
    }
    sides = {"down_h": "IH", "down_w": "IW", "up_h": "H", "up_w": "W"}
    for axis, side in sides.items():
        k = f"{axis.upper()}_TAPS"
        shapes[f"{axis}_index"] = (i32, [side, k])
        shapes[f"{axis}_weight"] = (f32, [side, k])
    return [helper.make_tensor_value_info(name, *shapes[name]) for name in input_names(spec)]


def _graph_outputs(spec: DeploySpec) -> list[onnx.ValueInfoProto]:
    shapes = {"alpha": ["N", "H", "W"], "rgba": ["N", "H", "W", 4], "composite": ["N", "H", "W", 3]}
    return [helper.make_tensor_value_info(o, TensorProto.UINT8, shapes[o]) for o in spec.outputs]


def _metadata(modnet: onnx.ModelProto, spec: DeploySpec) -> dict[str, str]:
    props = {
        META_OUTPUTS: ",".join(spec.outputs),
        META_REF_SIZE: str(spec.ref_size),
        META_PRECISION: "fp16" if spec.fp16 else "fp32",
        META_SOURCE: hashlib.sha256(modnet.SerializeToString(deterministic=True)).hexdigest(),
    }
    if spec.fp16:
        props[META_FP16_RECIPE] = fp16.RECIPE
    if spec.host_input:
        props[META_HOST_INPUT] = "1"
    props.update({p.key: p.value for p in modnet.metadata_props if p.key == RANDOM_WEIGHTS_KEY})
    return props


class _Nodes:
    """Accumulates the wrapper's nodes and constants, naming every tensor `deploy/<n>`."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def op(self, op_type: str, inputs: Sequence[str], **attrs: object) -> str:
        self._count += 1
        out = f"{WRAPPER_PREFIX}{op_type.lower()}_{self._count}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def extend(self, nodes: Sequence[onnx.NodeProto]) -> None:
        self.nodes.extend(nodes)

    def rename(self, tensor: str, name: str) -> None:
        """Make the last node that produced `tensor` write the graph output `name` instead."""
        node = next(n for n in reversed(self.nodes) if tensor in n.output)
        node.output[list(node.output).index(tensor)] = name

    def const(self, name: str, value: float) -> str:
        full = f"{WRAPPER_PREFIX}{name}"
        if all(i.name != full for i in self.initializers):
            self.initializers.append(numpy_helper.from_array(np.array(value, dtype=np.float32), full))
        return full

    def const_i64(self, name: str, values: list[int]) -> str:
        full = f"{WRAPPER_PREFIX}{name}"
        if all(i.name != full for i in self.initializers):
            self.initializers.append(numpy_helper.from_array(np.array(values, dtype=np.int64), full))
        return full

    def resize_axis(self, x: str, feed: str, axis: int, trailing: int) -> str:
        """Resize `x` along `axis` with the taps of input `feed`; `trailing` dims follow that axis."""
        axes = self.const_i64(f"unsqueeze{trailing}", list(range(2, 2 + trailing)))
        weight = self.op("Unsqueeze", [f"{feed}_weight", axes])  # [out, k, 1, ...]
        gathered = self.op("Gather", [x, f"{feed}_index"], axis=axis)  # [.., out, k, trailing]
        weighted = self.op("Mul", [gathered, weight])
        return self.op("ReduceSum", [weighted, self.const_i64(f"axis{axis + 1}", [axis + 1])], keepdims=0)

    def normalised_input(self, frames: str, net_in: str) -> None:
        """float NHWC frames -> MODNet's input: INTER_AREA down, NCHW, (x - 127.5) / 127.5."""
        # Each Gather takes whole rows (the resized axis is never the last; see the module docstring).
        # The official procedure normalises before resizing: the same linear map, as every row of
        # weights sums to 1.
        t = self.op("Transpose", [frames], perm=[0, 3, 1, 2])  # [N,3,H,W]
        t = self.resize_axis(t, "down_h", 2, 1)  # [N,3,IH,W]
        t = self.op("Transpose", [t], perm=[0, 1, 3, 2])  # [N,3,W,IH]
        t = self.resize_axis(t, "down_w", 2, 1)  # [N,3,IW,IH]
        t = self.op("Transpose", [t], perm=[0, 1, 3, 2])  # [N,3,IH,IW]
        t = self.op("Mul", [t, self.const("inv127_5", 1 / 127.5)])
        name = f"{WRAPPER_PREFIX}normalise"
        node = helper.make_node("Sub", [t, self.const("one", 1.0)], [net_in], name=name)
        self.nodes.append(node)

    def matte_to_alpha(self, matte: str) -> str:
        """MODNet's [N,1,IH,IW] matte in [0,1] -> float [N,H,W] holding the alpha bytes 0..255."""
        # Floor: the official script's astype(uint8) at the inference size (see the module docstring).
        t = self.op("Floor", [self.op("Mul", [matte, self.const("c255", 255.0)])])
        # Without the channel axis the last reduction runs over whole rows of W (OpenVINO: 3x faster).
        t = self.op("Squeeze", [t, self.const_i64("axis1", [1])])  # [N,IH,IW]
        t = self.op("Transpose", [t], perm=[0, 2, 1])  # [N,IW,IH]
        t = self.resize_axis(t, "up_w", 1, 1)  # [N,W,IH]
        t = self.op("Transpose", [t], perm=[0, 2, 1])  # [N,IH,W]
        t = self.resize_axis(t, "up_h", 1, 1)  # [N,H,W]
        return self.round_byte(t)

    def composite(self, frames: str, alpha: str) -> str:
        """frame * a + background * (1 - a), a = alpha / 255 of the alpha bytes (so it equals a numpy
        blend of the written matte)."""
        background = self.op("Cast", [BACKGROUND], to=TensorProto.FLOAT)
        a = self.op("Div", [alpha, self.const("c255", 255.0)])
        diff = self.op("Sub", [frames, background])
        return self.round_byte(self.op("Add", [background, self.op("Mul", [diff, a])]))

    def round_byte(self, x: str) -> str:
        """Round half up and clip to 0..255, still float: exact for any later Cast."""
        t = self.op("Add", [x, self.const("half", 0.5)])
        t = self.op("Clip", [t, self.const("zero", 0.0), self.const("c255", 255.0)])
        return self.op("Floor", [t])

    def to_uint8(self, x: str) -> str:
        return self.op("Cast", [x], to=TensorProto.UINT8)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m trt_modnet.graph.deploy",
        description="Write the deployment graph of a MODNet ONNX: uint8 frames [N,H,W,3] in, uint8 "
        "alpha / rgba / composite out, INTER_AREA resizing and normalisation inside. ONNX Runtime runs "
        "it; trtexec and trt_modnet's engine builder compile it.",
    )
    p.add_argument(
        "model", type=Path, help="MODNet ONNX (the official export or python -m trt_modnet.export)"
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="deployment ONNX to write")
    p.add_argument(
        "--outputs", default="rgba", help=f"comma-separated, from {','.join(OUTPUTS)} (default rgba)"
    )
    p.add_argument("--ref-size", type=int, default=DEFAULT_REF_SIZE, help="official ref_size (default 512)")
    p.add_argument(
        "--fp16", action="store_true", help="mixed precision for TensorRT (see trt_modnet.graph.fp16)"
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    spec = DeploySpec(outputs=tuple(args.outputs.split(",")), ref_size=args.ref_size, fp16=args.fp16)
    out: Path = args.output
    if not out.parent.is_dir():
        raise MattingError(f"{out}: the folder {out.parent} does not exist")
    deploy = build(load_modnet(args.model), spec)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        onnx.save(deploy, str(tmp))
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    precision = "fp16" if spec.fp16 else "fp32"
    log.info("wrote %s (outputs %s, ref_size %d, %s)", out, ",".join(spec.outputs), spec.ref_size, precision)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
