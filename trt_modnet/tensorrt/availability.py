"""Whether the TensorRT path can run here: TensorRT imports, cuda-bindings imports, a GPU is usable."""

from __future__ import annotations

import glob

INSTALL_HINT = "pip install 'trt_modnet[trt]' (CUDA 12) or 'trt_modnet[trt-cu13]' (CUDA 13)"


def missing_for_tensorrt() -> list[str]:
    """What stops the TensorRT path here, one short phrase each; empty when it can run."""
    missing = []
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        missing.append("TensorRT is not installed")
    except OSError as exc:  # the Python package is there but its libraries are not
        missing.append(f"TensorRT does not load ({exc})")
    try:
        from trt_modnet.tensorrt import cuda
    except ImportError:
        missing.append("cuda-python (cuda-bindings) is not installed")
    else:
        gpu = cuda.unavailable_reason()
        if gpu is not None:
            missing.append(gpu)
    return missing


def tensorrt_unavailable_reason() -> str | None:
    """None when TensorRT imports and a GPU is usable; else one line: what is missing, how to install it."""
    missing = missing_for_tensorrt()
    if not missing:
        return None
    return f"{'; '.join(missing)}. On a machine with an NVIDIA GPU and driver: {INSTALL_HINT}"


def nvidia_device_nodes() -> list[str]:
    """The NVIDIA device files (/dev/nvidia0...): a GPU is there, whether or not CUDA can use it."""
    return sorted(glob.glob("/dev/nvidia[0-9]*"))
