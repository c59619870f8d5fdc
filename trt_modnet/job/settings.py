"""The main job's options: one frozen dataclass, built by the CLI and read by every stage of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trt_modnet.graph.official import DEFAULT_REF_SIZE


@dataclass(frozen=True)
class JobSettings:
    inputs: tuple[str, ...]
    output: Path | None = None
    #: `-o` ended with a path separator: a folder of outputs even for one input.
    output_folder: bool = False
    modes: tuple[str, ...] = ("rgba",)
    #: Extra outputs with explicit paths, e.g. (("alpha", Path("matte.mp4")),); single input only.
    extra_outputs: tuple[tuple[str, Path], ...] = ()
    format: str | None = None
    background: str | None = None
    #: A model name, .onnx, .ckpt or URL (trt_modnet.models.resolve_model); None: the default.
    model: str | Path | None = None
    backend: str = "auto"
    precision: str = "auto"
    batch: int = 4
    ref_size: int = DEFAULT_REF_SIZE
    #: Inference threads; None: the thread budget's share for this machine (trt_modnet.job.threads).
    threads: int | None = None
    start: float | None = None
    duration: float | None = None
    preview: Path | None = None
    overwrite: bool = False
    recursive: bool = False
    quiet: bool = False
    audio: bool = True
    audio_out: Path | None = None
    timestamps: str | None = None  # None: each format's default (video.formats)
    codec_options: tuple[tuple[str, str], ...] = ()
    #: `--encoder`: "auto" (each format's own; NVENC for H.264 beside a GPU) or an encoder's name.
    encoder: str = "auto"
    #: `--decoder`: "auto" (NVDEC for H.264/HEVC beside a GPU), "cpu" or "nvdec".
    decoder: str = "auto"
    stream: int | None = None
    engines: Path = Path("engines")
    ofd: bool = False
    #: None: in this process; "local", "auto" or a cluster ADDRESS: file units on Ray workers.
    ray: str | None = None
    #: With `ray`: split videos at keyframes into pieces of about this many seconds, joined after.
    segment_seconds: float | None = None
    #: Streams (trt_modnet.job.live): a live source (None: URLs and devices are, files and stdin are not).
    live: bool | None = None
    #: "late" drops frames over the latency budget, "never" keeps all; None: late when live.
    drop: str | None = None
    max_latency: float = 0.5
    idle_timeout: float = 10.0
    #: FFmpeg demuxer for standard input or a URL (None: probed).
    input_format: str | None = None
    modes_given: bool = field(default=False, compare=False)
