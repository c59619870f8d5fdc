"""The machine a benchmark ran on, recorded in every result: the command, CPU model and SIMD flags, GPUs,
load average and library versions."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import onnxruntime as ort

from trt_modnet.graph.gate import cpu_class


def command() -> list[str]:
    """The exact command line this process was started with."""
    return list(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))


def system_info() -> dict[str, Any]:
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "cpu": cpu_model(),
        # Vendor, family and model: the family tells Zen 4 (25) from Zen 5 (26), which share a model name.
        "cpu_class": cpu_class(),
        "cpu_flags": cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(affinity(0)) if affinity else os.cpu_count(),
        "gpu": gpus(),
        "platform": platform.platform(),
    }


def load_average() -> list[float] | None:
    """A busy machine makes every figure meaningless: the JSON keeps the evidence."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The SIMD features that decide the CPU figures (AVX-512, VNNI, bf16, AMX), from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "f16c", "sse4")))
    except OSError:
        pass
    return []


def gpus() -> list[str]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    query = [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return [f"nvidia-smi failed: {exc}"]
    return [line.strip() for line in out.splitlines() if line.strip()]


def versions() -> dict[str, str | None]:
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "av": av.__version__,
        "ffmpeg": getattr(av, "ffmpeg_version_info", None),
        "opencv": cv2.__version__,
        "tensorrt": tensorrt_version(),
    }


def tensorrt_version() -> str | None:
    try:
        import tensorrt  # optional: only on GPU machines
    except (ImportError, OSError):  # OSError: the bindings wheel without its libraries
        return None
    return str(tensorrt.__version__)
