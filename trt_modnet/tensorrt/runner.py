"""The TensorRT runner: the deployment graph as an FP16 engine on an NVIDIA GPU, several batches in flight.

One execution context runs every batch on one compute stream, in submission order. Each in-flight slot owns
pinned host buffers, device buffers and a copy stream, so that while batch k runs, batch k+1 is copied in and
batch k-1 copied out, and the host fills the next pinned buffer:

    slot stream:     H2D(k) -> [inputs ready]                     wait [executed] -> D2H(k) -> [outputs ready]
    compute stream:            wait [inputs ready] -> execute_async_v3(k) -> [executed]

`result()` waits for the slot's [outputs ready] event and copies the outputs out of pinned memory, so the
arrays belong to the caller while the slot is reused; `lend()` hands out the pinned buffers themselves and
keeps the slot until the caller (the pipeline, once every encoder has written the batch) releases it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from typing import Any, Protocol

import numpy as np

from trt_modnet.errors import MattingError
from trt_modnet.runtime.base import DEFAULT_DEPTH, Runner, State
from trt_modnet.tensorrt.cuda import DeviceBuffer, Event, PinnedBuffer, Stream, copy_to_device, copy_to_host
from trt_modnet.tensorrt.engine import MATTE, LoadedEngine, TensorIO, one_line

BATCH_INPUTS = ("frames", "background")


class EngineSource(Protocol):
    """Hands over the engine for a video in `prepare` (found or built); `engine.EngineLoader` is one."""

    def __call__(self, height: int, width: int, batch: int) -> LoadedEngine: ...

    def close(self) -> None: ...


class _Slot:
    """The buffers, copy stream and events of one batch in flight."""

    def __init__(
        self, stack: ExitStack, io: Sequence[TensorIO], shapes: Mapping[str, tuple[int, ...]]
    ) -> None:
        self.stream: Stream = stack.enter_context(Stream())
        self.inputs_ready: Event = stack.enter_context(Event())
        self.executed: Event = stack.enter_context(Event())
        # The one event the host waits on (`result`): blocking, so the wait sleeps instead of spinning.
        self.outputs_ready: Event = stack.enter_context(Event(blocking=True))
        self.host: dict[str, PinnedBuffer] = {}
        self.device: dict[str, DeviceBuffer] = {}
        for t in io:
            nbytes = int(np.prod(shapes[t.name], dtype=np.int64)) * t.dtype.itemsize
            self.device[t.name] = stack.enter_context(DeviceBuffer(nbytes))
            # The host only writes input buffers, never reads them: write-combined is faster for the copy.
            self.host[t.name] = stack.enter_context(PinnedBuffer(nbytes, write_combined=t.is_input))
        self.shapes: dict[str, tuple[int, ...]] = {}  # output shapes of the batch in flight


class TensorRTRunner(Runner):
    """Runs a TensorRT engine of the deployment graph; the engine is resolved lazily in `prepare`.

    `source(height, width, batch)` hands over the engine for a video (found in the engines folder or built);
    `outputs` are the engine outputs `result()` returns (others stay on the device). When the engine
    exposes MODNet's float matte, the first batch of every video also brings it back and checks it for
    NaN/Inf, which the uint8 outputs would hide (a broken FP16 engine gives plausible-looking garbage).
    """

    lends = True  # `lend` hands out the pinned output buffers: no host copy per batch

    def __init__(self, source: EngineSource, *, outputs: Sequence[str], depth: int = DEFAULT_DEPTH) -> None:
        super().__init__(depth)
        self.source = source
        self.outputs = tuple(outputs)
        self._check_matte = False  # the next batch brings the matte back for the NaN/Inf check
        self._video = ExitStack()  # everything allocated for the current video
        self._loaded: LoadedEngine | None = None
        self._context: Any = None
        self._compute: Stream | None = None
        self._slots: list[_Slot] = []
        # A one-row background (colour, image) is uploaded once per video; batches that pass the same array
        # again bind this copy. Holding the array keeps the identity check sound.
        self._plate: tuple[np.ndarray, DeviceBuffer] | None = None
        self._frame_pool: dict[int, PinnedBuffer] = {}  # address -> the pinned frame buffers handed out

    def _prepare(self, height: int, width: int, batch: int) -> None:
        # Not prepared until this succeeds: a failed prepare must not leave the last video's state usable.
        self.state, self.frame_size = State.NEW, None
        self._release_video()
        loaded = self.source(height, width, batch)
        _check_io(loaded, self.outputs)
        try:
            self._compute = self._video.enter_context(Stream())
            self._context = self._create_context(loaded, self._compute)
            self._upload_feeds(loaded)
            shapes = self._max_shapes(loaded, height, width, batch)
            batch_io = [t for t in loaded.io if t.name not in loaded.feeds]
            self._slots = [_Slot(self._video, batch_io, shapes) for _ in range(self.inflight.depth)]
        except BaseException:
            self._release_video()
            raise
        self._loaded = loaded
        self._check_matte = MATTE not in self.outputs and any(t.name == MATTE for t in loaded.io)

    def _create_context(self, loaded: LoadedEngine, stream: Stream) -> Any:
        context = loaded.engine.create_execution_context()
        if context is None:
            raise MattingError("TensorRT could not create an execution context (out of GPU memory?)")
        # Needed only when the engine has several profiles; profile 0 is the default.
        if loaded.engine.num_optimization_profiles > 1:
            call = f"TensorRT set_optimization_profile_async({loaded.profile})"
            try:  # the Python bindings raise RuntimeError where the C++ API returns false
                selected = context.set_optimization_profile_async(loaded.profile, stream.ptr)
            except RuntimeError as exc:
                raise MattingError(f"{call} failed: {one_line(exc)}") from None
            if not selected:
                raise MattingError(f"{call} failed")
            stream.synchronize()
        return context

    def _upload_feeds(self, loaded: LoadedEngine) -> None:
        """The per-video inputs (resize matrices...): copied to the device once, bound once."""
        assert self._compute is not None
        dtypes = {t.name: t.dtype for t in loaded.io}
        for name, feed in loaded.feeds.items():
            array = np.ascontiguousarray(feed, dtype=dtypes[name])
            with PinnedBuffer(array.nbytes) as staging:
                np.copyto(staging.view(array.shape, array.dtype), array)
                device = self._video.enter_context(DeviceBuffer(array.nbytes))
                copy_to_device(device, staging, array.nbytes, self._compute)
                self._compute.synchronize()  # before the staging buffer is freed
            _set_input_shape(self._context, name, array.shape)
            _set_address(self._context, name, device.ptr)

    def _max_shapes(
        self, loaded: LoadedEngine, height: int, width: int, batch: int
    ) -> dict[str, tuple[int, ...]]:
        """Shapes of every batch input and output for the largest batch, to size the buffers once."""
        inputs = {t.name for t in loaded.io if t.is_input}
        shapes = {n: (batch, height, width, 3) for n in BATCH_INPUTS if n in inputs}
        for name, shape in shapes.items():
            _set_input_shape(self._context, name, shape)
        for t in loaded.io:
            if not t.is_input:
                shapes[t.name] = _output_shape(self._context, t.name)
        return shapes

    def frame_buffers(self, count: int) -> list[np.ndarray]:
        """Pinned buffers for decoded frames: frames submitted from them are uploaded without a host copy.

        Not write-combined: the pipeline reads frames back (preview, smoothing), which would crawl.
        """
        super().frame_buffers(count)  # checks the state
        assert self.frame_size is not None
        shape = (self.max_batch, *self.frame_size, 3)
        nbytes = int(np.prod(shape))
        buffers = [self._video.enter_context(PinnedBuffer(nbytes)) for _ in range(count)]
        self._frame_pool.update((b.ptr, b) for b in buffers)
        return [b.view(shape) for b in buffers]

    def _pinned(self, array: np.ndarray) -> PinnedBuffer | None:
        """The pinned frame buffer `array` is a leading slice of, if any."""
        found = self._frame_pool.get(array.ctypes.data)
        if found is None or not array.flags["C_CONTIGUOUS"] or array.nbytes > found.nbytes:
            return None
        return found

    def _submit(self, slot: int, feeds: Mapping[str, np.ndarray]) -> None:
        assert self._loaded is not None and self._compute is not None
        s = self._slots[slot]
        batch = self._batch_feeds(feeds)
        for name, array in batch.items():
            device = self._static_plate(s, feeds[name]) if name == "background" else None
            if device is None:
                device = s.device[name]
                host = self._pinned(array) if name == "frames" else None
                if host is None:
                    host = s.host[name]
                    np.copyto(host.view(array.shape), array)
                copy_to_device(device, host, array.nbytes, s.stream)
            _set_input_shape(self._context, name, array.shape)
            _set_address(self._context, name, device.ptr)
        s.inputs_ready.record(s.stream)
        self._compute.wait(s.inputs_ready)
        for t in self._loaded.io:
            if not t.is_input:
                _set_address(self._context, t.name, s.device[t.name].ptr)
        if not self._context.execute_async_v3(self._compute.ptr):
            raise MattingError(f"TensorRT execute_async_v3 failed for frames {list(batch['frames'].shape)}")
        s.executed.record(self._compute)
        s.stream.wait(s.executed)
        fetched = (*self.outputs, MATTE) if self._check_matte else self.outputs
        self._check_matte = False
        s.shapes = {name: _output_shape(self._context, name) for name in fetched}
        for name, shape in s.shapes.items():
            nbytes = int(np.prod(shape, dtype=np.int64)) * self._dtype(name).itemsize
            copy_to_host(s.host[name], s.device[name], nbytes, s.stream)
        s.outputs_ready.record(s.stream)

    def _static_plate(self, s: _Slot, background: np.ndarray) -> DeviceBuffer | None:
        """The device copy of a one-row background given again as the same array, uploaded on first use
        (on this slot's stream, before its [inputs ready]); None for per-frame or changing backgrounds."""
        if self._plate is not None:
            source, device = self._plate
            return device if background is source else None
        if len(background) != 1:
            return None
        array = np.ascontiguousarray(background)
        device = self._video.enter_context(DeviceBuffer(array.nbytes))
        np.copyto(s.host["background"].view(array.shape), array)
        copy_to_device(device, s.host["background"], array.nbytes, s.stream)
        self._plate = (background, device)
        return device

    def _batch_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The per-batch inputs the engine takes, checked: frames, and a background for composites."""
        assert self._loaded is not None
        wanted = [t.name for t in self._loaded.io if t.is_input and t.name in BATCH_INPUTS]
        unknown = set(feeds) - set(wanted)
        if unknown or set(wanted) - set(feeds):
            raise RuntimeError(f"feeds {sorted(feeds)} do not match the engine's batch inputs {wanted}")
        frames = feeds["frames"]
        background = feeds.get("background")
        if background is not None and (
            background.dtype != np.uint8
            or background.shape[1:] != frames.shape[1:]
            or background.shape[0] not in (1, frames.shape[0])
        ):
            raise RuntimeError(
                f"background {background.dtype}{list(background.shape)} does not fit "
                f"frames {list(frames.shape)}"
            )
        return {name: np.ascontiguousarray(feeds[name]) for name in wanted}

    def _result(self, slot: int) -> dict[str, np.ndarray]:
        return {name: array.copy() for name, array in self._lend(slot).items()}

    def _lend(self, slot: int) -> dict[str, np.ndarray]:
        """Views of the slot's pinned output buffers, once the device has written them."""
        s = self._slots[slot]
        s.outputs_ready.synchronize()
        if MATTE in s.shapes and MATTE not in self.outputs:
            _check_finite(s.host[MATTE].view(s.shapes[MATTE], self._dtype(MATTE)))
        return {name: s.host[name].view(s.shapes[name], self._dtype(name)) for name in self.outputs}

    def _dtype(self, name: str) -> np.dtype:
        assert self._loaded is not None
        return next(t.dtype for t in self._loaded.io if t.name == name)

    def _close(self) -> None:
        try:
            self._release_video()
        finally:
            self.source.close()

    def _release_video(self) -> None:
        """Wait for the device to finish with this video's buffers, then free them (errors still free)."""
        try:
            for stream in (self._compute, *(s.stream for s in self._slots)):
                if stream is not None and not stream.closed:
                    stream.synchronize()
        finally:
            self._context = None  # before its engine; TensorRT frees the context's activation memory
            self._slots = []
            self._plate = None
            self._frame_pool = {}
            self._compute = None
            self._loaded = None
            video, self._video = self._video, ExitStack()
            video.close()


def _check_finite(matte: np.ndarray) -> None:
    bad = int(matte.size - np.isfinite(matte).sum())
    if bad:
        raise MattingError(
            f"the TensorRT engine gave {bad} NaN/Inf values in MODNet's matte on the first batch: its FP16 "
            "arithmetic fails on this GPU; check it with build_engine.py --validate, or use "
            "--backend onnxruntime"
        )


def _check_io(loaded: LoadedEngine, outputs: Sequence[str]) -> None:
    names = {t.name for t in loaded.io}
    inputs = {t.name for t in loaded.io if t.is_input}
    missing = [n for n in ("frames", *loaded.feeds, *outputs) if n not in names]
    unfed = sorted(inputs - set(loaded.feeds) - set(BATCH_INPUTS))
    if missing or unfed:
        raise MattingError(
            f"the TensorRT engine does not match the deployment graph (missing {missing}, unfed inputs "
            f"{unfed}); delete it from the engines folder to rebuild it"
        )


def _set_input_shape(context: Any, name: str, shape: Sequence[int]) -> None:
    if not context.set_input_shape(name, tuple(int(d) for d in shape)):
        raise MattingError(
            f"TensorRT set_input_shape({name!r}, {list(shape)}) failed: outside the engine's profile"
        )


def _set_address(context: Any, name: str, ptr: int) -> None:
    if not context.set_tensor_address(name, ptr):
        raise MattingError(f"TensorRT set_tensor_address({name!r}, {ptr:#x}) failed")


def _output_shape(context: Any, name: str) -> tuple[int, ...]:
    shape = tuple(int(d) for d in context.get_tensor_shape(name))
    if any(d < 0 for d in shape):
        raise MattingError(f"TensorRT cannot infer the shape of output {name!r} ({list(shape)})")
    return shape
