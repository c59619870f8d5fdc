"""TensorRT engines for the deployment graph: optimisation profiles, cache keys, the engines folder.

An engine is tied to one deployment graph, one precision recipe, one TensorRT version and one GPU model.
Each lives in the engines folder as `modnet-<outputs>-<key>.engine` beside a JSON record of everything its
cache key covers: graph hash, precision recipe, TensorRT version, GPU name and compute capability, the
optimisation profiles (shapes of every input) and the builder settings. A persistent timing cache per
TensorRT version and GPU sits beside them, so later builds skip most kernel timing.

Everything down to `EngineStore` is plain Python and runs without TensorRT; TensorRT is imported only by the
functions that build or deserialize (see `import_tensorrt`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trt_modnet.errors import MattingError
from trt_modnet.official import SIZE_MULTIPLE

if TYPE_CHECKING:
    import onnx

    from trt_modnet.graph import DeploySpec

log = logging.getLogger("trt_modnet")

INSTALL_HINT = "pip install 'trt_modnet[trt]' (CUDA 12) or 'trt_modnet[trt-cu13]' (CUDA 13)"
RECORD_FORMAT = 1
#: Name of the extra engine output holding MODNet's own float matte (for --validate's NaN/Inf check).
MATTE = "matte"
#: Named frame sizes (height, width) for `--profile`.
PRESETS: dict[str, tuple[int, int]] = {
    "720p": (720, 1280),
    "720p-portrait": (1280, 720),
    "1080p": (1080, 1920),
    "1080p-portrait": (1920, 1080),
    "4k": (2160, 3840),
    "4k-portrait": (3840, 2160),
}
DEFAULT_BATCH = 4

Shape = tuple[int, ...]
#: graph.size_feeds: the per-video inputs (resize matrices...) of a deployment graph for one frame size.
SizeFeeds = Callable[["DeploySpec", int, int], Mapping[str, np.ndarray]]


# ---------------------------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class FrameShape:
    """A batch of frames: N x H x W (the `frames` input is N x H x W x 3 uint8)."""

    batch: int
    height: int
    width: int

    @classmethod
    def from_text(cls, text: str) -> FrameShape:
        match = re.fullmatch(r"\s*(\d+)x(\d+)x(\d+)\s*", text)
        if not match:
            raise MattingError(f"frame shape {text!r}: expected NxHxW, e.g. 4x1080x1920")
        return cls(*(int(g) for g in match.groups()))

    def __str__(self) -> str:
        return f"{self.batch}x{self.height}x{self.width}"


@dataclass(frozen=True)
class FrameProfile:
    """The range of frame batches one optimisation profile accepts; kernels are tuned for `opt`."""

    min: FrameShape
    opt: FrameShape
    max: FrameShape

    def __post_init__(self) -> None:
        for a, b in ((self.min, self.opt), (self.opt, self.max)):
            if a.batch > b.batch or a.height > b.height or a.width > b.width:
                raise MattingError(f"profile {self}: needs min <= opt <= max in every dimension")
        if self.min.batch < 1 or min(self.min.height, self.min.width) < SIZE_MULTIPLE:
            raise MattingError(f"profile {self}: batch must be >= 1 and frames at least 32x32")

    @classmethod
    def exact(cls, height: int, width: int, batch: int) -> FrameProfile:
        """Frames of exactly height x width, batches of 1 to `batch` (tuned for `batch`)."""
        return cls(
            FrameShape(1, height, width), FrameShape(batch, height, width), FrameShape(batch, height, width)
        )

    @classmethod
    def preset(cls, name: str, batch: int = DEFAULT_BATCH) -> FrameProfile:
        try:
            height, width = PRESETS[name.lower()]
        except KeyError:
            raise MattingError(f"unknown profile {name!r}; choose from {', '.join(PRESETS)}") from None
        return cls.exact(height, width, batch)

    def __str__(self) -> str:
        return f"{self.min}..{self.opt}..{self.max}"


@dataclass(frozen=True)
class ShapeRange:
    """min/opt/max shapes of one engine input, as TensorRT's `IOptimizationProfile.set_shape` takes them."""

    min: Shape
    opt: Shape
    max: Shape

    def contains(self, shape: Shape) -> bool:
        return len(shape) == len(self.min) and all(
            lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max, strict=True)
        )


