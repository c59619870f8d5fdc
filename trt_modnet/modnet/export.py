"""Export the matte-only inference graph as the official `onnx/export_onnx.py` does."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import onnx
import torch

from trt_modnet.graph.modelfile import INPUT_NAME, OUTPUT_NAME, RANDOM_WEIGHTS_KEY
from trt_modnet.modnet.model import MatteOnly, MODNet

DEFAULT_OPSET = 17
_DUMMY_SIZE = 512


def random_model(seed: int) -> MODNet:
    """A MODNet with seeded random weights (for tests and benchmarks only)."""
    torch.manual_seed(seed)
    return MODNet().eval()


def export_onnx(
    model: MODNet, path: str | Path, *, opset: int = DEFAULT_OPSET, random_seed: int | None = None
) -> None:
    """Write `model` as ONNX: `input` [N,3,H,W] float32 -> `output` [N,1,H,W], dynamic N, H, W.

    `random_seed` marks the file as holding random weights, so that later tools can warn.
    The file is written under a temporary name and renamed into place when complete.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    dummy = torch.zeros(1, 3, _DUMMY_SIZE, _DUMMY_SIZE)
    axes = {0: "batch_size", 2: "height", 3: "width"}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # Instance norm uses per-image statistics at inference by design; the exporter flags it.
            warnings.filterwarnings("ignore", message=".*instance_norm.*", category=UserWarning)
            # Tracing evaluates instance norm's batch-size check once; it does not depend on the input.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            # The legacy exporter is deliberate: it is what the official export uses, and needs no onnxscript.
            warnings.filterwarnings(
                "ignore", message=".*legacy TorchScript-based.*", category=DeprecationWarning
            )
            torch.onnx.export(
                MatteOnly(model.eval()),
                (dummy,),
                str(tmp),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
                opset_version=opset,
                dynamo=False,
            )
        proto = onnx.load(str(tmp))
        if random_seed is not None:
            onnx.helper.set_model_props(proto, {RANDOM_WEIGHTS_KEY: f"seed={random_seed}"})
        proto.producer_name = "trt_modnet"
        onnx.save(proto, str(tmp))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
