"""The FP16 deployment graph: what runs in FP16, that its ends are unchanged, and its drift on real frames."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import av
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto

from tests.conftest import VIDEOS, need
from trt_modnet.graph import fp16
from trt_modnet.graph.deploy import NETWORK_MATTE, DeploySpec, build, size_feeds, spec_of


def first_frame(video: str) -> np.ndarray:
    with av.open(str(need(VIDEOS / video))) as container:
        return next(islice(container.decode(video=0), 1)).to_ndarray(format="rgb24")


def value_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    types = {v.name: v.type.tensor_type.elem_type for v in values}
    types.update({i.name: i.data_type for i in inferred.graph.initializer})
    return types


def test_recipe_names_the_converter_and_the_ops_kept_in_fp32() -> None:
    recipe = json.loads(fp16.RECIPE)
    assert recipe["converter"].startswith("onnxconverter-common ")
    assert {"InstanceNormalization", "Resize", "Sigmoid"} <= set(recipe["op_block_list"])
    assert recipe["keep_io_types"] is True


def test_network_computes_in_fp16_except_the_blocked_ops(synthetic_onnx: Path) -> None:
    converted = fp16.convert_network(onnx.load(str(synthetic_onnx)))
    types = value_types(converted)
    assert converted.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert converted.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    by_op: dict[str, set[int]] = {}
    for node in (n for n in converted.graph.node if n.input):
        by_op.setdefault(node.op_type, set()).add(types[node.input[0]])
    assert by_op["Conv"] == {TensorProto.FLOAT16}
    assert by_op["InstanceNormalization"] == {TensorProto.FLOAT}
    assert by_op["Resize"] == {TensorProto.FLOAT}
    assert by_op["Sigmoid"] == {TensorProto.FLOAT}  # the matte keeps float32 precision to the output


def test_fp16_graph_keeps_uint8_inputs_and_outputs(synthetic_onnx: Path) -> None:
    modnet = onnx.load(str(synthetic_onnx))
    spec = DeploySpec(outputs=("alpha", "rgba", "composite"))
    fp32, half = build(modnet, spec), build(modnet, DeploySpec(outputs=spec.outputs, fp16=True))

    def signature(model: onnx.ModelProto) -> list[tuple[str, int]]:
        values = [*model.graph.input, *model.graph.output]
        return [(v.name, v.type.tensor_type.elem_type) for v in values]

    assert signature(half) == signature(fp32)
    assert spec_of(half).fp16 and not spec_of(fp32).fp16
    assert {p.key: p.value for p in half.metadata_props}["trt_modnet.deploy.fp16_recipe"] == fp16.RECIPE


def test_fp16_drift_on_a_real_frame_in_a_true_fp16_executor(synthetic_onnx: Path) -> None:
    """The reference evaluator computes FP16 ops in FP16; small inference size to keep it quick."""
    modnet = onnx.load(str(synthetic_onnx))
    spec = DeploySpec(outputs=("alpha",), ref_size=64)
    rgb = first_frame("carphone_qcif.mp4")
    feeds = {"frames": rgb[None], **size_feeds(spec, *rgb.shape[:2])}
    half = build(modnet, DeploySpec(outputs=spec.outputs, ref_size=spec.ref_size, fp16=True))
    drift = fp16.drift(build(modnet, spec), half, feeds, NETWORK_MATTE)
    assert drift.nonfinite == 0
    assert drift.mean <= 0.5  # the target, in 1/255
    assert drift.max <= 16


def test_onnxruntime_runs_the_fp16_graph(synthetic_onnx: Path) -> None:
    """The graph TensorRT builds also runs on the CPU (as FP32 convolutions over FP16 weights there)."""
    modnet = onnx.load(str(synthetic_onnx))
    spec = DeploySpec(outputs=("alpha",), ref_size=128)
    rgb = first_frame("pancake_240p.mkv")
    feeds = {"frames": rgb[None], **size_feeds(spec, *rgb.shape[:2])}
    alphas = []
    for half in (False, True):
        graph = build(modnet, DeploySpec(outputs=spec.outputs, ref_size=spec.ref_size, fp16=half))
        session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
        alphas.append(session.run(None, feeds)[0].astype(int))
    assert alphas[1].shape == (1, *rgb.shape[:2])
    assert np.abs(alphas[1] - alphas[0]).mean() <= 0.5


def test_constants_of_the_fp32_ops_are_float32_initializers_not_casts(synthetic_onnx: Path) -> None:
    """No Cast(Constant) left for TensorRT's parser: Resize scales and InstanceNorm scale/bias are FP32
    initializers, and the network computes exactly what it computed with the casts."""
    modnet = onnx.load(str(synthetic_onnx))
    deploy = build(modnet, DeploySpec(outputs=("alpha",), fp16=True))
    constants = {o for n in deploy.graph.node if n.op_type == "Constant" for o in n.output}
    constants |= {i.name for i in deploy.graph.initializer}
    assert not [n.name for n in deploy.graph.node if n.op_type == "Cast" and n.input[0] in constants]
    initializers = {i.name: i.data_type for i in deploy.graph.initializer}
    fp32_inputs = [
        n.input[i] for n in deploy.graph.node if n.op_type == "InstanceNormalization" for i in (1, 2)
    ] + [n.input[2] for n in deploy.graph.node if n.op_type == "Resize" and len(n.input) > 2 and n.input[2]]
    assert len(fp32_inputs) >= 41 and {initializers[name] for name in fp32_inputs} == {TensorProto.FLOAT}

    unfolded = fp16._converted(modnet, fp16.OP_BLOCK_LIST)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 64, 96)).astype(np.float32)

    def run(model: onnx.ModelProto) -> np.ndarray:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, {model.graph.input[0].name: x})[0]

    assert np.array_equal(run(fp16.convert_network(modnet)), run(unfolded))
