"""Load MODNet checkpoints (official DataParallel files, plain state_dicts, wrapped ones) and save them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from trt_modnet.errors import MattingError
from trt_modnet.modnet.model import MODNet

_PREFIX = "module."
_BACKBONE = "backbone."
_LR_BACKBONE = "lr_branch.backbone."
# Keys under which training scripts commonly nest the weights.
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "modnet", "net")
_SHOWN_KEYS = 5
_EASPP = "lr_branch.easpp."


def load_checkpoint(path: str | Path) -> MODNet:
    """Build a MODNet (SE block or e-ASPP, as the keys say) and load `path` into it, in eval mode."""
    state = read_state_dict(path)
    model = MODNet(lr_module=lr_module_of(state))
    apply_state_dict(model, state, path)
    return model.eval()


def lr_module_of(state: Mapping[str, torch.Tensor]) -> str:
    """The low-resolution module a (normalised) state_dict holds: "easpp", or "se" as released."""
    return "easpp" if any(k.startswith(_EASPP) for k in state) else "se"


def save_checkpoint(model: MODNet, path: str | Path, *, extra: Mapping[str, object] | None = None) -> None:
    """Write `model` in the official format: a DataParallel-style state_dict (`module.` keys).

    With `extra` (optimizer state, epoch, ...), the state_dict is wrapped as {"state_dict": ..., **extra},
    which `load_checkpoint` and the exporter also accept. Written under a temporary name, then renamed.
    """
    path = Path(path)
    state = {_PREFIX + k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload: Mapping[str, object] = state if extra is None else {"state_dict": state, **extra}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors with prefixes removed and the backbone present under both names."""
    path = Path(path)
    if not path.is_file():
        raise MattingError(f"{path}: no such checkpoint file")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the unpickler raises arbitrary types on arbitrary bytes
        raise MattingError(
            f"{path}: not a PyTorch checkpoint (torch.load: {type(exc).__name__}: {_first_line(exc)})"
        ) from None
    return _normalise(_unwrap(raw, path), path)


def apply_state_dict(model: MODNet, state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise MattingError(f"{path}: not a MODNet checkpoint: {_describe(missing, unexpected)}")
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if wrong:
        k = wrong[0]
        raise MattingError(
            f"{path}: not a MODNet checkpoint: {len(wrong)} tensors have other shapes, e.g. {k} is "
            f"{tuple(state[k].shape)}, MODNet has {tuple(expected[k].shape)}"
        )
    model.load_state_dict(state, strict=False)


def _unwrap(raw: object, path: Path) -> Mapping[str, torch.Tensor]:
    if not isinstance(raw, Mapping):
        raise MattingError(
            f"{path}: not a MODNet checkpoint (it holds a {type(raw).__name__}, not a state_dict)"
        )
    if all(isinstance(v, torch.Tensor) for v in raw.values()) and raw:
        return raw
    for key in _WRAPPER_KEYS:
        inner = raw.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner
    raise MattingError(f"{path}: not a MODNet checkpoint (no state_dict of tensors found in it)")


def _normalise(state: Mapping[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    out = {k.removeprefix(_PREFIX): v for k, v in state.items()}
    # The backbone is one module reachable under two names; a file may carry either copy or both.
    for have, want in ((_BACKBONE, _LR_BACKBONE), (_LR_BACKBONE, _BACKBONE)):
        for k in [k for k in out if k.startswith(have)]:
            twin = want + k.removeprefix(have)
            if twin not in out:
                out[twin] = out[k]
            elif not torch.equal(out[twin], out[k]):
                raise MattingError(f"{path}: the two backbone copies differ at {k}; the file is inconsistent")
    return out


def _describe(missing: list[str], unexpected: list[str]) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} keys missing ({', '.join(missing[:_SHOWN_KEYS])}{_more(missing)})")
    if unexpected:
        parts.append(
            f"{len(unexpected)} unexpected keys ({', '.join(unexpected[:_SHOWN_KEYS])}{_more(unexpected)})"
        )
    return "; ".join(parts)


def _more(keys: list[str]) -> str:
    return ", ..." if len(keys) > _SHOWN_KEYS else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
