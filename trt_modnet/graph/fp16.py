"""Mixed precision for TensorRT: MODNet in FP16, the deployment graph's pixel arithmetic in FP32.

TensorRT 10.12+/11 takes precision from the graph (strongly typed networks; FACTS.md), so the FP16
engine is built from an ONNX whose network already computes in FP16. onnxconverter-common converts the
MODNet part only (`keep_io_types`: its float32 input and output stay float32), which leaves the uint8
inputs and outputs and the resize, rounding and compositing around it in FP32: they are cheap, and FP16
there would put 1e-3-sized errors straight into the network's input.

Kept in FP32 inside the network: the converter's default block list (it includes Resize),
InstanceNormalization and Sigmoid. Measured on real frames with the stand-in model, FP16 graph in the
reference evaluator against the FP32 graph in ONNX Runtime, mean |delta alpha| in 1/255:

    recipe (as here)                          0.09-0.33, max 11-25, no NaN/Inf   (512x512 to 896x512)
    InstanceNormalization in FP16 as well     35-57, max 248   (the FP16 variance overflows)
    Sigmoid in FP16 as well                   0.18 and 0.39 where the recipe gives 0.14 and 0.33
                                              (a portrait and a 540p frame; an earlier run of the same
                                              benchmark, before Sigmoid joined the block list)

The target is a mean of 0.5/255 at most. Figures and command: `python -m benchmarks.parity
--fp16-inputs 3 --fp16-ablation`, benchmarks/results/parity_synthetic.json. Sigmoid matters because FP16
steps near 1.0 are 0.12/255 wide, enough to move the matte across a whole alpha step; in FP32 it costs
nothing (a 1-channel map and the 1280 SE weights).

Which executor computes in FP16: ONNX Runtime's CPU provider has no FP16 kernels for Conv (and most
other ops) on x86; its InsertCastTransformer wraps them in casts, so it runs this graph almost entirely
in FP32 with FP16-rounded weights (checked by saving the optimised graph: all 69 Conv nodes take
float32). It understates the drift (0.04-0.22/255 on the same frames). The ONNX reference evaluator
runs each op in numpy at the dtype of its inputs: FP16 elementwise ops round per op, FP16 MatMul/Conv
accumulate in FP32 and round the result to FP16, as TensorRT's FP16 tensor-core kernels do. It is slow
(12 s for a 128x224 input, 2-3 minutes at 512x896 here), so `drift` is meant for small inputs, tests
and benchmarks.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnxconverter_common
import onnxruntime as ort
from onnx import TensorProto, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnxconverter_common import float16

OP_BLOCK_LIST = (*float16.DEFAULT_OP_BLOCK_LIST, "InstanceNormalization", "Sigmoid")

#: The conversion recipe, stable across runs: part of TensorRT engine cache keys.
RECIPE = json.dumps(
    {
        "converter": f"onnxconverter-common {onnxconverter_common.__version__}",
        "scope": "MODNet network only; resize, rounding, composite in float32",
        "keep_io_types": True,
        "constant_casts": "folded into initializers",
        "op_block_list": sorted(OP_BLOCK_LIST),
    },
    sort_keys=True,
)


def convert_network(
    modnet: onnx.ModelProto, *, op_block_list: Sequence[str] = OP_BLOCK_LIST
) -> onnx.ModelProto:
    """MODNet with FP16 weights and activations except the blocked ops; float32 input and output.

    `op_block_list` other than the recipe's is for measuring alternatives only.
    """
    return fold_constant_casts(_converted(modnet, op_block_list))


def _converted(modnet: onnx.ModelProto, op_block_list: Sequence[str]) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(modnet)  # the converter edits its argument in place
    with warnings.catch_warnings():
        # Weights below FP16's smallest normal are clamped to 1e-7 (the converter's documented default);
        # it warns once per weight.
        warnings.filterwarnings("ignore", message=".*will be truncated to.*", category=UserWarning)
        converted = float16.convert_float_to_float16(
            copy, keep_io_types=True, op_block_list=list(op_block_list)
        )
    return _float32_output(converted)


def _float32_output(model: onnx.ModelProto) -> onnx.ModelProto:
    """Undo the converter's cast of a blocked last op back to FP16.

    onnxconverter-common 1.16 ends a graph whose last op is blocked (here the matte's Sigmoid) with a
    Cast to FP16 and declares the output FP16, `keep_io_types` notwithstanding; the matte would lose the
    precision that blocking the Sigmoid keeps. That Cast becomes a float32 no-op.
    """
    for output in model.graph.output:
        if output.type.tensor_type.elem_type != TensorProto.FLOAT16:
            continue
        producer = next(n for n in model.graph.node if output.name in n.output)
        if producer.op_type == "Cast":
            producer.ClearField("attribute")
            producer.attribute.append(onnx.helper.make_attribute("to", TensorProto.FLOAT))
            output.type.tensor_type.elem_type = TensorProto.FLOAT
    return model


def fold_constant_casts(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace each Cast of a Constant by a float32 (or whatever it casts to) initializer.

    The converter turns every constant into FP16 and casts it back for the blocked ops (Resize scales,
    InstanceNormalization scale and bias: 41 Casts in MODNet); in TensorRT's parser such Cast(Constant)
    chains take its shape-tensor and constant-folding paths at build time. The values are identical: an
    FP16 constant cast to FP32 is exact.
    """
    constants = {
        node.output[0]: node
        for node in model.graph.node
        if node.op_type == "Constant" and [a.name for a in node.attribute] == ["value"]
    }
    folded: list[onnx.NodeProto] = []
    for node in model.graph.node:
        if node.op_type == "Cast" and node.input[0] in constants:
            value = numpy_helper.to_array(constants[node.input[0]].attribute[0].t)
            to = onnx.helper.get_attribute_value(node.attribute[0])
            cast = value.astype(onnx.helper.tensor_dtype_to_np_dtype(to))
            model.graph.initializer.append(numpy_helper.from_array(cast, node.output[0]))
            folded.append(node)
    for node in folded:
        model.graph.node.remove(node)
    used = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    for name, node in constants.items():
        if name not in used:
            model.graph.node.remove(node)
    return model


@dataclass(frozen=True)
class Drift:
    """|alpha(FP16) - alpha(FP32)| over all pixels, in 1/255 units, and non-finite FP16 matte values."""

    mean: float
    max: int
    nonfinite: int


def reference_run(
    deploy: onnx.ModelProto, feeds: dict[str, np.ndarray], names: list[str]
) -> list[np.ndarray]:
    """Run a graph (outputs or intermediate tensors `names`) in the ONNX reference evaluator."""
    # Its Sigmoid evaluates exp() on both branches and keeps the finite one: overflow warnings there
    # are noise. Real NaN/Inf in the results are counted by `drift`.
    with np.errstate(over="ignore", invalid="ignore"):
        return ReferenceEvaluator(deploy).run(names, feeds)


def drift(
    fp32_deploy: onnx.ModelProto, fp16_deploy: onnx.ModelProto, feeds: dict[str, np.ndarray], matte: str
) -> Drift:
    """Alpha of the FP16 graph in the reference evaluator against the FP32 graph in ONNX Runtime.

    Both graphs must have the `alpha` output; `matte` names the network's float matte inside the FP16
    graph, checked for NaN and Inf (which the uint8 alpha would hide).
    """
    session = ort.InferenceSession(fp32_deploy.SerializeToString(), providers=["CPUExecutionProvider"])
    reference = session.run(["alpha"], feeds)[0]
    alpha, net = reference_run(fp16_deploy, feeds, ["alpha", matte])
    delta = np.abs(alpha.astype(np.int16) - reference.astype(np.int16))
    return Drift(mean=float(delta.mean()), max=int(delta.max()), nonfinite=int((~np.isfinite(net)).sum()))
