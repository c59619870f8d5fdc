"""The OpenVINO CPU runner: the deployment graph compiled per frame size, in the stages of a precision recipe.

Each stage of the recipe (`trt_modnet.graph.precision.stages`) is compiled for the video's exact shapes:
static shapes measured 13% faster than dynamic ones (0.33 against 0.38 s per 720p frame, FP32, 2 cores). A
compile costs about 1 s for the three stages of `bf16`, once per frame size (the next clip of a folder at
the same size reuses it; a short last batch runs padded). Stages pass tensors to each other without
copies. `streams` batches run at once, each on its own OpenVINO stream; on 2 cores two streams of one
thread each beat one stream of two threads once decode and encode share the cores (a stalled thread then
delays only its own batch; see the README's CPU figures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import onnx

from trt_modnet.errors import MattingError
from trt_modnet.graph.deploy import BACKGROUND, FRAMES, IMAGE, size_feeds, spec_of
from trt_modnet.graph.official import inference_size, network_input
from trt_modnet.graph.precision import RECIPES, Stage, stages
from trt_modnet.runtime.base import DEFAULT_DEPTH, Runner, check_feeds

INSTALL_HINT = "pip install openvino"


def openvino_unavailable_reason() -> str | None:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return f"OpenVINO is not installed: {INSTALL_HINT}"
    return None


def supports_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 natively here (AVX512_BF16 or AMX)."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@dataclass(frozen=True)
class OpenVinoSettings:
    precision: str = "fp32"
    #: Threads in all; each stream gets threads // streams.
    threads: int = 2
    streams: int = 1


class OpenVinoRunner(Runner):
    """Runs a deployment graph (`trt_modnet.graph.deploy.build`) with OpenVINO on the CPU."""

    def __init__(
        self,
        deploy: onnx.ModelProto,
        settings: OpenVinoSettings,
        *,
        depth: int = DEFAULT_DEPTH,
        models: Sequence[object] | None = None,
    ) -> None:
        """`models`: OpenVINO models of the recipe's stages made elsewhere (an INT8 recipe's, quantised by
        `trt_modnet.graph.int8`); by default each stage's ONNX as it is."""
        reason = openvino_unavailable_reason()
        if reason is not None:
            raise MattingError(f"--backend openvino is unavailable: {reason}")
        import openvino as ov

        super().__init__(depth)
        self.spec = spec_of(deploy)
        self.outputs = self.spec.outputs
        self.settings = settings
        self._core = ov.Core()
        self._stages = stages(deploy, settings.precision)
        if models is None and RECIPES[settings.precision].int8:
            raise MattingError(
                f"{settings.precision} runs quantised stages: trt_modnet.graph.int8.stage_models"
            )
        if models is not None and len(models) != len(self._stages):
            raise MattingError(
                f"{len(models)} stage models for the {len(self._stages)} stages of {settings.precision}"
            )
        self._models = (
            list(models)
            if models is not None
            else [self._core.read_model(s.model.SerializeToString(), b"") for s in self._stages]
        )
        self._worker = ThreadPoolExecutor(max_workers=settings.streams, thread_name_prefix="openvino")
        self._size_feeds: dict[str, np.ndarray] = {}
        self._frame_size = (0, 0)
        self._compiled: dict[int, list[object]] = {}  # batch size -> compiled stages
        self._chains: dict[tuple[int, int], _Chain] = {}  # (slot, batch size) -> infer requests
        self._pending: dict[int, Future[dict[str, np.ndarray]]] = {}

    def _prepare(self, height: int, width: int, batch: int) -> None:
        if (height, width) == self._frame_size and self._compiled:
            return  # the next clip of a folder at the same size: the compiled stages fit it (~1 s saved)
        self._size_feeds = size_feeds(self.spec, height, width)
        self._frame_size = (height, width)
        self._compiled.clear()
        self._chains.clear()

    def _submit(self, slot: int, feeds: Mapping[str, np.ndarray]) -> None:
        check_feeds(feeds, {FRAMES, *((BACKGROUND,) if "composite" in self.outputs else ())})
        n = len(feeds[FRAMES])
        # A short batch (a video's last) runs in the stages compiled for a full one, padded: a compile
        # costs more than the few frames of padding, and holds its own memory.
        size = min((c for c in self._compiled if c >= n), default=n)
        chain = self._chain(slot, size)
        # Copied now: the caller may reuse its arrays as soon as submit returns.
        chain.load(feeds)
        self._pending[slot] = self._worker.submit(chain.run, n)

    def _result(self, slot: int) -> dict[str, np.ndarray]:
        return self._pending.pop(slot).result()

    def _close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
        self._chains.clear()
        self._compiled.clear()

    def _chain(self, slot: int, n: int) -> _Chain:
        key = (slot, n)
        if key not in self._chains:
            self._chains[key] = _Chain(self._compile(n), self._stages, self._size_feeds, self.outputs)
        return self._chains[key]

    def _compile(self, n: int) -> list[object]:
        # Only the submitting thread compiles: the workers run chains that exist already.
        if n not in self._compiled:
            self._compiled[n] = self._compile_stages(n)
        return self._compiled[n]

    def _compile_stages(self, n: int) -> list[object]:
        """Every stage for batches of n, each reshaped to the shapes the stage before it produces."""
        h, w = self._frame_size
        shapes = {name: list(array.shape) for name, array in self._size_feeds.items()}
        shapes[FRAMES] = shapes[BACKGROUND] = [n, h, w, 3]
        shapes[IMAGE] = [n, 3, *inference_size(h, w, self.spec.ref_size)]
        compiled = []
        for model, stage in zip(self._models, self._stages, strict=True):
            copy = model.clone()  # type: ignore[attr-defined]
            copy.reshape({name: shapes[name] for name in stage.inputs})
            stage_compiled = self._core.compile_model(copy, "CPU", self._config(stage))
            for out in stage_compiled.outputs:
                # A tensor may carry several names (an output that is also a graph-internal name).
                shapes.update({name: list(out.get_shape()) for name in out.get_names()})
            compiled.append(stage_compiled)
        return compiled

    def _config(self, stage: Stage) -> dict[str, object]:
        s = self.settings
        return {
            "INFERENCE_PRECISION_HINT": stage.precision,
            "INFERENCE_NUM_THREADS": s.threads,
            "NUM_STREAMS": s.streams,
            "PERFORMANCE_HINT": "THROUGHPUT" if s.streams > 1 else "LATENCY",
            # Each stage is its own compiled model, pinning its streams to cores on its own: two slots
            # then often land on one core while the other idles (3.7 against 5.9 fps at 720p, 2 cores,
            # alternated runs). Unpinned, the OS spreads the busy threads.
            "ENABLE_CPU_PINNING": False,
        }


