"""One runner reused over many files of mixed sizes, sampling RSS, open fds and threads after each file.

`python -m benchmarks.soak --files N [--output JSON]`: the files cycle through the fuzz corpus (short
clips in five containers and two images, each at three lengths); the slope of each series over the
second half of the run (per file) is what says whether something leaks. (`--minutes M`, one long clip,
is not built yet: docs/reliability.md.)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

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


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    p.add_argument("--files", type=int, default=100)
    p.add_argument("--output", type=Path)
    args = p.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        result = soak(args.files, Path(tmp))
    result |= {
        "command": "python -m benchmarks.soak " + " ".join(argv or sys.argv[1:]),
        "cpu": fuzz._cpu(),
        "seconds": round(time.perf_counter() - started, 1),
        "pid": os.getpid(),
    }
    print(result["per_file_slope_second_half"])
    if args.output:
        write_result(args.output, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
