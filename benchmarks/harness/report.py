"""The JSON document of a run: what it measured, as medians, ratios, samples, commands and the system."""

from __future__ import annotations

import datetime as dt
import logging
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import benchmarks.harness
from benchmarks.harness.settings import BenchSettings, label
from benchmarks.harness.stages import Rate
from benchmarks.machine import command, load_average, system_info, versions
from trt_modnet.graph.official import inference_size

log = logging.getLogger("trt_modnet.benchmarks")

#: Recorded in the JSON: the method paragraph of the harness's own docstring.
METHOD = " ".join(doc.split("Method: ", 1)[1].split()) if (doc := benchmarks.harness.__doc__) else ""


@dataclass
class Measured:
    """What one benchmark run collected, before it becomes the JSON document."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    #: CPU milliseconds per frame, every thread of the process that did the work, per sample.
    cpu_samples: dict[str, list[float]] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)
    memory: dict[str, Any] | None = None
    runner: str = ""
    frame_size: tuple[int, int] = (0, 0)
    rate: float = 0.0
    load_at_start: list[float] | None = None

    def record(self, key: str, rate: Rate) -> None:
        self.samples.setdefault(key, []).append(rate.fps)
        self.cpu_samples.setdefault(key, []).append(rate.cpu_ms)
        log.info("%-24s %8.2f fps %8.1f CPU ms a frame", key, rate.fps, rate.cpu_ms)


def report(s: BenchSettings, m: Measured) -> dict[str, Any]:
    """The JSON document: figures (medians), derived ratios, samples, commands, settings and the system."""
    med = {k: round(statistics.median(v), 3) for k, v in m.samples.items()}
    cpu = {k: round(statistics.median(v), 2) for k, v in m.cpu_samples.items()}
    height, width = m.frame_size
    return {
        "benchmark": "trt_modnet throughput",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command(),
        "input": {
            "video": str(s.video),
            "width": width,
            "height": height,
            "frame_rate": round(m.rate, 4),
            "inference_size": list(inference_size(height, width, s.ref_size)),
        },
        "runner": m.runner,
        "figures": figures(s, med, cpu, m.memory),
        "samples": m.samples,
        "cpu_ms_per_frame_samples": m.cpu_samples,
        "memory": m.memory,
        "settings": {**{k: _plain(v) for k, v in asdict(s).items()}, "warmup_frames": s.warmup},
        "method": METHOD,
        "naive_loop": "benchmarks/naive.py: OpenCV capture, official ONNX preprocessing per frame, "
        "ONNX Runtime (CPU) on the raw MODNet model, full-size matte (INTER_AREA), float composite over "
        "white, mp4v",
        "like_for_like": "our job with --mode composite --background white --format mp4 (H.264)",
        "child_commands": m.commands,
        "system": {
            **system_info(),
            "load_average_at_start": m.load_at_start,
            "load_average_at_end": load_average(),
        },
        "versions": versions(),
    }


def figures(
    s: BenchSettings, med: dict[str, float], cpu: dict[str, float], memory: dict[str, Any] | None
) -> dict[str, Any]:
    """The headline figures (the first configuration), and every configuration's under `configs`."""
    configs = {label(c): _config_figures(s, label(c), med, cpu) for c in s.configs}
    out: dict[str, Any] = {
        "decode_fps": med["decode"],
        "encode_fps": med["encode"],
        "decode_cpu_ms_per_frame": cpu["decode"],
        "encode_cpu_ms_per_frame": cpu["encode"],
        **configs[label(s.configs[0])],
        "configs": configs,
    }
    if memory is not None:
        out["peak_rss_short_mb"] = memory["short"]["peak_rss_mb"]
        out["peak_rss_long_mb"] = memory["long"]["peak_rss_mb"]
        out["memory_ratio_long_short"] = memory["ratio_long_short"]
    return out


def _config_figures(
    s: BenchSettings, name: str, med: dict[str, float], cpu: dict[str, float]
) -> dict[str, Any]:
    inference = {str(b): med[f"{name}/inference_b{b}"] for b in s.batches}
    end_to_end = {str(b): med[f"{name}/end_to_end_b{b}"] for b in s.batches}
    cpu_inference = {str(b): cpu[f"{name}/inference_b{b}"] for b in s.batches}
    cpu_job = {str(b): cpu[f"{name}/end_to_end_b{b}"] for b in s.batches}
    out: dict[str, Any] = {
        "inference_fps": inference,
        "end_to_end_fps": end_to_end,
        "pipeline_efficiency": {
            b: round(end_to_end[b] / min(med["decode"], med["encode"], inference[b]), 3) for b in inference
        },
        # Like for like where encode is cheap: the target is >= 0.95.
        "end_to_end_over_inference": {b: round(end_to_end[b] / inference[b], 3) for b in inference},
        "cpu_ms_per_frame": {"inference": cpu_inference, "end_to_end": cpu_job},
        # What the job spends beyond inference: decode, colour conversion, encode, the pipeline's glue.
        "host_cpu_ms_per_frame": {b: round(cpu_job[b] - cpu_inference[b], 2) for b in inference},
        # Where every core is busy (inference on the CPU), end to end can reach at most this fraction of
        # inference alone: below it, cores sat idle; at it, only cheaper host work helps.
        "cpu_bound_ceiling": {b: round(cpu_inference[b] / cpu_job[b], 3) for b in inference},
    }
    if s.naive:
        naive = med["naive"]
        like = med.get(f"{name}/end_to_end_composite", end_to_end[str(s.compare_batch)])
        out.update(
            naive_fps=naive,
            composite_end_to_end_fps=like,
            speedup_like_for_like=round(like / naive, 3),
            speedup_default_output=round(end_to_end[str(s.compare_batch)] / naive, 3),
        )
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value
