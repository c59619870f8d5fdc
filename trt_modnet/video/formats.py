"""Output formats, output requests (`OutputSpec`), and their validation before any long work starts.

Encoder defaults (overridable per key with `codec_options`), measured on 2 cores at 1080p (README):
- ProRes (prores_ks, `vendor=apl0` so Apple software treats it as its own): 4444 with alpha for rgba,
  422 HQ for composites and mattes. prores_ks, not the 2.4x faster prores_aw: 59.6 against 49.7 dB PSNR
  on the same frames, and quality is the point of ProRes. Alpha is coded losslessly (16-bit).
- VP9 (libvpx-vp9): constant quality crf 30, deadline good, cpu-used 4, row-mt (Google's VOD advice).
- PNG: zlib level 1; lossless either way, 6.5x faster than the default level for 10% more bytes.
- FFV1: version 3, intra-only (g=1), slice CRCs, the archivists' settings; slices for its threads.
- H.264 (libx264): crf 18 (visually lossless), preset veryfast, 4:2:0 for every player.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import av

from trt_modnet.errors import MattingError
from trt_modnet.video.encoders import choose_encoder
from trt_modnet.video.images import is_image_path
from trt_modnet.video.info import VideoInfo

log = logging.getLogger("trt_modnet")

#: Encoders whose every frame is a keyframe coded alone: several instances may share the frames
#: (`parallel`) and write the packets one encoder writes (FFV1 with g=1, as the mkv format sets it).
INTRA_ONLY = frozenset({"prores_ks", "prores_aw", "png", "ffv1"})


def intra_only(codec: str, options: Mapping[str, str]) -> bool:
    return codec in INTRA_ONLY and (codec != "ffv1" or options.get("g") == "1")


Content = Literal["rgba", "alpha", "composite"]
CONTENTS: tuple[str, ...] = ("rgba", "alpha", "composite")

# What the pipeline hands a writer for each content: the numpy layout as an FFmpeg pixel format.
SOURCE_PIXEL_FORMATS = MappingProxyType({"rgba": "rgba", "alpha": "gray", "composite": "rgb24"})


def _frozen(mapping: Mapping[str, object]) -> MappingProxyType:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Format:
    """One output format: container, encoder, and the encoder pixel format for each content it holds."""

    name: str
    suffix: str
    muxer: str
    codec: str
    pixel_formats: Mapping[str, str]
    options: Mapping[str, Mapping[str, str]]
    description: str
    audio_fallback: str | None = None  # encoder for audio this container cannot take as it is
    # Audio codecs copied as they are (empty: whatever the muxer takes); "pcm" stands for every pcm_*.
    audio_codecs: frozenset[str] = frozenset()
    even_size: bool = False  # 4:2:0 H.264 needs even width and height
    muxer_options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # "source": the source's timestamps, so a segment sits where it was on an editor's timeline;
    # "zero": the first frame at 0, what browsers need (no empty edit, the duration is the content's).
    timestamps: str = "source"
    # With "source", the source's time of the first frame goes into a timecode track and the media starts
    # at 0: QuickTime counts an empty edit in the movie's duration, and editors place clips by timecode.
    timecode: bool = False

    def holds(self, content: str) -> bool:
        return content in self.pixel_formats


# What Premiere, Resolve and Final Cut import from QuickTime and MP4 (their documented lists): MP3,
# Opus, Vorbis, FLAC or AC-3 there are transcoded to AAC instead of copied.
EDITOR_AUDIO = frozenset({"aac", "alac", "pcm"})

_PRORES_HQ = {"profile": "hq", "vendor": "apl0"}
_VP9 = {"crf": "30", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}
_X264 = {"crf": "18", "preset": "veryfast"}
# FFV1 encodes slices in parallel; more slices cost a little size and, on few cores, speed.
_FFV1 = {"level": "3", "g": "1", "slicecrc": "1", "slices": "16" if (os.cpu_count() or 1) > 4 else "4"}

FORMATS: Mapping[str, Format] = _frozen(
    {
        "mov": Format(
            name="mov",
            suffix=".mov",
            muxer="mov",
            codec="prores_ks",
            pixel_formats=_frozen(
                {"rgba": "yuva444p10le", "composite": "yuv422p10le", "alpha": "yuv422p10le"}
            ),
            options=_frozen(
                {
                    "rgba": _frozen({"profile": "4444", "vendor": "apl0"}),
                    "composite": _frozen(_PRORES_HQ),
                    "alpha": _frozen(_PRORES_HQ),
                }
            ),
            description="ProRes 4444 with alpha (422 HQ without), for editors",
            audio_fallback="aac",
            audio_codecs=EDITOR_AUDIO,
            timecode=True,
        ),
        "webm": Format(
            name="webm",
            suffix=".webm",
            muxer="webm",
            codec="libvpx-vp9",
            pixel_formats=_frozen({"rgba": "yuva420p", "composite": "yuv420p", "alpha": "yuv420p"}),
            options=_frozen({c: _frozen(_VP9) for c in CONTENTS}),
            description="VP9 with alpha, for the web",
            audio_fallback="libopus",
            timestamps="zero",
        ),
        "png": Format(
            name="png",
            suffix=".png",
            muxer="image2",
            codec="png",
            pixel_formats=_frozen({"rgba": "rgba", "composite": "rgb24", "alpha": "gray"}),
            options=_frozen({c: _frozen({"compression_level": "1"}) for c in CONTENTS}),
            description="a folder of PNG images (one PNG file for a still image)",
        ),
        "mkv": Format(
            name="mkv",
            suffix=".mkv",
            muxer="matroska",
            codec="ffv1",
            pixel_formats=_frozen({"rgba": "bgra", "composite": "bgr0", "alpha": "gray"}),
            options=_frozen({c: _frozen(_FFV1) for c in CONTENTS}),
            description="FFV1, lossless, for archives",
            audio_fallback="flac",
        ),
        "mp4": Format(
            name="mp4",
            suffix=".mp4",
            muxer="mp4",
            codec="libx264",
            pixel_formats=_frozen({"composite": "yuv420p", "alpha": "yuv420p"}),
            options=_frozen({c: _frozen(_X264) for c in CONTENTS}),
            description="H.264 without alpha, for composites and matte previews",
            audio_fallback="aac",
            audio_codecs=EDITOR_AUDIO,
            even_size=True,
            timestamps="zero",
            # moov before mdat: a browser plays while it downloads instead of fetching the end first.
            muxer_options=_frozen({"movflags": "+faststart"}),
        ),
    }
)

TIMESTAMPS = ("source", "zero")

DEFAULT_FORMATS = MappingProxyType({"rgba": "mov", "alpha": "mp4", "composite": "mp4"})
_TAGS = MappingProxyType({"rgba": "matte", "alpha": "alpha", "composite": "composite"})
# Media extensions we do not write: a typo or a wish, never a PNG folder's name.
_OTHER_MEDIA = frozenset(
    {
        *(".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".m2ts", ".mts", ".mxf", ".flv", ".wmv", ".ogv", ".3gp"),
        *(".gif", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".exr", ".dpx", ".avif", ".heic"),
        *(".mka", ".m4a", ".wav", ".mp3", ".aac", ".flac", ".opus"),
    }
)
# Side-file audio for PNG sequences: extension -> (muxer, encoder for audio it cannot take as it is;
# WAV and FLAC are always decoded and re-encoded, `pcm`).
AUDIO_FILES = MappingProxyType(
    {
        ".mka": ("matroska", "flac"),
        ".m4a": ("ipod", "aac"),
        ".wav": ("wav", "pcm_s16le"),
        ".flac": ("flac", "flac"),
        ".opus": ("opus", "libopus"),
    }
)


@dataclass(frozen=True)
class Piece:
    """A keyframe-aligned piece of the source, written on its own and joined after (`--segment-seconds`).

    Times are the source stream's pts. Only frames in [start, end) are written (the reader may yield a
    frame of context on each side, for `--ofd`); the frame grid and `--timestamps zero` count from
    `origin`, the whole file's first frame, so the pieces' timestamps are those of the unsplit run.
    """

    origin: int
    start: int
    end: int | None  # None: to the end of the source

    def holds(self, pts: int) -> bool:
        return self.start <= pts and (self.end is None or pts < self.end)


@dataclass(frozen=True)
class OutputSpec:
    """One requested output. `format` None: from the extension (no extension: a folder of PNGs)."""

    path: Path
    content: str = "rgba"
    format: str | None = None
    codec_options: Mapping[str, str] = field(default_factory=dict)
    audio: bool = True
    audio_out: Path | None = None
    timestamps: str | None = None  # "source" or "zero"; None: the format's default
    #: Replace an existing output (--overwrite); otherwise an output that appears meanwhile is kept.
    replace: bool = False
    piece: Piece | None = None
    #: `--encoder`: None or "auto" (the format's own; NVENC for H.264 beside a GPU), or an encoder's name.
    encoder: str | None = None
    #: The job runs beside a GPU (TensorRT): `auto` tries the NVIDIA encoders (`encoders.GPU_ENCODERS`).
    gpu: bool = False
    #: Encoder instances for intra-only codecs (`parallel`); 1: one encoder, with its own threads.
    instances: int = 1


@dataclass(frozen=True)
class OutputPlan:
    """A validated output: everything a writer needs to know, decided before any frame is decoded."""

    path: Path
    content: str
    format: Format
    folder: bool  # a folder of PNGs rather than one file
    source_pixel_format: str
    pixel_format: str
    options: Mapping[str, str]
    width: int  # encoded size: the frame size, padded to even for 4:2:0 H.264
    height: int
    audio: bool
    audio_out: Path | None
    timestamps: str = "source"
    replace: bool = False
    piece: Piece | None = None
    codec: str = ""  # the encoder that writes it (`encoders.choose_encoder`); "": the format's own
    instances: int = 1

    @property
    def encoder(self) -> str:
        return self.codec or self.format.codec


def validate_output(spec: OutputSpec, info: VideoInfo) -> OutputPlan:
    """Check that `spec` can be written for the input `info`; raise `MattingError` naming the problem."""
    path = Path(spec.path)
    if spec.content not in CONTENTS:
        raise MattingError(f"{path}: unknown content {spec.content!r}; one of {', '.join(CONTENTS)}")
    fmt = resolve_format(spec)
    if not fmt.holds(spec.content):
        holders = ", ".join(f.name for f in FORMATS.values() if f.holds(spec.content))
        raise MattingError(f"{path}: {fmt.description} cannot hold {spec.content}; use {holders}")
    folder = _is_folder_output(path, fmt, info)
    _check_destination(path, folder, info)
    width, height = info.width, info.height
    if fmt.even_size:
        width, height = width + width % 2, height + height % 2
    pixel_format = fmt.pixel_formats[spec.content]
    codec, options = _open_encoder(spec, fmt, pixel_format, width, height, info.time_base)
    audio_out = _check_audio_out(spec, fmt, path, info)
    timestamps = spec.timestamps or fmt.timestamps
    if timestamps not in TIMESTAMPS:
        raise MattingError(f"{path}: unknown timestamps {timestamps!r}; one of {', '.join(TIMESTAMPS)}")
    return OutputPlan(
        path=path,
        content=spec.content,
        format=fmt,
        folder=folder,
        source_pixel_format=SOURCE_PIXEL_FORMATS[spec.content],
        pixel_format=pixel_format,
        options=MappingProxyType(options),
        width=width,
        height=height,
        audio=spec.audio,
        audio_out=audio_out,
        timestamps=timestamps,
        replace=spec.replace,
        piece=spec.piece,
        codec=codec,
        instances=spec.instances if intra_only(codec, options) else 1,
    )


def _open_encoder(
    spec: OutputSpec, fmt: Format, pixel_format: str, width: int, height: int, time_base: Fraction
) -> tuple[str, dict[str, str]]:
    """The encoder chosen for `spec` and its options, opened once; NVENC that does not open falls back
    to the format's CPU encoder in one line."""
    path = Path(spec.path)
    base = fmt.options[spec.content]
    choice = choose_encoder(fmt.name, fmt.codec, spec.content, base, spec.encoder, gpu=spec.gpu)
    if isinstance(choice, str):
        raise MattingError(f"{path}: {choice}")
    user = {str(k): str(v) for k, v in spec.codec_options.items()}
    options = {**choice.options, **user}
    if choice.fallback is None:
        _check_encoder(path, choice.codec, pixel_format, width, height, time_base, options)
        return choice.codec, options
    try:
        _check_encoder(path, choice.codec, pixel_format, width, height, time_base, options)
    except MattingError as exc:
        log.warning("%s; writing with %s on the CPU", exc, choice.fallback)
        options = {**base, **user}
        _check_encoder(path, choice.fallback, pixel_format, width, height, time_base, options)
        return choice.fallback, options
    log.info("%s: encoding with %s", path, choice.codec)
    return choice.codec, options