InputRanges = dict[str, ShapeRange]


def input_ranges(spec: DeploySpec, profile: FrameProfile, size_feeds: SizeFeeds) -> InputRanges:
    """Shape ranges of every engine input for a frame profile: frames, background, and the size feeds."""
    lo, opt, hi = profile.min, profile.opt, profile.max
    ranges = {
        "frames": ShapeRange(
            (lo.batch, lo.height, lo.width, 3),
            (opt.batch, opt.height, opt.width, 3),
            (hi.batch, hi.height, hi.width, 3),
        )
    }
    if "composite" in spec.outputs:
        # One background for the whole batch (colour, image) or one per frame (video).
        ranges["background"] = ShapeRange(
            (1, lo.height, lo.width, 3), (1, opt.height, opt.width, 3), (hi.batch, hi.height, hi.width, 3)
        )
    ranges.update(_size_feed_ranges(spec, profile, size_feeds))
    return ranges


def _size_feed_ranges(spec: DeploySpec, profile: FrameProfile, size_feeds: SizeFeeds) -> InputRanges:
    """Bounding shapes of the size feeds over the frame sizes of the profile.

    The feeds' shapes follow each frame side, its inference side and the scale between them (the taps per
    output of a resize), and the official size rule is not monotonic (a 600x500 frame is inferred at
    480x576, a 1080x1920 one at 512x896), so the feeds are evaluated wherever any of those is extreme, not
    only at the profile's corners. A video whose exact shapes still fall outside is never handed this
    profile (`profile_covers` checks the exact shapes): it gets an engine of its own.
    """
    points = _extreme_frame_sizes(profile, spec.ref_size)
    shapes = [{k: tuple(v.shape) for k, v in size_feeds(spec, h, w).items()} for h, w in points]
    opt = {k: tuple(v.shape) for k, v in size_feeds(spec, profile.opt.height, profile.opt.width).items()}
    ranges = {}
    for name, opt_shape in opt.items():
        dims = np.array([s[name] for s in shapes])
        ranges[name] = ShapeRange(tuple(map(int, dims.min(0))), opt_shape, tuple(map(int, dims.max(0))))
    return ranges


def _extreme_frame_sizes(profile: FrameProfile, ref_size: int) -> list[tuple[int, int]]:
    """The profile's corners, and the frame sizes where either inference side or either scale is extreme."""
    lo, hi = profile.min, profile.max
    widths = np.arange(lo.width, hi.width + 1)
    # (quantity, sign) -> (sign * value, height, width): sign 1 tracks the minimum, -1 the maximum.
    extremes: dict[tuple[int, int], tuple[float, int, int]] = {}
    for height in range(lo.height, hi.height + 1):
        ih, iw = official_sizes(height, widths, ref_size)
        for quantity, values in enumerate((ih, iw, height / ih, widths / iw)):
            for sign, index in ((1, int(values.argmin())), (-1, int(values.argmax()))):
                found = (sign * float(values[index]), height, int(widths[index]))
                extremes[quantity, sign] = min(extremes.get((quantity, sign), found), found)
    corners = {(h, w) for h in (lo.height, hi.height) for w in (lo.width, hi.width)}
    return sorted(corners | {(h, w) for _, h, w in extremes.values()})


def official_sizes(height: int, widths: np.ndarray, ref_size: int) -> tuple[np.ndarray, np.ndarray]:
    """`official.inference_size` for one height and many widths at once (the same arithmetic, vectorised)."""
    w = widths.astype(np.int64)
    h = np.full_like(w, height)
    rescale = (np.maximum(h, w) < ref_size) | (np.minimum(h, w) > ref_size)
    landscape = w >= h
    # Same float64 operations in the same order as the scalar rule, then truncation like int().
    ih = np.where(rescale, np.where(landscape, ref_size, (h / w * ref_size).astype(np.int64)), h)
    iw = np.where(rescale, np.where(landscape, (w / h * ref_size).astype(np.int64), ref_size), w)
    return ih - ih % SIZE_MULTIPLE, iw - iw % SIZE_MULTIPLE


