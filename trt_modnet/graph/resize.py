"""OpenCV's INTER_AREA resize as sparse per-axis weights, for the deployment graph to apply in-graph.

A separable resize is a linear map per axis: resizing an identity matrix with OpenCV yields exactly the
weights OpenCV applies to an image (checked against `cv2.resize` on the shared videos' sizes: 3e-16 for
the float down-resize of the official procedure). Each output row mixes a short run of neighbouring
input rows (2-4 for MODNet's sizes), so the weights travel as `k` taps per output row: an index and a
weight matrix, both [out, k], which the graph applies with Gather, Mul and ReduceSum.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Columns of the identity resized at once.
_IDENTITY_BLOCK = 256


@dataclass(frozen=True)
class Taps:
    """Output `i` of one axis is `sum_j weight[i, j] * input[index[i, j]]`."""

    index: np.ndarray  # int32 [out, k]
    weight: np.ndarray  # float32 [out, k]

    def dense(self, src: int) -> np.ndarray:
        """The same map as a dense [out, src] matrix (for checks)."""
        out = np.zeros((self.index.shape[0], src), dtype=np.float64)
        np.put_along_axis(out, self.index, self.weight.astype(np.float64), axis=1)
        return out


def area_weights(src: int, dst: int) -> np.ndarray:
    """The [dst, src] float64 matrix `cv2.resize(..., INTER_AREA)` applies along one axis of length src.

    The scale OpenCV derives from `dsize` equals the one the official script passes as `fx`/`fy`
    (both are the double dst/src), so this serves the down-resize and the resize back alike.
    """
    # The identity in column blocks: the columns are not resized, so each block gives its own columns of
    # the same weights, and a large frame's side costs src x block doubles, not src x src (8000 px: 512 MB).
    weights = np.empty((dst, src))
    for start in range(0, src, _IDENTITY_BLOCK):
        cols = min(_IDENTITY_BLOCK, src - start)
        block = np.zeros((src, cols))
        block[start : start + cols] = np.eye(cols)
        resized = cv2.resize(block, (cols, dst), interpolation=cv2.INTER_AREA)
        weights[:, start : start + cols] = resized.reshape(dst, cols)
    return weights


def taps(weights: np.ndarray, width: int | None = None) -> Taps:
    """The [out, src] matrix as `k` contiguous taps per row, `k` the widest run of non-zero weights, or
    `width` taps (the extra ones weigh zero) so that k is the same for every frame size (TensorRT)."""
    src = weights.shape[1]
    first = np.argmax(weights != 0, axis=1)
    last = src - 1 - np.argmax(weights[:, ::-1] != 0, axis=1)
    k = int((last - first).max()) + 1
    if width is not None:
        if not k <= width <= src:
            raise ValueError(
                f"a {src}-long axis resized to {len(weights)} needs {k} to {src} taps, not {width}"
            )
        k = width
    # Rows near the end start earlier so that every index stays inside the axis; the extra taps get
    # weight zero because they lie outside the row's run.
    start = np.minimum(first, src - k)
    index = start[:, None] + np.arange(k)
    return Taps(
        index=index.astype(np.int32), weight=np.take_along_axis(weights, index, axis=1).astype(np.float32)
    )


def area_taps(src: int, dst: int, width: int | None = None) -> Taps:
    return taps(area_weights(src, dst), width)
