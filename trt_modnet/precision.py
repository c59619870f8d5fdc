"""CPU precision recipes: which parts of the deployment graph run in which precision, and the drift gate.

A recipe never lowers the pixel arithmetic: casts, the INTER_AREA taps, normalisation, rounding and
compositing stay FP32 in every recipe, because bf16 keeps 8 significant bits and the taps sum hundreds
of pixels. OpenVINO applies `INFERENCE_PRECISION_HINT` to a whole compiled model (the per-node
`disable_fp16_compression` mark does not survive its CPU transformations: measured, no change), so a
recipe is a partition of the one deployment graph into stages, each compiled with its own precision and
chained tensor to tensor.

Where the drift comes from, measured with the stand-in model against the FP32 graph (OpenVINO 2026.4,
2-core Xeon with AMX; mean / p99 / max |delta alpha| in 1/255, worst of four inputs: a 720p, a 360p and a
240p frame and a P3M portrait):

    whole graph in bf16                                     0.85 / 16 / 129  (720p frame only)
    pixels FP32, MODNet bf16                                0.48 /  9 /  68  (720p frame only)
    pixels and backbone FP32, the rest bf16                 0.24 /  5 /  31
    ... and the fusion or low-resolution branch FP32        0.23 /  5 /  28  (no help)
    ... and the detail (hr) branch FP32                     0.04 /  1 /   2
    ... and the detail branch but its last block FP32       0.07 /  1 /   5  <- the `bf16` recipe

The detail branch refines edges from the image at 1/2 and 1/4 resolution, where bf16's 8 significant
bits show; its last block (`conv_hr2x`, the largest) is robust. So the recipe keeps the backbone and
the detail branch up to `conv_hr2x` in FP32 (about 7 of MODNet's 27 GMACs at 512x896) and runs the SE
block, the low-resolution branch, `conv_hr2x` and the fusion branch in bf16. `python -m
benchmarks.precision` measures it on every shared input (benchmarks/results/precision_*.json).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import onnx
from onnx.utils import Extractor

from trt_modnet.errors import MattingError
from trt_modnet.graph import WRAPPER_PREFIX

PRECISIONS = ("auto", "fp32", "bf16", "bf16-fast", "fp16")
#: The lowered precision OpenVINO runs each recipe's low stages in.
LOW = {"bf16": "bf16", "bf16-fast": "bf16"}

#: A precision is eligible as a default only inside these bounds on every shared input (1/255 units).
MAX_DEFAULT_MEAN = 0.5
MAX_DEFAULT_P99 = 3.0


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
        "MODNet in bf16 but its backbone and the start of its detail branch; pixel operations FP32",
        Drift(0.076, 1.0, 5.0),
    ),
    # About 1.35x faster than `bf16` on a 2-core Xeon with AMX, but outside the default bounds: opt-in.
    "bf16-fast": Recipe(
        "bf16-fast",
        "MODNet in bf16 but its backbone; pixel operations FP32",
        Drift(0.237, 5.0, 31.0),
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
    """The deployment graph cut for `recipe` into runs of nodes of one precision, in graph order."""
    graph_inputs = tuple(i.name for i in deploy.graph.input)
    graph_outputs = tuple(o.name for o in deploy.graph.output)
    if recipe == "fp32":
        return [Stage(deploy, "f32", graph_inputs, graph_outputs)]
    if recipe not in LOW:
        raise MattingError(f"precision {recipe!r} has no CPU recipe; choose from {', '.join(RECIPES)}")
    low = _bf16_nodes(deploy, keep_detail=recipe == "bf16")
    runs: list[tuple[str, list[onnx.NodeProto]]] = []
    for i, node in enumerate(deploy.graph.node):
        precision = LOW[recipe] if i in low else "f32"
        if runs and runs[-1][0] == precision:
            runs[-1][1].append(node)
        else:
            runs.append((precision, [node]))
    extractor = Extractor(onnx.shape_inference.infer_shapes(deploy))
    initializers = {i.name for i in deploy.graph.initializer}
    result = []
    for i, (precision, nodes) in enumerate(runs):
        made = {o for n in nodes for o in n.output}
        later = {t for _, rest in runs[i + 1 :] for n in rest for t in n.input} | set(graph_outputs)
        needed = dict.fromkeys(t for n in nodes for t in n.input if t and t not in made | initializers)
        outputs = [t for n in nodes for t in n.output if t in later]
        model = extractor.extract_model(list(needed), outputs)
        result.append(Stage(model, precision, tuple(needed), tuple(outputs)))
    return result


def unavailable_reason(deploy: onnx.ModelProto, recipe: str) -> str | None:
    """Why `recipe` cannot cut this graph (a model without the expected structure), or None."""
    try:
        stages(deploy, recipe)
    except MattingError as exc:
        return str(exc)
    return None


def _bf16_nodes(deploy: onnx.ModelProto, *, keep_detail: bool) -> set[int]:
    """Indices of MODNet's nodes that run in bf16: all but the backbone and most of the detail branch.

    The backbone is every ancestor of the SE block's global average pool (the only one in MODNet). The
    high-resolution (detail) branch is found by its module scope in the node or tensor names, which the
    official export, ours and the torch-free converter all carry; only its last block, `conv_hr2x`, runs
    in bf16.
    """
    nodes = list(deploy.graph.node)
    network = [i for i, n in enumerate(nodes) if not n.name.startswith(WRAPPER_PREFIX)]
    pools = [i for i in network if nodes[i].op_type == "GlobalAveragePool"]
    detail = [i for i in network if _in_module(nodes[i], "hr_branch")]
    if len(pools) != 1 or not detail:
        raise MattingError(
            "--precision bf16 needs MODNet's SE block (one GlobalAveragePool) and module-scoped node names "
            f"(found {len(pools)} pools, {len(detail)} hr_branch nodes): convert the checkpoint with "
            "python -m trt_modnet.models or re-export it with python -m trt_modnet.export, or use "
            "--precision fp32"
        )
    producer = {out: i for i in network for out in nodes[i].output}
    fp32: set[int] = set()
    todo = list(nodes[pools[0]].input)
    while todo:
        i = producer.get(todo.pop())
        if i is not None and i not in fp32:
            fp32.add(i)
            todo.extend(nodes[i].input)
    if keep_detail:
        fp32 |= {i for i in detail if not _in_module(nodes[i], "conv_hr2x")}
    return set(network) - fp32


def _in_module(node: onnx.NodeProto, module: str) -> bool:
    """Whether a node belongs to a MODNet module, by its name or its outputs' names: PyTorch's exporter
    scopes both (`/hr_branch/conv_hr2x/...`), trt_modnet.models.emit the outputs (`hr_branch.conv_hr2x`)."""
    return module in node.name or any(module in out for out in node.output)
