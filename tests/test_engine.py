"""Engine profiles, cache keys, naming, the engines folder and stale-engine handling, on the CPU.

TensorRT is replaced by small fakes where a test needs an engine: what is tested is our logic around it.
"""

from __future__ import annotations

import ctypes
import json
import logging
import re
import subprocess
import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.conftest import IMAGES, VIDEOS, need
from trt_modnet.errors import MattingError
from trt_modnet.graph.official import inference_size
from trt_modnet.runtime.base import Runner
from trt_modnet.tensorrt import engine as eng
from trt_modnet.tensorrt import engine_cache, profiles
from trt_modnet.tensorrt.engine import MATTE, EngineLoader, LoadedEngine, TensorIO
from trt_modnet.tensorrt.engine_cache import BuildSettings, EngineRecord, EngineStore, Target
from trt_modnet.tensorrt.profiles import FrameProfile, FrameShape, ShapeRange


@dataclass(frozen=True)
class Spec:
    """Stands in for graph.DeploySpec."""

    outputs: tuple[str, ...] = ("rgba",)
    ref_size: int = 512
    fp16: bool = False


def size_feeds(spec: Spec, height: int, width: int, taps: int | None = None) -> dict[str, np.ndarray]:
    """Stands in for graph.size_feeds: resize matrices whose shapes carry the inference size (dense
    matrices: `taps` does not apply)."""
    ih, iw = inference_size(height, width, spec.ref_size)
    return {"resize_h": np.zeros((ih, height), np.float32), "resize_w": np.zeros((width, iw), np.float32)}


TARGET = Target(tensorrt="11.4.0.106", gpu="NVIDIA H200", compute_capability="9.0")


# ---------------------------------------------------------------------------------------------- profiles


def test_frame_shapes_parse_and_reject_garbage() -> None:
    assert FrameShape.from_text("4x1080x1920") == FrameShape(4, 1080, 1920)
    assert str(FrameShape(8, 2160, 3840)) == "8x2160x3840"
    for bad in ("1080x1920", "4x1080x", "ax1x1", ""):
        with pytest.raises(MattingError, match="NxHxW"):
            FrameShape.from_text(bad)


def test_profiles_need_min_opt_max_in_order() -> None:
    with pytest.raises(MattingError, match="min <= opt <= max"):
        FrameProfile(FrameShape(1, 256, 256), FrameShape(4, 2000, 1920), FrameShape(8, 1080, 3840))
    with pytest.raises(MattingError, match="32x32"):
        FrameProfile.exact(16, 64, 2)
    with pytest.raises(MattingError, match=r"unknown profile 'hd'.*1080p"):
        FrameProfile.preset("hd")


def test_presets_are_exact_sizes_tuned_for_the_batch() -> None:
    p = FrameProfile.preset("1080p-portrait", batch=6)
    assert (p.min, p.opt, p.max) == (
        FrameShape(1, 1920, 1080),
        FrameShape(6, 1920, 1080),
        FrameShape(6, 1920, 1080),
    )
    assert FrameProfile.preset("4K").max == FrameShape(profiles.DEFAULT_BATCH, 2160, 3840)


def test_vectorised_size_rule_equals_the_official_one() -> None:
    rng = np.random.default_rng(0)
    for ref in (512, 96, 1024):
        heights = [32, 33, ref - 1, ref, ref + 1, *rng.integers(32, 4000, 40)]
        widths = np.array([32, 47, ref - 1, ref, ref + 1, *rng.integers(32, 4000, 200)])
        for h in heights:
            ih, iw = profiles.official_sizes(int(h), widths, ref)
            expected = [inference_size(int(h), int(w), ref) for w in widths]
            assert list(zip(ih.tolist(), iw.tolist(), strict=True)) == expected


def test_size_feed_ranges_bound_every_frame_size_in_the_profile() -> None:
    """The official rule is not monotonic, so the corners alone would give a profile that rejects videos."""
    spec = Spec(outputs=("composite",), ref_size=96)
    profile = FrameProfile(FrameShape(1, 60, 60), FrameShape(2, 80, 100), FrameShape(3, 101, 135))
    ranges = profiles.input_ranges(spec, profile, size_feeds)

    sizes = [(h, w) for h in range(60, 102) for w in range(60, 136)]
    for name in ("resize_h", "resize_w"):
        dims = np.array([size_feeds(spec, h, w)[name].shape for h, w in sizes])
        assert ranges[name].min == tuple(dims.min(0)) and ranges[name].max == tuple(dims.max(0))
        assert ranges[name].opt == size_feeds(spec, 80, 100)[name].shape
    corners = [size_feeds(spec, h, w)["resize_h"].shape for h in (60, 101) for w in (60, 135)]
    assert max(s[0] for s in corners) == 96 < ranges["resize_h"].max[0] == 128  # what corners alone miss
    assert ranges["frames"] == ShapeRange((1, 60, 60, 3), (2, 80, 100, 3), (3, 101, 135, 3))
    assert ranges["background"] == ShapeRange((1, 60, 60, 3), (1, 80, 100, 3), (3, 101, 135, 3))
    assert "background" not in profiles.input_ranges(Spec(outputs=("alpha",)), profile, size_feeds)


def test_a_profile_covers_a_video_only_for_every_input_at_both_batch_ends() -> None:
    spec = Spec(ref_size=512)
    ranges = profiles.input_ranges(spec, FrameProfile.exact(1080, 1920, 4), size_feeds)
    assert profiles.profile_covers(ranges, profiles.required_shapes(spec, 1080, 1920, 4, size_feeds, 4))
    assert profiles.profile_covers(ranges, profiles.required_shapes(spec, 1080, 1920, 2, size_feeds, 4))
    assert not profiles.profile_covers(ranges, profiles.required_shapes(spec, 1080, 1920, 5, size_feeds, 4))
    assert not profiles.profile_covers(ranges, profiles.required_shapes(spec, 720, 1280, 4, size_feeds, 4))
    wide = profiles.input_ranges(
        spec, FrameProfile(FrameShape(1, 256, 256), *[FrameShape(8, 2160, 3840)] * 2), size_feeds
    )
    for h, w in ((720, 1280), (1080, 1920), (300, 2000), (2160, 3840)):
        assert profiles.profile_covers(wide, profiles.required_shapes(spec, h, w, 8, size_feeds, 4)), (h, w)


