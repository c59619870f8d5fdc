"""`TensorRTRunner`'s real stream/event pipeline driven by stand-in engines whose "inference" is a CuPy
kernel (or nothing), every output byte checked: batches in flight, composites, prepare() at two sizes, the
runner's host-side ceiling."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np

from benchmarks.device.report import MIB, need_cupy


class _FakeContext:
    """A stand-in TensorRT execution context: alpha = clip(G * gain), rgba = frames + alpha, on the GPU."""

    def __init__(self, cupy: Any, work: int) -> None:
        self.cupy = cupy
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self.runs = 0
        self.work = work
        self.burn = cupy.ones((2048, 2048), cupy.float32)  # extra kernel time, as a network would take

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        n, h, w, _ = self.shapes["frames"]
        return {"alpha": (n, h, w), "rgba": (n, h, w, 4)}[name]

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = ptr
        return True

    def _view(self, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
        cp = self.cupy
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        memory = cp.cuda.UnownedMemory(self.addresses[name], nbytes, self)
        return cp.ndarray(shape, dtype, cp.cuda.MemoryPointer(memory, 0))

    def execute_async_v3(self, stream_handle: int) -> bool:
        cp = self.cupy
        with cp.cuda.ExternalStream(stream_handle):
            frames = self._view("frames", self.shapes["frames"], cp.uint8)
            gain = self._view("gain", (1,), cp.float32)
            alpha = cp.clip(frames[..., 1].astype(cp.float32) * gain[0], 0, 255).astype(cp.uint8)
            self._view("alpha", alpha.shape, cp.uint8)[...] = alpha
            rgba = self._view("rgba", (*alpha.shape, 4), cp.uint8)
            rgba[..., :3] = frames
            rgba[..., 3] = alpha
            for _ in range(self.work):
                self.burn @ self.burn
        self.runs += 1
        return True


class _FakeEngine:
    num_optimization_profiles = 1

    def __init__(self, context: _FakeContext) -> None:
        self.context = context

    def create_execution_context(self) -> _FakeContext:
        return self.context


class _FakeSource:
    def __init__(self, context: _FakeContext) -> None:
        from trt_modnet.tensorrt.engine import TensorIO

        self.context = context
        u8, f32 = np.dtype(np.uint8), np.dtype(np.float32)
        self.io = (
            TensorIO("frames", True, u8),
            TensorIO("gain", True, f32),
            TensorIO("alpha", False, u8),
            TensorIO("rgba", False, u8),
        )

    def __call__(self, height: int, width: int, batch: int) -> Any:
        from trt_modnet.tensorrt.engine import LoadedEngine

        feeds = {"gain": np.array([0.75], np.float32)}
        return LoadedEngine(engine=_FakeEngine(self.context), profile=0, io=self.io, feeds=feeds)

    def close(self) -> None:
        pass


def _expected(frames: np.ndarray) -> dict[str, np.ndarray]:
    alpha = np.clip(frames[..., 1].astype(np.float32) * np.float32(0.75), 0, 255).astype(np.uint8)
    return {"alpha": alpha, "rgba": np.concatenate([frames, alpha[..., None]], axis=-1)}


def runner_pipeline() -> dict[str, Any]:
    """TensorRTRunner with a stand-in engine at 1080p, batch 4 (last 2), depth 1 and 3; every byte checked."""
    from trt_modnet.tensorrt.runner import TensorRTRunner

    cupy = need_cupy()
    rng = np.random.default_rng(1)
    pool = [rng.integers(0, 256, (4, 1080, 1920, 3), dtype=np.uint8) for _ in range(6)]
    batches = [pool[i % len(pool)] for i in range(23)] + [pool[0][:2]]
    expected = [_expected(b) for b in pool[:6]] + [_expected(pool[0][:2])]
    figures: dict[str, Any] = {}
    for depth in (1, 3):
        context = _FakeContext(cupy, work=6)
        with TensorRTRunner(_FakeSource(context), outputs=("rgba", "alpha"), depth=depth) as runner:
            runner.prepare(1080, 1920, 4)
            runner.result(runner.submit({"frames": pool[0]}))  # warm-up
            started = time.perf_counter()
            pending: deque[tuple[int, int]] = deque()
            for i, batch in enumerate(batches):
                if len(pending) == depth:
                    _check(runner, *pending.popleft(), expected, len(batches))
                pending.append((runner.submit({"frames": batch}), i))
            while pending:
                _check(runner, *pending.popleft(), expected, len(batches))
            seconds = time.perf_counter() - started
        frames = sum(len(b) for b in batches)
        figures[f"fps_depth{depth}"] = frames / seconds
        figures[f"enqueues_depth{depth}"] = context.runs
    figures["speedup"] = figures["fps_depth3"] / figures["fps_depth1"]
    return figures


def _check(runner: Any, ticket: int, index: int, expected: list[dict[str, np.ndarray]], count: int) -> None:
    outputs = runner.result(ticket)
    want = expected[-1] if index == count - 1 else expected[index % 6]
    for name, value in want.items():
        if outputs[name].shape != value.shape or not np.array_equal(outputs[name], value):
            raise AssertionError(
                f"batch {index}: {name} {outputs[name].shape} differs from the expected bytes"
            )


class _NoopContext:
    """An execution context that computes nothing: what is left is the runner's own host-side cost."""

    def __init__(self) -> None:
        self.shapes: dict[str, tuple[int, ...]] = {}

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        n, h, w, _ = self.shapes["frames"]
        return {"alpha": (n, h, w), "rgba": (n, h, w, 4), "composite": (n, h, w, 3)}[name]

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        return True