class _Chain:
    """One slot's infer requests, stage after stage, sharing the tensors between them."""

    def __init__(
        self,
        compiled: list[object],
        stage_list: list[Stage],
        size_feeds: dict[str, np.ndarray],
        outputs: tuple[str, ...],
    ) -> None:
        self.requests = [c.create_infer_request() for c in compiled]  # type: ignore[attr-defined]
        self.outputs = outputs
        produced: dict[str, object] = {}
        for request, stage in zip(self.requests, stage_list, strict=True):
            for name in stage.inputs:
                if name in size_feeds:
                    request.set_tensor(name, _tensor(size_feeds[name]))
                elif name in produced:
                    request.set_tensor(name, produced[name])
            for name in stage.outputs:
                produced[name] = request.get_tensor(name)
        self._feeds = [
            [name for name in stage.inputs if name in (FRAMES, BACKGROUND, IMAGE)] for stage in stage_list
        ]
        self._last = self.requests[-1]

    def load(self, feeds: Mapping[str, np.ndarray]) -> None:
        n = len(feeds[FRAMES])
        for request, names in zip(self.requests, self._feeds, strict=True):
            for name in names:
                target = request.get_tensor(name).data
                if name == IMAGE:  # made from the frames on the host, straight into the tensor
                    network_input(feeds[FRAMES], target[:n])
                    continue
                # A [1,...] background broadcasts over the whole batch; frames fill its first rows.
                array = feeds[name]
                np.copyto(target if len(array) == 1 and name == BACKGROUND else target[: len(array)], array)

    def run(self, n: int) -> dict[str, np.ndarray]:
        for request in self.requests:
            request.infer()
        return {name: self._last.get_tensor(name).data[:n].copy() for name in self.outputs}


def _tensor(array: np.ndarray) -> object:
    import openvino as ov

    return ov.Tensor(np.ascontiguousarray(array))
