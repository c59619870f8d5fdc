"""The end-of-batch table: file, frames, fps, output, status."""

from __future__ import annotations

import os
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

_STATUS_WIDTH = 60


@dataclass(frozen=True)
class FileResult:
    path: Path
    frames: int
    fps: float
    output: Path
    status: str  # "ok", "skipped (...)", "failed: ..." or "cancelled"
    node: str | None = None  # the Ray node that did it (--ray)
    #: The files written (outputs, then the preview); empty unless the status is "ok".
    outputs: tuple[Path, ...] = ()
    retried: tuple[str, ...] = ()  # --ray: the nodes (and errors) of the workers that died running it

    @property
    def failed(self) -> bool:
        return self.status.startswith("failed")

    @property
    def error(self) -> str | None:
        """Why the file failed (the status without "failed: "), else None."""
        return self.status.removeprefix("failed: ") if self.failed else None


def print_summary(results: list[FileResult], out: TextIO | None = None) -> None:
    """Paths relative to the outputs' common folder (named below the table), so reasons stay whole."""
    out = out or sys.stdout  # looked up now: the caller may have redirected it
    nodes = any(r.node is not None for r in results)
    outputs = [os.path.abspath(r.output) for r in results]
    common = os.path.commonpath(outputs) if outputs else ""
    if len(outputs) == 1 or os.path.isfile(common):
        common = os.path.dirname(common)
    inputs = _relative([os.path.abspath(r.path) for r in results])
    rows = [("file", "frames", "fps", "output", *(("node",) if nodes else ()), "status")]
    for r, name, output in zip(results, inputs, outputs, strict=True):
        shown = os.path.relpath(output, common) if common else output
        node = (r.node or "",) if nodes else ()
        status = r.status.replace(f"{r.path}: ", "", 1)  # the file column names it already
        rows.append((name, str(r.frames), f"{r.fps:.2f}", shown, *node, status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for n, row in enumerate(rows):
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
        indent = " " * (sum(widths) + 2 * len(widths))
        status = textwrap.wrap(row[-1], _STATUS_WIDTH, break_long_words=False, break_on_hyphens=False) or [""]
        print("  ".join([*cells, status[0]]).rstrip(), file=out)
        for line in status[1:]:
            print(indent + line, file=out)
        if n == 0:
            print("  ".join("-" * w for w in [*widths, 6]), file=out)
    if common and common != os.getcwd():
        print(f"outputs in {common}", file=out)
    for r, name in zip(results, inputs, strict=True):
        if r.retried:
            where = f"finished on {r.node}" if not r.failed else "gave up"
            print(f"retried {name}: worker lost on {', '.join(r.retried)}; {where}", file=out)
    failed = sum(r.failed for r in results)
    done = sum(r.status == "ok" for r in results)
    print(f"{done} done, {failed} failed, {len(results) - done - failed} skipped", file=out)


def _relative(paths: list[str]) -> list[str]:
    """Paths below their common folder: `a/clip.mp4`, `b/clip.mp4` (just the names when in one folder)."""
    if len(paths) < 2:
        return [os.path.basename(p) for p in paths]
    common = os.path.commonpath([os.path.dirname(p) for p in paths])
    return [os.path.relpath(p, common) for p in paths]
