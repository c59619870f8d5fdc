"""Backend and precision choice: TensorRT on an NVIDIA GPU when it is usable, else the fastest faithful CPU
configuration: OpenVINO with the recipe the precision gate (`trt_modnet.graph.gate`) measured for this model
where the CPU has bf16 (AVX512_BF16 or AMX), OpenVINO FP32 elsewhere, ONNX Runtime FP32 when OpenVINO is
not installed (docs/cpu.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from trt_modnet.errors import MattingError
from trt_modnet.graph.precision import LOW, PRECISIONS, RECIPES
from trt_modnet.runtime.base import DEFAULT_DEPTH, Runner
from trt_modnet.runtime.openvino import INSTALL_HINT as OPENVINO_HINT
from trt_modnet.runtime.openvino import OpenVinoSettings, openvino_unavailable_reason, supports_bf16
from trt_modnet.tensorrt import missing_for_tensorrt, nvidia_device_nodes, tensorrt_unavailable_reason

if TYPE_CHECKING:
    import onnx

    from trt_modnet.graph.deploy import DeploySpec

BACKENDS = ("auto", "onnxruntime", "openvino", "tensorrt")
#: What each backend can run; the first is its default (OpenVINO's: the precision gate's pick).
BACKEND_PRECISIONS = {
    "tensorrt": ("fp16", "fp32"),
    "openvino": (*LOW, "fp32"),
    "onnxruntime": ("fp32",),
}


#: Slots a lending runner (TensorRT) has on top of the batches computing: its outputs stay lent to the
#: encoders out of pinned memory, holding their slot, while queued (the pipeline's 2) and being written (1).
LENT_SLOTS = 3


@dataclass(frozen=True)
class Choice:
    backend: str
    precision: str
    #: One line for the user: what was picked and why.
    reason: str


def choose(backend: str, precision: str = "auto", log: logging.Logger | None = None) -> Choice:
    """The backend and precision to run; a combination this machine cannot run is a MattingError."""
    if backend not in BACKENDS:
        raise MattingError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise MattingError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if backend == "auto":
        return _choose_auto(precision, log or logging.getLogger("trt_modnet"))
    if backend == "tensorrt":
        missing = missing_for_tensorrt()
        if missing:
            raise MattingError(f"--backend tensorrt is unavailable: {tensorrt_unavailable_reason()}")
    if backend == "openvino":
        reason = openvino_unavailable_reason()
        if reason is not None:
            raise MattingError(f"--backend openvino is unavailable: {reason}")
    return _with_precision(backend, precision, f"--backend {backend}")


def _choose_auto(precision: str, log: logging.Logger) -> Choice:
    missing = missing_for_tensorrt()
    if not missing and precision in ("auto", *BACKEND_PRECISIONS["tensorrt"]):
        return _with_precision("tensorrt", precision, "an NVIDIA GPU and TensorRT are usable")
    gpus = nvidia_device_nodes() if missing else []
    if gpus:  # a GPU idles while the CPU runs many times slower: not a quiet fallback
        log.warning(
            "an NVIDIA GPU is present (%s) but TensorRT cannot use it: %s. Running on the CPU, far "
            "slower; fix it, or pass a CPU --backend to silence this",
            gpus[0],
            tensorrt_unavailable_reason(),
        )
    why = f"no TensorRT: {'; '.join(missing)}" if missing else f"TensorRT does not run {precision}"
    if openvino_unavailable_reason() is None:
        return _with_precision("openvino", precision, why)
    if precision in ("auto", "fp32"):
        return Choice("onnxruntime", "fp32", f"{why}; OpenVINO is not installed ({OPENVINO_HINT})")
    raise MattingError(
        f"--precision {precision} needs OpenVINO on the CPU ({why}): {OPENVINO_HINT}, or use --precision fp32"
    )


def _with_precision(backend: str, precision: str, why: str) -> Choice:
    can = BACKEND_PRECISIONS[backend]
    if precision == "auto":
        if backend == "openvino":
            return _openvino_default(why)
        return Choice(backend, can[0], why)
    if precision not in can:
        raise MattingError(_cannot(backend, precision))
    if backend == "openvino" and LOW.get(precision) == "bf16" and not supports_bf16():
        raise MattingError(
            f"--precision {precision}: this CPU has no native bf16 (AVX512_BF16 or AMX, as OpenVINO "
            "reports); use --precision fp32"
        )
    if backend == "openvino" and RECIPES[precision].int8:
        from trt_modnet.graph import int8

        if (missing := int8.missing_reason()) is not None:
            raise MattingError(f"--precision {precision} needs NNCF: {missing}")
    return Choice(backend, precision, why)


def _openvino_default(why: str) -> Choice:
    if not supports_bf16():
        return Choice("openvino", "fp32", f"{why}; this CPU has no native bf16, so FP32")
    # "auto": the gate picks the recipe once the model is known (open_runner).
    return Choice("openvino", "auto", f"{why}; the CPU has bf16")


def _cannot(backend: str, precision: str) -> str:
    if precision == "fp16":
        return f"--precision fp16 is TensorRT's (NVIDIA GPUs); {backend} on the CPU runs fp32 or bf16"
    if precision in LOW:
        return f"--precision {precision}: {backend} does not run OpenVINO's recipes; use --backend openvino"
    return f"--precision {precision}: {backend} runs {', '.join(BACKEND_PRECISIONS[backend])}"


def open_runner(
    backend: str,
    model_path: Path,
    spec: DeploySpec,
    *,
    precision: str = "auto",
    threads: int = 2,
    streams: int = 1,
    depth: int = DEFAULT_DEPTH,
    engines_dir: Path = Path("engines"),
    log: logging.Logger | None = None,
    note: str = "",
) -> Runner:
    """A runner for the MODNet ONNX at `model_path` on the backend and precision `choose` picks; `note`
    ends the line that names the backend (the live default model)."""
    log = log or logging.getLogger("trt_modnet")
    choice = choose(backend, precision, log)
    from trt_modnet.graph.deploy import build
    from trt_modnet.graph.modelfile import load_modnet

    modnet = load_modnet(model_path)
    if choice.backend == "tensorrt":
        fp16 = replace(spec, fp16=choice.precision == "fp16")
        return _tensorrt_runner(
            build(modnet, fp16), fp16, depth=depth, engines_dir=engines_dir, log=log, note=note
        )
    reason = f"{choice.reason}; {note}" if note else choice.reason
    # On the CPU, OpenCV makes MODNet's input on the host: INTER_AREA as taps in the graph cost 32 ms
    # of CPU per 720p frame in OpenVINO, OpenCV 6 (benchmarks.host_input).
    spec = replace(spec, host_input=True)
    if choice.backend == "openvino":
        from trt_modnet.runtime.openvino import OpenVinoRunner

        deploy = build(modnet, spec)
        chosen = choice.precision
        if chosen == "auto":
            from trt_modnet.graph.gate import verdict_for

            verdict = verdict_for(model_path, modnet, spec.ref_size, threads=threads, log=log)
            chosen, reason = verdict.recipe, f"{reason}; {verdict.line()}"
        log.info("backend: OpenVINO %s on the CPU (%s)", chosen, reason)
        settings = OpenVinoSettings(precision=chosen, threads=threads, streams=streams)
        models = None
        if RECIPES[chosen].int8:  # the quantised stages: cached per model (the gate's), else made now
            from trt_modnet.graph import int8

            models = int8.stage_models(model_path, modnet, deploy, chosen, threads=threads, log=log)
        return OpenVinoRunner(deploy, settings, depth=depth, models=models)
    log.info("backend: %s %s on the CPU (%s)", _NAMES[choice.backend], choice.precision, reason)
    from trt_modnet.runtime.onnxrt import OnnxRuntimeRunner

    return OnnxRuntimeRunner(build(modnet, spec), threads=threads, depth=depth)


_NAMES = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}


def _tensorrt_runner(
    deploy: onnx.ModelProto,
    spec: DeploySpec,
    *,
    depth: int,
    engines_dir: Path,
    log: logging.Logger,
    note: str = "",
) -> Runner:
    from trt_modnet.tensorrt import EngineLoader, TensorRTRunner

    loader = EngineLoader(deploy, spec, engines_dir=engines_dir)
    target = loader.target
    log.info(
        "backend: TensorRT %s on %s (compute %s%s)",
        target.tensorrt,
        target.gpu,
        target.compute_capability,
        f"; {note}" if note else "",
    )
    return TensorRTRunner(loader, outputs=spec.outputs, depth=depth + LENT_SLOTS)
