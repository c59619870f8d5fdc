"""The CPU runners (ONNX Runtime, OpenVINO FP32 and bf16): the Runner contract on real frames, batches in
flight, misuse, cleanup. Every runner is held to the same tests; only how close it must come to the FP32
graph differs (ONNX Runtime: exactly; OpenVINO FP32: within one alpha step; the bf16 recipe: its drift).
"""

from __future__ import annotations

from dataclasses import replace
from itertools import islice
from pathlib import Path

import av
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.conftest import VIDEOS, need
from trt_modnet.errors import MattingError
from trt_modnet.graph.deploy import DeploySpec, build, size_feeds
from trt_modnet.runtime.base import Runner
from trt_modnet.runtime.onnxrt import OnnxRuntimeRunner
from trt_modnet.runtime.openvino import OpenVinoRunner, OpenVinoSettings, supports_bf16

SPEC = DeploySpec(outputs=("alpha", "composite"), ref_size=128)  # small inference size: quick
CPU_SPEC = replace(SPEC, host_input=True)  # what the CPU runners are given (select.open_runner)


def onnxruntime(deploy: onnx.ModelProto, depth: int) -> Runner:
    return OnnxRuntimeRunner(deploy, depth=depth)


def openvino_fp32(deploy: onnx.ModelProto, depth: int) -> Runner:
    return OpenVinoRunner(deploy, OpenVinoSettings("fp32", threads=2, streams=2), depth=depth)


def openvino_bf16(deploy: onnx.ModelProto, depth: int) -> Runner:
    if not supports_bf16():
        pytest.skip("this CPU has no native bf16 (AVX512_BF16 or AMX)")
    return OpenVinoRunner(deploy, OpenVinoSettings("bf16", threads=2, streams=1), depth=depth)


# (runner factory, max |delta| of any output byte against the FP32 graph in ONNX Runtime, max mean |delta|);
# OpenCV's float resize on the host and the graph's taps round a matte value apart now and then.
RUNNERS = {
    "onnxruntime": (onnxruntime, 1, 0.001),
    "openvino-fp32": (openvino_fp32, 1, 0.01),
    "openvino-bf16": (openvino_bf16, 255, 0.5),
}


@pytest.fixture(params=list(RUNNERS))
def make(request: pytest.FixtureRequest) -> tuple:
    return RUNNERS[request.param]


def read_frames(video: str, count: int) -> np.ndarray:
    with av.open(str(need(VIDEOS / video))) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in islice(container.decode(video=0), count)])


@pytest.fixture(scope="module")
def deploy(synthetic_onnx: Path) -> onnx.ModelProto:
    return build(onnx.load(str(synthetic_onnx)), CPU_SPEC)


@pytest.fixture(scope="module")
def direct(synthetic_onnx: Path) -> ort.InferenceSession:
    """The whole deployment graph (resizes in it, as TensorRT runs it) run plainly: the reference."""
    graph = build(onnx.load(str(synthetic_onnx)), SPEC)
    return ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])


def expected(direct: ort.InferenceSession, frames: np.ndarray, background: np.ndarray) -> dict:
    feeds = {"frames": frames, "background": background, **size_feeds(SPEC, *frames.shape[1:3])}
    return dict(zip(SPEC.outputs, direct.run(list(SPEC.outputs), feeds), strict=True))


@pytest.mark.parametrize("host_input", [True, False], ids=["host-input", "whole-graph"])
def test_batches_in_flight_give_the_graph_results(
    synthetic_onnx: Path, direct: ort.InferenceSession, make: tuple, host_input: bool
) -> None:
    factory, max_delta, max_mean = make
    deploy = build(onnx.load(str(synthetic_onnx)), replace(SPEC, host_input=host_input))
    frames = read_frames("carphone_qcif.mp4", 4)
    background = np.full((1, *frames.shape[1:]), (0, 177, 64), dtype=np.uint8)
    batch = frames[:2].copy()  # the caller reuses one buffer, as a decoder does
    with factory(deploy, 2) as runner:
        assert runner.outputs == SPEC.outputs
        runner.prepare(*frames.shape[1:3], 2)
        first = runner.submit({"frames": batch, "background": background})
        batch[:] = frames[2:]  # overwritten before the first batch is collected
        second = runner.submit({"frames": batch, "background": background})
        got = [runner.result(second), runner.result(first)]  # any order
    for result, chunk in zip(got, (frames[2:], frames[:2]), strict=True):
        want = expected(direct, chunk, background)
        assert result.keys() == want.keys()
        for name in SPEC.outputs:
            assert result[name].shape == want[name].shape and result[name].dtype == np.uint8
            delta = np.abs(result[name].astype(int) - want[name])
            assert delta.max() <= max_delta and delta.mean() <= max_mean, (name, delta.max(), delta.mean())


