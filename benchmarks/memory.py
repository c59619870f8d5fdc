"""Peak resident memory of the main job on a short and a long input, and how child processes are measured.

The long input is made here by concatenating copies of a shared video (a remux: no re-encode, so it takes
seconds), never committed. The short input is one copy made the same way, so both files differ only in
length. Each run of the main job is a fresh process; its peak RSS is its VmHWM (the high-water mark of
its own memory since exec, polled from /proc), not `ru_maxrss`, which on Linux also counts the parent's
RSS at fork.

Run alone: `python -m benchmarks.memory VIDEO --model MODEL.onnx [--long-seconds 60]`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
import psutil

from trt_modnet.cli import run_main
from trt_modnet.errors import MattingError
from trt_modnet.video import default_output_path

REPO = Path(__file__).resolve().parents[1]
# ru_maxrss is in kilobytes on Linux and in bytes on macOS.
_RSS_UNIT = 1 if sys.platform == "darwin" else 1024
_MB = 1024 * 1024
_SAMPLE_S = 0.25


@dataclass(frozen=True)
class ChildRun:
    """One finished child process: its wall time and peak resident set size."""

    argv: tuple[str, ...]
    seconds: float
    peak_rss: int  # bytes
    #: (seconds since start, RSS bytes), when sampling was asked for.
    rss_samples: tuple[tuple[float, int], ...] = ()
    #: User + system seconds of the child and every thread of it (the kernel's own accounting).
    cpu_seconds: float = 0.0

    def rss_by_quarter(self) -> list[float | None]:
        """The highest sampled RSS (MB) in each quarter of the run: growth shows as a rising series."""
        quarters: list[list[int]] = [[], [], [], []]
        for at, rss in self.rss_samples:
            quarters[min(3, int(4 * at / self.seconds))].append(rss)
        return [round(max(q) / _MB, 1) if q else None for q in quarters]


@dataclass(frozen=True)
class JobOptions:
    """The main job's options that the benchmarks vary; everything else stays at its default."""

    model: Path
    backend: str = "auto"
    precision: str = "auto"
    batch: int = 4
    ref_size: int = 512
    content: str = "rgba"
    format: str | None = None
    #: None: the main job's own thread budget.
    threads: int | None = None
    engines: Path = Path("engines")
    background: str = "white"
    #: `--encoder` of the main job ("auto": each format's own).
    encoder: str = "auto"


@dataclass(frozen=True)
class Clip:
    path: Path
    frames: int
    seconds: float


class _RssSampler:
    """Polls a process's RSS and its peak (VmHWM) from a thread while the caller waits for it.

    VmHWM is the high-water mark of the process's own memory since its exec. `ru_maxrss` is not: Linux
    keeps the larger of it and the parent's RSS at fork, so a child of a big benchmark process would
    report the parent's size (seen here: 2.4 GB for a job whose RSS never passed 0.8 GB).
    """

    def __init__(self, pid: int, every: float) -> None:
        self.samples: list[tuple[float, int]] = []
        self.peak = 0  # bytes; 0 when /proc is unavailable
        self._pid, self._every = pid, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            proc = psutil.Process(self._pid)
            while not self._stop.wait(self._every):
                self.samples.append((time.perf_counter() - started, proc.memory_info().rss))
                self.peak = max(self.peak, _high_water_mark(self._pid))
        except (psutil.Error, OSError):  # the process is gone: nothing more to sample
            return


def _high_water_mark(pid: int) -> int:
    """Peak RSS of `pid` since its exec, in bytes (Linux /proc; 0 elsewhere)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def run_child(argv: Sequence[str], *, log: Path, sample_every: float = _SAMPLE_S) -> ChildRun:
    """Run `argv` from the repository root in a fresh process, sampling its RSS every `sample_every` s;
    raise MattingError if it fails."""
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        try:
            with _RssSampler(proc.pid, sample_every) as sampler:
                _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
    if proc.returncode != 0:
        lines = log.read_text(errors="replace").strip().splitlines() or ["(no output)"]
        raise MattingError(
            f"{' '.join(argv[1:4])} ... exited with {proc.returncode}: {lines[-1]} (full log: {log})"
        )
    peak = sampler.peak or usage.ru_maxrss * _RSS_UNIT  # ru_maxrss only where /proc is missing
    cpu = usage.ru_utime + usage.ru_stime
    return ChildRun(tuple(argv), seconds, peak, tuple(sampler.samples), cpu_seconds=cpu)


def job_argv(video: Path, output: Path, job: JobOptions, *, duration: float | None = None) -> list[str]:
    """The exact command line of the main job for one input."""
    argv = [sys.executable, "-m", "trt_modnet.process", str(video), "-o", str(output)]
    argv += ["--model", str(job.model), "--backend", job.backend, "--precision", job.precision]
    argv += ["--batch", str(job.batch), "--ref-size", str(job.ref_size), "--mode", job.content]
    if job.threads is not None:
        argv += ["--threads", str(job.threads)]
    argv += ["--engines", str(job.engines), "--overwrite", "--quiet"]
    if job.format is not None:
        argv += ["--format", job.format]
    if job.encoder != "auto":
        argv += ["--encoder", job.encoder]
    if job.content == "composite":
        argv += ["--background", job.background]
    if duration is not None:
        argv += ["--duration", f"{duration:.6f}"]
    return argv


def output_path(folder: Path, video: Path, content: str, fmt: str | None) -> Path:
    """Where a run writes: the main job's default name for this input and format, inside `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    return folder / default_output_path(video, content, fmt).name


