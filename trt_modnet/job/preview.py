"""A contact sheet for a quick look: input | matte | composite, one row per sampled frame."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from trt_modnet.errors import MattingError
from trt_modnet.video import Frame
from trt_modnet.video.staging import Staging

_THUMB_WIDTH = 320
_CHECKER = 16
_GAP = 4


class ContactSheet:
    """Collects `rows` frames spread over a video of `frame_count` frames (the first ones if unknown)."""

    def __init__(self, rows: int = 4, frame_count: int | None = None) -> None:
        step = max(1, (frame_count or rows) // rows)
        self.wanted = {i * step for i in range(rows)}
        self.rows: list[np.ndarray] = []

    def offer(self, index: int, frame: np.ndarray, alpha: np.ndarray) -> None:
        """Keep frame `index` if it is one of the sampled ones (copies only those few frames)."""
        if index in self.wanted:
            self.rows.append(_row(frame, alpha))

    def offer_batch(self, items: Sequence[Frame], frames: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
        """A finished batch of the pipeline (its `on_batch` hook)."""
        alpha = outputs["alpha"] if "alpha" in outputs else outputs["rgba"][..., 3]
        for i, item in enumerate(items):
            self.offer(item.index, frames[i], alpha[i])

    def save(self, path: Path, *, overwrite: bool = False) -> None:
        """Write the PNG under a temporary name, then move it into place like every output."""
        if not self.rows:
            raise MattingError(f"{path}: no frames to preview")
        gap = np.full((_GAP, self.rows[0].shape[1], 3), 255, np.uint8)
        parts = [p for row in self.rows for p in (row, gap)][:-1]
        ok, png = cv2.imencode(".png", cv2.cvtColor(np.concatenate(parts), cv2.COLOR_RGB2BGR))
        if not ok:
            raise MattingError(f"{path}: cannot encode the preview image")
        staging = Staging(path, replace=overwrite)
        try:
            staging.temp.write_bytes(png.tobytes())
            staging.commit()
        except OSError as exc:
            raise MattingError(f"{path}: cannot write the preview: {exc.strerror}") from None
        finally:
            staging.discard()


def _row(frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    size = (_THUMB_WIDTH, max(1, round(h * _THUMB_WIDTH / w)))
    thumb = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    matte = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
    # A checkerboard shows transparency the way editors' viewers do; a few thumbnails, not the video.
    a = matte[..., None].astype(np.float32) / 255
    comp = (thumb * a + _checkerboard(thumb.shape[:2]) * (1 - a) + 0.5).astype(np.uint8)
    gap = np.full((thumb.shape[0], _GAP, 3), 255, np.uint8)
    return np.concatenate([thumb, gap, np.repeat(matte[..., None], 3, axis=2), gap, comp], axis=1)


def _checkerboard(shape: tuple[int, int]) -> np.ndarray:
    y, x = np.indices(shape)
    light = ((y // _CHECKER + x // _CHECKER) % 2).astype(bool)
    board = np.where(light, 200, 150).astype(np.uint8)
    return np.repeat(board[..., None], 3, axis=2)
