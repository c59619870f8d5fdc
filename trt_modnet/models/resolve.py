"""`--model TEXT` -> a MODNet ONNX path: a registered name, a .onnx, a .ckpt, or a URL with #sha256=."""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from pathlib import Path

from trt_modnet.errors import MattingError
from trt_modnet.graph.modelfile import HOW_TO_GET_A_MODEL
from trt_modnet.models.cache import models_dir, writable_dir
from trt_modnet.models.convert import onnx_from_checkpoint
from trt_modnet.models.download import DownloadSettings, fetch, mirror_urls
from trt_modnet.models.registry import DEFAULT_MODEL, MODELS, Pin, RegisteredModel

MODEL_ENV = "TRT_MODNET_MODEL"
_CHECKPOINT_SUFFIXES = (".ckpt", ".pth", ".pt")
_FRAGMENT_ALGOS = ("sha256", "sha384", "sha512")
_DEFAULTS = DownloadSettings()


def resolve_model(text: str | Path | None, settings: DownloadSettings = _DEFAULTS) -> Path:
    """The ONNX for `text` (else `$TRT_MODNET_MODEL`, else the `photographic` model), fetched if needed."""
    text = str(text) if text else os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    if text in MODELS:
        return _as_onnx(fetch_registered(MODELS[text], settings))
    if "://" in text:
        return _as_onnx(fetch_url(text, settings))
    path = Path(text).expanduser()
    if path.is_dir():
        raise MattingError(f"{path}: is a folder; --model takes a .onnx or .ckpt file, a name or a URL")
    if path.suffix.lower() in _CHECKPOINT_SUFFIXES:
        if not path.is_file():
            raise MattingError(f"{path}: no such checkpoint file; {HOW_TO_GET_A_MODEL}")
        return onnx_from_checkpoint(path)
    if path.suffix.lower() == ".onnx" or path.is_file():
        return path  # read only once the backend is chosen, so a bad choice is said first
    raise MattingError(
        f"{text}: not a model name ({', '.join(MODELS)}), a URL, or an existing .onnx or .ckpt file"
    )


def fetch_registered(model: RegisteredModel, settings: DownloadSettings = _DEFAULTS) -> Path:
    dest = writable_dir(models_dir()) / model.filename
    return fetch([*mirror_urls(model.filename), *model.urls], dest, model.pin, settings)


def fetch_url(text: str, settings: DownloadSettings = _DEFAULTS) -> Path:
    """A URL's file in the cache, under a folder named for the URL (and its digest, when given)."""
    url, _, fragment = text.partition("#")
    pin = _pin_of(fragment, text)
    filename = Path(urllib.parse.urlparse(url).path).name or "model.onnx"
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    dest = writable_dir(models_dir() / "url" / key) / filename
    # A mirror copy is only trusted when the URL pins what it must be.
    return fetch([*(mirror_urls(filename) if pin else []), url], dest, pin, settings)


def _pin_of(fragment: str, text: str) -> Pin | None:
    if not fragment:
        return None
    algo, _, hexdigest = fragment.partition("=")
    if algo not in _FRAGMENT_ALGOS or not hexdigest or hexdigest.strip("0123456789abcdefABCDEF"):
        raise MattingError(f"{text}: the URL fragment must be #sha256=HEX or #sha384=HEX, not #{fragment}")
    if len(hexdigest) != hashlib.new(algo).digest_size * 2:
        raise MattingError(f"{text}: a {algo} digest has {hashlib.new(algo).digest_size * 2} hex digits")
    return Pin(algo, hexdigest.lower())


def _as_onnx(path: Path) -> Path:
    return onnx_from_checkpoint(path) if path.suffix.lower() in _CHECKPOINT_SUFFIXES else path
