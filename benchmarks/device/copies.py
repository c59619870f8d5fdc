"""CUDA through `trt_modnet.tensorrt.cuda` on a real GPU: the device, pinned round trips, bandwidth, copies
overlapping on two streams and over a kernel, events across streams, errors, blocking-sync waits."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.device.report import MIB, need_cupy


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


def copy_compute_overlap() -> dict[str, Any]:
    """Copies on two streams overlap a kernel on a third (as H2D/D2H overlap execute_async_v3)."""
    from trt_modnet.tensorrt import cuda

    cupy = need_cupy()
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
