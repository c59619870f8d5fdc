"""The GPU path in one room: TensorRT engines (build, profiles, cache) and the runner that executes them.

The doors are the builder (`EngineLoader`, and the profile and settings types it takes) and the runner
(`TensorRTRunner`); the rest of the package imports TensorRT-related code only from here. Inside:

    availability   whether TensorRT, cuda-bindings and a GPU are usable here
    profiles       optimisation profiles: frame batches and the shapes of every input (plain Python)
    engine_cache   the engines folder: records, cache keys, timing caches (plain Python)
    engine         building and loading engines (imports TensorRT only when it builds or loads)
    cuda           the cuda-bindings layer: pinned and device buffers, streams, events
    runner         TensorRTRunner: the `Runner` contract on an engine, several batches in flight

Importing this package needs neither TensorRT nor cuda-bindings: the runner (which needs cuda-bindings) is
imported on first use of `TensorRTRunner`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trt_modnet.tensorrt.availability import (
    INSTALL_HINT,
    missing_for_tensorrt,
    nvidia_device_nodes,
    tensorrt_unavailable_reason,
)
from trt_modnet.tensorrt.engine import MATTE, EngineLoader, FixedEngine, LoadedEngine, TensorIO
from trt_modnet.tensorrt.engine_cache import BuildSettings, EngineRecord
from trt_modnet.tensorrt.profiles import (
    DEFAULT_BATCH,
    PRESETS,
    FrameProfile,
    FrameShape,
    input_ranges,
    profile_taps,
)

if TYPE_CHECKING:
    from trt_modnet.tensorrt.runner import TensorRTRunner

__all__ = [
    "DEFAULT_BATCH",
    "INSTALL_HINT",
    "MATTE",
    "PRESETS",
    "BuildSettings",
    "EngineLoader",
    "EngineRecord",
    "FixedEngine",
    "FrameProfile",
    "FrameShape",
    "LoadedEngine",
    "TensorIO",
    "TensorRTRunner",
    "input_ranges",
    "missing_for_tensorrt",
    "nvidia_device_nodes",
    "profile_taps",
    "tensorrt_unavailable_reason",
]


def __getattr__(name: str) -> Any:
    # The runner needs cuda-bindings (the [trt] extra): loaded only when asked for.
    if name == "TensorRTRunner":
        from trt_modnet.tensorrt.runner import TensorRTRunner

        return TensorRTRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
