"""Write under a temporary name next to the destination; move into place only when complete.

The temporary name is hidden and carries the writing process's id (`.clip.matte.mov.4242-1a2b3c4d.part`),
in the destination folder so that the final move stays on one file system. A process killed outright
(SIGKILL, power loss) leaves its `.part` behind; `remove_stale` deletes those whose process is gone.

Moving into place never replaces an output that appeared meanwhile (another run finishing first) unless
`replace` is set: a file is hard-linked to its final name, which fails atomically when the name exists
(Linux, macOS), then the temporary name is removed. Where the file system has no hard links, and for
folders (PNG sequences), the name is checked just before `rename()`: not atomic, a run finishing in the
same instant can still be replaced.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import shutil
from pathlib import Path

from trt_modnet.errors import MattingError

log = logging.getLogger("trt_modnet")

_PART = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.part$")


class Staging:
    """A temporary file or folder for `final`; `commit()` moves it into place, `discard()` removes it.

    Both are idempotent, and `discard()` after `commit()` leaves the committed output alone.
    """

    def __init__(self, final: Path, *, folder: bool = False, replace: bool = False) -> None:
        self.final = final
        self.folder = folder
        self.replace = replace
        self.temp = final.parent / f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.part"
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
            self._move()
        except FileExistsError:
            raise MattingError(
                f"{self.final}: appeared while this run was writing it (another run?); kept it, "
                "--overwrite replaces it"
            ) from None
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

    def _move(self) -> None:
        if self.replace:
            os.replace(self.temp, self.final)  # replaces a file and an empty folder alike
            return
        if not self.folder:
            try:
                os.link(self.temp, self.final)
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
            else:
                self.temp.unlink()
                return
        if os.path.lexists(self.final):
            raise FileExistsError(errno.EEXIST, "exists", str(self.final))
        os.rename(self.temp, self.final)


def remove_stale(folders: set[Path]) -> None:
    """Remove our temporary outputs in `folders` whose writing process no longer runs; one line each."""
    for folder in sorted(folders):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        stale = [n for n in names if (m := _PART.match(n)) and not _alive(int(m["pid"]))]
        for name in stale:
            path = folder / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if stale:
            log.info("%s: removed %d partial output(s) left by an interrupted run", folder, len(stale))


def remove_partial(final: Path) -> None:
    """Remove temporary outputs for `final` left by a worker that died or was killed: `.NAME.xxxx.part`,
    and `..NAME.xxxx.part.yyyy.part`, what a worker was writing of a piece (--segment-seconds)."""
    temps = [*final.parent.glob(f".{final.name}.*.part"), *final.parent.glob(f"..{final.name}.*.part")]
    for temp in temps:
        if temp.is_dir():
            shutil.rmtree(temp, ignore_errors=True)
        else:
            temp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
