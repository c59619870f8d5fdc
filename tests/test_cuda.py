"""The cuda-bindings layer: errors that name the call everywhere; buffers, streams and events on a GPU."""

from __future__ import annotations

import numpy as np
import pytest

cudart = pytest.importorskip("cuda.bindings.runtime", reason="cuda-bindings is not installed")

from trt_modnet.errors import MattingError  # noqa: E402
from trt_modnet.tensorrt import cuda  # noqa: E402 (needs cuda-bindings)

NO_GPU = cuda.unavailable_reason()
needs_gpu = pytest.mark.skipif(NO_GPU is not None, reason=f"needs an NVIDIA GPU: {NO_GPU}")
needs_no_gpu = pytest.mark.skipif(NO_GPU is None, reason="checks the failures on a machine without a GPU")


def test_check_unpacks_results_and_raises_with_the_call() -> None:
    ok = cudart.cudaError_t.cudaSuccess
    assert cuda.check((ok,), "f()") is None
    assert cuda.check((ok, 5), "f()") == 5
    assert cuda.check((ok, 1, 2), "f()") == (1, 2)
    with pytest.raises(cuda.CudaError) as info:
        cuda.check((cudart.cudaError_t.cudaErrorMemoryAllocation, None), "cudaMalloc(1099511627776)")
    message = str(info.value)
    assert isinstance(info.value, MattingError) and "\n" not in message
    assert message.startswith("CUDA call cudaMalloc(1099511627776) failed: cudaErrorMemoryAllocation (")
    assert info.value.code == int(cudart.cudaError_t.cudaErrorMemoryAllocation)


@needs_no_gpu
def test_without_a_gpu_the_reason_names_the_missing_driver() -> None:
    assert NO_GPU is not None and "driver" in NO_GPU and "\n" not in NO_GPU


@needs_no_gpu
@pytest.mark.parametrize(
    ("make", "call"),
    [
        (lambda: cuda.DeviceBuffer(1024), "cudaMalloc(1024)"),
        (lambda: cuda.PinnedBuffer(1024), "cudaHostAlloc(1024, 0)"),
        (lambda: cuda.PinnedBuffer(1024, write_combined=True), "cudaHostAlloc(1024, 4)"),
        (cuda.Stream, "cudaStreamCreateWithFlags"),
        (cuda.Event, "cudaEventCreateWithFlags(2)"),
        (lambda: cuda.gpu_info(0), "cudaGetDeviceProperties(0)"),
    ],
)
def test_without_a_gpu_every_resource_fails_naming_its_call(make: object, call: str) -> None:
    with pytest.raises(cuda.CudaError, match=r"CUDA call .* failed: cudaError") as info:
        make()  # type: ignore[operator]
    assert call in str(info.value)


def test_sizes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        cuda.DeviceBuffer(0)
    with pytest.raises(ValueError, match="positive"):
        cuda.PinnedBuffer(-1)


@needs_gpu
@pytest.mark.gpu
def test_gpu_pinned_round_trip_through_the_device() -> None:
    data = np.random.default_rng(0).integers(0, 256, (4, 270, 480, 3), dtype=np.uint8)
    with (
        cuda.PinnedBuffer(data.nbytes, write_combined=True) as src,
        cuda.PinnedBuffer(data.nbytes) as dst,
        cuda.DeviceBuffer(data.nbytes) as dev,
        cuda.Stream() as stream,
    ):
        np.copyto(src.view(data.shape), data)
        cuda.copy_to_device(dev, src, data.nbytes, stream)
        cuda.copy_to_host(dst, dev, data.nbytes, stream)
        stream.synchronize()
        assert np.array_equal(dst.view(data.shape), data)


@needs_gpu
@pytest.mark.gpu
def test_gpu_events_order_work_across_streams() -> None:
    """Stream B copies back what stream A copied in, only because B waits for A's event."""
    n = 64 << 20
    with (
        cuda.PinnedBuffer(n) as src,
        cuda.PinnedBuffer(n) as dst,
        cuda.DeviceBuffer(n) as dev,
        cuda.Stream() as a,
        cuda.Stream() as b,
        cuda.Event() as copied,
        cuda.Event(timing=True) as start,
        cuda.Event(timing=True) as end,
    ):
        src.array[:] = 7
        start.record(a)
        cuda.copy_to_device(dev, src, n, a)
        copied.record(a)
        end.record(a)
        b.wait(copied)
        cuda.copy_to_host(dst, dev, n, b)
        b.synchronize()
        assert copied.done() and end.elapsed_ms(start) > 0
        assert (dst.array == 7).all()


@needs_gpu
@pytest.mark.gpu
def test_gpu_resources_close_once_and_refuse_use_after() -> None:
    buffer = cuda.PinnedBuffer(16)
    buffer.close()
    buffer.close()
    with pytest.raises(RuntimeError, match="closed"):
        buffer.view((16,))
    with pytest.raises(cuda.CudaError, match=r"cudaMalloc\(1152921504606846976\)"):
        cuda.DeviceBuffer(1 << 60)


class OldDriver:
    """cuda-bindings on a machine whose driver is older than the runtime (CUDA 12.4 driver, 13.0 runtime)."""

    def __getattr__(self, name: str) -> object:
        return getattr(cudart, name)

    def cudaGetDeviceCount(self) -> tuple[object, int]:
        return cudart.cudaError_t.cudaErrorInsufficientDriver, 0

    def cudaDriverGetVersion(self) -> tuple[object, int]:
        return cudart.cudaError_t.cudaSuccess, 12040

    def cudaRuntimeGetVersion(self) -> tuple[object, int]:
        return cudart.cudaError_t.cudaSuccess, 13000


def test_a_driver_older_than_the_runtime_is_named_with_both_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cuda, "cudart", OldDriver())
    reason = cuda.unavailable_reason()
    assert reason is not None and "\n" not in reason
    assert reason.startswith("the NVIDIA driver supports CUDA 12.4, older than the CUDA 13.0 runtime")
    assert "[trt] for CUDA 12" in reason