def resolve_format(spec: OutputSpec) -> Format:
    if spec.format is not None:
        if spec.format not in FORMATS:
            raise MattingError(f"{spec.path}: unknown format {spec.format!r}; one of {', '.join(FORMATS)}")
        return FORMATS[spec.format]
    suffix = Path(spec.path).suffix.lower()
    for fmt in FORMATS.values():
        if fmt.suffix == suffix:
            return fmt
    if suffix in _OTHER_MEDIA:
        names = ", ".join(f.suffix for f in FORMATS.values() if f.name != "png")
        raise MattingError(f"{spec.path}: cannot write {suffix}; use {names} or a folder (PNG images)")
    return FORMATS["png"]


def default_output_path(input: Path, content: str, format: str | None = None) -> Path:
    """`clip.mp4` -> `clip.matte.mov` (rgba), `clip.alpha.mp4`, `clip.composite.mp4`; next to the input.

    A still image gives a PNG (`photo.matte.png`), a folder of images a folder of PNGs (`frames.matte`);
    with `format` png a video gives a folder (`clip.matte`). Never the input itself: a tag is always added.
    """
    if content not in CONTENTS:
        raise MattingError(f"{input}: unknown content {content!r}; one of {', '.join(CONTENTS)}")
    if format is not None and format not in FORMATS:
        raise MattingError(f"{input}: unknown format {format!r}; one of {', '.join(FORMATS)}")
    input = Path(input)
    sequence = input.is_dir()
    still = not sequence and is_image_path(input)
    fmt = format or ("png" if still or sequence else DEFAULT_FORMATS[content])
    base = f"{input.name if sequence else input.stem}.{_TAGS[content]}"
    if fmt == "png" and not still:
        return input.parent / base
    return input.parent / f"{base}{FORMATS[fmt].suffix}"