def required_shapes(
    spec: DeploySpec, height: int, width: int, batch: int, size_feeds: SizeFeeds
) -> list[dict]:
    """The input shapes a video needs, for its smallest (1) and largest (`batch`) batches."""
    feeds = {k: tuple(v.shape) for k, v in size_feeds(spec, height, width).items()}
    needs = []
    for n in (1, batch):
        shapes: dict[str, Shape] = {"frames": (n, height, width, 3), **feeds}
        if "composite" in spec.outputs:
            shapes["background"] = (n, height, width, 3)
        needs.append(shapes)
    return needs


def profile_covers(ranges: Mapping[str, ShapeRange], needs: Sequence[Mapping[str, Shape]]) -> bool:
    return all(
        set(need) == set(ranges) and all(ranges[k].contains(s) for k, s in need.items()) for need in needs
    )


# ---------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Target:
    """Where an engine runs: it is valid for this TensorRT version on this GPU model only."""

    tensorrt: str
    gpu: str
    compute_capability: str

    @property
    def slug(self) -> str:
        gpu = re.sub(r"[^a-z0-9]+", "-", self.gpu.lower()).strip("-")
        return f"trt{self.tensorrt}-{gpu}-sm{self.compute_capability.replace('.', '')}"


@dataclass(frozen=True)
class BuildSettings:
    workspace_bytes: int = 4 << 30
    opt_level: int = 3  # TensorRT builder_optimization_level, 0-5

    def __post_init__(self) -> None:
        if self.workspace_bytes <= 0:
            raise MattingError(f"workspace must be positive, got {self.workspace_bytes} bytes")
        if not 0 <= self.opt_level <= 5:
            raise MattingError(f"optimisation level must be 0-5, got {self.opt_level}")


@dataclass(frozen=True)
class EngineRecord:
    """The JSON beside an engine: what it was built from and for."""

    key: str
    graph_sha256: str
    recipe: str
    outputs: tuple[str, ...]
    ref_size: int
    target: Target
    settings: BuildSettings
    profiles: tuple[InputRanges, ...]
    matte: bool = False  # whether the engine exposes MODNet's float matte as output MATTE
    built: str = ""
    build_seconds: float = 0.0
    format: int = RECORD_FORMAT

    @property
    def stem(self) -> str:
        return f"modnet-{'-'.join(self.outputs)}-{self.key[:16]}"

    def to_json(self) -> str:
        data = asdict(self)
        data["profiles"] = [{k: asdict(r) for k, r in p.items()} for p in self.profiles]
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> EngineRecord:
        data = json.loads(text)
        if data.get("format") != RECORD_FORMAT:
            raise ValueError(f"record format {data.get('format')!r}, expected {RECORD_FORMAT}")
        data["outputs"] = tuple(data["outputs"])
        data["target"] = Target(**data["target"])
        data["settings"] = BuildSettings(**data["settings"])
        data["profiles"] = tuple(
            {k: ShapeRange(*(tuple(r[f]) for f in ("min", "opt", "max"))) for k, r in p.items()}
            for p in data["profiles"]
        )
        return cls(**data)


def graph_digest(deploy: onnx.ModelProto) -> str:
    return hashlib.sha256(deploy.SerializeToString()).hexdigest()


