"""The CPU runner: the deployment graph in ONNX Runtime, on one worker thread.

ONNX Runtime releases the GIL while it runs, so while the worker computes one batch the caller decodes
and encodes others: up to `depth` batches are in flight. There is one worker, not `depth`: the session
already uses every core through its intra-op threads (2 on 2 cores measured fastest, FACTS.md), and two
concurrent runs would only contend for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import onnx
import onnxruntime as ort

from trt_modnet.graph.deploy import BACKGROUND, FRAMES, IMAGE, input_names, size_feeds, spec_of
from trt_modnet.graph.official import inference_size, network_input, session_options
from trt_modnet.runtime.base import DEFAULT_DEPTH, Runner, check_feeds


class OnnxRuntimeRunner(Runner):
    """Runs a deployment graph (`trt_modnet.graph.deploy.build`) with ONNX Runtime's CPU provider."""

    def __init__(self, deploy: onnx.ModelProto, *, threads: int = 2, depth: int = DEFAULT_DEPTH) -> None:
        super().__init__(depth)
        self.spec = spec_of(deploy)
        self.outputs = self.spec.outputs
        self._session: ort.InferenceSession | None = ort.InferenceSession(
            deploy.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"]
        )
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxrt")
        self._size_feeds: dict[str, np.ndarray] = {}
        # Per slot: the caller's frames (and background) are copied in at submit, so the caller may
        # reuse its arrays at once; allocated once per prepare.
        self._buffers: list[dict[str, np.ndarray]] = []
        self._pending: dict[int, Future[list[np.ndarray]]] = {}

    def _prepare(self, height: int, width: int, batch: int) -> None:
        self._size_feeds = size_feeds(self.spec, height, width)
        shapes = {
            FRAMES: ((batch, height, width, 3), np.uint8),
            BACKGROUND: ((batch, height, width, 3), np.uint8),
            IMAGE: ((batch, 3, *inference_size(height, width, self.spec.ref_size)), np.float32),
        }
        names = [n for n in input_names(self.spec) if n in shapes]
        self._buffers = [{n: np.empty(*shapes[n]) for n in names} for _ in range(self.inflight.depth)]

    def _submit(self, slot: int, feeds: Mapping[str, np.ndarray]) -> None:
        feeds = self._copied(slot, feeds)
        session = self._session
        assert session is not None  # the base class refuses submit once closed
        self._pending[slot] = self._worker.submit(session.run, list(self.outputs), feeds)

    def _result(self, slot: int) -> dict[str, np.ndarray]:
        arrays = self._pending.pop(slot).result()
        return dict(zip(self.outputs, arrays, strict=True))

    def _close(self) -> None:
        # Waits for a batch still running: the session must outlive every run that uses it.
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
        self._buffers = []
        self._session = None

    def _copied(self, slot: int, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The feeds in this slot's buffers, plus the size feeds."""
        buffers = self._buffers[slot]
        check_feeds(feeds, {FRAMES, *((BACKGROUND,) if BACKGROUND in buffers else ())})
        out = dict(self._size_feeds)
        n = len(feeds[FRAMES])
        if IMAGE in buffers:
            out[IMAGE] = buffers[IMAGE][:n]
            network_input(feeds[FRAMES], out[IMAGE])
        for name, array in feeds.items():
            if name in buffers:
                out[name] = buffers[name][: len(array)]
                np.copyto(out[name], array)
        return out
