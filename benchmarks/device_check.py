"""The GPU checks that need no TensorRT: run by `bash benchmarks/device_check.sh` on a GPU machine.

Exercises `trt_modnet.tensorrt.cuda` on a real GPU (pinned round trips, bandwidth, copies overlapping on two
streams, events across streams, errors) and drives `TensorRTRunner`'s real stream/event pipeline with a
stand-in engine whose "inference" is a CuPy kernel, checking every output byte. One line per step; figures as
JSON in $OUT/device_check.json when OUT is set. Exit status 1 when any step failed.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MIB = 1 << 20


class Skip(Exception):
    """A step that cannot run here (e.g. CuPy missing); not a failure."""


class Report:
    def __init__(self) -> None:
        self.steps: dict[str, dict[str, Any]] = {}
        self.failed = 0

    def step(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            figures, status = fn(), "ok"
        except Skip as exc:
            figures, status = {"reason": str(exc)}, "skipped"
        except Exception as exc:  # every step is guarded: report it, go on with the next
            figures, status = {"error": f"{type(exc).__name__}: {exc}"}, "FAIL"
            self.failed += 1
            traceback.print_exc(limit=4, file=sys.stdout)
        seconds = time.perf_counter() - started
        shown = "  ".join(f"{k}={_fmt(v)}" for k, v in figures.items())
        print(f"{status:7s} {name:22s} {shown}  [{seconds:.1f} s]", flush=True)
        self.steps[name] = {"status": status, "seconds": round(seconds, 2), **figures}
        return figures

    def save(self) -> None:
        out = os.environ.get("OUT")
        if out:
            path = Path(out) / "device_check.json"
            path.write_text(json.dumps({"failed": self.failed, "steps": self.steps}, indent=2, default=str))
            print(f"figures written to {path}")


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def versions() -> dict[str, Any]:
    found: dict[str, Any] = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("cuda.bindings", "cupy", "torch", "tensorrt", "av"):
        try:
            found[name] = importlib.import_module(name).__version__
        except Exception as exc:  # absent or broken: say which
            found[name] = f"absent ({type(exc).__name__})"
    return found


def gpu() -> dict[str, Any]:
    from trt_modnet.tensorrt import cuda

    reason = cuda.unavailable_reason()
    if reason is not None:
        raise RuntimeError(reason)
    info = cuda.gpu_info(0)
    return {
        "devices": cuda.device_count(),
        "name": info.name,
        "cc": info.compute_capability,
        "memory_gib": round(info.memory_bytes / (1 << 30), 1),
        "driver": info.driver_version,
        "runtime": info.runtime_version,
    }


def round_trip() -> dict[str, Any]:
    """Random bytes host -> device -> host through pinned buffers (plain and write-combined) are unchanged."""
    from trt_modnet.tensorrt import cuda

    data = np.random.default_rng(0).integers(0, 256, 64 * MIB, dtype=np.uint8)
    with (
        cuda.Stream() as stream,
        cuda.DeviceBuffer(data.nbytes) as dev,
        cuda.PinnedBuffer(data.nbytes) as back,
    ):
        for write_combined in (False, True):
            with cuda.PinnedBuffer(data.nbytes, write_combined=write_combined) as src:
                np.copyto(src.array, data)
                back.array[:] = 0
                cuda.copy_to_device(dev, src, data.nbytes, stream)
                cuda.copy_to_host(back, dev, data.nbytes, stream)
                stream.synchronize()
                if not np.array_equal(back.array, data):
                    raise AssertionError(f"round trip changed the bytes (write_combined={write_combined})")
        odd = data[: 3 * 1080 * 1917].reshape(1080, 1917, 3)  # a non-power-of-two view, as frames are
        np.copyto(back.view(odd.shape), odd)
        if not np.array_equal(back.view(odd.shape), odd):
            raise AssertionError("view() does not map the pinned bytes")
    return {"bytes": data.nbytes, "equal": True}


def bandwidth() -> dict[str, Any]:
    """GB/s of 256 MiB copies: pinned, write-combined pinned and pageable (best of 5, timed with events)."""
    from cuda.bindings import runtime as cudart

    from trt_modnet.tensorrt import cuda

    n = 256 * MIB
    with (
        cuda.Stream() as s,
        cuda.DeviceBuffer(n) as dev,
        cuda.PinnedBuffer(n) as pinned,
        cuda.PinnedBuffer(n, write_combined=True) as wc,
        cuda.Event(timing=True) as t0,
        cuda.Event(timing=True) as t1,
    ):
        pageable = np.ones(n, np.uint8)

        def timed(copy: Callable[[], None]) -> float:
            best = float("inf")
            for _ in range(5):
                t0.record(s)
                copy()
                t1.record(s)
                t1.synchronize()
                best = min(best, t1.elapsed_ms(t0))
            return n / best / 1e6  # GB/s

        h2d, d2h = cuda.HOST_TO_DEVICE, cuda.DEVICE_TO_HOST
        return {
            "h2d_pinned_gbs": timed(lambda: cuda.copy_to_device(dev, pinned, n, s)),
            "d2h_pinned_gbs": timed(lambda: cuda.copy_to_host(pinned, dev, n, s)),
            "h2d_wc_gbs": timed(lambda: cuda.copy_to_device(dev, wc, n, s)),
            "h2d_pageable_gbs": timed(
                lambda: cuda.check(
                    cudart.cudaMemcpyAsync(dev.ptr, pageable.ctypes.data, n, h2d, s.handle), "h2d"
                )
            ),
            "d2h_pageable_gbs": timed(
                lambda: cuda.check(
                    cudart.cudaMemcpyAsync(pageable.ctypes.data, dev.ptr, n, d2h, s.handle), "d2h"
                )
            ),
        }


def two_streams() -> dict[str, Any]:
    """H2D on one stream and D2H on another run at once (separate copy engines): time both ways."""
    from trt_modnet.tensorrt import cuda

    n = 256 * MIB
    with (
        cuda.Stream() as a,
        cuda.Stream() as b,
        cuda.PinnedBuffer(n) as up,
        cuda.PinnedBuffer(n) as down,
        cuda.DeviceBuffer(n) as d_up,
        cuda.DeviceBuffer(n) as d_down,
    ):

        def run(second: cuda.Stream) -> float:
            best = float("inf")
            for _ in range(5):
                started = time.perf_counter()
                cuda.copy_to_device(d_up, up, n, a)
                cuda.copy_to_host(down, d_down, n, second)
                a.synchronize()
                second.synchronize()
                best = min(best, time.perf_counter() - started)
            return best * 1e3

        serial, overlapped = run(a), run(b)
    return {"serial_ms": serial, "two_streams_ms": overlapped, "speedup": serial / overlapped}


def events() -> dict[str, Any]:
    """A stream that waits for another's event sees its copy; done() and elapsed_ms() behave."""
    from trt_modnet.tensorrt import cuda

    n = 128 * MIB
    with (
        cuda.Stream() as a,
        cuda.Stream() as b,
        cuda.PinnedBuffer(n) as src,
        cuda.PinnedBuffer(n) as dst,
        cuda.DeviceBuffer(n) as dev,
        cuda.Event() as copied,
        cuda.Event(timing=True) as t0,
        cuda.Event(timing=True) as t1,
    ):
        pending_seen = 0
        for value in range(1, 21):
            src.array[:] = value
            t0.record(a)
            cuda.copy_to_device(dev, src, n, a)
            copied.record(a)
            t1.record(a)
            pending_seen += not copied.done()
            b.wait(copied)
            cuda.copy_to_host(dst, dev, n, b)
            b.synchronize()
            if not (copied.done() and dst.array[0] == value and dst.array[-1] == value):
                raise AssertionError(f"stream b did not see stream a's copy of {value}")
        return {"rounds": 20, "pending_seen": pending_seen, "last_copy_ms": t1.elapsed_ms(t0)}