def _is_folder_output(path: Path, fmt: Format, info: VideoInfo) -> bool:
    if fmt.name != "png":
        return False
    still = info.is_image and info.path.is_file()
    if path.suffix.lower() == ".png":
        if still:
            return False
        raise MattingError(f"{path}: a video gives a sequence of PNGs: name a folder, without .png")
    return True


def _check_destination(path: Path, folder: bool, info: VideoInfo) -> None:
    if _same_file(path, info.path):
        raise MattingError(f"{path}: is the input itself; refusing to overwrite it")
    check_parent_folder(path)
    if folder:
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise MattingError(f"{path}: exists and is not an empty folder; PNGs need a new or empty one")
    elif path.is_dir():
        raise MattingError(f"{path}: is a folder; name a file")


def check_parent_folder(path: Path) -> None:
    """The folder an output goes into exists, is a folder, and takes new files."""
    parent = path.parent
    if parent.is_dir():
        if not os.access(parent, os.W_OK | os.X_OK):
            raise MattingError(f"{path}: cannot write into {parent} (permission denied)")
        return
    # Name the part of the path that is a file: `-o notes.txt/x.mov` is a typo, not a missing folder.
    for part in (*reversed(parent.parents), parent):
        if part.exists() and not part.is_dir():
            raise MattingError(f"{path}: {part} is a file, not a folder")
    raise MattingError(f"{path}: the folder {parent} does not exist")


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _check_encoder(
    path: Path, codec: str, pixel_format: str, width: int, height: int, time_base: Fraction, options: dict
) -> None:
    """Open the encoder once with the final settings, so bad `codec_options` fail now, not mid-video."""
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = width, height, pixel_format, time_base
    ctx.options = dict(options)
    try:
        ctx.open()
    except av.FFmpegError as exc:
        raise MattingError(f"{path}: the {codec} encoder refused options {options}: {exc.strerror}") from None

    unknown = ", ".join(f"{k}={v}" for k, v in ctx.options.items())
    if unknown:
        raise MattingError(f"{path}: the {codec} encoder has no option {unknown}")


def _check_audio_out(spec: OutputSpec, fmt: Format, path: Path, info: VideoInfo) -> Path | None:
    if spec.audio_out is None:
        return None
    audio_out = Path(spec.audio_out)
    if fmt.name != "png":
        raise MattingError(f"{audio_out}: a side audio file is for PNG sequences; {path} carries the audio")
    if not spec.audio:
        raise MattingError(f"{audio_out}: a side audio file was asked for together with no audio")
    if audio_out.suffix.lower() not in AUDIO_FILES:
        known = ", ".join(AUDIO_FILES)
        raise MattingError(f"{audio_out}: cannot write audio as {audio_out.suffix!r}; use {known}")
    if _same_file(audio_out, info.path) or _same_file(audio_out, path):
        raise MattingError(f"{audio_out}: is the input or the video output itself")
    _check_destination(audio_out, False, info)
    return audio_out
