"""TensorRT engines for the deployment graph: building and loading them, and finding the one a video needs.

TensorRT is imported only by the functions that build or deserialize (see `import_tensorrt`). Optimisation
profiles are in `profiles`; the engines folder, records and cache keys in `engine_cache`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trt_modnet.errors import MattingError
from trt_modnet.tensorrt.availability import INSTALL_HINT
from trt_modnet.tensorrt.engine_cache import (
    BuildSettings,
    EngineRecord,
    EngineStore,
    Target,
    cache_key,
    graph_digest,
    recipe_of,
    write_atomic,
)
from trt_modnet.tensorrt.profiles import (
    FrameProfile,
    InputRanges,
    ShapeRange,
    SizeFeeds,
    covers,
    input_ranges,
    profile_taps,
)

if TYPE_CHECKING:
    import onnx

    from trt_modnet.graph.deploy import DeploySpec

log = logging.getLogger("trt_modnet")

#: Name of the extra engine output holding MODNet's own float matte (for --validate's NaN/Inf check).
MATTE = "matte"


def matte_tensor(deploy: onnx.ModelProto) -> str | None:
    """MODNet's float matte in the deployment graph: a value named `matte`, else the last Sigmoid's output.

    MODNet's inference graph ends with the matte's sigmoid and the deployment graph adds no sigmoid after it.
    """
    produced = [(node.op_type, out) for node in deploy.graph.node for out in node.output]
    if any(out == MATTE for _, out in produced):
        return MATTE
    sigmoids = [out for op, out in produced if op == "Sigmoid"]
    return sigmoids[-1] if sigmoids else None


def one_line(exc: BaseException) -> str:
    """A TensorRT exception's message on one line (the bindings' messages span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def import_tensorrt() -> Any:
    """The `tensorrt` module, or a MattingError saying how to install it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise MattingError(f"TensorRT is not installed ({exc}): {INSTALL_HINT}") from None
    except OSError as exc:  # the wheel is there but its libraries are not (e.g. the stub -libs package)
        raise MattingError(f"TensorRT does not load ({exc}): {INSTALL_HINT}") from None
    return tensorrt


def current_target(trt: Any, device: int = 0) -> Target:
    from trt_modnet.tensorrt.cuda import gpu_info

    gpu = gpu_info(device)
    return Target(tensorrt=trt.__version__, gpu=gpu.name, compute_capability=gpu.compute_capability)


def build_plan(
    trt: Any,
    logger: Any,
    deploy_bytes: bytes,
    profiles: Sequence[Mapping[str, ShapeRange]],
    *,
    settings: BuildSettings,
    timing_cache: Path,
    matte: str | None,
) -> tuple[bytes, bool]:
    """Build a serialized engine from a (mixed-precision) ONNX graph: (plan, whether MATTE is an output)."""
    builder = trt.Builder(logger)
    # Strong typing: precision comes from the graph (required for FP16 in 10.12+, the only mode in 11).
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(deploy_bytes):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        detail = "; ".join(f"{e.node_name()}: {e.desc()}" for e in errors) or "no detail"
        raise MattingError(f"TensorRT {trt.__version__} cannot parse the deployment graph: {detail}")
    has_matte = matte is not None and _mark_output(network, matte, MATTE)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    config.builder_optimization_level = settings.opt_level
    config.progress_monitor = _progress_monitor(trt)
    for ranges in profiles:
        _add_profile(builder, config, ranges)
    _attach_timing_cache(config, timing_cache)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise MattingError(f"TensorRT {trt.__version__} failed to build the engine (its messages are above)")
    _save_timing_cache(timing_cache, config)
    return bytes(memoryview(plan)), has_matte


def _save_timing_cache(path: Path, config: Any) -> None:
    """Keep the kernel timings for later builds; failing to is only a warning (the plan is what matters)."""
    try:
        write_atomic(path, bytes(memoryview(config.get_timing_cache().serialize())))
    except OSError as exc:
        log.warning(
            "%s: could not save the timing cache (%s); later builds will time kernels again", path, exc
        )


def _mark_output(network: Any, tensor_name: str, output_name: str) -> bool:
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            tensor = layer.get_output(j)
            if tensor.name == tensor_name:
                tensor.name = output_name
                network.mark_output(tensor)
                return True
    log.warning(
        "the deployment graph has no tensor %r: the engine will not expose the float matte", tensor_name
    )
    return False


def _add_profile(builder: Any, config: Any, ranges: Mapping[str, ShapeRange]) -> None:
    profile = builder.create_optimization_profile()
    for name, r in ranges.items():
        try:  # the Python bindings raise RuntimeError where the C++ API logs and returns
            profile.set_shape(name, r.min, r.opt, r.max)
        except RuntimeError as exc:
            raise MattingError(
                f"TensorRT set_shape({name!r}, min {list(r.min)}, opt {list(r.opt)}, max {list(r.max)}) "
                f"failed: {one_line(exc)}"
            ) from None
    if config.add_optimization_profile(profile) < 0:
        shapes = ", ".join(f"{k} {list(r.min)}..{list(r.max)}" for k, r in ranges.items())
        raise MattingError(f"TensorRT rejected the optimisation profile {shapes}")


def _attach_timing_cache(config: Any, path: Path) -> None:
    """Reuse the timing cache file if TensorRT accepts it; a stale or damaged one is replaced."""
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return
    log.warning("%s: timing cache not usable by this TensorRT or GPU; starting a new one", path)
    cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        raise MattingError("TensorRT could not create an empty timing cache")


def _progress_monitor(trt: Any) -> Any:
    """Logs each top-level build phase, so a build of several minutes shows that it is moving."""

    class PhaseLogger(trt.IProgressMonitor):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.started = time.perf_counter()

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            if parent_phase is None:
                log.info("  [%5.0f s] %s", time.perf_counter() - self.started, phase_name)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # never cancel

        def phase_finish(self, phase_name: str) -> None:
            pass

    return PhaseLogger()


@dataclass(frozen=True)
class TensorIO:
    name: str
    is_input: bool
    dtype: np.dtype


def describe_io(trt: Any, engine: Any) -> tuple[TensorIO, ...]:
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    return tuple(
        TensorIO(
            name=name,
            is_input=engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
            dtype=np.dtype(trt.nptype(engine.get_tensor_dtype(name))),
        )
        for name in names
    )


@dataclass(frozen=True)
class LoadedEngine:
    """What the runner needs for one video: the engine, its profile, its inputs/outputs, the size feeds."""

    engine: Any
    profile: int
    io: tuple[TensorIO, ...]
    #: Per-video inputs (resize matrices...) for this frame size: uploaded once, shared by every batch.
    feeds: dict[str, np.ndarray]
    record: EngineRecord | None = None
    runtime: Any = None  # kept alive as long as the engine


class FixedEngine:
    """An engine source that always hands over one engine and profile (to validate a given engine)."""

    def __init__(self, loader: EngineLoader, record: EngineRecord, profile: int) -> None:
        self.loader = loader
        self.record = record
        self.profile = profile

    def __call__(self, height: int, width: int, batch: int) -> LoadedEngine:
        if not self.loader.covers(self.record.profiles[self.profile], height, width, batch):
            raise MattingError(
                f"{self.record.stem}: profile {self.profile} does not cover {batch}x{height}x{width}"
            )
        return self.loader.loaded(self.record, self.profile, height, width)

    def close(self) -> None:
        """Nothing to free: the loader owns the engines."""


class EngineLoader:
    """Finds the cached engine that covers a video, or builds one; the TensorRT runner calls it in `prepare`.

    Builders apart from runners: this owns the engines folder and TensorRT's builder; the runner only runs
    what it is handed. Each engine file is deserialized once per loader.
    """

    def __init__(
        self,
        deploy: onnx.ModelProto,
        spec: DeploySpec,
        *,
        engines_dir: Path = Path("engines"),
        settings: BuildSettings | None = None,
    ) -> None:
        from trt_modnet.graph.deploy import size_feeds

        self.deploy = deploy
        self.spec = spec
        self.size_feeds: SizeFeeds = size_feeds
        self.store = EngineStore(engines_dir)
        self.settings = settings or BuildSettings()
        self.graph_sha256 = graph_digest(deploy)
        self.recipe = recipe_of(spec)
        self.trt = import_tensorrt()
        self.logger = self.trt.Logger(self.trt.Logger.WARNING)
        self.target = current_target(self.trt)
        self._engines: dict[str, tuple[Any, Any, tuple[TensorIO, ...]]] = {}  # stem -> engine, runtime, io

    def __call__(self, height: int, width: int, batch: int) -> LoadedEngine:
        return self.loaded(*self.find_or_build(height, width, batch), height, width)

    def loaded(self, record: EngineRecord, profile: int, height: int, width: int) -> LoadedEngine:
        """A cached engine, ready for frames of height x width (deserialized on first use)."""
        if not self._load(record):
            raise MattingError(f"{self.store.engine_path(record)}: TensorRT cannot load this engine")
        engine, runtime, io = self._engines[record.stem]
        taps = profile_taps(record.profiles[profile]["frames"], self.spec.ref_size)
        feeds = self.size_feeds(self.spec, height, width, taps)
        feeds = {k: np.ascontiguousarray(v) for k, v in feeds.items()}
        return LoadedEngine(
            engine=engine, profile=profile, io=io, feeds=feeds, record=record, runtime=runtime
        )

    def close(self) -> None:
        """Drop the deserialized engines (the runner that owns this loader closes it)."""
        self._engines.clear()

    def find_or_build(self, height: int, width: int, batch: int) -> tuple[EngineRecord, int]:
        """The engine (record, profile index) for this frame size and batch: cached, else built."""
        found = self.store.find(
            graph_sha256=self.graph_sha256,
            recipe=self.recipe,
            target=self.target,
            covers=lambda ranges: self.covers(ranges, height, width, batch),
        )
        if found is not None:
            record, profile = found
            if self._load(record):
                return record, profile
            log.warning(
                "%s does not load with TensorRT %s on this %s; rebuilding it",
                self.store.engine_path(record),
                self.target.tensorrt,
                self.target.gpu,
            )
            self.store.discard(record)
            return self._build_and_load(record.profiles), profile
        log.info(
            "no engine in %s covers %dx%d frames in batches of %d: building one for this GPU "
            "(minutes, once; later runs reuse it)",
            self.store.folder,
            width,
            height,
            batch,
        )
        return self._build_and_load([self.ranges(FrameProfile.exact(height, width, batch))]), 0

    def covers(self, ranges: InputRanges, height: int, width: int, batch: int) -> bool:
        return covers(self.spec, ranges, height, width, batch, self.size_feeds)

    def ranges(self, profile: FrameProfile) -> InputRanges:
        return input_ranges(self.spec, profile, self.size_feeds)

    def key(self, profiles: Sequence[InputRanges]) -> str:
        return cache_key(
            graph_sha256=self.graph_sha256,
            recipe=self.recipe,
            target=self.target,
            settings=self.settings,
            profiles=profiles,
        )

    def cached(self, profiles: Sequence[InputRanges]) -> EngineRecord | None:
        """The saved engine with exactly these profiles and settings, if it loads."""
        key = self.key(profiles)
        record = next((r for r in self.store.records() if r.key == key), None)
        return record if record is not None and self._load(record) else None

    def build(self, profiles: Sequence[InputRanges]) -> EngineRecord:
        """Build and save an engine with these optimisation profiles (see `ranges`)."""
        if not profiles:
            raise MattingError("an engine needs at least one optimisation profile")
        key = self.key(profiles)
        # Before minutes of building: the timing cache is written into it right after the build.
        self.store.folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        plan, has_matte = build_plan(
            self.trt,
            self.logger,
            self.deploy.SerializeToString(),
            profiles,
            settings=self.settings,
            timing_cache=self.store.timing_cache_path(self.target),
            matte=matte_tensor(self.deploy),
        )
        record = EngineRecord(
            key=key,
            graph_sha256=self.graph_sha256,
            recipe=self.recipe,
            outputs=tuple(self.spec.outputs),
            ref_size=self.spec.ref_size,
            target=self.target,
            settings=self.settings,
            profiles=tuple(profiles),
            matte=has_matte,
            built=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            build_seconds=round(time.perf_counter() - started, 1),
        )
        path = self.store.save(record, plan)
        log.info("built %s in %.0f s (%.1f MB)", path, record.build_seconds, len(plan) / 1e6)
        return record

    def _build_and_load(self, profiles: Sequence[InputRanges]) -> EngineRecord:
        record = self.build(profiles)
        if not self._load(record):
            raise MattingError(
                f"{self.store.engine_path(record)}: TensorRT cannot load the engine it just built"
            )
        return record

    def _load(self, record: EngineRecord) -> bool:
        """Deserialize a cached engine once; False when this TensorRT or GPU cannot run it."""
        if record.stem in self._engines:
            return True
        runtime = self.trt.Runtime(self.logger)
        engine = runtime.deserialize_cuda_engine(self.store.engine_path(record).read_bytes())
        if engine is None:
            return False
        self._engines[record.stem] = (engine, runtime, describe_io(self.trt, engine))
        return True