def errors() -> dict[str, Any]:
    """CUDA failures name the call; closed resources refuse use; close twice is fine."""
    from trt_modnet.tensorrt import cuda

    try:
        cuda.DeviceBuffer(1 << 60)
    except cuda.CudaError as exc:
        message = str(exc)
        if "cudaMalloc(1152921504606846976)" not in message:
            raise AssertionError(f"error does not name the call: {message}") from None
    else:
        raise AssertionError("cudaMalloc of 1 EiB succeeded")
    buffer = cuda.PinnedBuffer(16)
    buffer.close()
    buffer.close()
    try:
        buffer.view((16,))
    except RuntimeError:
        pass
    else:
        raise AssertionError("a closed pinned buffer was usable")
    return {"message": message}


def _cupy() -> Any:
    try:
        import cupy
    except ImportError as exc:
        raise Skip(f"CuPy is not installed ({exc})") from None
    return cupy


def copy_compute_overlap() -> dict[str, Any]:
    """Copies on two streams overlap a kernel on a third (as H2D/D2H overlap execute_async_v3)."""
    from trt_modnet.tensorrt import cuda

    cupy = _cupy()
    n = 256 * MIB
    m = cupy.random.random((4096, 4096), dtype=cupy.float32)
    with (
        cuda.Stream() as a,
        cuda.Stream() as b,
        cuda.Stream() as c,
        cuda.PinnedBuffer(n) as up,
        cuda.PinnedBuffer(n) as down,
        cuda.DeviceBuffer(n) as d_up,
        cuda.DeviceBuffer(n) as d_down,
    ):

        def copies() -> None:
            cuda.copy_to_device(d_up, up, n, a)
            cuda.copy_to_host(down, d_down, n, b)

        def compute() -> None:
            with cupy.cuda.ExternalStream(c.ptr):
                for _ in range(8):
                    m @ m

        def timed(*work: Callable[[], None]) -> float:
            best = float("inf")
            for _ in range(5):
                started = time.perf_counter()
                for w in work:
                    w()
                for s in (a, b, c):
                    s.synchronize()
                best = min(best, time.perf_counter() - started)
            return best * 1e3

        timed(compute)  # warm-up: CuPy compiles and picks its kernels
        t_copy, t_compute, t_both = timed(copies), timed(compute), timed(copies, compute)
    hidden = (t_copy + t_compute - t_both) / min(t_copy, t_compute)
    return {"copies_ms": t_copy, "compute_ms": t_compute, "together_ms": t_both, "hidden_fraction": hidden}


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

    cupy = _cupy()
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

    cupy = _cupy()
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


