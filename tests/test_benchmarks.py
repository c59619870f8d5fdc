"""The benchmark harness keeps working: it runs on a tiny clip and reports every figure (never timings)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import av
import cv2
import pytest

from tests.conftest import REPO, VIDEOS, need

pytest.importorskip("matplotlib")  # the bench extra: charts
pytest.importorskip("psutil")  # and RSS sampling

from benchmarks import throughput
from benchmarks.memory import make_clip
from benchmarks.plot import table_row
from trt_modnet.errors import MattingError

SMALL = VIDEOS / "carphone_qcif.mp4"


def _numbers(value: object, skip: tuple[str, ...] = ()) -> list[float]:
    if isinstance(value, dict):
        return [x for k, v in value.items() if k not in skip for x in _numbers(v, skip)]
    assert isinstance(value, (int, float)), value
    return [float(value)]


@pytest.mark.slow  # about 25 s on 2 idle cores: ten short child processes
def test_harness_reports_every_figure_and_the_command(tmp_path: Path, synthetic_onnx: Path) -> None:
    video = need(SMALL)
    out, chart = tmp_path / "bench.json", tmp_path / "bench.png"
    argv = ["--video", str(video), "--model", str(synthetic_onnx), "--backend", "openvino", "onnxruntime"]
    argv += ["--precision", "fp32", "--batch", "2", "--ref-size", "128", "--frames", "96"]
    argv += ["--memory-long-seconds", "8"]
    argv += ["--json", str(out), "--plot", str(chart), "--workdir", str(tmp_path / "work")]
    assert throughput.main(argv) == 0

    result = json.loads(out.read_text())
    figures = result["figures"]
    expected = {
        "decode_fps", "encode_fps", "inference_fps", "end_to_end_fps", "pipeline_efficiency", "naive_fps",
        "composite_end_to_end_fps", "speedup_like_for_like", "speedup_default_output", "peak_rss_short_mb",
        "peak_rss_long_mb", "memory_ratio_long_short", "end_to_end_over_inference", "configs",
        "decode_cpu_ms_per_frame", "encode_cpu_ms_per_frame", "cpu_ms_per_frame", "host_cpu_ms_per_frame",
        "cpu_bound_ceiling",
    }  # fmt: skip
    assert set(figures) == expected
    assert set(figures["inference_fps"]) == set(figures["end_to_end_fps"]) == {"2"}
    # Both configurations measured side by side; the first is the headline.
    assert list(figures["configs"]) == ["openvino-fp32", "onnxruntime-fp32"]
    assert figures["configs"]["openvino-fp32"]["inference_fps"] == figures["inference_fps"]
    # The host's CPU is a difference of two measured costs: on this tiny clip it scatters around zero.
    assert all(math.isfinite(x) and x > 0 for x in _numbers(figures, skip=("host_cpu_ms_per_frame",)))
    assert all(math.isfinite(x) for x in _numbers(figures))
    cpu = figures["cpu_ms_per_frame"]
    assert figures["host_cpu_ms_per_frame"]["2"] == round(cpu["end_to_end"]["2"] - cpu["inference"]["2"], 2)
    assert figures["cpu_bound_ceiling"]["2"] == round(cpu["inference"]["2"] / cpu["end_to_end"]["2"], 3)
    assert result["command"][3:] == argv
    assert result["input"]["width"] == 176 and result["input"]["height"] == 144
    assert result["memory"]["long"]["frames"] == 2 * result["memory"]["short"]["frames"]
    assert result["versions"]["onnxruntime"] and result["versions"]["av"] and result["system"]["cpu"]
    assert "cpu_flags" in result["system"]  # the SIMD features every CPU figure depends on
    # Each recorded child command ran the tiny clip with the settings asked for.
    job = result["child_commands"]["onnxruntime-fp32/end_to_end_b2"][0]
    # The harness resolves its paths (../shared may be a symlink).
    assert str(video.resolve()) in job and "--batch 2" in job and "--ref-size 128" in job
    assert "--backend onnxruntime --precision fp32" in job
    assert f"| {figures['pipeline_efficiency']['2']:.2f} |" in table_row(result)
    image = cv2.imread(str(chart))
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 400


def test_long_clip_is_decodable_copies_of_the_source(tmp_path: Path) -> None:
    video = need(SMALL)
    clip = make_clip(video, tmp_path / "long.mp4", copies=3)
    with av.open(str(video)) as src:
        source_frames = sum(1 for _ in src.decode(video=0))
        source_seconds = float(src.duration) / av.time_base
    with av.open(str(clip.path)) as container:
        pts = [frame.pts for frame in container.decode(video=0)]
    assert len(pts) == clip.frames == 3 * source_frames
    assert pts == sorted(pts) and len(set(pts)) == len(pts)
    assert clip.seconds == pytest.approx(3 * source_seconds, rel=0.01)


def test_script_form_runs_from_the_repository_root() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/throughput.py", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "--json" in done.stdout and "--backend" in done.stdout


def test_a_missing_model_is_one_clear_error(tmp_path: Path) -> None:
    video = need(SMALL)
    missing = tmp_path / "nope.onnx"
    with pytest.raises(MattingError, match=r"nope\.onnx"):
        throughput.main(["--video", str(video), "--model", str(missing), "--backend", "onnxruntime"])
