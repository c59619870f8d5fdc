"""The engines folder: engine files, their JSON records and cache keys, and the timing caches.

An engine is tied to one deployment graph, one precision recipe, one TensorRT version and one GPU model.
Each lives in the engines folder as `modnet-<outputs>-<key>.engine` beside a JSON record of everything its
cache key covers: graph hash, precision recipe, TensorRT version, GPU name and compute capability, the
optimisation profiles (shapes of every input) and the builder settings. A persistent timing cache per
TensorRT version and GPU sits beside them, so later builds skip most kernel timing.

Plain Python: runs without TensorRT.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trt_modnet.errors import MattingError
from trt_modnet.tensorrt.profiles import InputRanges, ShapeRange

if TYPE_CHECKING:
    import onnx

    from trt_modnet.graph.deploy import DeploySpec

log = logging.getLogger("trt_modnet")

RECORD_FORMAT = 1


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
        self, *, graph_sha256: str, recipe: str, target: Target, covers: Callable[[InputRanges], bool]
    ) -> tuple[EngineRecord, int] | None:
        """The tightest cached engine (and profile index) for this graph and target whose profile `covers`."""
        found = []
        for record in self.records():
            if (record.graph_sha256, record.recipe, record.target) != (graph_sha256, recipe, target):
                continue
            for index, ranges in enumerate(record.profiles):
                if covers(ranges):
                    found.append((int(np.prod(ranges["frames"].max)), record.stem, record, index))
        return min(found)[2:] if found else None

    def save(self, record: EngineRecord, plan: bytes) -> Path:
        """Write engine then record, each under a temporary name renamed into place when complete."""
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.engine_path(record), plan)
        write_atomic(self.record_path(record), record.to_json().encode())
        return self.engine_path(record)

    def discard(self, record: EngineRecord) -> None:
        """Remove a stale engine: the record first, so that no record ever names a missing engine."""
        self.record_path(record).unlink(missing_ok=True)
        self.engine_path(record).unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def recipe_of(spec: DeploySpec) -> str:
    if not spec.fp16:
        return "fp32"
    from trt_modnet.graph.fp16 import RECIPE

    return str(RECIPE)
