"""One-frame delay (OFD): MODNet's trick against flicker, on uint8 mattes in the host.

From the MODNet paper (never released as code): for each pixel, when the previous and the next frame's
mattes agree within a threshold xi and the current frame's differs from both by more than xi, the current
value is replaced by the mean of its neighbours. A real change (the neighbours disagree), a slow drift (the
current value is near a neighbour) and anything that lasts two frames or more pass untouched. The price, as
in the paper: something real seen in one frame only (a thin object moving faster than its width per frame)
is taken for flicker. The default xi is 0.1 of the matte's range, our reading of the paper's "small
threshold"; on uint8 mattes that is exactly "agree: |a - b| <= 25, differ: |a - b| > 25" (25 < 25.5 < 26).
As in the paper, the neighbours are the network's own mattes, never a neighbour already corrected: each
output frame depends on its two neighbours' predictions only, so a video cut into pieces that each see one
frame of context on either side (`--segment-seconds`) is smoothed exactly as in one piece.

Why in the host and not in the graph: the rule needs the next frame, which for the last frame of a batch
is in the next batch, so an in-graph version would have to carry state across batches. Here it is ten
uint8-to-uint8 passes in OpenCV over the frame, with scratch buffers allocated once: measured on 2
shared cores at 0.4-0.6 ms per 720p and 0.9-1.4 ms per 1080p matte, next to 0.5 s for the network on a CPU.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import cv2
import numpy as np

DEFAULT_THRESHOLD = 25

T = TypeVar("T")


class OneFrameDelay(Generic[T]):
    """Streams (matte, item) pairs through OFD, one frame late; `flush()` returns the last one.

    `push` takes ownership of `matte` (uint8 [H,W], C-contiguous, e.g. a frame of a contiguous batch) until
    it is handed back, and may change it in place. Every pushed pair comes back exactly once, in order,
    with its item (a timestamp, a frame) untouched. The first and last frames pass unchanged. Scratch
    buffers are allocated once per frame size.
    """

    def __init__(self, threshold: int = DEFAULT_THRESHOLD) -> None:
        if not 0 <= threshold < 255:
            raise ValueError(f"threshold must be in 0..254 (uint8 matte units), not {threshold}")
        self.threshold = threshold
        self._pending: tuple[np.ndarray, T] | None = None
        self._previous: np.ndarray | None = None  # a copy: the caller owns what was handed back
        self._spare: np.ndarray | None = None  # the one before it, while the current frame is corrected
        self._has_previous = False
        self._scratch: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def push(self, matte: np.ndarray, item: T) -> list[tuple[np.ndarray, T]]:
        """Add the next frame's matte; returns the frame before it, corrected, or nothing for the first."""
        self._check(matte)
        if self._pending is None:
            self._pending = (matte, item)
            return []
        current, current_item = self._pending
        corrects = self._has_previous
        self._remember(current)  # its prediction, before it is corrected: the next frame's neighbour
        if corrects:
            self._correct(self._spare, current, matte)  # type: ignore[arg-type]
        self._pending = (matte, item)
        return [(current, current_item)]

    def flush(self) -> list[tuple[np.ndarray, T]]:
        """The last frame (unchanged: it has no next frame); the object is then ready for a new stream."""
        out = [] if self._pending is None else [self._pending]
        self._pending = None
        self._has_previous = False
        return out

    def _check(self, matte: np.ndarray) -> None:
        if matte.dtype != np.uint8 or matte.ndim != 2 or not matte.flags.c_contiguous:
            raise ValueError(f"mattes must be C-contiguous uint8 [H,W], not {matte.dtype} {matte.shape}")
        if self._pending is not None and matte.shape != self._pending[0].shape:
            raise ValueError(
                f"matte size changed from {self._pending[0].shape} to {matte.shape}; flush first"
            )

    def _remember(self, matte: np.ndarray) -> None:
        """Copy `matte` as the previous frame; the one it replaces stays readable as `_spare`."""
        if self._previous is None or self._previous.shape != matte.shape:
            self._previous, self._spare = np.empty_like(matte), np.empty_like(matte)
            self._scratch = tuple(np.empty_like(matte) for _ in range(3))  # type: ignore[assignment]
        self._previous, self._spare = self._spare, self._previous
        np.copyto(self._previous, matte)  # type: ignore[arg-type]
        self._has_previous = True

    def _correct(self, previous: np.ndarray, current: np.ndarray, following: np.ndarray) -> None:
        diff, mask, other = self._scratch  # type: ignore[misc]
        t = self.threshold
        cv2.absdiff(previous, following, dst=diff)
        cv2.threshold(diff, t, 255, cv2.THRESH_BINARY_INV, dst=mask)  # neighbours agree: <= t
        cv2.absdiff(current, previous, dst=diff)
        cv2.threshold(diff, t, 255, cv2.THRESH_BINARY, dst=other)  # current differs: > t
        cv2.bitwise_and(mask, other, dst=mask)
        cv2.absdiff(current, following, dst=diff)
        cv2.threshold(diff, t, 255, cv2.THRESH_BINARY, dst=other)
        cv2.bitwise_and(mask, other, dst=mask)
        cv2.addWeighted(previous, 0.5, following, 0.5, 0.0, dst=diff)  # the neighbours' mean, rounded
        cv2.copyTo(diff, mask, dst=current)


class SmoothedOutputs:
    """OFD over the runner's outputs: smooths `alpha`, then re-derives `rgba` and `composite` from it.

    The graph's own composite predates the smoothing, so with OFD the runner is asked for `alpha` and
    `rgba` (the frame's colour) and the composite is blended here by OpenCV, on the frames that need it.
    """

    def __init__(self, outputs: tuple[str, ...], threshold: int = DEFAULT_THRESHOLD) -> None:
        self.outputs = outputs
        self._delay: OneFrameDelay[tuple[dict[str, np.ndarray], object]] = OneFrameDelay(threshold)

    @staticmethod
    def graph_outputs(wanted: set[str]) -> set[str]:
        """What the graph must produce for these outputs under OFD."""
        return {"alpha"} | (wanted - {"composite"}) | ({"rgba"} if "composite" in wanted else set())

    def push(
        self, outputs: dict[str, np.ndarray], items: list[object], background: np.ndarray | None
    ) -> list[tuple[dict[str, np.ndarray], object]]:
        ready = []
        for i, item in enumerate(items):
            frame = {name: outputs[name][i] for name in outputs}
            if "composite" in self.outputs and background is not None:
                frame["background"] = background[min(i, len(background) - 1)]
            ready += self._delay.push(frame["alpha"], (frame, item))
        return [self._finish(*payload) for _, payload in ready]

    def flush(self) -> list[tuple[dict[str, np.ndarray], object]]:
        return [self._finish(*payload) for _, payload in self._delay.flush()]

    def _finish(self, frame: dict[str, np.ndarray], item: object) -> tuple[dict[str, np.ndarray], object]:
        alpha = frame["alpha"]
        if "rgba" in frame:
            frame["rgba"][..., 3] = alpha
        if "composite" in self.outputs:
            weight = alpha.astype(np.float32) * np.float32(1 / 255)
            frame["composite"] = cv2.blendLinear(
                np.ascontiguousarray(frame["rgba"][..., :3]), frame["background"], weight, 1 - weight
            )
        return frame, item