def make_clip(source: Path, dest: Path, *, copies: int) -> Clip:
    """Write `copies` back-to-back copies of the first video stream of `source` into `dest` (no audio)."""
    if copies < 1:
        raise ValueError("copies must be at least 1")
    frames, offset, time_base = 0, 0, None
    with av.open(str(dest), "w") as dst:
        out = None
        for _ in range(copies):
            with av.open(str(source)) as src:
                stream = src.streams.video[0]
                if out is None:
                    out = dst.add_stream_from_template(stream)
                time_base = stream.time_base
                count, offset = _append_copy(src, stream, dst, out, offset)
                frames += count
    assert time_base is not None
    return Clip(dest, frames, float(offset * time_base))


def _append_copy(
    src: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    dst: av.container.OutputContainer,
    out: av.video.stream.VideoStream,
    offset: int,
) -> tuple[int, int]:
    """Mux one copy of `stream` shifted by `offset`; returns its packet count and where the next starts."""
    count, end = 0, offset
    for packet in src.demux(stream):
        if packet.dts is None:  # the demuxer's flush packet
            continue
        if packet.pts is None:
            raise MattingError(f"{src.name}: a packet has no pts; cannot concatenate it")
        packet.pts += offset
        packet.dts += offset
        end = max(end, packet.pts + (packet.duration or 0))
        packet.stream = out
        dst.mux(packet)
        count += 1
    return count, end


def measure_memory(video: Path, job: JobOptions, *, long_seconds: float, work: Path) -> dict[str, Any]:
    """Peak RSS of the main job on one copy of `video` and on enough copies to last `long_seconds`."""
    short = make_clip(video, work / "memory_short.mp4", copies=1)
    copies = max(2, math.ceil(long_seconds / short.seconds))
    long = make_clip(video, work / "memory_long.mp4", copies=copies)
    runs: dict[str, dict[str, Any]] = {}
    for name, clip in (("short", short), ("long", long)):
        argv = job_argv(
            clip.path, output_path(work / f"memory_{name}", clip.path, job.content, job.format), job
        )
        run = run_child(argv, log=work / f"memory_{name}.log")
        runs[name] = {
            "video_seconds": round(clip.seconds, 3),
            "frames": clip.frames,
            "wall_s": round(run.seconds, 2),
            "fps": round(clip.frames / run.seconds, 3),
            "peak_rss_mb": round(run.peak_rss / _MB, 1),
            "rss_mb_by_quarter": run.rss_by_quarter(),
            "command": list(run.argv),
        }
    return {
        "short": runs["short"],
        "long": runs["long"],
        "ratio_long_short": round(runs["long"]["peak_rss_mb"] / runs["short"]["peak_rss_mb"], 3),
        "settings": {**_plain(asdict(job)), "source": str(video), "copies_long": copies},
        "method": "peak RSS = VmHWM of each main-job process (polled from /proc; ru_maxrss would count the "
        "benchmark's own RSS inherited at fork); rss_mb_by_quarter = the "
        f"highest RSS sampled every {_SAMPLE_S} s in each quarter of the run; inputs are remuxed copies of "
        "the source video (no audio), each processed whole",
    }


def _plain(values: dict[str, object]) -> dict[str, object]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.memory",
        description="Peak resident memory of the main job on a short and a long input (flat memory check).",
    )
    p.add_argument("video", type=Path, help="source video; the long input is copies of it")
    p.add_argument("--model", type=Path, required=True, help="MODNet ONNX")
    p.add_argument("--long-seconds", type=float, default=60.0, help="length of the long input (60)")
    p.add_argument("--backend", choices=("auto", "onnxruntime", "tensorrt"), default="auto")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--ref-size", type=int, default=128, help="MODNet ref size (128: keeps the runs short)")
    p.add_argument("--content", choices=("rgba", "alpha", "composite"), default="alpha")
    p.add_argument("--format", default="mp4", help="output format (mp4: cheap to encode)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    job = JobOptions(
        model=args.model.resolve(),
        backend=args.backend,
        batch=args.batch,
        ref_size=args.ref_size,
        content=args.content,
        format=args.format,
    )
    with tempfile.TemporaryDirectory(prefix="trt_modnet_memory_") as work:
        result = measure_memory(args.video.resolve(), job, long_seconds=args.long_seconds, work=Path(work))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