def blocking_sync() -> dict[str, Any]:
    """Host CPU time and wall time of waiting for 256 MiB of copies: blocking-sync event against spinning."""
    from trt_modnet.tensorrt import cuda

    n = 256 * MIB
    figures: dict[str, Any] = {}
    with cuda.Stream() as s, cuda.PinnedBuffer(n) as host, cuda.DeviceBuffer(n) as dev:
        for blocking in (False, True):
            with cuda.Event(blocking=blocking) as done:
                cpu, wall = [], []
                for _ in range(5):
                    for _ in range(4):
                        cuda.copy_to_device(dev, host, n, s)
                    done.record(s)
                    c0, w0 = time.process_time(), time.perf_counter()
                    done.synchronize()
                    cpu.append(time.process_time() - c0)
                    wall.append(time.perf_counter() - w0)
            name = "blocking" if blocking else "spin"
            figures[f"{name}_cpu_ms"] = 1e3 * float(np.median(cpu))
            figures[f"{name}_wall_ms"] = 1e3 * float(np.median(wall))
    return figures


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


def _nvidia_codecs() -> Any:
    try:
        import av
    except ImportError as exc:
        raise Skip(f"PyAV is not installed ({exc}); place its wheel beside device_check.sh") from None
    return av


#: 1080p frames encoded and decoded by the NVENC/NVDEC steps.
_CODEC_FRAMES, _CODEC_SIZE = 120, (1920, 1080)


def _codec_frames(av: Any) -> list[Any]:
    width, height = _CODEC_SIZE
    yy, xx = np.mgrid[0:height, 0:width]
    frames = []
    for i in range(_CODEC_FRAMES):
        rgb = np.dstack([(xx + 4 * i) % 256, (yy + 2 * i) % 256, (xx + yy) % 256]).astype(np.uint8)
        frames.append(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p"))
    return frames


def _encode_with(av: Any, codec: str, frames: list[Any], path: Path, options: dict[str, str]) -> float:
    """fps of encoding `frames` with `codec` into an .mp4 at `path` (opening the encoder not timed)."""
    from fractions import Fraction

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=25, options=options)
        stream.width, stream.height, stream.pix_fmt = *_CODEC_SIZE, "yuv420p"
        stream.codec_context.open()
        started = time.perf_counter()
        for i, frame in enumerate(frames):
            frame.pts, frame.time_base = i, Fraction(1, 25)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        return len(frames) / (time.perf_counter() - started)


