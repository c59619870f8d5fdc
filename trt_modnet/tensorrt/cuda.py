"""A thin layer over cuda-python's runtime bindings (`cuda.bindings.runtime`) for the TensorRT runner.

Each class owns one CUDA resource (pinned host memory exposed as a numpy array, device memory, a stream, an
event) with an idempotent `close()`; using a closed one raises. Every CUDA call is checked, and a failure
raises `CudaError` naming the call, its arguments and CUDA's own error name.

cuda-bindings imports on a machine without a GPU; its runtime calls then return
`cudaErrorInsufficientDriver` (no driver) or `cudaErrorNoDevice`, which `unavailable_reason()` reports.
"""

from __future__ import annotations

import ctypes
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
from cuda.bindings import runtime as cudart

from trt_modnet.errors import MattingError

HOST_TO_DEVICE = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
DEVICE_TO_HOST = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
DEVICE_TO_DEVICE = cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice


class CudaError(MattingError):
    """A CUDA runtime call failed; the message names the call and CUDA's error."""

    def __init__(self, call: str, err: Any) -> None:
        self.call = call
        self.code = int(err)
        super().__init__(f"CUDA call {call} failed: {error_name(err)} ({_error_string(err)})")


def error_name(err: Any) -> str:
    status, name = cudart.cudaGetErrorName(err)
    return name.decode() if status == cudart.cudaError_t.cudaSuccess else f"cudaError {int(err)}"


def _error_string(err: Any) -> str:
    status, text = cudart.cudaGetErrorString(err)
    return text.decode() if status == cudart.cudaError_t.cudaSuccess else "no description"


def check(result: tuple[Any, ...], call: str) -> Any:
    """Unpack a cuda-bindings result `(err, *values)`: raise on error, else None, the value or a tuple."""
    err, values = result[0], result[1:]
    if err != cudart.cudaError_t.cudaSuccess:
        raise CudaError(call, err)
    if not values:
        return None
    return values[0] if len(values) == 1 else values


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    compute_capability: str  # "9.0"
    memory_bytes: int
    driver_version: int  # e.g. 13000 for CUDA 13.0
    runtime_version: int


def device_count() -> int:
    return int(check(cudart.cudaGetDeviceCount(), "cudaGetDeviceCount()"))


def unavailable_reason() -> str | None:
    """None when a CUDA device is usable; else one line saying why not (no driver, no GPU)."""
    err, count = cudart.cudaGetDeviceCount()
    if err == cudart.cudaError_t.cudaErrorInsufficientDriver:
        return _insufficient_driver()
    if err == cudart.cudaError_t.cudaErrorNoDevice or (err == cudart.cudaError_t.cudaSuccess and count == 0):
        return "no NVIDIA GPU is visible (cudaGetDeviceCount: no device)"
    if err != cudart.cudaError_t.cudaSuccess:
        return f"CUDA is unusable (cudaGetDeviceCount: {error_name(err)})"
    return None


def _insufficient_driver() -> str:
    """cudaErrorInsufficientDriver means no driver, or a driver older than this CUDA runtime: say which."""
    runtime = _cuda_version(cudart.cudaRuntimeGetVersion())
    driver = _cuda_version(cudart.cudaDriverGetVersion())
    if driver is None:
        return (
            f"no NVIDIA driver is loaded (cudaGetDeviceCount: cudaErrorInsufficientDriver; "
            f"cuda-bindings runtime CUDA {runtime})"
        )
    return (
        f"the NVIDIA driver supports CUDA {driver}, older than the CUDA {runtime} runtime of cuda-bindings "
        "(cudaErrorInsufficientDriver): update the driver, or install the extra for the driver's CUDA "
        "major ([trt] for CUDA 12, [trt-cu13] for CUDA 13)"
    )


