"""Write under a temporary name next to the destination; rename into place only when complete.

The temporary name is hidden (`.clip.matte.mov.1a2b3c4d.part`) and in the destination folder, so the
final rename is atomic (same file system) and a crash leaves only an obviously partial file behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from trt_modnet.errors import MattingError


class Staging:
    """A temporary file or folder for `final`; `commit()` renames it into place, `discard()` removes it.

    Both are idempotent, and `discard()` after `commit()` leaves the committed output alone.
    """

    def __init__(self, final: Path, *, folder: bool = False) -> None:
        self.final = final
        self.folder = folder
        self.temp = final.parent / f".{final.name}.{secrets.token_hex(4)}.part"
        self.done = False
        if folder:
            try:
                self.temp.mkdir()
            except OSError as exc:
                raise MattingError(f"{final}: cannot create a folder there: {exc.strerror}") from None

    def commit(self) -> None:
        if self.done:
            return
        try:
            # rename() replaces a file and an empty folder alike; a folder that filled up meanwhile fails.
            os.replace(self.temp, self.final)
        except OSError as exc:
            raise MattingError(f"{self.final}: cannot move the output into place: {exc.strerror}") from None
        self.done = True

    def discard(self) -> None:
        if self.done:
            return
        self.done = True
        if self.folder:
            if self.temp.exists():
                shutil.rmtree(self.temp)
        else:
            self.temp.unlink(missing_ok=True)
