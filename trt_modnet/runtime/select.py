"""Backend choice: TensorRT on an NVIDIA GPU when it is usable, else ONNX Runtime on the CPU."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from trt_modnet.errors import MattingError
from trt_modnet.runtime.base import DEFAULT_DEPTH, Runner
from trt_modnet.tensorrt import missing_for_tensorrt, nvidia_device_nodes, tensorrt_unavailable_reason

if TYPE_CHECKING:
    import onnx

    from trt_modnet.graph import DeploySpec

BACKENDS = ("auto", "onnxruntime", "tensorrt")


def open_runner(
    backend: str,
    model_path: Path,
    spec: DeploySpec,
    *,
    threads: int = 2,
    depth: int = DEFAULT_DEPTH,
    engines_dir: Path = Path("engines"),
    log: logging.Logger | None = None,
) -> Runner:
    """A runner for the MODNet ONNX at `model_path`, on `backend` ("auto" picks TensorRT when usable).

    TensorRT always runs the FP16 deployment graph; ONNX Runtime runs the graph `spec` asks for.
    """
    log = log or logging.getLogger("trt_modnet")
    if backend not in BACKENDS:
        raise MattingError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    use_tensorrt = False
    if backend in ("auto", "tensorrt"):
        missing = missing_for_tensorrt()
        if missing and backend == "tensorrt":
            raise MattingError(f"--backend tensorrt is unavailable: {tensorrt_unavailable_reason()}")
        gpus = nvidia_device_nodes() if missing else []
        if gpus:  # a GPU idles while the CPU runs ~100x slower: not a quiet fallback
            log.warning(
                "an NVIDIA GPU is present (%s) but TensorRT cannot use it: %s. Running on the CPU, about "
                "100x slower; fix it, or pass --backend onnxruntime to silence this",
                gpus[0],
                tensorrt_unavailable_reason(),
            )
        elif missing:
            log.info("backend: ONNX Runtime on the CPU (no TensorRT: %s)", "; ".join(missing))
        use_tensorrt = not missing
    from trt_modnet.graph import build
    from trt_modnet.modelfile import load_modnet

    modnet = load_modnet(model_path)
    if use_tensorrt:
        fp16 = replace(spec, fp16=True)
        return _tensorrt_runner(build(modnet, fp16), fp16, depth=depth, engines_dir=engines_dir, log=log)
    from trt_modnet.runtime.onnxrt import OnnxRuntimeRunner

    return OnnxRuntimeRunner(build(modnet, spec), threads=threads, depth=depth)


def _tensorrt_runner(
    deploy: onnx.ModelProto, spec: DeploySpec, *, depth: int, engines_dir: Path, log: logging.Logger
) -> Runner:
    from trt_modnet.tensorrt import EngineLoader, TensorRTRunner

    loader = EngineLoader(deploy, spec, engines_dir=engines_dir)
    target = loader.target
    log.info(
        "backend: TensorRT %s on %s (compute %s)", target.tensorrt, target.gpu, target.compute_capability
    )
    return TensorRTRunner(loader, outputs=spec.outputs, depth=depth)
