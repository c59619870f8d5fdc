"""The device check's report: one guarded step a line, figures as JSON in $OUT/device_check.json."""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MIB = 1 << 20


class Skip(Exception):
    """A step that cannot run here (e.g. CuPy missing); not a failure."""


class Report:
    def __init__(self) -> None:
        self.steps: dict[str, dict[str, Any]] = {}
        self.failed = 0

    def step(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            figures, status = fn(), "ok"
        except Skip as exc:
            figures, status = {"reason": str(exc)}, "skipped"
        except Exception as exc:  # every step is guarded: report it, go on with the next
            figures, status = {"error": f"{type(exc).__name__}: {exc}"}, "FAIL"
            self.failed += 1
            traceback.print_exc(limit=4, file=sys.stdout)
        seconds = time.perf_counter() - started
        shown = "  ".join(f"{k}={_fmt(v)}" for k, v in figures.items())
        print(f"{status:7s} {name:22s} {shown}  [{seconds:.1f} s]", flush=True)
        self.steps[name] = {"status": status, "seconds": round(seconds, 2), **figures}
        return figures

    def save(self) -> None:
        out = os.environ.get("OUT")
        if out:
            path = Path(out) / "device_check.json"
            path.write_text(json.dumps({"failed": self.failed, "steps": self.steps}, indent=2, default=str))
            print(f"figures written to {path}")


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def versions() -> dict[str, Any]:
    found: dict[str, Any] = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("cuda.bindings", "cupy", "torch", "tensorrt", "av"):
        try:
            found[name] = importlib.import_module(name).__version__
        except Exception as exc:  # absent or broken: say which
            found[name] = f"absent ({type(exc).__name__})"
    return found


def need_cupy() -> Any:
    """CuPy, for the steps whose stand-in work is a kernel; without it they are skipped."""
    try:
        import cupy
    except ImportError as exc:
        raise Skip(f"CuPy is not installed ({exc})") from None
    return cupy
