"""Whether the job leaks: RSS, open file descriptors and threads sampled over a long run.

`python -m benchmarks.soak --files N [--output JSON]`: one runner reused over many files of mixed
sizes, sampled after each file; the files cycle through the fuzz corpus (short clips in five containers
and two images, each at three lengths); the slope of each series over the second half of the run (per
file) is what says whether something leaks.

`python -m benchmarks.soak --minutes M [--output JSON]`: one synthetic clip of M minutes (a moving
pattern, 640x360 at 25 fps, made once with PyAV in a temporary folder) through the main job
(`python -m trt_modnet.process`, a child sampled every second with psutil); the slope of each series
after a warm-up (a tenth of the run, at least 20 s), per minute and per 1000 frames, against the bounds
of `FlatBounds`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, astuple, dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import psutil

from benchmarks import fuzz
from benchmarks.parity import write_result
from trt_modnet.graph.deploy import OUTPUTS, DeploySpec
from trt_modnet.job.file_job import open_job_runner, process_file
from trt_modnet.job.inputs import collect_inputs
from trt_modnet.job.plan import plan_run, prepare_destinations
from trt_modnet.process import parse_args as job_args


def soak(files: int, folder: Path) -> dict:
    corpus = [p for s in (0.3, 1.0, 2.0) for p in fuzz.make_corpus(folder / f"c{s}", seconds=s)]
    model = fuzz.tiny_model(folder)
    me = psutil.Process()
    samples = []
    job = job_args(["x", "--model", str(model), "--overwrite", *fuzz.JOB_ARGS])
    with open_job_runner(
        job,
        model,
        DeploySpec(outputs=tuple(o for o in OUTPUTS if o in ("rgba", "alpha")), ref_size=job.ref_size),
    ) as runner:
        for i in range(files):
            src = corpus[i % len(corpus)]
            run = job_args(
                [str(src), "-o", f"{folder}/out/", "--model", str(model), "--overwrite", *fuzz.JOB_ARGS]
            )
            plans = plan_run(run, collect_inputs(run.inputs, recursive=False))
            prepare_destinations(run, plans)
            result = process_file(run, runner, plans[0])
            assert result.status == "ok", result.status
            samples.append((me.memory_info().rss / 2**20, me.num_fds(), me.num_threads()))
    half = np.array(samples[len(samples) // 2 :], dtype=float)
    x = np.arange(len(half))
    slope = {k: float(np.polyfit(x, half[:, j], 1)[0]) for j, k in enumerate(("rss_mb", "fds", "threads"))}
    return {"files": files, "per_file_slope_second_half": slope, "samples": samples}


@dataclass(frozen=True)
class FlatBounds:
    """What counts as flat for a long clip, per minute of the run after its warm-up. A leak of 1 KB a
    frame at 25 fps is 1.5 MB a minute: over the RSS bound."""

    rss_mb_per_min: float = 1.0
    fds_per_min: float = 0.05
    threads_per_min: float = 0.05


SERIES = ("rss_mb", "fds", "threads")


def make_clip(path: Path, minutes: float, size: tuple[int, int] = (640, 360), rate: int = 25) -> int:
    """A moving pattern (a scrolling gradient, a disc on a circle) as H.264; returns its frame count."""
    width, height = size
    frames = max(1, round(minutes * 60 * rate))
    x = np.linspace(0, 255, width, dtype=np.float32)
    base = np.stack([np.tile(x, (height, 1)), np.tile(x[::-1], (height, 1)), np.full((height, width), 96)])
    base = np.ascontiguousarray(base.transpose(1, 2, 0), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            rgb = np.roll(base, 4 * i, axis=1)
            t = 2 * np.pi * i / (rate * 10)
            centre = (int(width / 2 + width / 4 * np.cos(t)), int(height / 2 + height / 4 * np.sin(t)))
            cv2.circle(rgb, centre, height // 5, (240, 220, 200), -1)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return frames


#: The long clip's job: the main job's defaults (cut-out and matte), the fuzzer's small graph.
MINUTES_JOB = ("--ref-size", "64", "--backend", "onnxruntime", "--threads", "1", "--quiet")


def soak_minutes(
    minutes: float, folder: Path, interval_s: float = 1.0, bounds: FlatBounds = FlatBounds()
) -> dict:
    """The main job on one long clip in a child, its RSS, fds and threads sampled until it ends."""
    clip = folder / "soak.mp4"
    frames = make_clip(clip, minutes)
    model = fuzz.tiny_model(folder)
    args = [str(clip), "-o", f"{folder}/out/", "--model", str(model), *MINUTES_JOB]
    cmd = [sys.executable, "-m", "trt_modnet.process", *args]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    child = psutil.Process(proc.pid)
    samples = []
    while proc.poll() is None:
        try:
            with child.oneshot():
                row = (child.memory_info().rss / 2**20, child.num_fds(), child.num_threads())
        except psutil.NoSuchProcess:
            break
        samples.append((round(time.perf_counter() - started, 2), *row))
        time.sleep(interval_s)
    stderr = proc.communicate()[1]
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"the job failed (exit {proc.returncode}): {stderr.strip()[-2000:]}")
    return {
        "minutes": minutes,
        "frames": frames,
        "clip": {"size": [640, 360], "rate": 25, "codec": "h264"},
        "job": " ".join(["python -m trt_modnet.process CLIP -o OUT/ --model RANDOM.onnx", *MINUTES_JOB]),
        "job_seconds": round(seconds, 1),
        "job_fps": round(frames / seconds, 1),
        "outputs": sorted(p.name for p in (folder / "out").iterdir()),
        **flatness(samples, frames / seconds, bounds),
        "samples": samples,
    }


def flatness(samples: Sequence[tuple[float, ...]], fps: float, bounds: FlatBounds) -> dict:
    """Slopes after the warm-up (the first tenth of the run, at least 20 s, at most half): per minute,
    per 1000 frames, and whether each is within its bound."""
    data = np.array(samples, dtype=float)
    warm_up = min(max(data[-1, 0] / 10, 20.0), data[-1, 0] / 2)  # seconds: start-up, the first batches
    steady = data[data[:, 0] >= warm_up] if len(data) > 2 else data
    limit = dict(zip(SERIES, astuple(bounds), strict=True))
    out: dict = {"bounds_per_min": asdict(bounds), "steady_samples": len(steady)}
    flat = True
    for j, name in enumerate(SERIES, start=1):
        per_s = float(np.polyfit(steady[:, 0], steady[:, j], 1)[0]) if len(steady) > 1 else 0.0
        values = steady[:, j]
        out[name] = {
            "per_min": round(per_s * 60, 4),
            "per_1000_frames": round(per_s * 1000 / fps, 4),
            "first": float(values[0]),
            "last": float(values[-1]),
            "max": float(values.max()),
        }
        flat &= per_s * 60 <= limit[name]
    out["flat"] = bool(flat)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    what = p.add_mutually_exclusive_group()
    what.add_argument("--files", type=int, default=100, help="files through one reused runner")
    what.add_argument("--minutes", type=float, help="one synthetic clip of this length through the job")
    p.add_argument("--output", type=Path)
    args = p.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        folder = Path(tmp)
        result = soak_minutes(args.minutes, folder) if args.minutes else soak(args.files, folder)
    result |= {
        "command": "python -m benchmarks.soak " + " ".join(argv or sys.argv[1:]),
        "cpu": fuzz._cpu(),
        "seconds": round(time.perf_counter() - started, 1),
        "pid": os.getpid(),
    }
    if args.minutes:
        print({k: result[k] for k in (*SERIES, "flat")})
    else:
        print(result["per_file_slope_second_half"])
    if args.output:
        write_result(args.output, result)
    return 0 if result.get("flat", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
