"""Fast, trimap-free portrait matting for video with MODNet.

The Python API (docs/api.md): `Matter` mattes frames in memory; `process` is the main job as a function.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trt_modnet.errors import MattingError

if TYPE_CHECKING:
    from trt_modnet.job.api import process
    from trt_modnet.job.matter import Matter
    from trt_modnet.job.summary import FileResult

__version__ = "0.1.0"
__all__ = ["FileResult", "Matter", "MattingError", "process"]

#: Imported on first use: the other entry points (models, export, build_engine) need not load the runtimes.
_LAZY = {
    "process": "trt_modnet.job.api",
    "Matter": "trt_modnet.job.matter",
    "FileResult": "trt_modnet.job.summary",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'trt_modnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
