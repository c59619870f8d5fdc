"""What the main job reads: files, folders and globs expanded to a list of media files."""

from __future__ import annotations

import glob
import re
from collections.abc import Sequence
from pathlib import Path

from trt_modnet.errors import MattingError
from trt_modnet.video import IMAGE_SUFFIXES

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mxf", ".mts", ".m2ts", ".ts", ".wmv", ".flv", ".mpg"}
)
# Our own default outputs (clip.matte.mov, clip.alpha.mp4, ...): a second run over a folder must not
# matte its own results.
_OUR_OUTPUT = re.compile(r".*\.(matte|alpha|composite|preview)$")


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def is_media(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES


def collect_inputs(args: Sequence[str], *, recursive: bool = False) -> list[Path]:
    """Files as given; folders and globs expanded to the media files inside, in name order, once each."""
    found: list[Path] = []
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            found.extend(_scan(path, recursive))
        elif path.exists():
            found.append(path)
        elif glob.has_magic(arg):
            matches = sorted(Path(p) for p in glob.glob(arg, recursive=recursive))
            media = [p for p in matches if p.is_file() and is_media(p) and not _is_ours(p)]
            if not media:
                raise MattingError(f"{arg}: the pattern matches no video or image files")
            found.extend(media)
        else:
            raise MattingError(f"{arg}: no such file or folder")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise MattingError(f"{', '.join(args)}: no video or image files found")
    return unique


def _scan(folder: Path, recursive: bool) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    media = sorted(p for p in folder.glob(pattern) if p.is_file() and is_media(p) and not _is_ours(p))
    if not media:
        hint = "" if recursive else " (use --recursive to look in subfolders)"
        raise MattingError(f"{folder}: the folder holds no video or image files{hint}")
    return media


def _is_ours(path: Path) -> bool:
    # PNG-sequence outputs are folders named like clip.matte/ holding plain frame names.
    return _OUR_OUTPUT.match(path.stem) is not None or _OUR_OUTPUT.match(path.parent.name) is not None
