"""MODNet ONNX files: loading, the checks that they are MODNet-shaped, and their metadata."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx

from trt_modnet.errors import MattingError

INPUT_NAME = "input"
OUTPUT_NAME = "output"
# Set by `python -m trt_modnet.export --random-weights`; carried into deployment graphs.
RANDOM_WEIGHTS_KEY = "trt_modnet.random_weights"
#: Said wherever a model file is missing.
HOW_TO_GET_A_MODEL = (
    "python -m trt_modnet.models lists the models that download by name (--model NAME), "
    "python -m trt_modnet.export CKPT -o model.onnx exports a checkpoint"
)

log = logging.getLogger("trt_modnet")


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """Read an ONNX file, with one clear error if it is missing or not ONNX."""
    path = Path(path)
    if not path.is_file():
        raise MattingError(f"{path}: no such model file; {HOW_TO_GET_A_MODEL}")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf raises several unrelated types for a non-ONNX file
        raise MattingError(f"{path}: not an ONNX model ({type(exc).__name__})") from None


def load_modnet(path: str | Path) -> onnx.ModelProto:
    """Load a MODNet ONNX (official export or ours), check its signature, and warn if random."""
    model = load_onnx(path)
    check_modnet_signature(model, path)
    warn_if_random(model, path)
    return model


def check_modnet_signature(model: onnx.ModelProto, path: str | Path) -> None:
    """One input [N,3,H,W] float and one output [N,1,H,W] float, whatever their names."""
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    found = f"found inputs {_signature(inputs)} and outputs {_signature(graph.output)}"
    expected = "expected one input [N,3,H,W] and one output [N,1,H,W], both float32"
    if len(inputs) != 1 or len(graph.output) != 1:
        raise MattingError(f"{path}: not a MODNet model: {expected}; {found}")
    for value, channels in ((inputs[0], 3), (graph.output[0], 1)):
        t = value.type.tensor_type
        dims = t.shape.dim
        if (
            t.elem_type != onnx.TensorProto.FLOAT
            or len(dims) != 4
            or (dims[1].HasField("dim_value") and dims[1].dim_value != channels)
        ):
            raise MattingError(f"{path}: not a MODNet model: {expected}; {found}")


def random_weights_seed(model: onnx.ModelProto) -> str | None:
    for prop in model.metadata_props:
        if prop.key == RANDOM_WEIGHTS_KEY:
            return prop.value
    return None


def warn_if_random(model: onnx.ModelProto, path: str | Path) -> None:
    seed = random_weights_seed(model)
    if seed is not None:
        log.warning(
            "%s holds RANDOM weights (%s): its mattes are meaningless; use for tests only", path, seed
        )


def _signature(values: object) -> str:
    parts = []
    for v in values:  # type: ignore[attr-defined]
        t = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else "?"
        parts.append(f"{v.name}:{dtype}{dims}")
    return "[" + ", ".join(parts) + "]"
