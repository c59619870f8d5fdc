"""decode -> batches -> runner (several batches in flight) -> one encode thread per output.

Stages are threads joined by bounded queues, so memory stays flat however long the video and the slowest
stage sets the pace (FFmpeg and the runtimes release the GIL). Frame batches live in a fixed pool of
buffers that the decode thread fills and the inference loop returns once the runner is done with them.
A runner that lends its outputs (TensorRT's pinned buffers) gets each batch's slot back once every encoder
has written it; only the inference thread touches the runner. The first error in any stage stops the
others promptly and is re-raised in the caller's thread.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trt_modnet.job.background import Background
from trt_modnet.job.ofd import SmoothedOutputs
from trt_modnet.runtime.base import Lease, Runner
from trt_modnet.video import Frame, Writer

_END = object()
_POLL_S = 0.1


@dataclass(frozen=True)
class PipelineSettings:
    batch: int = 4
    #: Batches inside the runner at once (its `depth`).
    depth: int = 2
    #: Decoded batches waiting for the runner, and inferred batches waiting for each encoder.
    queue_batches: int = 2


@dataclass
class _Batch:
    frames: np.ndarray  # [n,H,W,3] view into a pooled buffer
    items: list[Frame]
    background: np.ndarray | None
    buffer: np.ndarray


class _Shared:
    """A lent batch read by several encoders: returned to the inference thread after the last one."""

    def __init__(self, lease: Lease, readers: int, returned: queue.Queue[Lease]) -> None:
        self.lease = lease
        self._readers = readers
        self._returned = returned
        self._lock = threading.Lock()

    def done(self) -> None:
        with self._lock:
            self._readers -= 1
            last = self._readers == 0
        if last:
            self._returned.put(self.lease)


#: Called with each finished batch: (frame metadata, decoded frames, runner outputs).
BatchHook = Callable[[Sequence[Frame], np.ndarray, dict[str, np.ndarray]], None]


class _Stages:
    """The shared stop flag and the first error of any stage."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = exc
        self.stop.set()

    def put(self, q: queue.Queue[Any], item: object) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def get(self, q: queue.Queue[Any]) -> Any:
        while not self.stop.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return _END

    def thread(self, name: str, target: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                self.fail(exc)

        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        return t


class Pipeline:
    """Runs one video through a prepared-per-video runner into a set of writers."""

    def __init__(
        self,
        runner: Runner,
        writers: Sequence[tuple[str, Writer]],
        *,
        settings: PipelineSettings,
        background: Background | None = None,
        smoother: SmoothedOutputs | None = None,
        on_batch: BatchHook | None = None,
        on_frames: Callable[[int], None] | None = None,
    ) -> None:
        """`writers` pairs each writer with the runner output it encodes ("rgba", "alpha", ...)."""
        self.runner = runner
        self.writers = writers
        self.settings = settings
        self.background = background
        self.smoother = smoother
        self.on_batch = on_batch
        self.on_frames = on_frames
        self._stages = _Stages()
        self._returned: queue.Queue[Lease] = queue.Queue()  # leases the encoders are done with
        self._held: list[Lease] = []

    def run(self, frames: Iterable[Frame], height: int, width: int) -> int:
        """Process every frame; returns the number of frames written. Writers are closed on success."""
        s = self.settings
        self._returned = queue.Queue()
        self.runner.prepare(height, width, s.batch)
        if self.background is not None:
            self.background.prepare(height, width)
        pool: queue.Queue[np.ndarray] = queue.Queue()
        for buffer in self.runner.frame_buffers(s.depth + s.queue_batches + 1):  # pinned on TensorRT
            pool.put(buffer)
        decoded: queue.Queue[Any] = queue.Queue(maxsize=s.queue_batches)
        encode_queues = [queue.Queue[Any](maxsize=s.queue_batches) for _ in self.writers]

        threads = [self._stages.thread("decode", lambda: self._decode(frames, pool, decoded))]
        for i, ((output, writer), q) in enumerate(zip(self.writers, encode_queues, strict=True)):
            report = self.on_frames if i == 0 else None
            threads.append(
                self._stages.thread(f"encode-{output}", lambda w=writer, q=q, r=report: self._encode(w, q, r))
            )
        try:
            count = self._infer(decoded, pool, encode_queues)
        except BaseException as exc:
            self._stages.fail(exc)
            raise
        finally:
            for t in threads:
                t.join()
            for lease in self._held:  # every slot back, also those of a failed encoder
                lease.release()
            self._held.clear()
        if self._stages.error is not None:
            raise self._stages.error
        return count

    def _decode(self, frames: Iterable[Frame], pool: queue.Queue[np.ndarray], out: queue.Queue[Any]) -> None:
        st, n = self._stages, self.settings.batch
        buffer: np.ndarray | None = None
        items: list[Frame] = []
        for frame in frames:
            if st.stop.is_set():
                return
            if buffer is None:
                buffer = st.get(pool)
                if buffer is _END:
                    return
            buffer[len(items)] = frame.image
            items.append(frame)
            if len(items) == n:
                if not st.put(out, self._batch(buffer, items)):
                    return
                buffer, items = None, []
        if items and buffer is not None and not st.put(out, self._batch(buffer, items)):
            return
        st.put(out, _END)

    def _batch(self, buffer: np.ndarray, items: list[Frame]) -> _Batch:
        bg = None if self.background is None else self.background.batch(len(items))
        return _Batch(buffer[: len(items)], items, bg, buffer)

    def _infer(
        self, decoded: queue.Queue[Any], pool: queue.Queue[np.ndarray], encoders: list[queue.Queue[Any]]
    ) -> int:
        pending: deque[tuple[int, _Batch]] = deque()
        try:
            return self._infer_batches(decoded, pool, encoders, pending)
        finally:  # stopped or failed: collect what is still in flight, so the runner can be used again
            for ticket, _ in pending:
                with contextlib.suppress(Exception):  # the first error is the one reported
                    self.runner.result(ticket)

    def _infer_batches(
        self,
        decoded: queue.Queue[Any],
        pool: queue.Queue[np.ndarray],
        encoders: list[queue.Queue[Any]],
        pending: deque[tuple[int, _Batch]],
    ) -> int:
        st = self._stages
        count = 0
        while (batch := st.get(decoded)) is not _END:
            feeds = {"frames": batch.frames}
            # With OFD the composite is blended after smoothing, outside the graph.
            if batch.background is not None and "composite" in self.runner.outputs:
                feeds["background"] = batch.background
            collected = self._free_slot(pending, pool, encoders)
            if collected is None:
                break
            count += collected
            pending.append((self.runner.submit(feeds), batch))
            if len(pending) >= self.settings.depth:
                count += self._collect(*pending.popleft(), pool, encoders)
        while pending and not st.stop.is_set():
            count += self._collect(*pending.popleft(), pool, encoders)
        if self.smoother is not None:
            self._send(self.smoother.flush(), encoders)
        for q in encoders:
            st.put(q, _END)
        return count

    def _free_slot(
        self,
        pending: deque[tuple[int, _Batch]],
        pool: queue.Queue[np.ndarray],
        encoders: list[queue.Queue[Any]],
    ) -> int | None:
        """Wait until the runner has a slot for one more batch: slots come back as the encoders finish lent
        batches. Returns the frames collected meanwhile, or None on stop."""
        count = 0
        self._give_back(block=False)
        while len(pending) + len(self._held) >= self.runner.inflight.depth:
            if not self._held:
                count += self._collect(*pending.popleft(), pool, encoders)
            elif not self._give_back(block=True):
                return None
        return count

    def _give_back(self, *, block: bool) -> bool:
        """Release the leases the encoders are done with (waiting for one if `block`); False on stop."""
        while True:
            try:
                lease = self._returned.get(timeout=_POLL_S) if block else self._returned.get_nowait()
            except queue.Empty:
                if not block:
                    return True
                if self._stages.stop.is_set():
                    return False
                continue
            lease.release()
            self._held.remove(lease)
            block = False

    def _collect(
        self, ticket: int, batch: _Batch, pool: queue.Queue[np.ndarray], encoders: list[queue.Queue[Any]]
    ) -> int:
        # The smoother keeps frames across batches: it gets arrays of its own.
        lease = self.runner.lend(ticket) if self.smoother is None else Lease(self.runner.result(ticket), None)
        outputs = lease.outputs
        if self.on_batch is not None:
            self.on_batch(batch.items, batch.frames, outputs)
        pool.put(batch.buffer)
        if self.smoother is None:
            shared = None
            if lease.held and self.writers:
                self._held.append(lease)
                shared = _Shared(lease, len(self.writers), self._returned)
            else:
                lease.release()  # nothing reads it later
            for (output, _), q in zip(self.writers, encoders, strict=True):
                self._stages.put(q, (outputs[output], batch.items, shared))
        else:
            self._send(self.smoother.push(outputs, batch.items, batch.background), encoders)
        return len(batch.items)

    def _send(
        self, frames: list[tuple[dict[str, np.ndarray], Frame]], encoders: list[queue.Queue[Any]]
    ) -> None:
        """Frames one by one (after smoothing) to every encoder."""
        if not frames:
            return
        items = [item for _, item in frames]
        for (output, _), q in zip(self.writers, encoders, strict=True):
            self._stages.put(q, ([images[output] for images, _ in frames], items, None))

    def _encode(self, writer: Writer, q: queue.Queue[Any], report: Callable[[int], None] | None) -> None:
        st = self._stages
        while (item := st.get(q)) is not _END:
            images, items, shared = item
            for image, frame in zip(images, items, strict=True):
                writer.write(image, frame)
            if shared is not None:
                shared.done()
            if report is not None:
                report(len(items))
        if not st.stop.is_set():
            writer.close()
