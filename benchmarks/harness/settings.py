"""What one throughput run measures: its settings, and the default input and model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmarks.memory import REPO, JobOptions
from trt_modnet.errors import MattingError
from trt_modnet.graph.official import DEFAULT_REF_SIZE

SHARED = REPO.parent / "shared"
DEFAULT_VIDEO = SHARED / "data" / "videos" / "juggle_720p.mp4"
DEFAULT_CHECKPOINT = SHARED / "models" / "modnet_synthetic.ckpt"


@dataclass(frozen=True)
class BenchSettings:
    video: Path
    model: Path
    #: (backend, precision) pairs, the headline one first.
    configs: tuple[tuple[str, str], ...] = (("onnxruntime", "fp32"),)
    batches: tuple[int, ...] = (1, 4)
    ref_size: int = DEFAULT_REF_SIZE
    content: str = "rgba"
    format: str | None = None
    frames: int = 40
    repeat: int = 1
    #: None: the main job's thread budget (the naive loop then takes every core).
    threads: int | None = None
    depth: int = 2
    engines: Path = Path("engines")
    naive: bool = True
    #: Length of the long input of the memory check; None skips it.
    memory_long_seconds: float | None = 60.0
    memory_ref_size: int = 128
    memory_content: str = "alpha"
    memory_format: str | None = "mp4"
    #: `--encoder` of the encode-only stage and the main job ("auto": the format's own).
    encoder: str = "auto"

    @property
    def warmup(self) -> int:
        return max(self.batches) * self.depth

    @property
    def compare_batch(self) -> int:
        """The batch size of the headline comparisons (naive loop, memory)."""
        return max(self.batches)

    def job(self, batch: int, config: tuple[str, str] | None = None) -> JobOptions:
        backend, precision = config or self.configs[0]
        return JobOptions(
            model=self.model,
            backend=backend,
            precision=precision,
            batch=batch,
            ref_size=self.ref_size,
            content=self.content,
            format=self.format,
            threads=self.threads,
            engines=self.engines,
            encoder=self.encoder,
        )


def label(config: tuple[str, str]) -> str:
    """A configuration's name in the figures: "backend-precision"."""
    return "-".join(config)


def default_model(checkpoint: Path, work: Path) -> Path:
    """The stand-in checkpoint exported with our exporter, as a user exports the official one."""
    try:
        from trt_modnet.modnet.checkpoint import load_checkpoint  # PyTorch: export only
        from trt_modnet.modnet.export import export_onnx
    except ImportError as exc:
        raise MattingError(
            f"exporting {checkpoint} needs PyTorch ({exc.name} is missing): pass --model MODEL.onnx"
        ) from None
    if not checkpoint.is_file():
        raise MattingError(f"{checkpoint}: no such checkpoint; pass --model MODEL.onnx or --checkpoint")
    out = work / f"{checkpoint.stem}.onnx"
    export_onnx(load_checkpoint(checkpoint), out)
    return out
