"""The ONNX Runtime runner: the Runner contract on real frames, batches in flight, misuse, cleanup."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import av
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.conftest import VIDEOS, need
from trt_modnet.errors import MattingError
from trt_modnet.graph import DeploySpec, build, size_feeds
from trt_modnet.runtime.onnxrt import OnnxRuntimeRunner

SPEC = DeploySpec(outputs=("alpha", "composite"), ref_size=128)  # small inference size: quick


def read_frames(video: str, count: int) -> np.ndarray:
    with av.open(str(need(VIDEOS / video))) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in islice(container.decode(video=0), count)])


@pytest.fixture(scope="module")
def deploy(synthetic_onnx: Path) -> onnx.ModelProto:
    return build(onnx.load(str(synthetic_onnx)), SPEC)


@pytest.fixture(scope="module")
def direct(deploy: onnx.ModelProto) -> ort.InferenceSession:
    """The same graph run plainly, as the reference for what the runner returns."""
    return ort.InferenceSession(deploy.SerializeToString(), providers=["CPUExecutionProvider"])


def expected(direct: ort.InferenceSession, frames: np.ndarray, background: np.ndarray) -> dict:
    feeds = {"frames": frames, "background": background, **size_feeds(SPEC, *frames.shape[1:3])}
    return dict(zip(SPEC.outputs, direct.run(list(SPEC.outputs), feeds), strict=True))


def test_batches_in_flight_give_the_graph_results(
    deploy: onnx.ModelProto, direct: ort.InferenceSession
) -> None:
    frames = read_frames("carphone_qcif.mp4", 4)
    background = np.full((1, *frames.shape[1:]), (0, 177, 64), dtype=np.uint8)
    batch = frames[:2].copy()  # the caller reuses one buffer, as a decoder does
    with OnnxRuntimeRunner(deploy, depth=2) as runner:
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
            np.testing.assert_array_equal(result[name], want[name])


def test_backgrounds_per_video_and_per_frame_and_short_batches(deploy: onnx.ModelProto) -> None:
    frames = read_frames("pancake_240p.mkv", 3)
    rng = np.random.default_rng(0)
    per_frame = rng.integers(0, 256, frames.shape, dtype=np.uint8)
    with OnnxRuntimeRunner(deploy) as runner:
        runner.prepare(*frames.shape[1:3], 4)  # batches up to 4; the last one of a video is shorter
        for background in (per_frame, per_frame[:1]):
            out = runner.result(runner.submit({"frames": frames, "background": background}))
            a = out["alpha"][..., None] / 255.0
            blend = frames * a + background * (1 - a)
            assert out["composite"].shape == frames.shape
            assert np.abs(out["composite"] - blend).max() <= 1


def test_one_runner_serves_videos_of_different_sizes(deploy: onnx.ModelProto) -> None:
    with OnnxRuntimeRunner(deploy) as runner:
        for video in ("carphone_qcif.mp4", "pancake_240p.mkv"):
            frames = read_frames(video, 1)
            runner.prepare(*frames.shape[1:3], 1)
            out = runner.result(runner.submit({"frames": frames, "background": frames}))
            assert out["alpha"].shape == frames.shape[:3]


@pytest.mark.parametrize(("height", "width"), [(20, 640), (0, 0)])
def test_frames_too_small_are_refused_at_prepare(deploy: onnx.ModelProto, height: int, width: int) -> None:
    with OnnxRuntimeRunner(deploy) as runner, pytest.raises(MattingError, match="too small"):
        runner.prepare(height, width, 1)


def test_misuse_is_refused(deploy: onnx.ModelProto) -> None:
    frames = read_frames("carphone_qcif.mp4", 1)
    ok = {"frames": frames, "background": frames}
    with OnnxRuntimeRunner(deploy, depth=1) as runner:
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


def test_close_is_idempotent_and_final(deploy: onnx.ModelProto) -> None:
    frames = read_frames("carphone_qcif.mp4", 1)
    runner = OnnxRuntimeRunner(deploy)
    runner.prepare(*frames.shape[1:3], 1)
    runner.submit({"frames": frames, "background": frames})
    runner.close()  # with a batch still in flight: waits for it, then releases the session
    runner.close()
    with pytest.raises(RuntimeError, match="closed"):
        runner.prepare(*frames.shape[1:3], 1)
    with pytest.raises(RuntimeError, match="closed"), runner:
        pass


def test_a_model_that_is_no_deployment_graph_is_refused(synthetic_onnx: Path) -> None:
    with pytest.raises(MattingError, match="not a trt_modnet deployment graph"):
        OnnxRuntimeRunner(onnx.load(str(synthetic_onnx)))
