"""The official MODNet ONNX inference procedure (`onnx/inference_onnx.py`), the reference users compare to.

Used as the parity reference for the deployment graph and as the naive baseline in the benchmarks.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from trt_modnet.errors import MattingError
from trt_modnet.graph.modelfile import load_modnet

DEFAULT_REF_SIZE = 512
SIZE_MULTIPLE = 32


def inference_size(height: int, width: int, ref_size: int = DEFAULT_REF_SIZE) -> tuple[int, int]:
    """The official rule: short side to `ref_size` unless the frame straddles it, then floor to 32."""
    if height < SIZE_MULTIPLE or width < SIZE_MULTIPLE:
        raise MattingError(f"frames of {width}x{height} are too small: MODNet needs at least 32x32")
    if max(height, width) < ref_size or min(height, width) > ref_size:
        if width >= height:
            height, width = ref_size, int(width / height * ref_size)
        else:
            height, width = int(height / width * ref_size), ref_size
    return height - height % SIZE_MULTIPLE, width - width % SIZE_MULTIPLE


def check_network_size(height: int, width: int) -> None:
    """MODNet itself fails deep inside (a Concat) unless both sides are multiples of 32."""
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE or height <= 0 or width <= 0:
        raise MattingError(
            f"MODNet input {width}x{height}: height and width must be positive multiples of 32 "
            "(resize with trt_modnet.graph.official.inference_size first)"
        )


def session_options(threads: int) -> ort.SessionOptions:
    """The settings measured fastest on 2 cores: intra-op threads = cores, sequential executor."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


class RawModnet:
    """ONNX Runtime over a raw MODNet ONNX: float [N,3,H,W] in [-1,1] -> float [N,1,H,W]."""

    def __init__(self, path: str | Path, threads: int = 2) -> None:
        model = load_modnet(path)
        self.session = ort.InferenceSession(
            model.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        check_network_size(batch.shape[2], batch.shape[3])
        return self.session.run(None, {self.input_name: batch})[0]


def network_input(frames: np.ndarray, out: np.ndarray) -> None:
    """MODNet's input for uint8 RGB frames [N,H,W,3], written into float32 `out` [>=N,3,IH,IW]: INTER_AREA
    down to the inference size, then (x - 127.5) / 127.5, as the official script computes it (which
    normalises first: the same linear map, as every row of INTER_AREA's weights sums to 1)."""
    size = (out.shape[3], out.shape[2])
    for frame, target in zip(frames, out, strict=False):
        small = cv2.resize(frame.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        np.multiply(small.transpose(2, 0, 1), 1 / 127.5, out=target)
        target -= 1.0


def official_matte(model: RawModnet, rgb: np.ndarray, ref_size: int = DEFAULT_REF_SIZE) -> np.ndarray:
    """uint8 [H,W] matte of one uint8 RGB frame, exactly as `inference_onnx.py` computes it."""
    h, w = rgb.shape[:2]
    ih, iw = inference_size(h, w, ref_size)
    # As the official script: float64 normalisation, then resize by scale factors (not by size).
    im = (rgb - 127.5) / 127.5
    im = cv2.resize(im, None, fx=iw / w, fy=ih / h, interpolation=cv2.INTER_AREA)
    x = np.ascontiguousarray(im.transpose(2, 0, 1)[None], dtype=np.float32)
    matte = (model(x)[0, 0] * 255).astype(np.uint8)
    return cv2.resize(matte, (w, h), interpolation=cv2.INTER_AREA)
