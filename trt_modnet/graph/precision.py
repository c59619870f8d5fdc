"""CPU precision recipes: which parts of the deployment graph run in which precision.

Which recipe a model runs with `--precision auto` is measured per model by the precision gate
(`trt_modnet.graph.gate`, docs/cpu.md); the table below is the history that chose the `bf16` partition.

A recipe never lowers the pixel arithmetic: casts, the INTER_AREA taps, normalisation, rounding and
compositing stay FP32, because bf16 keeps 8 significant bits and the taps sum hundreds of pixels.
OpenVINO applies `INFERENCE_PRECISION_HINT` to a whole compiled model, and its per-node marks cannot be
set from Python (OpenVINO 2026 reads a typed `DisablePrecisionConversion` attribute; string rt_info under
`disable_fp16_compression_0` or `precise_0` changed nothing, measured bit-identical), so a recipe is a
partition of the one deployment graph into stages, each compiled with its own precision and chained
tensor to tensor.

Where the drift comes from, measured with the stand-in model against the FP32 graph (OpenVINO 2026.4,
2-core Xeon with AMX; mean / p99 / max |delta alpha| in 1/255, worst over the inputs):

    pixels FP32, MODNet bf16 (24 shared inputs)                          3.08 / 56 / 200
    pixels and the detail branch's first block FP32 (24)                 1.23 / 25 / 127
    pixels and backbone FP32, the rest bf16 (4)                          0.24 /  5 /  31
    ... and the detail branch's 1/4-scale blocks `conv_hr4x` FP32 (7)    0.19 /  4 /  20
    ... and the detail branch but its last block FP32 (7)                0.08 /  1 /   5
    ... and only the detail branch's first block FP32 (24)               0.10 /  2 /   9  <- `bf16`

MobileNetV2's depthwise stack does not survive bf16, and neither does the detail branch's first block,
`conv_enc2x`, the only convolution that reads the image itself (at 1/2 scale): it is a 0.3 GMAC of
MODNet's ~20 at 512x896, where keeping the whole branch up to `conv_hr2x` costs 4.6 GMACs and a quarter
of the time (219 against 168 ms per 720p frame, 2 threads, batch 4, alternated in one run). So `bf16`
runs the SE block, the low-resolution branch, the detail branch from `tohr_enc4x` on and the fusion
branch in bf16, in three stages: FP32 (pixels in, backbone, `conv_enc2x`), bf16, FP32 (pixels out).
`python -m benchmarks.precision` measures it on every shared input (benchmarks/results/precision_*.json).

INT8 recipes (`Recipe.int8`, the `[int8]` extra) cut the graph the same way and have NNCF quantise the
low stage (`trt_modnet.graph.int8`). On the three models of `benchmarks.gate` every INT8 cut through the
backbone drifts 3-30/255 on average; the one within the bounds, `int8-tail`, is no faster than FP32.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx.utils import Extractor

from trt_modnet.errors import MattingError
from trt_modnet.graph.deploy import WRAPPER_PREFIX

#: Bumped whenever a recipe's partition changes: the precision gate's cached verdicts then run again.
RECIPE_VERSION = 3
#: The precision OpenVINO runs each recipe's low stages in (an INT8 recipe's: what NNCF leaves unquantised).
LOW = {
    "int8": "f32",
    "int8-head": "f32",
    "bf16-all": "bf16",
    "bf16-head": "bf16",
    "bf16": "bf16",
    "bf16-fusion": "bf16",
    "int8-tail": "f32",
}
PRECISIONS = ("auto", "fp32", *LOW, "fp16")

#: The precision gate takes a recipe only inside these bounds on every calibration frame (1/255 units).
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
    #: MODNet modules kept FP32 with everything they read (`backbone`: every ancestor of the SE block's
    #: pool, i.e. the whole MobileNetV2); the rest of MODNet runs in the low precision.
    keep_fp32: tuple[str, ...]
    #: The low stage is quantised to INT8 by NNCF (`trt_modnet.graph.int8`); then `LOW` names the
    #: precision of what stays unquantised in it, and `float_scope` the modules NNCF leaves alone.
    int8: bool = False
    float_scope: tuple[str, ...] = ()
    #: NNCF's quantisation preset: "performance" (symmetric) or "mixed" (asymmetric activations).
    preset: str = "performance"


#: Fastest first: the precision gate (`trt_modnet.graph.gate`) tries them in this order, then FP32 (INT8
#: only with NNCF installed, and only those in `gate.INT8_CANDIDATES`).
RECIPES = {
    "int8": Recipe("int8", "all of MODNet INT8 (NNCF); pixel operations FP32", (), int8=True),
    "int8-head": Recipe(
        "int8-head",
        "MODNet INT8 (NNCF) but the backbone's first blocks (to 1/4 scale) and the detail branch's first",
        ("features.3", "conv_enc2x"),
        int8=True,
    ),
    "bf16-all": Recipe("bf16-all", "all of MODNet in bf16; pixel operations FP32", ()),
    "bf16-head": Recipe(
        "bf16-head",
        "MODNet in bf16 but the backbone's first blocks (to 1/4 scale) and the detail branch's first block",
        ("features.3", "conv_enc2x"),
    ),
    "bf16": Recipe(
        "bf16",
        "MODNet in bf16 but its backbone and the detail branch's first block; pixel operations FP32",
        ("backbone", "conv_enc2x"),
    ),
    # What is left when `bf16` drifts too far (modnet_people.ckpt: 0.72/5 on the calibration frames):
    # everything that feeds the detail branch's 1/2-scale block stays FP32.
    "bf16-fusion": Recipe(
        "bf16-fusion",
        "only the semantic head, the detail branch's last block and the fusion branch in bf16",
        ("backbone", "conv_enc2x", "conv_hr2x"),
    ),
    # The only INT8 partition measured within the bounds on modnet_people.ckpt (0.47/3), and no faster
    # than FP32 there: the backbone, which does not survive INT8, is most of the time. By name only.
    "int8-tail": Recipe(
        "int8-tail",
        "only the semantic head and the detail branch's last block INT8 (NNCF); the fusion branch FP32",
        ("backbone", "conv_enc2x", "conv_hr2x"),
        int8=True,
        float_scope=("f_branch",),
    ),
    "fp32": Recipe("fp32", "everything in FP32", ()),
}


@dataclass(frozen=True)
class Stage:
    """A piece of the deployment graph compiled on its own: its ONNX, its precision, its tensors."""

    model: onnx.ModelProto
    precision: str  # "f32" or "bf16", as OpenVINO names them
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def stages(deploy: onnx.ModelProto, recipe: str) -> list[Stage]:
    """The deployment graph cut for `recipe` into as few stages of one precision as its data flow allows.

    Each node goes into the earliest stage of its precision that follows every stage it reads from (stages
    alternate FP32, low, FP32, ...), so independent FP32 work shares one stage whatever the node order:
    every boundary costs a copy and a layout change of the tensors that cross it.
    """
    graph_inputs = tuple(i.name for i in deploy.graph.input)
    graph_outputs = tuple(o.name for o in deploy.graph.output)
    if recipe == "fp32":
        return [Stage(deploy, "f32", graph_inputs, graph_outputs)]
    if recipe not in LOW:
        raise MattingError(f"precision {recipe!r} has no CPU recipe; choose from {', '.join(RECIPES)}")
    low = _low_nodes(deploy, recipe)
    nodes = list(deploy.graph.node)
    producer = {out: i for i, n in enumerate(nodes) for out in n.output}
    placed: list[int] = []
    for i, node in enumerate(nodes):  # graph order is topological
        after = max((placed[producer[t]] for t in node.input if t in producer), default=0)
        placed.append(after if after % 2 == (i in low) else after + 1)
    # Then as late as its readers allow: pixel work that reads only the graph's inputs (the composite's
    # frames and background) runs beside its use instead of sending full-size tensors across stages.
    readers: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for t in node.input:
            readers.setdefault(t, []).append(i)
    last = max(placed)
    for i in reversed(range(len(nodes))):
        bounds = [last - (last % 2 != (i in low))] if set(nodes[i].output) & set(graph_outputs) else []
        for r in (r for t in nodes[i].output for r in readers.get(t, [])):
            bounds.append(placed[r] if (r in low) == (i in low) else placed[r] - 1)
        placed[i] = max(placed[i], min(bounds, default=placed[i]))
    extractor = Extractor(onnx.shape_inference.infer_shapes(deploy))
    initializers = {i.name for i in deploy.graph.initializer}
    result = []
    for index in sorted(set(placed)):
        members = [n for n, at in zip(nodes, placed, strict=True) if at == index]
        made = {o for n in members for o in n.output}
        later = {t for n, at in zip(nodes, placed, strict=True) if at > index for t in n.input}
        needed = dict.fromkeys(t for n in members for t in n.input if t and t not in made | initializers)
        outputs = [t for n in members for t in n.output if t in later | set(graph_outputs)]
        model = extractor.extract_model(list(needed), outputs)
        result.append(Stage(model, LOW[recipe] if index % 2 else "f32", tuple(needed), tuple(outputs)))
    return result


def unavailable_reason(deploy: onnx.ModelProto, recipe: str) -> str | None:
    """Why `recipe` cannot cut this graph (a model without the expected structure), or None."""
    try:
        stages(deploy, recipe)
    except MattingError as exc:
        return str(exc)
    return None


def _low_nodes(deploy: onnx.ModelProto, recipe: str) -> set[int]:
    """Indices of MODNet's nodes that `recipe` runs in bf16: all of them but the modules it keeps FP32
    with their ancestors.

    `backbone` is every ancestor of the SE block's global average pool (the only one in MODNet); other
    modules (`conv_enc2x`, the detail branch's first block, which reads the image; `features.3`, the last
    MobileNetV2 block at 1/4 scale) are found by module scope in the node or tensor names, which the
    official export, ours and the torch-free converter all carry.
    """
    nodes = list(deploy.graph.node)
    network = [i for i, n in enumerate(nodes) if not n.name.startswith(WRAPPER_PREFIX)]
    seeds: list[int] = []
    for module in RECIPES[recipe].keep_fp32:
        if module == "backbone":
            found = [i for i in network if nodes[i].op_type == "GlobalAveragePool"]
            ok = len(found) == 1
        else:
            found = [i for i in network if _in_module(nodes[i], module)]
            ok = bool(found)
        if not ok:
            raise MattingError(
                f"--precision {recipe} needs MODNet's module-scoped node names and its SE block (one "
                f"GlobalAveragePool; {module!r}: found {len(found)} nodes): convert the checkpoint "
                "with python -m trt_modnet.models or re-export it with python -m trt_modnet.export, or use "
                "--precision fp32"
            )
        seeds.extend(found)
    producer = {out: i for i in network for out in nodes[i].output}
    fp32 = {i for i in seeds if nodes[i].op_type != "GlobalAveragePool"}
    todo = [t for i in seeds for t in nodes[i].input]
    while todo:
        i = producer.get(todo.pop())
        if i is not None and i not in fp32:
            fp32.add(i)
            todo.extend(nodes[i].input)
    return set(network) - fp32


def _in_module(node: onnx.NodeProto, module: str) -> bool:
    """Whether a node belongs to a MODNet module, by its name or its outputs' names: PyTorch's exporter
    scopes both (`/hr_branch/conv_hr2x/...`), trt_modnet.models.emit the outputs (`hr_branch.conv_hr2x`)."""
    return module in node.name or any(module in out for out in node.output)
