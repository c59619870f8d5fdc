"""CPU precision recipes: which parts of the deployment graph run in which precision, and the drift gate.

A recipe never lowers the pixel arithmetic: casts, the INTER_AREA taps, normalisation, rounding and
compositing stay FP32 in every recipe, because bf16 keeps 8 significant bits and the taps sum hundreds
of pixels. OpenVINO applies `INFERENCE_PRECISION_HINT` to a whole compiled model (the per-node
`disable_fp16_compression` mark does not survive its CPU transformations: measured, no change), so a
recipe is a partition of the one deployment graph into stages, each compiled with its own precision and
chained tensor to tensor.

Measured with the stand-in model against the FP32 graph on frames of the shared 720p video (OpenVINO
2026.4, 2-core Xeon with AMX; `python -m benchmarks.precision` gives every shared input):

    whole graph in bf16                        mean 0.85/255, p99 16, max 129
    pixels FP32, MODNet bf16                   mean 0.48/255, p99 9,  max 68
    pixels FP32, MODNet bf16 from the SE block mean 0.48/255, p99 9   (backbone bf16, rest FP32)
    pixels and backbone FP32, the rest bf16    mean 0.05/255, p99 1,  max 6

So the drift comes from the MobileNetV2 backbone in bf16, which is about a tenth of MODNet's MACs; the
`bf16` recipe keeps it FP32 and runs the SE block, the low-resolution, high-resolution and fusion
branches in bf16.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import onnx
from onnx.utils import Extractor

from trt_modnet.errors import MattingError
from trt_modnet.graph import BACKGROUND, FRAMES, NETWORK_MATTE, SIZE_FEEDS

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

#: A precision is eligible as a default only inside these bounds on every shared input (1/255 units).
MAX_DEFAULT_MEAN = 0.5
MAX_DEFAULT_P99 = 3.0

_NETWORK_PREFIX = "modnet/"


@dataclass(frozen=True)
class Drift:
    """|delta alpha| against the FP32 graph, in 1/255, the worst over the inputs measured."""

    mean: float
    p99: float
    max: float

    def within_default_bounds(self) -> bool:
        return self.mean <= MAX_DEFAULT_MEAN and self.p99 <= MAX_DEFAULT_P99


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    #: Worst drift over the shared videos and portraits, stand-in model (benchmarks/results/precision_*.json).
    drift: Drift

    @property
    def eligible_as_default(self) -> bool:
        return self.drift.within_default_bounds()


RECIPES = {
    "fp32": Recipe("fp32", "everything in FP32", Drift(0.0, 0.0, 0.0)),
    "bf16": Recipe(
        "bf16",
        "MODNet after its MobileNetV2 backbone in bf16; backbone and pixel operations FP32",
        Drift(0.066, 1.0, 10.0),
    ),
}


def default_recipe(candidates: Sequence[str]) -> Recipe:
    """The fastest eligible recipe among `candidates` (ordered fastest first); fp32 when none is."""
    for name in candidates:
        recipe = RECIPES[name]
        if recipe.eligible_as_default:
            return recipe
    return RECIPES["fp32"]


@dataclass(frozen=True)
class Stage:
    """A piece of the deployment graph compiled on its own: its ONNX, its precision, its tensors."""

    model: onnx.ModelProto
    precision: str  # "f32" or "bf16", as OpenVINO names them
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def stages(deploy: onnx.ModelProto, recipe: str) -> list[Stage]:
    """The deployment graph cut for `recipe`: one FP32 stage, or FP32 / bf16 / FP32."""
    graph_inputs = tuple(i.name for i in deploy.graph.input)
    graph_outputs = tuple(o.name for o in deploy.graph.output)
    if recipe == "fp32":
        return [Stage(deploy, "f32", graph_inputs, graph_outputs)]
    if recipe != "bf16":
        raise MattingError(f"precision {recipe!r} has no CPU recipe; choose from {', '.join(RECIPES)}")
    cut = _after_backbone(deploy)
    extractor = Extractor(onnx.shape_inference.infer_shapes(deploy))
    down = tuple(n for n in SIZE_FEEDS if n.startswith("down_"))
    up = tuple(n for n in SIZE_FEEDS if n.startswith("up_"))
    first = (FRAMES, *down)
    last = (FRAMES, *((BACKGROUND,) if BACKGROUND in graph_inputs else ()), *up, NETWORK_MATTE)
    return [
        _stage(extractor, first, cut, "f32"),
        _stage(extractor, cut, (NETWORK_MATTE,), "bf16"),
        _stage(extractor, last, graph_outputs, "f32"),
    ]


def _stage(extractor: Extractor, inputs: Sequence[str], outputs: Sequence[str], precision: str) -> Stage:
    """The subgraph from `inputs` to `outputs`; inputs it does not need (frames for alpha) are dropped."""
    model = extractor.extract_model(list(inputs), list(outputs))
    used = {i for n in model.graph.node for i in n.input}
    keep = [i for i in model.graph.input if i.name in used]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    return Stage(model, precision, tuple(i.name for i in keep), tuple(outputs))


def _after_backbone(deploy: onnx.ModelProto) -> tuple[str, ...]:
    """The tensors that cross from MODNet's backbone (and the input pixels) into the rest of MODNet.

    The backbone is every ancestor of the SE block's global average pool, the only one in MODNet.
    """
    nodes = [n for n in deploy.graph.node if n.name.startswith(_NETWORK_PREFIX)]
    pools = [n for n in nodes if n.op_type == "GlobalAveragePool"]
    if len(pools) != 1:
        raise MattingError(
            "--precision bf16 needs MODNet's SE block (one GlobalAveragePool) to find the backbone; "
            f"this model has {len(pools)}: use --precision fp32"
        )
    producer = {out: n for n in nodes for out in n.output}
    backbone: set[int] = set()
    todo = list(pools[0].input)
    while todo:
        node = producer.get(todo.pop())
        if node is not None and id(node) not in backbone:
            backbone.add(id(node))
            todo.extend(node.input)
    initializers = {i.name for i in deploy.graph.initializer}
    made = {out for n in nodes if id(n) in backbone for out in n.output}
    made |= {i for n in nodes if id(n) in backbone for i in n.input if i not in producer}
    used = {i for n in nodes if id(n) not in backbone for i in n.input}
    return tuple(sorted((made & used) - initializers))
