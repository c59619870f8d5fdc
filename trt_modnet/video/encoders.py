"""Which encoder writes an output: the format's own, one the user names (`--encoder`), or NVENC.

Each format has its default encoder (`formats.FORMATS`) and a few alternatives with the options that
give them the same kind of output. ProRes stays on `prores_ks` by default: `prores_aw` writes the same
`ap4h` stream (vendor, colour tags, 16-bit alpha flag, exact alpha after decode) 3.5x faster, but its
colour planes are 6.8 dB further from the source (PSNR 46.6 against 53.4 dB, 720p; docs/encoders.md).

`auto` takes NVENC for the H.264 outputs (composites, matte previews) when the job runs beside a GPU
(`gpu=True`); when NVENC does not open (no driver, no GPU, no free session) the job says so in one line
and writes with the format's own CPU encoder, with the same timing, tags and audio.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

log = logging.getLogger("trt_modnet")

AUTO = "auto"

#: NVENC at constant quality, the counterpart of libx264's crf 18 / veryfast (p4: NVENC's middle preset).
_NVENC = MappingProxyType({"preset": "p4", "rc": "vbr", "cq": "19", "b": "0"})

#: Per format: encoder -> options per content (None: the format's own options, the same option names).
ALTERNATIVES: Mapping[str, Mapping[str, Mapping[str, Mapping[str, str]] | None]] = MappingProxyType(
    {
        # prores_aw knows no profile names: the profile follows the pixel format (4444 with alpha),
        # 3 is 422 HQ.
        "mov": MappingProxyType(
            {
                "prores_ks": None,
                "prores_aw": MappingProxyType(
                    {
                        "rgba": MappingProxyType({"vendor": "apl0"}),
                        "composite": MappingProxyType({"profile": "3", "vendor": "apl0"}),
                        "alpha": MappingProxyType({"profile": "3", "vendor": "apl0"}),
                    }
                ),
            }
        ),
        "mp4": MappingProxyType(
            {
                "libx264": None,
                "h264_nvenc": MappingProxyType({c: _NVENC for c in ("composite", "alpha")}),
                "hevc_nvenc": MappingProxyType({c: _NVENC for c in ("composite", "alpha")}),
            }
        ),
        "webm": MappingProxyType({"libvpx-vp9": None}),
        "png": MappingProxyType({"png": None}),
        "mkv": MappingProxyType({"ffv1": None}),
    }
)

#: What `auto` tries first beside a GPU, per format.
GPU_ENCODERS = MappingProxyType({"mp4": "h264_nvenc"})


@dataclass(frozen=True)
class EncoderChoice:
    """The encoder to try, its options, and the CPU encoder to fall back to if it does not open."""

    codec: str
    options: Mapping[str, str]
    fallback: str | None = None  # None: no fallback, a failure to open is the user's error


def encoder_names(format_name: str) -> tuple[str, ...]:
    return tuple(ALTERNATIVES.get(format_name, {}))


def choose_encoder(
    format_name: str,
    default_codec: str,
    content: str,
    default_options: Mapping[str, str],
    requested: str | None,
    *,
    gpu: bool,
) -> EncoderChoice | str:
    """The encoder for one output, or a message saying why `requested` cannot write this format."""
    alternatives = ALTERNATIVES.get(format_name, {default_codec: None})
    name = requested or AUTO
    if name == AUTO:
        name = GPU_ENCODERS.get(format_name, default_codec) if gpu else default_codec
        fallback = default_codec if name != default_codec else None
    else:
        fallback = None
    if name not in alternatives:
        return f"the {format_name} format is written by {', '.join(alternatives)}, not {name!r}"
    options = alternatives[name]
    chosen = default_options if options is None else options.get(content, {})
    return EncoderChoice(name, MappingProxyType(dict(chosen)), fallback)