def cache_key(
    *,
    graph_sha256: str,
    recipe: str,
    target: Target,
    settings: BuildSettings,
    profiles: Sequence[Mapping[str, ShapeRange]],
) -> str:
    """Hash of everything that makes one engine differ from another."""
    identity = {
        "graph": graph_sha256,
        "recipe": recipe,
        "target": asdict(target),
        "settings": asdict(settings),
        "profiles": [{k: asdict(r) for k, r in sorted(p.items())} for p in profiles],
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


class EngineStore:
    """The engines folder: engine files, their JSON records, and the timing caches."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def engine_path(self, record: EngineRecord) -> Path:
        return self.folder / f"{record.stem}.engine"

    def record_path(self, record: EngineRecord) -> Path:
        return self.folder / f"{record.stem}.json"

    def timing_cache_path(self, target: Target) -> Path:
        return self.folder / f"timing-{target.slug}.timing"

    def records(self) -> Iterator[EngineRecord]:
        """Every readable record whose engine file exists; unreadable ones are skipped with a warning."""
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("modnet-*.json")):
            try:
                record = EngineRecord.from_json(path.read_text())
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("%s: not a usable engine record (%s); ignoring it", path, exc)
                continue
            if self.engine_path(record).is_file():
                yield record

    def find(
        self, *, graph_sha256: str, recipe: str, target: Target, needs: Sequence[Mapping[str, Shape]]
    ) -> tuple[EngineRecord, int] | None:
        """The tightest cached engine (and profile index) for this graph and target that covers `needs`."""
        found = []
        for record in self.records():
            if (record.graph_sha256, record.recipe, record.target) != (graph_sha256, recipe, target):
                continue
            for index, ranges in enumerate(record.profiles):
                if profile_covers(ranges, needs):
                    found.append((int(np.prod(ranges["frames"].max)), record.stem, record, index))
        return min(found)[2:] if found else None

    def save(self, record: EngineRecord, plan: bytes) -> Path:
        """Write engine then record, each under a temporary name renamed into place when complete."""
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.engine_path(record), plan)
        _write_atomic(self.record_path(record), record.to_json().encode())
        return self.engine_path(record)

    def discard(self, record: EngineRecord) -> None:
        """Remove a stale engine: the record first, so that no record ever names a missing engine."""
        self.record_path(record).unlink(missing_ok=True)
        self.engine_path(record).unlink(missing_ok=True)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def recipe_of(spec: DeploySpec) -> str:
    if not spec.fp16:
        return "fp32"
    from trt_modnet.fp16 import RECIPE

    return str(RECIPE)


def matte_tensor(deploy: onnx.ModelProto) -> str | None:
    """MODNet's float matte in the deployment graph: a value named `matte`, else the last Sigmoid's output.

    MODNet's inference graph ends with the matte's sigmoid and the deployment graph adds no sigmoid after it.
    """
    produced = [(node.op_type, out) for node in deploy.graph.node for out in node.output]
    if any(out == MATTE for _, out in produced):
        return MATTE
    sigmoids = [out for op, out in produced if op == "Sigmoid"]
    return sigmoids[-1] if sigmoids else None


# ---------------------------------------------------------------------------------------------- TensorRT


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
    from trt_modnet.cuda import gpu_info

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
    _write_atomic(timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(plan)), has_matte


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
        profile.set_shape(name, r.min, r.opt, r.max)
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
        if not profile_covers(
            self.record.profiles[self.profile],
            required_shapes(self.loader.spec, height, width, batch, self.loader.size_feeds),
        ):
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
        from trt_modnet.graph import size_feeds

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
        feeds = {k: np.ascontiguousarray(v) for k, v in self.size_feeds(self.spec, height, width).items()}
        return LoadedEngine(
            engine=engine, profile=profile, io=io, feeds=feeds, record=record, runtime=runtime
        )

    def close(self) -> None:
        """Drop the deserialized engines (the runner that owns this loader closes it)."""
        self._engines.clear()

    def find_or_build(self, height: int, width: int, batch: int) -> tuple[EngineRecord, int]:
        """The engine (record, profile index) for this frame size and batch: cached, else built."""
        needs = required_shapes(self.spec, height, width, batch, self.size_feeds)
        found = self.store.find(
            graph_sha256=self.graph_sha256, recipe=self.recipe, target=self.target, needs=needs
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
