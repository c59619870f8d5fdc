"""The deployment graph: outputs on real frames, parity with the official procedure, bad models and sizes."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from itertools import islice
from pathlib import Path

import av
import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from tests.conftest import IMAGES, VIDEOS, Cli, need
from trt_modnet.errors import MattingError
from trt_modnet.graph.deploy import (
    OUTPUTS,
    DeploySpec,
    build,
    input_names,
    size_feeds,
    spec_of,
)
from trt_modnet.graph.deploy import main as graph_main
from trt_modnet.graph.modelfile import RANDOM_WEIGHTS_KEY
from trt_modnet.graph.official import RawModnet, inference_size, network_input, official_matte
from trt_modnet.graph.resize import area_taps, area_weights

SMALL = DeploySpec(outputs=OUTPUTS, ref_size=256)  # small inference sizes keep the network quick


def read_frames(path: Path, count: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """The first `count` RGB frames of a shared video, optionally resized to (width, height)."""
    with av.open(str(need(path))) as container:
        frames = [f.to_ndarray(format="rgb24") for f in islice(container.decode(video=0), count)]
    if size is not None:
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
    return np.stack(frames)


def read_image(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(need(path))), cv2.COLOR_BGR2RGB)


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, spec: DeploySpec, frames: np.ndarray, **extra: np.ndarray) -> dict:
    feeds = {"frames": frames, **extra, **size_feeds(spec, *frames.shape[1:3])}
    if spec.host_input:  # as the CPU runners feed it
        image = np.empty((len(frames), 3, *inference_size(*frames.shape[1:3], spec.ref_size)), np.float32)
        network_input(frames, image)
        feeds["image"] = image
    feeds = {name: feeds[name] for name in input_names(spec)}
    return dict(zip(spec.outputs, sess.run(list(spec.outputs), feeds), strict=True))


@pytest.fixture(scope="module")
def all_outputs(synthetic_onnx: Path) -> ort.InferenceSession:
    return session(build(onnx.load(str(synthetic_onnx)), SMALL))


@pytest.mark.parametrize(
    ("video", "batch", "video_background"),
    [("pancake_240p.mkv", 1, False), ("pancake_240p.mkv", 3, True), ("carphone_qcif.mp4", 2, False)],
)
def test_outputs_on_real_frames(
    all_outputs: ort.InferenceSession, video: str, batch: int, video_background: bool
) -> None:
    frames = read_frames(VIDEOS / video, batch)
    n, h, w = frames.shape[:3]
    if video_background:  # one background frame per frame
        background = read_frames(VIDEOS / "chaplin_360p.mp4", n, (w, h))
    else:  # one image for the whole batch
        background = cv2.resize(read_image(IMAGES / "portraits" / "astronaut.png"), (w, h))[None]

    out = run(all_outputs, SMALL, frames, background=background)

    alpha, rgba, composite = out["alpha"], out["rgba"], out["composite"]
    assert (alpha.shape, rgba.shape, composite.shape) == ((n, h, w), (n, h, w, 4), (n, h, w, 3))
    assert alpha.dtype == rgba.dtype == composite.dtype == np.uint8
    np.testing.assert_array_equal(rgba[..., :3], frames)
    np.testing.assert_array_equal(rgba[..., 3], alpha)
    a = alpha[..., None] / 255.0
    blend = frames * a + background * (1 - a)
    assert np.abs(composite.astype(float) - blend).max() <= 1
    assert alpha.min() < 64 and alpha.max() > 192  # a matte, not a constant
    for i in range(n):  # a frame's matte does not depend on the batch it came in
        alone = run(all_outputs, SMALL, frames[i : i + 1], background=background[:1])["alpha"][0]
        assert np.abs(alone.astype(int) - alpha[i]).max() <= 1


def test_host_input_graph_gives_the_whole_graphs_outputs(
    synthetic_onnx: Path, all_outputs: ort.InferenceSession
) -> None:
    frames = read_frames(VIDEOS / "pancake_240p.mkv", 2)
    background = read_frames(VIDEOS / "chaplin_360p.mp4", 1, frames.shape[1:3][::-1])
    host = replace(SMALL, host_input=True)
    got = run(session(build(onnx.load(str(synthetic_onnx)), host)), host, frames, background=background)
    want = run(all_outputs, SMALL, frames, background=background)
    np.testing.assert_array_equal(got["rgba"][..., :3], frames)
    for name in SMALL.outputs:
        delta = np.abs(got[name].astype(int) - want[name])
        assert delta.max() <= 1 and delta.mean() <= 0.01, name


@pytest.mark.parametrize("host_input", [False, True], ids=["whole-graph", "host-input"])
@pytest.mark.parametrize(
    "source", ["p3m/original/p_07141906.jpg", "juggle_720p.mp4", "carphone_qcif.mp4"], ids=lambda s: s[-16:]
)
def test_alpha_matches_the_official_procedure(synthetic_onnx: Path, source: str, host_input: bool) -> None:
    """Same matte as OpenCV INTER_AREA down, uint8 truncation, INTER_AREA up (the official script),
    whether the graph resizes the frames (TensorRT) or OpenCV makes MODNet's input on the host (CPU)."""
    rgb = read_image(IMAGES / source) if source.endswith(".jpg") else read_frames(VIDEOS / source, 1)[0]
    spec = DeploySpec(outputs=("alpha",), host_input=host_input)
    alpha = run(session(build(onnx.load(str(synthetic_onnx)), spec)), spec, rgb[None])["alpha"][0]
    official = official_matte(RawModnet(synthetic_onnx), rgb)
    delta = np.abs(alpha.astype(int) - official)
    # What differs: OpenCV's fixed-point rounding when it upscales a uint8 matte, and float32 (graph)
    # against float64 (official) preprocessing flipping the truncation of a matte value now and then.
    assert delta.max() <= 2
    assert delta.mean() <= 0.1


