"""OpenVINO's stream count and batch size on this CPU: inference alone, each setting alternated.

`python -m benchmarks.openvino_streams --model M.onnx [--precision P] [--video V] [--repeat 3]
[--json OUT]`: the runner as the job opens it (a composite graph at ref size 512, two batches in flight),
with streams x threads-per-stream x batch from `SETTINGS`, on the same decoded frames; the settings are
alternated within each round and the medians reported, with the CPU time each frame cost.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as `python benchmarks/openvino_streams.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import statistics
from collections.abc import Sequence

from benchmarks.harness.settings import DEFAULT_VIDEO
from benchmarks.harness.stages import measure_decode, measure_inference
from benchmarks.machine import command, load_average, system_info, versions
from benchmarks.parity import write_result
from trt_modnet.cli import positive_int
from trt_modnet.graph.deploy import DeploySpec
from trt_modnet.job.threads import available_cores
from trt_modnet.runtime.select import open_runner

#: (streams, batch): the job's choice first (one stream per core, batch 4).
SETTINGS = ((2, 4), (1, 4), (2, 1), (2, 2), (1, 2), (2, 8))
FRAMES = 48


def measure(model: Path, precision: str, video: Path, repeat: int) -> dict:
    cores = available_cores()
    _, frames = measure_decode(video, warmup=16, frames=FRAMES - 16)
    spec = DeploySpec(outputs=("composite",), ref_size=512)
    samples: dict[str, list[tuple[float, float]]] = {}
    for _ in range(repeat):
        for streams, batch in SETTINGS:
            with open_runner(
                "openvino", model, spec, precision=precision, threads=cores, streams=streams, depth=2
            ) as runner:
                rate, _ = measure_inference(
                    runner, frames, batch=batch, warmup=2 * batch, depth=2, content="composite"
                )
            key = f"streams {streams} x {cores // streams} threads, batch {batch}"
            samples.setdefault(key, []).append((rate.fps, rate.cpu_ms))
            print(f"{key}: {rate.fps:.3f} fps, {rate.cpu_ms:.1f} CPU ms a frame", file=sys.stderr)
    return {
        key: {
            "fps": round(statistics.median(f for f, _ in rows), 3),
            "cpu_ms_per_frame": round(statistics.median(c for _, c in rows), 1),
            "samples": rows,
        }
        for key, rows in samples.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    about = __doc__.splitlines()[0]
    p = argparse.ArgumentParser(prog="python -m benchmarks.openvino_streams", description=about)
    p.add_argument("--model", type=Path, required=True, help="a MODNet ONNX")
    p.add_argument("--precision", default="bf16", help="a recipe of trt_modnet.graph.precision (bf16)")
    p.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="input video (default: shared 720p)")
    p.add_argument("--repeat", type=positive_int, default=3, help="rounds, settings alternated in each (3)")
    p.add_argument("--json", type=Path, help="write the result here")
    args = p.parse_args(argv)
    load = load_average()
    result = {
        "benchmark": "OpenVINO streams and batch, inference alone",
        "command": command(),
        "model": str(args.model),
        "precision": args.precision,
        "video": str(args.video),
        "frames": FRAMES,
        "settings": measure(args.model, args.precision, args.video, args.repeat),
        "system": {**system_info(), "load_average_at_start": load, "load_average_at_end": load_average()},
        "versions": versions(),
    }
    for key, row in result["settings"].items():
        print(f"{key}: {row['fps']} fps (median), {row['cpu_ms_per_frame']} CPU ms a frame")
    if args.json:
        write_result(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
