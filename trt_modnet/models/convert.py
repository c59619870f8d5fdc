"""A MODNet checkpoint -> its ONNX in the cache, keyed by the checkpoint's sha256, without PyTorch."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from trt_modnet.errors import MattingError
from trt_modnet.graph.modelfile import INPUT_NAME
from trt_modnet.models.cache import file_digest, locked, models_dir
from trt_modnet.models.emit import ShapeMismatch, build_modnet_onnx
from trt_modnet.models.torchfile import read_tensors

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "modnet", "net")
# The smallest input MODNet takes (a multiple of 32), enough to check that every tensor fits.
_PROBE = 32
_TORCH_HINT = (
    "export it with the torch extra: pip install 'trt_modnet[torch]', then "
    "`python -m trt_modnet.export CKPT -o model.onnx`"
)


def onnx_from_checkpoint(ckpt: Path) -> Path:
    """The cached ONNX of `ckpt`, converted (once) if it is not cached yet."""
    out = models_dir() / "onnx" / f"{file_digest(ckpt, 'sha256')}.onnx"
    with locked(out):
        if out.is_file():
            return out
        model = checkpoint_to_model(ckpt)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            onnx.save(model, str(tmp))
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return out


def checkpoint_to_model(ckpt: Path) -> onnx.ModelProto:
    state = modnet_state(read_tensors(ckpt), ckpt)
    try:
        model = build_modnet_onnx(state)
    except KeyError as exc:
        raise MattingError(f"{ckpt}: not a MODNet checkpoint (no tensor {exc.args[0]})") from None
    except ShapeMismatch as exc:
        raise MattingError(f"{ckpt}: not a MODNet checkpoint ({exc})") from None
    _check_runs(model, ckpt)
    return model


def _check_runs(model: onnx.ModelProto, ckpt: Path) -> None:
    """Run the graph once on a small input: tensors of the wrong shapes fail here, with one clear line."""
    try:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        (matte,) = session.run(None, {INPUT_NAME: np.zeros((1, 3, _PROBE, _PROBE), np.float32)})
    except Exception as exc:  # ONNX Runtime raises its own exception types
        first = str(exc).strip().splitlines()[0][:200]
        raise MattingError(
            f"{ckpt}: not a MODNet checkpoint (its tensors do not fit MODNet: {first})"
        ) from None
    if matte.shape != (1, 1, _PROBE, _PROBE) or not np.isfinite(matte).all():
        raise MattingError(
            f"{ckpt}: not a usable MODNet checkpoint (its matte is {matte.shape}, or not finite)"
        )


def modnet_state(raw: object, path: Path) -> dict[str, np.ndarray]:
    """The state_dict unwrapped, `module.` removed, the backbone under `backbone.` (as the graph reads it)."""
    state = _unwrap(raw, path)
    # The graph is FP32 (precision is a recipe applied to it later), so half or double weights widen.
    out = {k.removeprefix("module."): _widened(v) for k, v in state.items()}
    if any(k.startswith("lr_branch.easpp.") for k in out):
        raise MattingError(f"{path}: an e-ASPP MODNet, which is only converted with PyTorch; {_TORCH_HINT}")
    for k in [k for k in out if k.startswith("lr_branch.backbone.")]:
        out.setdefault("backbone." + k.removeprefix("lr_branch.backbone."), out[k])
    return out


def _widened(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float32) if array.dtype.kind == "f" and array.dtype != np.float32 else array


def _unwrap(raw: object, path: Path) -> Mapping[str, np.ndarray]:
    if isinstance(raw, Mapping):
        for candidate in (raw, *(raw.get(k) for k in _WRAPPER_KEYS)):
            if isinstance(candidate, Mapping) and candidate and _all_arrays(candidate):
                return candidate
    raise MattingError(f"{path}: not a MODNet checkpoint (no state_dict of tensors found in it)")


def _all_arrays(candidate: Mapping[object, object]) -> bool:
    return all(isinstance(v, np.ndarray) for v in candidate.values())