def test_taps_reproduce_opencv_inter_area_on_a_real_frame() -> None:
    rgb = read_frames(VIDEOS / "juggle_720p.mp4", 1)[0].astype(np.float64)
    h, w = rgb.shape[:2]
    ih, iw = inference_size(h, w)
    down_h, down_w = area_taps(h, ih), area_taps(w, iw)
    np.testing.assert_allclose(down_h.dense(h), area_weights(h, ih), atol=1e-7)
    ours = (down_h.dense(h) @ rgb.reshape(h, -1)).reshape(ih, w, 3)
    ours = np.tensordot(down_w.dense(w), ours, axes=([1], [1])).transpose(1, 0, 2)
    official = cv2.resize(rgb, None, fx=iw / w, fy=ih / h, interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(ours, official, atol=1e-4)


@pytest.mark.parametrize(("height", "width"), [(720, 1280), (1080, 1920), (240, 426), (144, 176), (360, 640)])
def test_size_feeds_carry_the_inference_size(height: int, width: int) -> None:
    spec = DeploySpec()
    feeds = size_feeds(spec, height, width)
    ih, iw = inference_size(height, width)
    expected_rows = {"down_h": ih, "down_w": iw, "up_h": height, "up_w": width}
    sources = {"down_h": height, "down_w": width, "up_h": ih, "up_w": iw}
    for axis, rows in expected_rows.items():
        index, weight = feeds[f"{axis}_index"], feeds[f"{axis}_weight"]
        assert index.shape == weight.shape and index.shape[0] == rows
        assert index.dtype == np.int32 and weight.dtype == np.float32
        assert index.min() >= 0 and index.max() < sources[axis]
        np.testing.assert_allclose(weight.sum(axis=1), 1, atol=1e-5)
    assert set(feeds) | {"frames"} == set(input_names(spec))
    host = DeploySpec(outputs=("alpha",), host_input=True)  # MODNet's input fed: no frames, no down taps
    assert set(size_feeds(host, height, width)) | {"image"} == set(input_names(host))
    assert set(size_feeds(host, height, width)) == {f"up_{a}_{t}" for a in "hw" for t in ("index", "weight")}


@pytest.mark.parametrize(("height", "width"), [(31, 640), (480, 31), (0, 0), (0, 64)])
def test_frames_under_32_pixels_are_refused(height: int, width: int) -> None:
    with pytest.raises(MattingError, match=rf"{width}x{height} are too small.*32x32"):
        size_feeds(DeploySpec(), height, width)


def tiny_model(
    inputs: list[tuple[str, int, list]], outputs: list[tuple[str, int, list]], opset: int = 17
) -> onnx.ModelProto:
    """A MODNet-shaped stand-in (1x1 convolution and sigmoid) with the given signature."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1, 3, 1, 1], [0.02, -0.01, 0.01])
    nodes = [
        helper.make_node("Conv", [inputs[0][0], "w"], ["c"]),
        helper.make_node("Sigmoid", ["c"], [outputs[0][0]]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(*i) for i in inputs],
        [helper.make_tensor_value_info(*o) for o in outputs],
        initializer=[weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


F32 = TensorProto.FLOAT
GOOD_IN = ("input", F32, ["N", 3, "H", "W"])
GOOD_OUT = ("output", F32, ["N", 1, "H", "W"])


@pytest.mark.parametrize(
    ("inputs", "outputs", "found"),
    [
        ([("input", F32, ["N", 4, "H", "W"])], [GOOD_OUT], r"input:float32\['N', 4, 'H', 'W'\]"),
        ([GOOD_IN, ("extra", F32, [1])], [GOOD_OUT], r"found inputs \[input:.*, extra:float32\[1\]\]"),
        ([GOOD_IN], [("output", F32, ["N", 3, "H", "W"])], r"outputs \[output:float32\['N', 3, 'H', 'W'\]\]"),
        ([("input", F32, [3, "H", "W"])], [GOOD_OUT], r"input:float32\[3, 'H', 'W'\]"),
        ([("input", TensorProto.UINT8, ["N", 3, "H", "W"])], [GOOD_OUT], r"input:uint8"),
    ],
)
def test_models_that_are_not_modnet_shaped_are_refused(inputs: list, outputs: list, found: str) -> None:
    model = tiny_model(inputs, outputs)
    with pytest.raises(
        MattingError, match=r"expected one input \[N,3,H,W\] and one output \[N,1,H,W\]"
    ) as err:
        build(model, DeploySpec())
    assert len(str(err.value).splitlines()) == 1
    assert re.search(found, str(err.value))


@pytest.mark.parametrize(
    ("dims", "found"),
    [([1, 3, "H", "W"], "fixed batch 1"), (["N", 3, 512, 512], "fixed height 512, width 512")],
)
def test_models_with_fixed_sizes_are_refused(dims: list, found: str) -> None:
    model = tiny_model([("input", F32, dims)], [GOOD_OUT])
    with pytest.raises(MattingError, match=rf"{found}: expected dynamic batch, height and width"):
        build(model, DeploySpec())


def test_models_at_older_opsets_are_upgraded() -> None:
    """The official export is older than opset 17: the wrapper still joins it, computing the same."""
    spec = DeploySpec(outputs=("rgba",), ref_size=64)
    frames = read_frames(VIDEOS / "carphone_qcif.mp4", 2)
    results = [
        run(session(build(tiny_model([GOOD_IN], [GOOD_OUT], opset), spec)), spec, frames)
        for opset in (11, 17)
    ]
    np.testing.assert_array_equal(results[0]["rgba"], results[1]["rgba"])


def test_wrapper_keeps_to_what_tensorrt_parses(synthetic_onnx: Path) -> None:
    """No shape arithmetic, uint8 only where the graph is entered or left, ops from TensorRT's list."""
    deploy = build(onnx.load(str(synthetic_onnx)), DeploySpec(outputs=OUTPUTS))
    wrapper = [n for n in deploy.graph.node if n.name.startswith("deploy/")]
    # On onnx-tensorrt's docs/operators.md, with constant axes where it asks for them.
    supported = {"Cast", "Transpose", "Gather", "Unsqueeze", "Squeeze", "Mul", "Div", "ReduceSum"}
    supported |= {"Add", "Sub", "Clip", "Floor", "Concat"}
    assert {n.op_type for n in wrapper} <= supported
    uint8_inputs = {i.name for i in deploy.graph.input if i.type.tensor_type.elem_type == TensorProto.UINT8}
    uint8_outputs = {o.name for o in deploy.graph.output}
    for node in wrapper:
        if set(node.input) & uint8_inputs or set(node.output) & uint8_outputs:
            assert node.op_type == "Cast"


def test_spec_and_metadata_round_trip(synthetic_onnx: Path, random_onnx: Path) -> None:
    modnet = onnx.load(str(synthetic_onnx))
    specs = (
        DeploySpec(),
        DeploySpec(outputs=("composite", "alpha"), ref_size=384),
        DeploySpec(outputs=("rgba",), host_input=True),
    )
    for spec in specs:
        deploy = build(modnet, spec)
        assert spec_of(deploy) == spec
        assert [i.name for i in deploy.graph.input] == list(input_names(spec))
        assert [o.name for o in deploy.graph.output] == list(spec.outputs)
    props = {p.key: p.value for p in deploy.metadata_props}
    assert (
        props["trt_modnet.deploy.source_sha256"]
        == hashlib.sha256(modnet.SerializeToString(deterministic=True)).hexdigest()
    )
    assert RANDOM_WEIGHTS_KEY not in props
    random_props = {p.key: p.value for p in build(onnx.load(str(random_onnx)), DeploySpec()).metadata_props}
    assert random_props[RANDOM_WEIGHTS_KEY] == "seed=7"
    with pytest.raises(MattingError, match="not a trt_modnet deployment graph"):
        spec_of(modnet)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outputs": ("matte",)}, "outputs matte: choose one or more of alpha, rgba, composite"),
        ({"outputs": ()}, r"outputs \(none\)"),
        ({"outputs": ("alpha", "alpha")}, "outputs alpha,alpha"),
        ({"ref_size": 16}, "ref_size 16: must be at least 32"),
    ],
)
def test_bad_specs_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(MattingError, match=message):
        DeploySpec(**kwargs)


