"""The GPU checks that need no TensorRT: run by `bash benchmarks/device_check.sh` on a GPU machine.

Exercises `trt_modnet.tensorrt.cuda` on a real GPU (pinned round trips, bandwidth, copies overlapping on two
streams, events across streams, errors) and drives `TensorRTRunner`'s real stream/event pipeline with a
stand-in engine whose "inference" is a CuPy kernel, checking every output byte. One line per step; figures as
JSON in $OUT/device_check.json when OUT is set. Exit status 1 when any step failed. This module is the
order of the steps; they are in benchmarks/device/ (report, copies, runner, codecs).
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as `python benchmarks/device_check.py`: make `benchmarks` importable as with -m
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.device import codecs, copies, runner
from benchmarks.device.report import Report, versions

#: Through PyAV only: they run without cuda-bindings, and alone when named (`nvenc nvdec`).
CODEC_STEPS = {"nvenc": codecs.nvenc, "nvdec": codecs.nvdec}
#: After the GPU is found, in this order.
GPU_STEPS = {
    "pinned_round_trip": copies.round_trip,
    "bandwidth": copies.bandwidth,
    "two_stream_copies": copies.two_streams,
    "events": copies.events,
    "errors": copies.errors,
    "copy_compute_overlap": copies.copy_compute_overlap,
    "runner_pipeline": runner.runner_pipeline,
    "composite_paths": runner.composite_paths,
    "prepare_twice": runner.prepare_twice,
    "blocking_sync": copies.blocking_sync,
    "host_ceiling": runner.host_ceiling,
}


def main(argv: list[str] | None = None) -> int:
    """Every step; with step names as arguments (`nvenc nvdec`), only those."""
    names = sys.argv[1:] if argv is None else argv
    report = Report()
    report.step("versions", versions)
    for name, fn in CODEC_STEPS.items():
        if not names or name in names:
            report.step(name, fn)
    if names and set(names) <= set(CODEC_STEPS):
        report.save()
        return 1 if report.failed else 0
    report.step("gpu", copies.gpu)
    if report.steps["gpu"]["status"] != "ok":
        report.save()
        return 1
    for name, fn in GPU_STEPS.items():
        report.step(name, fn)
    report.save()
    print(f"{len(report.steps)} steps, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
