"""Backend choice: TensorRT on an NVIDIA GPU when it is usable, else ONNX Runtime on the CPU."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from trt_modnet.engine import INSTALL_HINT
from trt_modnet.errors import MattingError
from trt_modnet.runtime.base import DEFAULT_DEPTH, Runner

if TYPE_CHECKING:
    import onnx

    from trt_modnet.graph import DeploySpec

BACKENDS = ("auto", "onnxruntime", "tensorrt")


def tensorrt_unavailable_reason() -> str | None:
    """None when TensorRT imports and a GPU is usable; else one line: what is missing, how to install it."""
    missing = _missing_for_tensorrt()
    if not missing:
        return None
    return f"{'; '.join(missing)}. On a machine with an NVIDIA GPU and driver: {INSTALL_HINT}"


def _missing_for_tensorrt() -> list[str]:
    missing = []
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        missing.append("TensorRT is not installed")
    except OSError as exc:  # the Python package is there but its libraries are not
        missing.append(f"TensorRT does not load ({exc})")
    try:
        from trt_modnet import cuda
    except ImportError:
        missing.append("cuda-python (cuda-bindings) is not installed")
    else:
        gpu = cuda.unavailable_reason()
        if gpu is not None:
            missing.append(gpu)
    return missing


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
        missing = _missing_for_tensorrt()
        if missing and backend == "tensorrt":
            raise MattingError(f"--backend tensorrt is unavailable: {tensorrt_unavailable_reason()}")
        if missing:
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
    from trt_modnet.engine import EngineLoader
    from trt_modnet.runtime.trt import TensorRTRunner

    loader = EngineLoader(deploy, spec, engines_dir=engines_dir)
    target = loader.target
    log.info(
        "backend: TensorRT %s on %s (compute %s)", target.tensorrt, target.gpu, target.compute_capability
    )
    return TensorRTRunner(loader, outputs=spec.outputs, depth=depth)
