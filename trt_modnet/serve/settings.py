"""The server's options: one frozen dataclass, built by `__main__` from the command line."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from trt_modnet.errors import MattingError

DEFAULT_PORT = 8700
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass(frozen=True)
class ServeSettings:
    jobs: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    model: str | None = None
    backend: str = "auto"
    precision: str = "auto"
    ref_size: int = 512
    #: None: no authentication (only allowed on a loopback host).
    token: str | None = None
    token_generated: bool = False
    max_upload: int = 4 << 30
    max_queue: int = 100
    allow_dirs: tuple[Path, ...] = ()
    #: Form fields other than files: how many, and how long each may be (a door stays bounded).
    max_fields: int = 32
    max_field_bytes: int = 4096
    max_files: int = 32


def parse_size(text: str) -> int:
    """`4G`, `500M`, `1.5GiB`, `1024` -> bytes."""
    match = _SIZE.match(text)
    if not match:
        raise MattingError(f"not a size: {text!r} (bytes, or a number with K, M, G or T)")
    return int(float(match[1]) * _UNITS[match[2].upper()])


def default_jobs_folder() -> Path:
    from trt_modnet.models.cache import HOME_ENV

    home = os.environ.get(HOME_ENV)
    base = Path(home) if home else Path.home() / ".cache" / "trt_modnet"
    return base / "serve"
