"""Every TensorRT and cuda-bindings name our code uses exists in the real bindings; no removed name is used.

TensorRT cannot be installed here (FACTS.md), so the TensorRT check reads the real bindings wheels without
importing them: pybind11 keeps every bound name as a C string in the extension module, so a name is bound iff
`name\\0` occurs in `tensorrt.so` (the linker may store it as the tail of a longer string, hence "occurs", not
"is a whole string"), or the package's `__init__.py` defines it. The names we use are collected from our
source: every attribute and keyword that nothing else explains (Python, numpy, onnx, the standard library,
our own definitions) must be TensorRT's.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.conftest import REPO

#: The modules that talk to TensorRT.
TRT_SOURCES = (REPO / "trt_modnet" / "tensorrt" / "engine.py", REPO / "trt_modnet" / "tensorrt" / "runner.py")
CUDA_SOURCE = REPO / "trt_modnet" / "tensorrt" / "cuda.py"
#: The newest TensorRT and the oldest we support, as their 1.2 MB bindings-only wheels.
WHEELS = {
    "11.4": "tensorrt-cu13-bindings==11.4.0.106",
    "10.12": "tensorrt-cu12-bindings==10.12.0.36",
}
#: FACTS.md: gone in TensorRT 11 (weak typing) and already in 10.0.
REMOVED_IN_11 = {
    "FP16", "INT8", "BF16", "FP8", "INT4", "FP4", "OBEY_PRECISION_CONSTRAINTS",
    "PREFER_PRECISION_CONSTRAINTS", "precision", "set_output_type", "EXPLICIT_BATCH",
    "platform_has_fast_fp16", "device_memory_size",
}  # fmt: skip
REMOVED_IN_10 = {
    "execute_async_v2", "execute_async", "get_binding_shape", "get_binding_name", "get_binding_index",
    "binding_is_input", "num_bindings", "build_engine", "max_workspace_size",
}  # fmt: skip
#: Calls the runner and the builder cannot work without: the collector must find every one of them.
CORE = {
    "execute_async_v3", "set_input_shape", "set_tensor_address", "get_tensor_shape",
    "deserialize_cuda_engine", "build_serialized_network", "create_network", "STRONGLY_TYPED",
    "set_memory_pool_limit", "set_shape", "add_optimization_profile", "create_timing_cache",
    "set_timing_cache", "num_io_tensors", "parse", "builder_optimization_level", "Logger", "WARNING",
    "ignore_mismatch",
}  # fmt: skip


@pytest.fixture(scope="module")
def bindings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, set[str]]]:
    """version -> (tensorrt.so bytes, names defined by the package's __init__.py)."""
    folder = tmp_path_factory.mktemp("wheels")
    found = {}
    for version, requirement in WHEELS.items():
        wheel = _download(requirement, folder / version)
        with zipfile.ZipFile(wheel) as z:
            so = next(n for n in z.namelist() if re.fullmatch(r"tensorrt[^/]*/tensorrt[^/]*\.so", n))
            init = so.rsplit("/", 1)[0] + "/__init__.py"
            found[version] = (z.read(so), _defined_names(ast.parse(z.read(init))))
    return found


def _download(requirement: str, folder: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "-q",
        "-d",
        str(folder),
    ]
    try:
        subprocess.run([*cmd, requirement], check=True, capture_output=True, text=True, timeout=180)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = (getattr(exc, "stderr", "") or "").strip().splitlines()[-1:]
        pytest.skip(f"cannot download {requirement} from PyPI (network?): {detail or exc}")
    return next(folder.glob("*.whl"))


def _defined_names(tree: ast.AST) -> set[str]:
    """Functions, classes, methods, assigned names and attributes, dataclass fields, parameters."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _is_self(node.value):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def _is_self(node: ast.AST) -> bool:
    """Attributes stored on anything else (`config.builder_optimization_level = 3`) are not our names."""
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


def _own_names() -> set[str]:
    files = [*(REPO / "trt_modnet").rglob("*.py"), REPO / "build_engine.py"]
    return set().union(*(_defined_names(ast.parse(f.read_text())) for f in files))


def _library_names() -> set[str]:
    """Attributes that Python, numpy, onnx and the standard library modules we use define."""
    import av
    import cv2

    objects = [
        builtins, str, bytes, dict, list, tuple, set, int, float, object, type, Exception, Path, np,
        np.ndarray, np.dtype, np.ctypeslib, json, hashlib, hashlib.sha256(), os, re, time, logging,
        logging.Logger, argparse, argparse.ArgumentParser, argparse.Namespace, contextlib.ExitStack,
        dataclasses, onnx, onnx.ModelProto(), onnx.GraphProto(), onnx.NodeProto(), cv2, av,
    ]  # fmt: skip
    return {name for obj in objects for name in dir(obj)}


def _chains_from(tree: ast.AST, root: str) -> list[list[str]]:
    """Every attribute chain `root.a.b` (or `x.root.a.b`) in `tree`, as ["a", "b"]."""
    chains = []
    for node in ast.walk(tree):
        parts = []
        while isinstance(node, ast.Attribute) and node.attr != root:
            parts.append(node.attr)
            node = node.value
        rooted = (isinstance(node, ast.Name) and node.id == root) or isinstance(node, ast.Attribute)
        if rooted and parts:
            chains.append(list(reversed(parts)))
    return chains


def _used(tree: ast.AST) -> tuple[set[str], dict[str, set[str]]]:
    """Attribute names read in `tree`, and the keyword names passed to each called attribute."""
    attributes, keywords = set(), {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            attributes.add(node.attr)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            keywords.setdefault(node.func.attr, set()).update(k.arg for k in node.keywords if k.arg)
    return attributes, keywords


@pytest.fixture(scope="module")
def tensorrt_names() -> set[str]:
    """The TensorRT attributes and keywords our TensorRT modules use: everything on `trt.`, and everything
    else that nothing else explains (methods and properties of builders, networks, engines, contexts)."""
    explained = _library_names() | _own_names() | _cudart_names()
    names: set[str] = set()
    for path in TRT_SOURCES:
        tree = ast.parse(path.read_text())
        attributes, keywords = _used(tree)
        unexplained = attributes - explained
        names |= unexplained | {part for chain in _chains_from(tree, "trt") for part in chain}
        names |= {k for attr in unexplained for k in keywords.get(attr, ())}
    return names


def _cudart_names() -> set[str]:
    cudart = pytest.importorskip("cuda.bindings.runtime", reason="cuda-bindings is not installed")
    return set(dir(cudart))


def _bound(name: str, so: bytes, init_names: set[str]) -> bool:
    return name.encode() + b"\0" in so or name in init_names


def test_the_collector_finds_every_core_call(tensorrt_names: set[str]) -> None:
    assert not CORE - tensorrt_names


@pytest.mark.parametrize("version", WHEELS)
def test_every_tensorrt_name_we_use_exists(version: str, bindings: dict, tensorrt_names: set[str]) -> None:
    so, init_names = bindings[version]
    missing = sorted(n for n in tensorrt_names if not _bound(n, so, init_names))
    assert not missing, f"not in the TensorRT {version} bindings: {missing}"


def test_the_check_can_fail(bindings: dict) -> None:
    """Negative control: names TensorRT 11 removed are absent from its module, so a use would be caught."""
    so, init_names = bindings["11.4"]
    # BF16, INT8... live on as DataType members; only their BuilderFlag twins went.
    gone = (REMOVED_IN_11 | REMOVED_IN_10) - {"BF16", "FP8", "INT8", "INT4", "FP4", "execute_async"}
    present = sorted(n for n in gone if _bound(n, so, init_names))
    assert not present, f"the string check does not tell these apart: {present}"
    assert _bound("BuilderFlag", so, init_names) and not _bound("NoSuchTensorRTName", so, init_names)


def test_no_removed_tensorrt_name_is_used() -> None:
    # The TensorRT package and the builder CLI: the rest of trt_modnet reaches TensorRT only through the
    # package (runtime/select.py has its own `precision` setting, unrelated to TensorRT's removed one).
    sources = [*(REPO / "trt_modnet" / "tensorrt").glob("*.py"), REPO / "build_engine.py"]
    used = set()
    for path in sources:
        tree = ast.parse(path.read_text())
        used |= _used(tree)[0]
        used |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert not used & (REMOVED_IN_11 | REMOVED_IN_10)


def test_every_cuda_bindings_name_we_use_exists() -> None:
    """Resolve every `cudart.a.b` chain in cuda.py in the installed cuda-bindings (it imports anywhere)."""
    cudart = pytest.importorskip("cuda.bindings.runtime", reason="cuda-bindings is not installed")

    chains = _chains_from(ast.parse(CUDA_SOURCE.read_text()), "cudart")
    assert {"cudaMemcpyAsync", "cudaHostAlloc", "cudaEventRecord", "cudaStreamWaitEvent"} <= {
        c[0] for c in chains
    }
    missing = []
    for chain in chains:
        obj = cudart
        for part in chain:
            if not hasattr(obj, part):
                missing.append(".".join(chain))
                break
            obj = getattr(obj, part)
    assert not missing, f"not in cuda-bindings {_cuda_bindings_version()}: {sorted(set(missing))}"


def _cuda_bindings_version() -> str:
    import cuda.bindings

    return str(cuda.bindings.__version__)