def test_cli_writes_the_deployment_graph(cli: Cli, synthetic_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "deploy.onnx"
    args = ("--outputs", "alpha,composite", "--ref-size", "384", "--fp16")
    done = cli(synthetic_onnx, "-o", out, *args, main=graph_main)
    assert done.returncode == 0, done.stderr
    assert spec_of(onnx.load(str(out))) == DeploySpec(outputs=("alpha", "composite"), ref_size=384, fp16=True)
    assert [p.name for p in tmp_path.iterdir()] == ["deploy.onnx"]


@pytest.mark.parametrize(
    ("missing_model", "args", "message"),
    [
        (False, ["--outputs", "alpha,matte"], "error: outputs alpha,matte: choose one or more of"),
        (True, [], "error: .*missing.onnx: no such model file"),
    ],
)
def test_cli_refuses_bad_input_in_one_line(
    cli: Cli, synthetic_onnx: Path, tmp_path: Path, missing_model: bool, args: list[str], message: str
) -> None:
    out = tmp_path / "deploy.onnx"
    model = tmp_path / "missing.onnx" if missing_model else synthetic_onnx
    done = cli(model, "-o", out, *args, main=graph_main)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert re.match(message, done.stderr)
    assert not out.exists()


def test_taps_padded_to_a_constant_k_give_the_same_bytes(all_outputs: ort.InferenceSession) -> None:
    """TensorRT engines take every axis padded to one k (zero weights): the result must not change."""
    frames = read_frames(VIDEOS / "pancake_240p.mkv", 1)
    background = np.full_like(frames, 200)
    natural = run(all_outputs, SMALL, frames, background=background)
    feeds = {"frames": frames, "background": background, **size_feeds(SMALL, *frames.shape[1:3], taps=7)}
    assert {v.shape[1] for k, v in feeds.items() if k.endswith("_index")} == {7}
    padded = dict(zip(SMALL.outputs, all_outputs.run(list(SMALL.outputs), feeds), strict=True))
    for name in SMALL.outputs:
        assert np.array_equal(padded[name], natural[name]), name
    with pytest.raises(ValueError, match="needs 2 to 240 taps, not 1"):
        area_taps(240, 256, 1)
