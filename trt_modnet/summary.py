"""The end-of-batch table: file, frames, fps, output, status."""

from __future__ import annotations

import sys
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
    status: str  # "ok", "skipped (...)" or "failed: ..."
    node: str | None = None  # the Ray node that did it (--ray)

    @property
    def failed(self) -> bool:
        return self.status.startswith("failed")


def print_summary(results: list[FileResult], out: TextIO | None = None) -> None:
    out = out or sys.stdout  # looked up now: the caller may have redirected it
    nodes = any(r.node is not None for r in results)
    rows = [("file", "frames", "fps", "output", "status", *(("node",) if nodes else ()))]
    for r in results:
        status = r.status if len(r.status) <= _STATUS_WIDTH else r.status[: _STATUS_WIDTH - 3] + "..."
        node = (r.node or "",) if nodes else ()
        rows.append((r.path.name, str(r.frames), f"{r.fps:.2f}", str(r.output), status, *node))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)
    failed = sum(r.failed for r in results)
    done = sum(r.status == "ok" for r in results)
    print(f"{done} done, {failed} failed, {len(results) - done - failed} skipped", file=out)
