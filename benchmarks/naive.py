"""The baseline: a video loop written the way the official MODNet demo works, with its ONNX inference.

What a user runs without this project (FACTS.md, "Official video demo" and "Official ONNX inference"):
OpenCV capture; per frame BGR->RGB, the official preprocessing and resize, ONNX Runtime on the raw MODNet
model, the matte back to full size with INTER_AREA (`trt_modnet.graph.official.official_matte`), a float
composite over white on the CPU in numpy, an OpenCV mp4v writer; one frame at a time, nothing overlapped.

Differences from the demo, none of which changes the cost per frame: it composites the full-resolution
matte (the demo blends at model resolution and then upscales the composite), so that its output matches
our `composite` mode over white; it writes at the source frame rate instead of a hard-coded 30 fps.

`python -m benchmarks.naive VIDEO -o OUT.mp4 --model MODEL.onnx [--frames N]`
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from trt_modnet.cli import run_main
from trt_modnet.errors import MattingError
from trt_modnet.graph.official import DEFAULT_REF_SIZE, RawModnet, official_matte

WHITE = 255.0


def composite_over_white(rgb: np.ndarray, matte: np.ndarray) -> np.ndarray:
    """The demo's blend: frame * a + white * (1 - a), in float, truncated to uint8 as the demo does."""
    a = matte[..., None].astype(np.float32) / 255.0
    return (rgb * a + WHITE * (1.0 - a)).astype(np.uint8)


def naive_loop(
    video: Path,
    output: Path,
    *,
    model: Path,
    ref_size: int = DEFAULT_REF_SIZE,
    threads: int = 2,
    frames: int | None = None,
) -> int:
    """Matte `video` into an mp4v composite at `output`, one frame at a time; returns frames written."""
    net = RawModnet(model, threads)
    capture = cv2.VideoCapture(str(video))
    writer: cv2.VideoWriter | None = None
    try:
        if not capture.isOpened():
            raise MattingError(f"{video}: OpenCV cannot open this video")
        rate = capture.get(cv2.CAP_PROP_FPS) or 30.0
        count = 0
        while frames is None or count < frames:
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            view = composite_over_white(rgb, official_matte(net, rgb, ref_size))
            if writer is None:
                writer = _open_writer(output, rate, view.shape[1], view.shape[0])
            writer.write(cv2.cvtColor(view, cv2.COLOR_RGB2BGR))
            count += 1
        return count
    finally:
        capture.release()
        if writer is not None:
            writer.release()


def _open_writer(path: Path, rate: float, width: int, height: int) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), rate, (width, height))
    if not writer.isOpened():
        raise MattingError(f"{path}: OpenCV cannot write an mp4v video here")
    return writer


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.naive",
        description="Official-demo-style MODNet video loop (the benchmark baseline): composite over "
        "white, mp4v.",
    )
    p.add_argument("video", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="output .mp4")
    p.add_argument(
        "--model", type=Path, required=True, help="raw MODNet ONNX (input `input`, output `output`)"
    )
    p.add_argument("--ref-size", type=int, default=DEFAULT_REF_SIZE)
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (2)")
    p.add_argument("--frames", type=int, help="stop after this many frames")
    args = p.parse_args(argv)
    started = time.perf_counter()
    count = naive_loop(
        args.video,
        args.output,
        model=args.model,
        ref_size=args.ref_size,
        threads=args.threads,
        frames=args.frames,
    )
    elapsed = time.perf_counter() - started
    print(f"{count} frames in {elapsed:.2f} s ({count / elapsed:.2f} fps, including start-up)")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