def _cuda_version(result: tuple[Any, ...]) -> str | None:
    """cudaDriverGetVersion/cudaRuntimeGetVersion as "12.4"; None when there is none (0: no driver)."""
    err, version = result
    if err != cudart.cudaError_t.cudaSuccess or not version:
        return None
    return f"{int(version) // 1000}.{int(version) % 1000 // 10}"


def gpu_info(index: int = 0) -> GpuInfo:
    """Name, compute capability and memory of one GPU, and the driver and runtime versions."""
    props = check(cudart.cudaGetDeviceProperties(index), f"cudaGetDeviceProperties({index})")
    return GpuInfo(
        index=index,
        name=bytes(props.name).split(b"\0", 1)[0].decode(errors="replace").strip(),
        compute_capability=f"{props.major}.{props.minor}",
        memory_bytes=int(props.totalGlobalMem),
        driver_version=int(check(cudart.cudaDriverGetVersion(), "cudaDriverGetVersion()")),
        runtime_version=int(check(cudart.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion()")),
    )


def set_device(index: int) -> None:
    check(cudart.cudaSetDevice(index), f"cudaSetDevice({index})")


class _Resource(ABC):
    """One CUDA resource: idempotent `close()`, context manager, use after close raises."""

    _what = "CUDA resource"

    def __init__(self) -> None:
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        # Marked closed first: a failing release must not be retried on a handle CUDA may have freed.
        self._closed = True
        self._release()

    @abstractmethod
    def _release(self) -> None: ...

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self._what} is closed")

    def __enter__(self) -> Any:
        self._check_open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class PinnedBuffer(_Resource):
    """Page-locked host memory (`cudaHostAlloc`), readable and writable as a numpy array.

    Views returned by `array`/`view` point into this memory: they must not be used after `close()`.
    """

    _what = "pinned buffer"

    def __init__(self, nbytes: int, *, write_combined: bool = False) -> None:
        super().__init__()
        if nbytes <= 0:
            raise ValueError(f"pinned buffer size must be positive, got {nbytes}")
        # Write-combined memory is faster for the device to read and very slow for the host to read:
        # only for buffers the host fills and never reads back (inputs).
        flags = cudart.cudaHostAllocWriteCombined if write_combined else cudart.cudaHostAllocDefault
        self.ptr = int(check(cudart.cudaHostAlloc(nbytes, flags), f"cudaHostAlloc({nbytes}, {flags})"))
        self.nbytes = nbytes
        self._bytes = np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(self.ptr))

    @property
    def array(self) -> np.ndarray:
        """The whole buffer as uint8 [nbytes]."""
        self._check_open()
        return self._bytes

    def view(self, shape: tuple[int, ...], dtype: np.dtype | type = np.uint8) -> np.ndarray:
        """The start of the buffer as an array of `shape` and `dtype`."""
        self._check_open()
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes > self.nbytes:
            raise ValueError(
                f"a {dtype}{list(shape)} view needs {nbytes} bytes; the buffer has {self.nbytes}"
            )
        return self._bytes[:nbytes].view(dtype).reshape(shape)

    def _release(self) -> None:
        check(cudart.cudaFreeHost(self.ptr), f"cudaFreeHost({self.ptr:#x})")


class DeviceBuffer(_Resource):
    """Device memory (`cudaMalloc`); `ptr` is the address TensorRT and the copies take."""

    _what = "device buffer"

    def __init__(self, nbytes: int) -> None:
        super().__init__()
        if nbytes <= 0:
            raise ValueError(f"device buffer size must be positive, got {nbytes}")
        self.ptr = int(check(cudart.cudaMalloc(nbytes), f"cudaMalloc({nbytes})"))
        self.nbytes = nbytes

    def _release(self) -> None:
        check(cudart.cudaFree(self.ptr), f"cudaFree({self.ptr:#x})")