def test_backgrounds_per_video_and_per_frame_and_short_batches(deploy: onnx.ModelProto, make: tuple) -> None:
    frames = read_frames("pancake_240p.mkv", 3)
    rng = np.random.default_rng(0)
    per_frame = rng.integers(0, 256, frames.shape, dtype=np.uint8)
    with make[0](deploy, 2) as runner:
        runner.prepare(*frames.shape[1:3], 4)  # batches up to 4; the last one of a video is shorter
        for background in (per_frame, per_frame[:1]):
            out = runner.result(runner.submit({"frames": frames, "background": background}))
            a = out["alpha"][..., None] / 255.0
            blend = frames * a + background * (1 - a)
            assert out["composite"].shape == frames.shape
            assert np.abs(out["composite"] - blend).max() <= 1


def test_one_runner_serves_videos_of_different_sizes(deploy: onnx.ModelProto, make: tuple) -> None:
    # A folder run: sizes change, and a clip may follow one of its own size (OpenVINO then keeps its
    # compiled stages) with another batch size.
    mattes: dict[str, list[np.ndarray]] = {}
    with make[0](deploy, 2) as runner:
        for video, batch in [("carphone_qcif.mp4", 1), ("pancake_240p.mkv", 1), ("pancake_240p.mkv", 2)] * 2:
            frames = read_frames(video, 1)
            runner.prepare(*frames.shape[1:3], batch)
            out = runner.result(runner.submit({"frames": frames, "background": frames}))
            assert out["alpha"].shape == frames.shape[:3]
            mattes.setdefault(video, []).append(out["alpha"])
    for video, runs in mattes.items():
        assert all(np.array_equal(m, runs[0]) for m in runs), video


@pytest.mark.parametrize(("height", "width"), [(20, 640), (0, 0)])
def test_frames_too_small_are_refused_at_prepare(
    deploy: onnx.ModelProto, make: tuple, height: int, width: int
) -> None:
    with make[0](deploy, 2) as runner, pytest.raises(MattingError, match="too small"):
        runner.prepare(height, width, 1)


def test_misuse_is_refused(deploy: onnx.ModelProto, make: tuple) -> None:
    frames = read_frames("carphone_qcif.mp4", 1)
    ok = {"frames": frames, "background": frames}
    with make[0](deploy, 1) as runner:
        with pytest.raises(RuntimeError, match="prepare"):
            runner.submit(ok)
        runner.prepare(*frames.shape[1:3], 1)
        with pytest.raises(RuntimeError, match="do not match the graph's inputs"):
            runner.submit({"frames": frames})
        with pytest.raises(RuntimeError, match=r"background uint8.*does not fit"):
            runner.submit({"frames": frames, "background": frames[:, :-1]})
        with pytest.raises(RuntimeError, match="do not fit the prepared"):
            runner.submit({"frames": np.concatenate([frames, frames]), "background": frames})
        ticket = runner.submit(ok)
        with pytest.raises(RuntimeError, match="already in flight"):
            runner.submit(ok)
        runner.result(ticket)
        with pytest.raises(RuntimeError, match="not in flight"):
            runner.result(ticket)
        # The CPU runners copy their outputs anyway: a lent batch is the caller's and holds no slot.
        lease = runner.lend(runner.submit(ok))
        assert not lease.held and lease.outputs["alpha"].shape == frames.shape[:3]
        runner.result(runner.submit(ok))


def test_close_is_idempotent_and_final(deploy: onnx.ModelProto, make: tuple) -> None:
    frames = read_frames("carphone_qcif.mp4", 1)
    runner = make[0](deploy, 2)
    runner.prepare(*frames.shape[1:3], 1)
    runner.submit({"frames": frames, "background": frames})
    runner.close()  # with a batch still in flight: waits for it, then releases the session
    runner.close()
    with pytest.raises(RuntimeError, match="closed"):
        runner.prepare(*frames.shape[1:3], 1)
    with pytest.raises(RuntimeError, match="closed"), runner:
        pass


def test_a_model_that_is_no_deployment_graph_is_refused(synthetic_onnx: Path, make: tuple) -> None:
    with pytest.raises(MattingError, match="not a trt_modnet deployment graph"):
        make[0](onnx.load(str(synthetic_onnx)), 2)
