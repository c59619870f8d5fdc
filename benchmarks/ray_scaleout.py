"""`python -m benchmarks.ray_scaleout --model M.onnx --json OUT`: the plain job against `--ray local`.

Runs the real CLI in subprocesses on copies of shared videos in a temporary folder (never committed):
- a batch of files, plain and on Ray (wall time, frames, fps);
- many tiny units (a few frames each) on one Ray worker against the plain job, and Ray's own start and
  stop, to give what Ray adds per unit;
- optionally (`--long-seconds N`) one long input, the 720p video repeated to N seconds by stream copy,
  also split into `--segment-seconds` pieces on Ray.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

from benchmarks.machine import system_info
from benchmarks.memory import make_clip

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
BATCH = ("carphone_qcif.mp4", "pancake_240p.mkv", "chaplin_360p.mp4", "bedroom_540p.mp4")


def run_job(args: list[str]) -> float:
    """Wall seconds of `python -m trt_modnet.process ARGS` (must succeed)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "trt_modnet.process", *args, "-q"], check=True)
    return time.perf_counter() - started


def ray_start_stop() -> float:
    code = "import ray; ray.init(address='local', include_dashboard=False); ray.shutdown()"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - started


def frames_in(folder: Path) -> int:
    total = 0
    for out in folder.iterdir():
        with av.open(str(out)) as container:
            total += sum(1 for _ in container.decode(video=0))
    return total


def side_by_side(
    folder: Path, work: Path, common: list[str], tag: str, segments: float | None = None
) -> dict[str, float]:
    row: dict[str, float] = {}
    modes: list[tuple[str, list[str]]] = [("plain", []), ("ray", ["--ray", "local"])]
    if segments is not None:
        modes.append(("ray_segments", ["--ray", "local", "--segment-seconds", str(segments)]))
    for mode, extra in modes:
        out = work / f"{tag}-{mode}"
        # A trailing separator: a folder of outputs, also for a folder of one input.
        row[f"{mode}_s"] = run_job([str(folder), "-o", f"{out}{os.sep}", *common, *extra])
        row["frames"] = frames_in(out)
        row[f"{mode}_fps"] = row["frames"] / row[f"{mode}_s"]
    return row


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ray_scaleout")
    p.add_argument("--model", required=True)
    p.add_argument("--duration", type=float, default=1.0, help="seconds of each batch file")
    p.add_argument("--units", type=int, default=6, help="tiny units for the per-unit overhead")
    p.add_argument("--long-seconds", type=float, default=0.0, help="also one long 720p input (0: skip)")
    p.add_argument("--segment-seconds", type=float, default=5.0, help="the long input also split so")
    p.add_argument("--json", type=Path, required=True)
    a = p.parse_args()
    common = ["--model", a.model, "--format", "mkv"]  # the default backend: what a user gets
    result: dict[str, object] = {
        "command": " ".join(["python -m benchmarks.ray_scaleout", *sys.argv[1:]]),
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
        "system": system_info(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        batch = work / "batch"
        batch.mkdir()
        for name in BATCH:
            shutil.copy(SHARED_VIDEOS / name, batch / name)
        result["batch"] = side_by_side(batch, work, [*common, "--duration", str(a.duration)], "batch")
        tiny = work / "tiny"
        tiny.mkdir()
        for n in range(a.units):
            shutil.copy(SHARED_VIDEOS / "carphone_qcif.mp4", tiny / f"clip{n}.mp4")
        # One worker (--threads = all CPUs) so that Ray gains nothing from parallelism here.
        one = [*common, "--duration", "0.1", "--ref-size", "256", "--threads", str(os.cpu_count())]
        row = side_by_side(tiny, work, one, "tiny")
        row["ray_start_stop_s"] = ray_start_stop()
        row["per_unit_overhead_s"] = (row["ray_s"] - row["plain_s"] - row["ray_start_stop_s"]) / a.units
        result["tiny_units"] = {"units": a.units, **row}
        if a.long_seconds > 0:
            long_dir = work / "long"
            long_dir.mkdir()
            src = SHARED_VIDEOS / "juggle_720p.mp4"
            with av.open(str(src)) as container:
                copies = max(1, round(a.long_seconds * av.time_base / container.duration))
            make_clip(src, long_dir / "juggle_long.mp4", copies=copies)
            result["long"] = side_by_side(long_dir, work, common, "long", a.segment_seconds)
    a.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