class Stream(_Resource):
    """A non-blocking CUDA stream: it never synchronises implicitly with the legacy default stream."""

    _what = "CUDA stream"

    def __init__(self) -> None:
        super().__init__()
        self.handle = check(
            cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking), "cudaStreamCreateWithFlags"
        )
        self.ptr = int(self.handle)

    def synchronize(self) -> None:
        self._check_open()
        check(cudart.cudaStreamSynchronize(self.handle), f"cudaStreamSynchronize({self.ptr:#x})")

    def wait(self, event: Event) -> None:
        """Later work on this stream waits for `event` (on the device; the host does not block)."""
        self._check_open()
        check(
            cudart.cudaStreamWaitEvent(self.handle, event.handle, 0),
            f"cudaStreamWaitEvent({self.ptr:#x}, {event.ptr:#x})",
        )

    def _release(self) -> None:
        check(cudart.cudaStreamDestroy(self.handle), f"cudaStreamDestroy({self.ptr:#x})")


class Event(_Resource):
    """A CUDA event; timing is off unless asked for, which makes record and wait cheaper.

    `blocking=True` for events the host waits on: without `cudaEventBlockingSync`, `synchronize()` spins a
    core until the GPU is done, and on the GPU path that core is the encoder's.
    """

    _what = "CUDA event"

    def __init__(self, *, timing: bool = False, blocking: bool = False) -> None:
        super().__init__()
        flags = cudart.cudaEventDefault if timing else cudart.cudaEventDisableTiming
        if blocking:
            flags |= cudart.cudaEventBlockingSync
        self.handle = check(cudart.cudaEventCreateWithFlags(flags), f"cudaEventCreateWithFlags({flags})")
        self.ptr = int(self.handle)

    def record(self, stream: Stream) -> None:
        self._check_open()
        check(
            cudart.cudaEventRecord(self.handle, stream.handle),
            f"cudaEventRecord({self.ptr:#x}, {stream.ptr:#x})",
        )

    def synchronize(self) -> None:
        """Block the host until the work recorded before this event has finished."""
        self._check_open()
        check(cudart.cudaEventSynchronize(self.handle), f"cudaEventSynchronize({self.ptr:#x})")

    def done(self) -> bool:
        self._check_open()
        (err,) = cudart.cudaEventQuery(self.handle)
        if err == cudart.cudaError_t.cudaErrorNotReady:
            return False
        check((err,), f"cudaEventQuery({self.ptr:#x})")
        return True

    def elapsed_ms(self, start: Event) -> float:
        """Milliseconds from `start` to this event (both created with timing=True and completed)."""
        self._check_open()
        return float(
            check(
                cudart.cudaEventElapsedTime(start.handle, self.handle),
                f"cudaEventElapsedTime({start.ptr:#x})",
            )
        )

    def _release(self) -> None:
        check(cudart.cudaEventDestroy(self.handle), f"cudaEventDestroy({self.ptr:#x})")


def copy_to_device(dst: DeviceBuffer, src: PinnedBuffer, nbytes: int, stream: Stream) -> None:
    """Asynchronous host-to-device copy of the first `nbytes` of `src` on `stream`."""
    _copy(dst.ptr, src.ptr, nbytes, HOST_TO_DEVICE, stream, (dst, src))


def copy_to_host(dst: PinnedBuffer, src: DeviceBuffer, nbytes: int, stream: Stream) -> None:
    """Asynchronous device-to-host copy of the first `nbytes` of `src` on `stream`."""
    _copy(dst.ptr, src.ptr, nbytes, DEVICE_TO_HOST, stream, (dst, src))


def _copy(dst: int, src: int, nbytes: int, kind: Any, stream: Stream, owners: tuple[Any, ...]) -> None:
    for owner in (*owners, stream):
        owner._check_open()
    smallest = min(o.nbytes for o in owners)
    if not 0 < nbytes <= smallest:
        raise ValueError(f"copy of {nbytes} bytes does not fit buffers of {smallest} bytes")
    check(
        cudart.cudaMemcpyAsync(dst, src, nbytes, kind, stream.handle),
        f"cudaMemcpyAsync({dst:#x}, {src:#x}, {nbytes}, {kind.name}, {stream.ptr:#x})",
    )