@pytest.mark.parametrize(
    "shapes", [("1x1000x1000", "2x1024x1024", "4x1040x1040"), ("1x540x960", "4x720x1280", "4x1080x1920")]
)
def test_custom_profiles_are_valid_and_take_every_size_inside(shapes: tuple[str, str, str]) -> None:
    """With the deployment graph's real taps: min <= opt <= max everywhere (TensorRT's set_shape refuses
    anything else), and frame sizes inside the profile, exact x2 scales included, are taken."""
    from trt_modnet.graph.deploy import DeploySpec
    from trt_modnet.graph.deploy import size_feeds as graph_size_feeds

    spec = DeploySpec()
    profile = FrameProfile(*(FrameShape.from_text(t) for t in shapes))
    ranges = profiles.input_ranges(spec, profile, graph_size_feeds)
    for name, r in ranges.items():
        assert all(a <= b <= c for a, b, c in zip(r.min, r.opt, r.max, strict=True)), (name, r)
    lo, hi = profile.min, profile.max
    rng = np.random.default_rng(1)
    inside = [(1024, 1820), (1024, 1024), (1040, 1040), (lo.height, lo.width), (hi.height, hi.width)]
    inside += [
        (int(rng.integers(lo.height, hi.height + 1)), int(rng.integers(lo.width, hi.width + 1)))
        for _ in range(6)
    ]
    for h, w in inside:
        if lo.height <= h <= hi.height and lo.width <= w <= hi.width:
            assert profiles.covers(spec, ranges, h, w, hi.batch, graph_size_feeds), (h, w)


# ---------------------------------------------------------------------------------------------- keys, records


def _ranges(batch: int = 4, height: int = 1080, width: int = 1920) -> dict[str, ShapeRange]:
    return profiles.input_ranges(Spec(), FrameProfile.exact(height, width, batch), size_feeds)


def _key(**change: object) -> str:
    args = dict(
        graph_sha256="g" * 64, recipe="fp16-v1", target=TARGET, settings=BuildSettings(), profiles=[_ranges()]
    )
    args.update(change)
    return engine_cache.cache_key(**args)  # type: ignore[arg-type]


def test_cache_key_is_stable_and_changes_with_everything_it_covers() -> None:
    base = _key()
    assert base == _key() and len(base) == 64
    variants = [
        _key(graph_sha256="h" * 64),
        _key(recipe="fp32"),
        _key(target=replace(TARGET, tensorrt="10.12.0.36")),
        _key(target=replace(TARGET, gpu="NVIDIA A100-SXM4-80GB")),
        _key(target=replace(TARGET, compute_capability="8.0")),
        _key(settings=BuildSettings(workspace_bytes=1 << 30)),
        _key(settings=BuildSettings(opt_level=5)),
        _key(profiles=[_ranges(batch=8)]),
        _key(profiles=[_ranges(), _ranges(height=720, width=1280)]),
    ]
    assert len({base, *variants}) == len(variants) + 1


def _record(key: str = "k" * 64, target: Target = TARGET, **change: object) -> EngineRecord:
    fields = dict(
        key=key, graph_sha256="g" * 64, recipe="fp32", outputs=("rgba",), ref_size=512, target=target,
        settings=BuildSettings(), profiles=(_ranges(),), matte=True, built="2026-01-01T00:00:00",
        build_seconds=1.5,
    )  # fmt: skip
    fields.update(change)
    return EngineRecord(**fields)  # type: ignore[arg-type]


def test_record_json_round_trips_and_names_the_engine_by_key() -> None:
    record = _record(key="0123456789abcdef" + "f" * 48, outputs=("alpha", "rgba"))
    assert EngineRecord.from_json(record.to_json()) == record
    assert record.stem == "modnet-alpha-rgba-0123456789abcdef"
    data = json.loads(record.to_json())
    assert data["target"] == {"tensorrt": "11.4.0.106", "gpu": "NVIDIA H200", "compute_capability": "9.0"}
    assert data["profiles"][0]["frames"] == {
        "min": [1, 1080, 1920, 3],
        "opt": [4, 1080, 1920, 3],
        "max": [4, 1080, 1920, 3],
    }
    assert (
        EngineStore(Path("e")).timing_cache_path(TARGET).name
        == "timing-trt11.4.0.106-nvidia-h200-sm90.timing"
    )


