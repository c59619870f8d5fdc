"""What the precision gate reads and writes, shared with the INT8 recipes it quantises: the calibration
frames shipped in the package, the version of that set and of the bounds, and where verdicts are kept."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from trt_modnet.models.cache import models_dir

#: Bumped when the calibration set, the bounds or the measurement change.
GATE_VERSION = 2


def calibration_frames() -> np.ndarray:
    """The shipped calibration frames, RGB uint8 [N, 256, 256, 3]."""
    import cv2

    folder = resources.files("trt_modnet.graph") / "calibration"
    images = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".jpg"):
            data = np.frombuffer(entry.read_bytes(), np.uint8)
            images.append(cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    return np.stack(images)


def verdict_path(digest: str) -> Path:
    return models_dir() / "onnx" / f"{digest}.precision.json"