class _CompositeContext(_FakeContext):
    """composite = background where G < 128, else the frame: checks the background paths byte for byte."""

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        n, h, w, _ = self.shapes["frames"]
        return {"composite": (n, h, w, 3)}[name]

    def execute_async_v3(self, stream_handle: int) -> bool:
        cp = self.cupy
        with cp.cuda.ExternalStream(stream_handle):
            frames = self._view("frames", self.shapes["frames"], cp.uint8)
            background = self._view("background", self.shapes["background"], cp.uint8)
            out = self._view("composite", self.shapes["frames"], cp.uint8)
            out[...] = cp.where(frames[..., 1:2] < 128, background, frames)
        self.runs += 1
        return True


def _source(context: Any, outputs: tuple[str, ...], background: bool = False) -> Any:
    from trt_modnet.tensorrt import LoadedEngine, TensorIO

    u8 = np.dtype(np.uint8)
    io = (
        TensorIO("frames", True, u8),
        *((TensorIO("background", True, u8),) if background else ()),
        *(TensorIO(name, False, u8) for name in outputs),
    )

    class Source:
        def __call__(self, height: int, width: int, batch: int) -> Any:
            return LoadedEngine(engine=_FakeEngine(context), profile=0, io=io, feeds={})

        def close(self) -> None:
            pass

    return Source()


def composite_paths() -> dict[str, Any]:
    """Composites over a static plate (uploaded once) and over per-frame backgrounds, every byte checked."""
    from trt_modnet.tensorrt import TensorRTRunner

    cupy = need_cupy()
    rng = np.random.default_rng(4)
    frames = [rng.integers(0, 256, (4, 720, 1280, 3), dtype=np.uint8) for _ in range(3)] * 3
    plate = rng.integers(0, 256, (1, 720, 1280, 3), dtype=np.uint8)
    context = _CompositeContext(cupy, work=0)
    checked = 0
    with TensorRTRunner(_source(context, ("composite",), background=True), outputs=("composite",)) as runner:
        runner.prepare(720, 1280, 4)
        for i, batch in enumerate(frames):
            background = plate if i % 2 else rng.integers(0, 256, batch.shape, dtype=np.uint8)
            out = runner.result(runner.submit({"frames": batch, "background": background}))["composite"]
            want = np.where(batch[..., 1:2] < 128, np.broadcast_to(background, batch.shape), batch)
            if not np.array_equal(out, want):
                raise AssertionError(f"batch {i}: composite differs ({'plate' if i % 2 else 'per frame'})")
            checked += 1
    return {"batches": checked}


def prepare_twice() -> dict[str, Any]:
    """prepare() at 1080p, then 4K, then 1080p again, then close: no device memory is left behind."""
    from cuda.bindings import runtime as cudart

    from trt_modnet.tensorrt import TensorRTRunner, cuda

    def free() -> int:
        cuda.check(cudart.cudaDeviceSynchronize(), "cudaDeviceSynchronize()")
        return int(cuda.check(cudart.cudaMemGetInfo(), "cudaMemGetInfo()")[0])

    before = free()
    peak = 0
    with TensorRTRunner(_source(_NoopContext(), ("alpha", "rgba")), outputs=("alpha", "rgba")) as runner:
        for height, width, batch in ((1080, 1920, 4), (2160, 3840, 2), (1080, 1920, 4)):
            runner.prepare(height, width, batch)
            pool = runner.frame_buffers(3)
            runner.result(runner.submit({"frames": pool[0]}))
            peak = max(peak, before - free())
    leaked = before - free()
    if leaked > 16 * MIB:
        raise AssertionError(f"{leaked / MIB:.0f} MiB of device memory not returned")
    return {"peak_mib": peak / MIB, "leaked_mib": leaked / MIB}


def host_ceiling(
    sizes: tuple[tuple[int, int], ...] = ((1080, 1920), (2160, 3840)), batches: int = 24
) -> dict[str, Any]:
    """Frames per second of the runner around an engine that computes nothing (batch 4, depth 2), frames
    from its pinned frame buffers and from plain numpy: the most any engine can get through it."""
    from trt_modnet.tensorrt import TensorRTRunner

    figures: dict[str, Any] = {}
    for height, width in sizes:
        with TensorRTRunner(_source(_NoopContext(), ("rgba",)), outputs=("rgba",), depth=2) as runner:
            runner.prepare(height, width, 4)
            pinned = runner.frame_buffers(3)
            plain = [np.zeros_like(b) for b in pinned]
            for label, pool in (("pinned", pinned), ("numpy", plain)):
                pending: deque[int] = deque()
                started = time.perf_counter()
                for i in range(batches):
                    if len(pending) == 2:
                        runner.result(pending.popleft())
                    pending.append(runner.submit({"frames": pool[i % len(pool)]}))
                while pending:
                    runner.result(pending.popleft())
                figures[f"fps_{height}p_{label}"] = 4 * batches / (time.perf_counter() - started)
    return figures