def test_store_finds_the_tightest_engine_for_this_graph_and_gpu(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = EngineStore(tmp_path)
    store.save(_record("a" * 64, profiles=(_ranges(batch=8),)), b"big")
    store.save(
        _record("b" * 64, profiles=(_ranges(height=720, width=1280), _ranges(batch=4))), b"two profiles"
    )
    store.save(
        _record("c" * 64, target=replace(TARGET, tensorrt="10.12.0.36"), profiles=(_ranges(batch=1),)), b"old"
    )
    store.save(_record("d" * 64, graph_sha256="x" * 64, profiles=(_ranges(batch=1),)), b"other graph")
    (tmp_path / "modnet-rgba-eeee.json").write_text("{not json")
    orphan = _record("f" * 64, profiles=(_ranges(batch=1),))
    store.save(orphan, b"gone")
    store.engine_path(orphan).unlink()

    def find(batch: int, height: int = 1080, width: int = 1920) -> tuple[str, int] | None:
        def covers(ranges: dict[str, ShapeRange]) -> bool:
            return profiles.covers(Spec(), ranges, height, width, batch, size_feeds)

        found = store.find(graph_sha256="g" * 64, recipe="fp32", target=TARGET, covers=covers)
        return None if found is None else (found[0].key[0], found[1])

    with caplog.at_level(logging.WARNING, logger="trt_modnet"):
        assert find(1) == ("b", 1)  # batch 4 beats batch 8; the batch-1 engines are for another TRT or graph
        assert find(4) == ("b", 1)
        assert find(8) == ("a", 0)
        assert find(1, 720, 1280) == ("b", 0)
        assert find(9) is None
        assert find(1, 540, 960) is None
    assert "modnet-rgba-eeee.json: not a usable engine record" in caplog.text
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


def test_matte_tensor_is_the_named_matte_else_the_last_sigmoid() -> None:
    def graph(*outputs: tuple[str, str]) -> onnx.ModelProto:
        nodes = [helper.make_node(op, ["x"], [out]) for op, out in outputs]
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
        y = helper.make_tensor_value_info(outputs[-1][1], TensorProto.FLOAT, [1])
        return helper.make_model(helper.make_graph(nodes, "g", [x], [y]))

    assert eng.matte_tensor(graph(("Sigmoid", "se"), ("Relu", "r"), ("Sigmoid", "m"), ("Cast", "c"))) == "m"
    assert eng.matte_tensor(graph(("Sigmoid", "s"), ("Identity", "matte"))) == "matte"
    assert eng.matte_tensor(graph(("Relu", "r"))) is None


# ---------------------------------------------------------------------------------------------- loader


class FakeEngine:
    num_optimization_profiles = 1

    def __init__(self, plan: bytes) -> None:
        self.plan = plan
        self.names = ["frames", "resize_h", "resize_w", "rgba"]
        self.num_io_tensors = len(self.names)

    def get_tensor_name(self, i: int) -> str:
        return self.names[i]

    def get_tensor_mode(self, name: str) -> str:
        return "OUTPUT" if name == "rgba" else "INPUT"

    def get_tensor_dtype(self, name: str) -> str:
        return "FLOAT" if name.startswith("resize") else "UINT8"


class FakeRuntime:
    def __init__(self, logger: object) -> None:
        pass

    def deserialize_cuda_engine(self, plan: bytes) -> FakeEngine | None:
        return None if plan.startswith(b"stale") else FakeEngine(plan)


class FakeLogger:
    WARNING = "warning"

    def __init__(self, severity: str) -> None:
        pass


FAKE_TRT = types.SimpleNamespace(
    __version__=TARGET.tensorrt,
    Logger=FakeLogger,
    Runtime=FakeRuntime,
    TensorIOMode=types.SimpleNamespace(INPUT="INPUT"),
    nptype=lambda t: {"FLOAT": np.float32, "UINT8": np.uint8}[t],
)


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[list[dict[str, ShapeRange]]]:
    """Fake TensorRT, GPU and graph module; returns the profiles of every build."""
    built: list[list[dict[str, ShapeRange]]] = []

    def build_plan(
        trt: object, logger: object, graph: bytes, profiles: list, **kw: object
    ) -> tuple[bytes, bool]:
        built.append(list(profiles))
        return b"plan %d" % len(built), False

    monkeypatch.setattr(eng, "import_tensorrt", lambda: FAKE_TRT)
    monkeypatch.setattr(eng, "current_target", lambda trt: TARGET)
    monkeypatch.setattr(eng, "build_plan", build_plan)
    monkeypatch.setitem(sys.modules, "trt_modnet.graph.deploy", types.SimpleNamespace(size_feeds=size_feeds))
    return built


def _deploy() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("frames", TensorProto.UINT8, ["n", "h", "w", 3])
    return helper.make_model(
        helper.make_graph([helper.make_node("Identity", ["frames"], ["rgba"])], "d", [x], [x])
    )


def _loader(folder: Path) -> EngineLoader:
    return EngineLoader(_deploy(), Spec(), engines_dir=folder)  # type: ignore[arg-type]


def test_loader_builds_once_then_reuses_the_engine(tmp_path: Path, builds: list) -> None:
    first = _loader(tmp_path)(1080, 1920, 4)
    assert isinstance(first, LoadedEngine) and len(builds) == 1
    assert builds[0][0]["frames"] == ShapeRange((1, 1080, 1920, 3), (4, 1080, 1920, 3), (4, 1080, 1920, 3))
    assert first.io[0] == TensorIO("frames", True, np.dtype(np.uint8))
    assert set(first.feeds) == {"resize_h", "resize_w"} and first.feeds["resize_h"].shape == (512, 1080)
    [engine_file] = tmp_path.glob("modnet-rgba-*.engine")
    assert engine_file.with_suffix(".json").is_file() and engine_file.read_bytes() == b"plan 1"

    again = _loader(tmp_path)
    assert again(1080, 1920, 3).record == first.record and len(builds) == 1  # smaller batch: same engine
    again(1080, 1920, 8)  # larger batch: a new engine
    again(720, 1280, 2)  # another size: a new engine
    assert len(builds) == 3 and len(list(tmp_path.glob("*.engine"))) == 3


def test_an_engine_that_does_not_deserialize_is_rebuilt(
    tmp_path: Path, builds: list, caplog: pytest.LogCaptureFixture
) -> None:
    loaded = _loader(tmp_path)(1080, 1920, 4)
    path = EngineStore(tmp_path).engine_path(loaded.record)  # type: ignore[arg-type]
    path.write_bytes(b"stale: built by another TensorRT")
    with caplog.at_level(logging.WARNING, logger="trt_modnet"):
        rebuilt = _loader(tmp_path)(1080, 1920, 4)
    assert "does not load with TensorRT 11.4.0.106 on this NVIDIA H200; rebuilding it" in caplog.text
    assert len(builds) == 2 and rebuilt.engine.plan == b"plan 2" and path.read_bytes() == b"plan 2"


def test_engines_for_another_tensorrt_or_gpu_are_left_alone(tmp_path: Path, builds: list) -> None:
    old = _record(
        "a" * 64, target=replace(TARGET, gpu="NVIDIA A100"), graph_sha256=engine_cache.graph_digest(_deploy())
    )
    EngineStore(tmp_path).save(old, b"plan for another gpu")
    _loader(tmp_path)(1080, 1920, 4)
    assert len(builds) == 1 and EngineStore(tmp_path).engine_path(old).read_bytes() == b"plan for another gpu"


# ---------------------------------------------------------------------------------------------- runner


class FakeSource:
    def __init__(self, io: tuple[TensorIO, ...]) -> None:
        self.io = io
        self.closed = 0

    def __call__(self, height: int, width: int, batch: int) -> LoadedEngine:
        return LoadedEngine(engine=FakeEngine(b""), profile=0, io=self.io, feeds={})

    def close(self) -> None:
        self.closed += 1


IO = (TensorIO("frames", True, np.dtype(np.uint8)), TensorIO("rgba", False, np.dtype(np.uint8)))


def test_runner_checks_the_engine_against_the_graph_before_touching_the_gpu() -> None:
    pytest.importorskip("cuda.bindings.runtime", reason="cuda-bindings is not installed")
    from trt_modnet.tensorrt.runner import TensorRTRunner

    source = FakeSource(IO)
    with (
        TensorRTRunner(source, outputs=("alpha",)) as runner,
        pytest.raises(MattingError, match="missing \\['alpha'\\]"),
    ):
        runner.prepare(64, 64, 2)
    assert source.closed == 1
    unfed = FakeSource((*IO, TensorIO("resize_h", True, np.dtype(np.float32))))
    with (
        TensorRTRunner(unfed, outputs=("rgba",)) as runner,
        pytest.raises(MattingError, match="unfed inputs"),
    ):
        runner.prepare(64, 64, 2)


def test_runner_without_a_gpu_fails_with_the_cuda_call_and_stays_unprepared() -> None:
    pytest.importorskip("cuda.bindings.runtime", reason="cuda-bindings is not installed")
    from trt_modnet.tensorrt import cuda
    from trt_modnet.tensorrt.runner import TensorRTRunner

    if cuda.unavailable_reason() is None:
        pytest.skip("a GPU is present: this checks the failure without one")
    source = FakeSource(IO)
    runner = TensorRTRunner(source, outputs=("rgba",))
    with pytest.raises(
        cuda.CudaError, match=r"cudaStreamCreateWithFlags.*(cudaErrorInsufficientDriver|NoDevice)"
    ):
        runner.prepare(64, 64, 2)
    with pytest.raises(RuntimeError, match="prepare"):
        runner.submit({"frames": np.zeros((1, 64, 64, 3), np.uint8)})
    runner.close()
    runner.close()
    assert source.closed == 1
    with pytest.raises(RuntimeError, match="closed"):
        runner.prepare(64, 64, 2)


# ------------------------------------------------------------------------------------------- build_engine.py


def test_cli_parses_sizes_and_profiles() -> None:
    import build_engine as cli

    assert [cli.parse_bytes(t) for t in ("4G", "512M", "1.5g", "64KiB", "1000")] == [
        4 << 30, 512 << 20, 3 << 29, 64 << 10, 1000,
    ]  # fmt: skip
    args = cli.parse_args(["m.onnx"])
    assert cli.frame_profiles(args) == [FrameProfile.preset("1080p", profiles.DEFAULT_BATCH)]
    assert args.outputs == ("rgba",) and args.workspace == 4 << 30 and args.opt_level == 3
    argv = [
        "m.onnx", "--profile", "720p", "--profile", "4k-portrait", "--batch", "2", "--outputs", "alpha,rgba",
        "--workspace", "2G", "--min", "1x256x256", "--opt", "4x1080x1920", "--max", "8x2160x3840",
    ]  # fmt: skip
    args = cli.parse_args(argv)
    assert cli.frame_profiles(args) == [
        FrameProfile.preset("720p", 2),
        FrameProfile.preset("4k-portrait", 2),
        FrameProfile(FrameShape(1, 256, 256), FrameShape(4, 1080, 1920), FrameShape(8, 2160, 3840)),
    ]
    assert args.outputs == ("alpha", "rgba") and args.workspace == 2 << 30


def test_cli_help_documents_every_option_and_bad_options_are_usage_errors() -> None:
    import build_engine as cli

    script = Path(cli.__file__)
    done = subprocess.run(
        [sys.executable, script.name, "--help"], cwd=script.parent, capture_output=True, text=True
    )
    assert done.returncode == 0
    options = re.findall(r"p\.add_argument\(\s*\"(--[a-z-]+)\"", script.read_text())
    assert len(options) >= 13 and all(f"{o} " in done.stdout for o in options)
    for bad in (
        ["--min", "1x256x256"],
        ["--outputs", "matte"],
        ["--opt-level", "7"],
        ["--workspace", "lots"],
    ):
        with pytest.raises(SystemExit) as info:
            cli.parse_args(["m.onnx", *bad])
        assert info.value.code == 2


def test_print_profiles_shows_every_input_without_tensorrt(capsys: pytest.CaptureFixture[str]) -> None:
    import build_engine as cli

    argv = ["absent.onnx", "--print-profiles", "--min", "1x1000x1000", "--opt", "2x1024x1024"]
    assert cli.main([*argv, "--max", "4x1040x1040", "--outputs", "composite"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "profile 0: 1x1000x1000..2x1024x1024..4x1040x1040 (every resize axis padded to 4 taps)"
    )
    assert "  frames         min [1, 1000, 1000, 3]  opt [2, 1024, 1024, 3]  max [4, 1040, 1040, 3]" in out
    assert "  background     min [1, 1000, 1000, 3]  opt [1, 1024, 1024, 3]  max [4, 1040, 1040, 3]" in out
    assert "  down_h_index   min [512, 4]  opt [512, 4]  max [512, 4]" in out
    assert "  up_w_weight    min [1000, 4]  opt [1024, 4]  max [1040, 4]" in out


def test_validation_figures_and_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    import build_engine as cli

    reference = np.zeros((2, 4, 4), np.uint8)
    alpha = reference.copy()
    alpha[..., 3] = 9  # a quarter of the pixels off by 9: mean 2.25
    ours = {"alpha": alpha, MATTE: np.full((2, 1, 4, 4), 0.5, np.float16)}
    assert cli.report(ours, {"alpha": reference}, ["alpha"], max_mean_delta=3.0)
    assert "mean |delta| 2.250/255  max 9/255" in capsys.readouterr().out
    assert not cli.report(ours, {"alpha": reference}, ["alpha"], max_mean_delta=2.0)
    ours[MATTE][1, 0, 0, 0] = np.nan
    assert not cli.report(ours, {"alpha": alpha}, ["alpha"], max_mean_delta=1.0)
    assert "NaN 1  Inf 0" in capsys.readouterr().out


def test_validation_reads_real_videos_and_images() -> None:
    import build_engine as cli

    frames = cli.read_frames(
        [need(VIDEOS / "chaplin_360p.mp4"), need(IMAGES / "portraits" / "astronaut.png")], 3
    )
    assert [f.shape for f in frames] == [(360, 640, 3)] * 3 + [(512, 512, 3)]
    assert all(f.dtype == np.uint8 for f in frames)
    with pytest.raises(MattingError, match="no such file"):
        cli.read_frames([Path("absent.mp4")], 3)


class EchoRunner(Runner):
    """Returns each batch's frames and background as outputs; checks run_all's batching."""

    outputs = ("composite",)

    def _prepare(self, height: int, width: int, batch: int) -> None:
        self.pending: dict[int, dict[str, np.ndarray]] = {}

    def _submit(self, slot: int, feeds: Mapping[str, np.ndarray]) -> None:
        self.most_in_flight = max(getattr(self, "most_in_flight", 0), len(self.inflight))
        self.pending[slot] = {"composite": feeds["frames"] // 2 + feeds["background"] // 2}

    def _result(self, slot: int) -> dict[str, np.ndarray]:
        return self.pending.pop(slot)

    def _close(self) -> None:
        pass


def test_run_all_feeds_every_frame_once_in_batches() -> None:
    import build_engine as cli

    frames = np.random.default_rng(0).integers(0, 256, (6, 32, 48, 3), dtype=np.uint8)
    frames = cli.with_partial_batch(frames, 3)  # 6 frames in batches of 3: 2 more make a partial last one
    assert len(frames) == 8
    with EchoRunner(depth=2) as runner:
        out = cli.run_all(runner, frames, batch=3)
        assert runner.most_in_flight == 2  # --validate runs two batches in flight
    assert np.array_equal(out["composite"], frames // 2 + 64)


def test_validation_compares_in_flight_with_one_at_a_time(capsys: pytest.CaptureFixture[str]) -> None:
    import build_engine as cli

    a = {"alpha": np.zeros((3, 4, 4), np.uint8), MATTE: np.full((3, 1, 4, 4), np.nan, np.float16)}
    assert cli.report_same(a, {k: v.copy() for k, v in a.items()})
    assert "two batches in flight vs one at a time: identical" in capsys.readouterr().out
    b = {**a, "alpha": a["alpha"].copy()}
    b["alpha"][2, 0, 0] = 1  # a slot's buffer reused too early shows up as a difference
    assert not cli.report_same(a, b)
    assert "DIFFERENT in alpha" in capsys.readouterr().out


class HostCudart:
    """The cuda-bindings runtime calls trt_modnet.tensorrt.cuda makes, emulated in host memory, synchronously.

    Lets the runner's whole data path (buffer sizes, bindings, slots, copies, cleanup) run on the CPU; the
    ordering across streams is what the device check verifies on a GPU.
    """

    def __init__(self) -> None:
        real = pytest.importorskip("cuda.bindings.runtime", reason="cuda-bindings is not installed")

        self.real = real
        self.memory: dict[int, ctypes.Array] = {}
        self.handles = 0
        self.ok = real.cudaError_t.cudaSuccess
        self.event_flags: dict[int, int] = {}
        self.host_waits: list[int] = []  # flags of every event the host waited on
        self.copies: list[tuple[object, int]] = []  # (kind, bytes) of every copy
        self.sources: list[int] = []  # and where it read from

    def __getattr__(self, name: str) -> object:  # enums and constants come from the real bindings
        return getattr(self.real, name)

    def _alloc(self, nbytes: int, *flags: int) -> tuple[object, int]:
        block = (ctypes.c_uint8 * nbytes)()
        self.memory[ctypes.addressof(block)] = block
        return self.ok, ctypes.addressof(block)

    cudaMalloc = cudaHostAlloc = _alloc

    def _free(self, ptr: int) -> tuple[object]:
        del self.memory[ptr]
        return (self.ok,)

    cudaFree = cudaFreeHost = _free

    def cudaMemcpyAsync(self, dst: int, src: int, nbytes: int, kind: object, stream: int) -> tuple[object]:
        self.copies.append((kind, nbytes))
        self.sources.append(src)
        for ptr in (dst, src):
            base = max((b for b in self.memory if b <= ptr), default=None)
            assert base is not None and ptr + nbytes <= base + len(self.memory[base]), "copy outside a buffer"
        ctypes.memmove(dst, src, nbytes)
        return (self.ok,)

    def _handle(self, *args: object) -> tuple[object, int]:
        self.handles += 1
        return self.ok, self.handles

    cudaStreamCreateWithFlags = _handle

    def cudaEventCreateWithFlags(self, flags: int) -> tuple[object, int]:
        err, handle = self._handle()
        self.event_flags[handle] = flags
        return err, handle

    def cudaEventSynchronize(self, handle: int) -> tuple[object]:
        self.host_waits.append(self.event_flags[handle])
        return (self.ok,)

    def _done(self, *args: object) -> tuple[object]:
        return (self.ok,)

    cudaStreamSynchronize = cudaStreamWaitEvent = cudaStreamDestroy = _done
    cudaEventRecord = cudaEventQuery = cudaEventDestroy = _done


def device_array(ptr: int, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.frombuffer((ctypes.c_uint8 * nbytes).from_address(ptr), dtype).reshape(shape)


class HostContext:
    """A TensorRT execution context in numpy: alpha = frames' green * gain, rgba = frames + alpha,
    composite = background where alpha is 0; plus a float matte output nobody asks for."""

    def __init__(self) -> None:
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.shapes[name] = tuple(shape)
        return name in ("frames", "background", "gain") and len(shape) == (1 if name == "gain" else 4)

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        n, h, w, _ = self.shapes["frames"]
        return {"alpha": (n, h, w), "rgba": (n, h, w, 4), "composite": (n, h, w, 3), MATTE: (n, 1, 8, 8)}[
            name
        ]

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = ptr
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        frames = device_array(self.addresses["frames"], self.shapes["frames"], np.uint8)
        gain = device_array(self.addresses["gain"], (1,), np.float32)[0]
        background = device_array(self.addresses["background"], self.shapes["background"], np.uint8)
        out = {
            name: device_array(self.addresses[name], self.get_tensor_shape(name), np.uint8) for name in OUTS
        }
        out["alpha"][:] = _alpha(frames, gain)
        out["rgba"][:] = np.concatenate([frames, out["alpha"][..., None]], axis=-1)
        out["composite"][:] = np.where(out["alpha"][..., None] == 0, background, frames)
        device_array(self.addresses[MATTE], self.get_tensor_shape(MATTE), np.float32)[:] = 0.5
        return True


OUTS = ("alpha", "rgba", "composite")
HOST_IO = (
    TensorIO("frames", True, np.dtype(np.uint8)),
    TensorIO("background", True, np.dtype(np.uint8)),
    TensorIO("gain", True, np.dtype(np.float32)),
    *(TensorIO(name, False, np.dtype(np.uint8)) for name in OUTS),
    TensorIO(MATTE, False, np.dtype(np.float32)),
)


def _alpha(frames: np.ndarray, gain: float) -> np.ndarray:
    return np.clip(frames[..., 1].astype(np.float32) * np.float32(gain), 0, 255).astype(np.uint8)


class HostSource(FakeSource):
    def __call__(self, height: int, width: int, batch: int) -> LoadedEngine:
        engine = types.SimpleNamespace(num_optimization_profiles=1, create_execution_context=HostContext)
        return LoadedEngine(engine=engine, profile=0, io=self.io, feeds={"gain": np.array([0.5], np.float64)})


@pytest.fixture
def host_cudart(monkeypatch: pytest.MonkeyPatch) -> HostCudart:
    from trt_modnet.tensorrt import cuda

    fake = HostCudart()
    monkeypatch.setattr(cuda, "cudart", fake)
    return fake


def test_runner_data_path_keeps_batches_apart_and_frees_everything(host_cudart: HostCudart) -> None:
    from trt_modnet.tensorrt.runner import TensorRTRunner

    rng = np.random.default_rng(3)
    batches = [rng.integers(0, 256, (n, 36, 52, 3), dtype=np.uint8) for n in (4, 4, 3, 4, 1)]
    background = rng.integers(0, 256, (1, 36, 52, 3), dtype=np.uint8)
    source = HostSource(HOST_IO)
    with TensorRTRunner(source, outputs=("rgba", "composite"), depth=3) as runner:
        runner.prepare(36, 52, 4)
        feeds = [{"frames": b, "background": background} for b in batches]
        tickets = [runner.submit(f) for f in feeds[:3]]  # three in flight
        results = {
            tickets[1]: runner.result(tickets[1]),
            tickets[0]: runner.result(tickets[0]),
        }  # out of order
        tickets += [runner.submit(f) for f in feeds[3:]]  # slots reused while batch 2 is still in flight
        results.update({t: runner.result(t) for t in tickets[2:]})
        results = [results[t] for t in tickets]
        for frames, out in zip(batches, results, strict=True):
            alpha = _alpha(frames, 0.5)
            assert set(out) == {"rgba", "composite"}  # the float matte stays on the device
            assert np.array_equal(out["rgba"], np.concatenate([frames, alpha[..., None]], axis=-1))
            assert np.array_equal(out["composite"], np.where(alpha[..., None] == 0, background, frames))
        uploads = [
            n for kind, n in host_cudart.copies if kind == host_cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        ]
        # The static background went up once, not per batch (the one-frame batch is as big as it).
        assert uploads.count(background.nbytes) == 1 + sum(len(b) == 1 for b in batches)
        other = rng.integers(0, 256, background.shape, dtype=np.uint8)  # another array: used, not the old one
        out = runner.result(runner.submit({"frames": batches[0], "background": other}))
        assert np.array_equal(
            out["composite"], np.where(_alpha(batches[0], 0.5)[..., None] == 0, other, batches[0])
        )
        kept = results[0]["rgba"].copy()
        runner.result(runner.submit({"frames": batches[4], "background": background}))
        assert np.array_equal(results[0]["rgba"], kept)  # results are the caller's, not pinned memory

        runner.prepare(20, 30, 2)  # a new video: new buffers, the old ones freed
        out = runner.result(
            runner.submit({"frames": batches[0][:2, :20, :30], "background": background[:, :20, :30]})
        )
        assert out["rgba"].shape == (2, 20, 30, 4)
        with pytest.raises(RuntimeError, match="do not fit the prepared"):
            runner.submit({"frames": batches[0][:3, :20, :30], "background": background[:, :20, :30]})
        with pytest.raises(RuntimeError, match="background"):
            runner.submit({"frames": batches[0][:2, :20, :30], "background": background})
        with pytest.raises(RuntimeError, match="feeds"):
            runner.submit({"frames": batches[0][:2, :20, :30]})
    assert host_cudart.memory == {} and source.closed == 1
    # Every host wait sleeps on the event instead of spinning a core (the encoder's, on a GPU box).
    assert host_cudart.host_waits and all(
        f & host_cudart.real.cudaEventBlockingSync for f in host_cudart.host_waits
    )


def test_frames_decoded_into_the_runners_pinned_buffers_are_uploaded_from_there(
    host_cudart: HostCudart,
) -> None:
    from trt_modnet.tensorrt import TensorRTRunner

    rng = np.random.default_rng(5)
    background = rng.integers(0, 256, (1, 36, 52, 3), dtype=np.uint8)
    with TensorRTRunner(HostSource(HOST_IO), outputs=("rgba",)) as runner:
        with pytest.raises(RuntimeError, match="prepare"):
            runner.frame_buffers(2)
        runner.prepare(36, 52, 4)
        pool = runner.frame_buffers(3)
        assert [b.shape for b in pool] == [(4, 36, 52, 3)] * 3
        for buffer, n in zip(pool, (4, 3, 1), strict=True):
            buffer[:n] = rng.integers(0, 256, (n, 36, 52, 3), dtype=np.uint8)
            host_cudart.sources.clear()
            out = runner.result(runner.submit({"frames": buffer[:n], "background": background}))
            assert buffer.ctypes.data in host_cudart.sources  # no host copy into the slot first
            alpha = _alpha(buffer[:n], 0.5)
            assert np.array_equal(out["rgba"], np.concatenate([buffer[:n], alpha[..., None]], axis=-1))
    assert host_cudart.memory == {}


class PoolRunner(EchoRunner):
    """Records whether every batch it was given lies in the buffers it handed out."""

    def frame_buffers(self, count: int) -> list[np.ndarray]:
        self.pool = super().frame_buffers(count)
        self.foreign = 0
        return self.pool

    def _submit(self, slot: int, feeds: Mapping[str, np.ndarray]) -> None:
        self.foreign += not any(feeds["frames"].ctypes.data == b.ctypes.data for b in self.pool)
        super()._submit(slot, feeds)


def test_the_pipeline_decodes_into_the_runners_frame_buffers() -> None:
    from fractions import Fraction

    from trt_modnet.job.pipeline import Pipeline, PipelineSettings
    from trt_modnet.video import Frame

    images = np.random.default_rng(2).integers(0, 256, (7, 32, 48, 3), dtype=np.uint8)
    frames = [Frame(image=im, pts=i, time_base=Fraction(1, 25), index=i) for i, im in enumerate(images)]

    class Collect:
        def __init__(self) -> None:
            self.images: list[np.ndarray] = []

        def write(self, image: np.ndarray, frame: Frame) -> None:
            self.images.append(image.copy())

        def close(self) -> None:
            pass

    writer = Collect()
    grey = types.SimpleNamespace(
        prepare=lambda h, w: None, batch=lambda n: np.full((1, 32, 48, 3), 128, np.uint8)
    )
    with PoolRunner(depth=2) as runner:
        settings = PipelineSettings(batch=3, depth=2)
        count = Pipeline(runner, [("composite", writer)], settings=settings, background=grey).run(
            frames, 32, 48
        )  # type: ignore[arg-type, list-item]
        assert count == 7 and runner.foreign == 0
    assert np.array_equal(np.stack(writer.images), images // 2 + 64)


def test_lent_results_are_the_pinned_buffers_and_hold_their_slot(host_cudart: HostCudart) -> None:
    from trt_modnet.tensorrt import TensorRTRunner

    rng = np.random.default_rng(8)
    batches = [rng.integers(0, 256, (2, 36, 52, 3), dtype=np.uint8) for _ in range(3)]
    with TensorRTRunner(HostSource(HOST_IO), outputs=("rgba",), depth=2) as runner:
        runner.prepare(36, 52, 2)
        leases = [runner.lend(runner.submit({"frames": b, "background": b[:1]})) for b in batches[:2]]
        pinned = {buf.ptr for slot in runner._slots for buf in slot.host.values()}
        for lease, frames in zip(leases, batches[:2], strict=True):
            assert lease.held and lease.outputs["rgba"].ctypes.data in pinned  # no copy out
            assert np.array_equal(lease.outputs["rgba"][..., 3], _alpha(frames, 0.5))
        with pytest.raises(RuntimeError, match="already in flight"):
            runner.submit({"frames": batches[2], "background": batches[2][:1]})  # both slots still lent
        with pytest.raises(RuntimeError, match="already collected"):
            runner.result(0)
        with pytest.raises(RuntimeError, match="in flight"):
            runner.prepare(36, 52, 2)
        leases[0].release()
        leases[0].release()  # idempotent
        out = runner.result(runner.submit({"frames": batches[2], "background": batches[2][:1]}))
        assert np.array_equal(out["rgba"][..., 3], _alpha(batches[2], 0.5))
        assert np.array_equal(leases[1].outputs["rgba"][..., 3], _alpha(batches[1], 0.5))  # untouched
    leases[1].release()  # after close: nothing to give back, no error
    assert host_cudart.memory == {}


def test_the_pipeline_gives_a_lent_batch_back_only_after_every_encoder_wrote_it(
    host_cudart: HostCudart,
) -> None:
    import time
    from fractions import Fraction

    from trt_modnet.job.pipeline import Pipeline, PipelineSettings
    from trt_modnet.tensorrt import TensorRTRunner
    from trt_modnet.video import Frame

    images = np.random.default_rng(9).integers(0, 256, (11, 32, 48, 3), dtype=np.uint8)
    frames = [Frame(image=im, pts=i, time_base=Fraction(1, 25), index=i) for i, im in enumerate(images)]

    class Slow:
        """Copies what it is given only after a pause: a slot given back early is overwritten by then."""

        def __init__(self, pause: float) -> None:
            self.pause, self.images = pause, []

        def write(self, image: np.ndarray, frame: Frame) -> None:
            time.sleep(self.pause)
            self.images.append(image.copy())

        def close(self) -> None:
            pass

    writers = [Slow(0.002), Slow(0.01)]
    with TensorRTRunner(HostSource(HOST_IO), outputs=("rgba", "composite"), depth=3) as runner:
        settings = PipelineSettings(batch=2, depth=2)
        grey = types.SimpleNamespace(
            prepare=lambda h, w: None, batch=lambda n: np.full((1, 32, 48, 3), 128, np.uint8)
        )
        pipeline = Pipeline(
            runner, [("rgba", writers[0]), ("composite", writers[1])], settings=settings, background=grey
        )  # type: ignore[arg-type]
        for _ in range(2):  # a second video through the same runner: every slot came back
            count = pipeline.run(frames, 32, 48)  # type: ignore[arg-type]
            assert count == 11 and len(runner.inflight) == 0
    alpha = _alpha(images, 0.5)
    assert np.array_equal(np.stack(writers[0].images[:11]), np.concatenate([images, alpha[..., None]], -1))
    composite = np.where(alpha[..., None] == 0, 128, images)
    assert np.array_equal(np.stack(writers[1].images[11:]), composite)


class NanContext(HostContext):
    def execute_async_v3(self, stream_handle: int) -> bool:
        super().execute_async_v3(stream_handle)
        device_array(self.addresses[MATTE], self.get_tensor_shape(MATTE), np.float32)[0, 0, 3] = np.nan
        return True


class NanSource(HostSource):
    def __call__(self, height: int, width: int, batch: int) -> LoadedEngine:
        engine = types.SimpleNamespace(num_optimization_profiles=1, create_execution_context=NanContext)
        return LoadedEngine(engine=engine, profile=0, io=self.io, feeds={"gain": np.array([0.5], np.float64)})


def test_nan_in_the_matte_of_a_first_batch_stops_with_one_clear_error(host_cudart: HostCudart) -> None:
    from trt_modnet.tensorrt import TensorRTRunner

    frames = np.zeros((2, 36, 52, 3), np.uint8)
    feeds = {"frames": frames, "background": frames[:1]}
    with TensorRTRunner(NanSource(HOST_IO), outputs=("alpha",)) as runner:
        runner.prepare(36, 52, 2)
        with pytest.raises(MattingError, match=r"gave 8 NaN/Inf values in MODNet's matte on the first batch"):
            runner.result(runner.submit(feeds))
        assert set(runner.result(runner.submit(feeds))) == {"alpha"}  # checked once per video, not per batch
        runner.prepare(36, 52, 2)  # the next video is checked again
        with pytest.raises(MattingError, match="NaN/Inf"):
            runner.result(runner.submit(feeds))


class TwoProfileSource(HostSource):
    """An engine with two profiles whose context refuses the profile, as the Python bindings do: raising."""

    def __call__(self, height: int, width: int, batch: int) -> LoadedEngine:
        def context() -> HostContext:
            ctx = HostContext()

            def refuse(profile: int, stream: int) -> bool:
                raise RuntimeError("Error Code 3: API Usage Error (profile index out of range\n)")

            ctx.set_optimization_profile_async = refuse  # type: ignore[attr-defined]
            return ctx

        engine = types.SimpleNamespace(num_optimization_profiles=2, create_execution_context=context)
        return LoadedEngine(engine=engine, profile=1, io=self.io, feeds={"gain": np.array([0.5], np.float64)})


def test_a_refused_profile_is_one_clear_error_and_frees_the_video(host_cudart: HostCudart) -> None:
    from trt_modnet.tensorrt import TensorRTRunner

    with TensorRTRunner(TwoProfileSource(HOST_IO), outputs=("rgba",)) as runner:
        with pytest.raises(MattingError) as info:
            runner.prepare(36, 52, 4)
        assert str(info.value) == (
            "TensorRT set_optimization_profile_async(1) failed: "
            "Error Code 3: API Usage Error (profile index out of range )"
        )
        with pytest.raises(RuntimeError, match="prepare"):
            runner.submit({"frames": np.zeros((1, 36, 52, 3), np.uint8)})
    assert host_cudart.memory == {}


# ---------------------------------------------------------------------------------------------- builder


class BuildFakes:
    """TensorRT's builder API as build_plan uses it; set_shape raises on min > opt or opt > max like the
    Python bindings do."""

    class IProgressMonitor:
        def __init__(self) -> None:
            pass

    class Profile:
        def set_shape(self, name: str, lo: tuple, opt: tuple, hi: tuple) -> None:
            if not all(a <= b <= c for a, b, c in zip(lo, opt, hi, strict=True)):
                raise RuntimeError("Shape provided for opt is inconsistent\nwith min and max")

    class Config:
        builder_optimization_level = 0
        progress_monitor = None

        def set_memory_pool_limit(self, pool: object, size: int) -> None:
            pass

        def add_optimization_profile(self, profile: object) -> int:
            return 0

        def create_timing_cache(self, data: bytes) -> object:
            return types.SimpleNamespace(serialize=lambda: b"timings")

        def set_timing_cache(self, cache: object, ignore_mismatch: bool) -> bool:
            self.cache = cache
            return True

        def get_timing_cache(self) -> object:
            return self.cache

    class Builder:
        def __init__(self, logger: object) -> None:
            pass

        def create_network(self, flags: int) -> object:
            return types.SimpleNamespace(num_layers=0)

        def create_optimization_profile(self) -> object:
            return BuildFakes.Profile()

        def create_builder_config(self) -> object:
            return BuildFakes.Config()

        def build_serialized_network(self, network: object, config: object) -> bytes:
            return b"built plan"

    class OnnxParser:
        def __init__(self, network: object, logger: object) -> None:
            self.num_errors = 0

        def parse(self, data: bytes) -> bool:
            return True


BUILD_TRT = types.SimpleNamespace(
    **vars(FAKE_TRT),
    Builder=BuildFakes.Builder,
    OnnxParser=BuildFakes.OnnxParser,
    IProgressMonitor=BuildFakes.IProgressMonitor,
    NetworkDefinitionCreationFlag=types.SimpleNamespace(STRONGLY_TYPED=0),
    MemoryPoolType=types.SimpleNamespace(WORKSPACE=0),
)


@pytest.fixture
def fake_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    """build_plan itself runs, on the fake TensorRT builder."""
    monkeypatch.setattr(eng, "import_tensorrt", lambda: BUILD_TRT)
    monkeypatch.setattr(eng, "current_target", lambda trt: TARGET)
    monkeypatch.setitem(sys.modules, "trt_modnet.graph.deploy", types.SimpleNamespace(size_feeds=size_feeds))


def test_the_first_build_creates_the_engines_folder(tmp_path: Path, fake_builder: None) -> None:
    folder = tmp_path / "nowhere" / "engines"  # an installed trt-modnet run from any folder
    loaded = _loader(folder)(1080, 1920, 4)
    store = EngineStore(folder)
    assert store.engine_path(loaded.record).read_bytes() == b"built plan"  # type: ignore[arg-type]
    assert store.timing_cache_path(TARGET).read_bytes() == b"timings"


def test_a_timing_cache_that_cannot_be_saved_never_loses_the_plan(
    tmp_path: Path, fake_builder: None, caplog: pytest.LogCaptureFixture
) -> None:
    EngineStore(tmp_path).timing_cache_path(TARGET).mkdir()  # not writable as a file
    with caplog.at_level(logging.WARNING, logger="trt_modnet"):
        loaded = _loader(tmp_path)(1080, 1920, 4)
    assert EngineStore(tmp_path).engine_path(loaded.record).read_bytes() == b"built plan"  # type: ignore[arg-type]
    assert "could not save the timing cache" in caplog.text


def test_a_profile_tensorrt_refuses_is_one_clear_error(tmp_path: Path, fake_builder: None) -> None:
    bad = {"frames": ShapeRange((1, 64, 64, 3), (4, 64, 64, 3), (2, 64, 64, 3))}
    with pytest.raises(MattingError) as info:
        _loader(tmp_path).build([bad])
    assert str(info.value) == (
        "TensorRT set_shape('frames', min [1, 64, 64, 3], opt [4, 64, 64, 3], max [2, 64, 64, 3]) failed: "
        "Shape provided for opt is inconsistent with min and max"
    )


def test_device_checks_host_ceiling_runs_on_emulated_cuda(host_cudart: HostCudart) -> None:
    """The no-op-engine step of the device check (benchmarks/device/runner.py), on the CPU (no GPU here)."""
    from benchmarks.device import runner

    figures = runner.host_ceiling(sizes=((36, 52),), batches=5)
    assert set(figures) == {"fps_36p_pinned", "fps_36p_numpy"} and min(figures.values()) > 0
    assert host_cudart.memory == {}
