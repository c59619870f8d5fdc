"""Where models live: `$TRT_MODNET_HOME/models` (default ~/.cache/trt_modnet/models), and its lock."""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trt_modnet.errors import MattingError

HOME_ENV = "TRT_MODNET_HOME"
_CHUNK = 1 << 20


def models_dir() -> Path:
    home = os.environ.get(HOME_ENV)
    base = Path(home) if home else Path.home() / ".cache" / "trt_modnet"
    return base / "models"


def writable_dir(path: Path) -> Path:
    """`path`, created if needed; a clear error when it cannot be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MattingError(
            f"{path}: cannot create the model cache folder ({exc.strerror}); {_HINT}"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise MattingError(f"{path}: the model cache folder is not writable; {_HINT}")
    return path


_HINT = f"set {HOME_ENV} to a writable folder"


@contextmanager
def locked(target: Path) -> Iterator[None]:
    """Exclusive lock for writing `target`, so that two processes never write one file at once."""
    lock = writable_dir(target.parent) / f".{target.name}.lock"
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()