def _decoded_frames(av: Any, path: Path, decoder: str | None = None) -> tuple[int, float, list[int]]:
    """Frames decoded from `path` (by `decoder`, else FFmpeg's default), the fps, and their pts."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if decoder is not None:
            ctx = av.CodecContext.create(decoder, "r")
            ctx.extradata = stream.codec_context.extradata
            ctx.open()
        started = time.perf_counter()
        pts = [f.pts for p in container.demux(stream) if p.size for f in ctx.decode(p)]
        pts += [f.pts for f in ctx.decode(None)]
        return len(pts), len(pts) / (time.perf_counter() - started), sorted(p for p in pts if p is not None)


def nvenc() -> dict[str, Any]:
    """h264/hevc/av1_nvenc through PyAV: fps at 1080p and an output the CPU decoder reads back whole;
    an encoder that does not open is reported (GPUs without NVENC, e.g. H100/H200, have none)."""
    av = _nvidia_codecs()
    frames = _codec_frames(av)
    folder = Path(os.environ.get("OUT") or "/tmp")
    figures: dict[str, Any] = {}
    cpu_fps = _encode_with(av, "libx264", frames, folder / "libx264.mp4", {"preset": "veryfast"})
    figures["libx264_veryfast_fps"] = round(cpu_fps, 1)
    opened = 0
    for codec in ("h264_nvenc", "hevc_nvenc", "av1_nvenc"):
        path = folder / f"{codec}.mp4"
        try:
            fps = _encode_with(av, codec, frames, path, {"preset": "p4", "rc": "vbr", "cq": "19", "b": "0"})
        except av.FFmpegError as exc:
            figures[codec] = f"does not open: {exc.strerror}"
            continue
        count, _, _ = _decoded_frames(av, path)
        if count != len(frames):
            raise AssertionError(f"{codec}: {count} of {len(frames)} frames decode back")
        figures[f"{codec}_fps"] = round(fps, 1)
        figures[f"{codec}_decodes"] = f"{count} frames, {path.stat().st_size} bytes"
        opened += 1
    figures["nvenc_encoders_opened"] = opened
    return figures


def nvdec() -> dict[str, Any]:
    """h264_cuvid/hevc_cuvid through PyAV on a 1080p clip: fps against the CPU decoder, same frame count
    and pts; then the project's reader with decoder="nvdec" (its one-line fallback where it fails)."""
    av = _nvidia_codecs()
    folder = Path(os.environ.get("OUT") or "/tmp")
    frames = _codec_frames(av)[:60]  # libx265 makes the HEVC input on the CPU
    figures: dict[str, Any] = {}
    for codec, decoder in (("libx264", "h264_cuvid"), ("libx265", "hevc_cuvid")):
        path = folder / f"nvdec_{codec}.mp4"
        try:
            _encode_with(av, codec, frames, path, {"preset": "ultrafast"})
        except (av.FFmpegError, ValueError) as exc:
            figures[decoder] = f"no {codec} to make the input: {exc}"
            continue
        cpu_count, cpu_fps, cpu_pts = _decoded_frames(av, path)
        try:
            count, fps, pts = _decoded_frames(av, path, decoder)
        except av.FFmpegError as exc:
            figures[decoder] = f"does not open: {exc.strerror}"
            continue
        if (count, pts) != (cpu_count, cpu_pts):
            raise AssertionError(f"{decoder}: {count} frames, the CPU decoder {cpu_count}, or pts differ")
        figures[f"{decoder}_fps"] = round(fps, 1)
        figures[f"{decoder}_cpu_decoder_fps"] = round(cpu_fps, 1)
    try:
        from trt_modnet.video.reader import open_nvdec
    except ImportError as exc:
        figures["project_reader"] = f"not importable here: {exc}"
        return figures
    with av.open(str(folder / "nvdec_libx264.mp4")) as container:
        ctx = open_nvdec(container.streams.video[0], Path("nvdec_libx264.mp4"))
        figures["project_reader_opens"] = ctx.name if ctx is not None else "CPU fallback"
    return figures


_CODEC_STEPS = {"nvenc": nvenc, "nvdec": nvdec}


def main(argv: list[str] | None = None) -> int:
    """Every step; with step names as arguments (`nvenc nvdec`), only those."""
    names = sys.argv[1:] if argv is None else argv
    report = Report()
    report.step("versions", versions)
    for name, fn in _CODEC_STEPS.items():  # through PyAV only: they run without cuda-bindings
        if not names or name in names:
            report.step(name, fn)
    if names and set(names) <= set(_CODEC_STEPS):
        report.save()
        return 1 if report.failed else 0
    report.step("gpu", gpu)
    if report.steps["gpu"]["status"] != "ok":
        report.save()
        return 1
    for name, fn in (
        ("pinned_round_trip", round_trip),
        ("bandwidth", bandwidth),
        ("two_stream_copies", two_streams),
        ("events", events),
        ("errors", errors),
        ("copy_compute_overlap", copy_compute_overlap),
        ("runner_pipeline", runner_pipeline),
        ("composite_paths", composite_paths),
        ("prepare_twice", prepare_twice),
        ("blocking_sync", blocking_sync),
        ("host_ceiling", host_ceiling),
    ):
        report.step(name, fn)
    report.save()
    print(f"{len(report.steps)} steps, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
