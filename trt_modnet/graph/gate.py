"""The precision gate: at a model's first use on a CPU, measure which recipe keeps this model's matte.

A recipe's drift depends on the weights (their activation ranges), so no verdict measured on one model
holds for another. With `--precision auto` on OpenVINO, the gate runs the model's deployment graph in
FP32 and in each lower-precision recipe this CPU can run, fastest first (`precision.RECIPES`; INT8 ones,
quantised by NNCF on the same frames, only with the `[int8]` extra installed), on the
calibration frames shipped in the package (`trt_modnet/graph/calibration/`: six 256x256 crops of public-domain
portraits: faces, hair, a hand, busy backgrounds), and takes the first that keeps mean <= 0.5/255 and
p99 <= 3/255 on every frame; none: FP32. The verdict is cached beside the converted models,
`$TRT_MODNET_HOME/models/onnx/<sha256 of the ONNX>.precision.json`, under a key of the model digest, the
recipe and gate versions, the OpenVINO and NNCF versions, the CPU class and the reference size: a
change of any reruns it. A picked INT8 recipe's quantised stages are cached beside it (`graph.int8`).
`python -m trt_modnet.models verify --precision` reruns it by hand.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx

from trt_modnet.errors import MattingError
from trt_modnet.graph import int8
from trt_modnet.graph.gate_files import GATE_VERSION, calibration_frames, verdict_path
from trt_modnet.graph.precision import LOW, RECIPE_VERSION, RECIPES, Drift, unavailable_reason
from trt_modnet.models.cache import file_digest, locked, writable_dir

#: The INT8 recipes the gate tries (with NNCF installed), first: each costs a quantisation (seconds), so
#: only the one that would gain most. `int8-head` drifted as far on every model measured and is slower;
#: `int8-tail`, the one within the bounds on a stand-in, is no faster than FP32 (docs/cpu.md).
INT8_CANDIDATES = ("int8",)
#: /proc/cpuinfo flags that change what a recipe computes or how fast (bf16, VNNI, AMX, vector width).
_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8", "amx_tile")


@dataclass(frozen=True)
class Verdict:
    recipe: str
    #: Drift per recipe measured, fastest first (the gate stops at the first within the bounds).
    drift: dict[str, Drift]
    frames: int
    #: What the measurement cost, when it ran (not when read from the cache).
    seconds: float
    cached: bool = False
    #: Why some recipes were not candidates (INT8 without NNCF), for the line.
    note: str = ""

    def line(self) -> str:
        """The verdict for the backend line."""
        tried = ", ".join(
            f"{name} {d.mean:.2f}/{d.p99:g}" + ("" if d.within_default_bounds() else " (over)")
            for name, d in self.drift.items()
        )
        how = "cached verdict" if self.cached else f"measured in {self.seconds:.1f} s"
        note = f"; {self.note}" if self.note else ""
        return (
            f"precision gate: {self.recipe} (drift mean/p99 in 1/255 on {self.frames} calibration "
            f"frames: {tried or 'none tried'}; {how}{note})"
        )


def cpu_class() -> str:
    """Vendor, family, model and the ISA flags that matter, from /proc/cpuinfo (else the platform)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor says it for all
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        return f"{platform.machine()} {platform.processor()}".strip()
    flags = set(fields.get("flags", "").split())
    vendor, family, model = (fields.get(k, "?") for k in ("vendor_id", "cpu family", "model"))
    return " ".join([vendor, f"family {family}", f"model {model}", *(f for f in _CPU_FLAGS if f in flags)])


def candidates() -> list[str]:
    """The lower-precision recipes the gate tries here, fastest first: INT8 only with NNCF installed."""
    from trt_modnet.runtime.openvino import supports_bf16

    bf16 = supports_bf16()
    with_int8 = int8.missing_reason() is None
    return [
        name
        for name in LOW
        if (name in INT8_CANDIDATES and with_int8)
        or (not RECIPES[name].int8 and LOW[name] == "bf16" and bf16)
    ]


def not_tried() -> str:
    """What the line says about recipes left out for a missing extra."""
    missing = int8.missing_reason()
    return f"INT8 not tried: the [int8] extra is missing, {int8.INSTALL_HINT}" if missing else ""


def cache_key(digest: str, ref_size: int) -> dict[str, object]:
    import openvino

    return {
        "nncf": int8.nncf_version(),  # installing the [int8] extra adds candidates: measured again
        "model_sha256": digest,
        "recipe_version": RECIPE_VERSION,
        "gate_version": GATE_VERSION,
        "openvino": openvino.__version__,
        "cpu": cpu_class(),
        "ref_size": ref_size,
    }


def verdict_for(
    model_path: Path,
    modnet: onnx.ModelProto,
    ref_size: int,
    *,
    threads: int = 2,
    rerun: bool = False,
    log: logging.Logger | None = None,
) -> Verdict:
    """The cached verdict for this model on this CPU, or a new measurement, cached."""
    log = log or logging.getLogger("trt_modnet")
    digest = file_digest(model_path, "sha256")
    key = cache_key(digest, ref_size)
    key_text = json.dumps(key, sort_keys=True)
    path = verdict_path(digest)
    try:
        writable_dir(path.parent)
    except MattingError as exc:  # a read-only cache costs a measurement per run, not the job
        log.warning("precision gate: cannot cache its verdict (%s)", exc)
        return measure(modnet, ref_size, candidates(), threads=threads)
    with locked(path):  # two processes starting at once measure once
        stored = _read(path)
        if not rerun and key_text in stored:
            return _verdict_of(stored[key_text], cached=True)
        log.info("precision gate: measuring the recipes for %s on this CPU (once)", model_path.name)
        quantised: dict[str, dict[int, object]] = {}
        verdict = measure(modnet, ref_size, candidates(), threads=threads, quantised=quantised)
        if verdict.recipe in quantised:  # the job runs it next: its quantised stages, under this lock
            int8.save(digest, verdict.recipe, ref_size, quantised[verdict.recipe])
        stored[key_text] = {"key": key, **asdict(verdict)}
        _write(path, stored)
    return verdict


def measure(
    modnet: onnx.ModelProto,
    ref_size: int,
    names: Sequence[str],
    *,
    threads: int = 2,
    frames: np.ndarray | None = None,
    exhaustive: bool = False,
    quantised: dict[str, dict[int, object]] | None = None,
) -> Verdict:
    """Each recipe of `names` (fastest first) against FP32 on the calibration frames; the first within the
    bounds on every frame wins (all are measured when `exhaustive`). An INT8 recipe is quantised on the
    same frames first; its quantised stages go into `quantised` when given."""
    started = time.perf_counter()
    frames = calibration_frames() if frames is None else frames
    deploy = int8.calibration_deploy(modnet, ref_size)
    # A model without the module names a recipe needs cannot be cut for it: not a candidate.
    names = [name for name in names if unavailable_reason(deploy, name) is None]
    drift: dict[str, Drift] = {}
    chosen = "fp32"
    note = not_tried()
    if not names:
        return Verdict(chosen, drift, len(frames), round(time.perf_counter() - started, 2), note=note)
    reference = _alpha(deploy, "fp32", frames, threads)
    for name in names:
        models = None
        if RECIPES[name].int8:
            low = int8.quantise(deploy, name, frames, threads=threads)
            models = int8.assemble(deploy, name, low)
            if quantised is not None:
                quantised[name] = low
        drift[name] = worst_per_frame(_alpha(deploy, name, frames, threads, models), reference)
        if drift[name].within_default_bounds() and chosen == "fp32":
            chosen = name
            if not exhaustive:
                break
    return Verdict(chosen, drift, len(frames), round(time.perf_counter() - started, 2), note=note)


def worst_per_frame(alpha: np.ndarray, reference: np.ndarray) -> Drift:
    """The worst mean, p99 and max of |delta alpha| over the frames (each frame judged alone)."""
    delta = np.abs(alpha.astype(np.int16) - reference.astype(np.int16)).reshape(len(alpha), -1)
    return Drift(
        round(float(delta.mean(axis=1).max()), 4),
        float(np.percentile(delta, 99, axis=1).max()),
        float(delta.max()),
    )


def _alpha(
    deploy: onnx.ModelProto, recipe: str, frames: np.ndarray, threads: int, models: list[object] | None = None
) -> np.ndarray:
    from trt_modnet.runtime.openvino import OpenVinoRunner, OpenVinoSettings

    with OpenVinoRunner(deploy, OpenVinoSettings(recipe, threads=threads), models=models) as runner:
        runner.prepare(*frames.shape[1:3], len(frames))
        return runner.result(runner.submit({"frames": frames}))["alpha"]


def _read(path: Path) -> dict[str, dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # absent or damaged: measured again


def _write(path: Path, stored: dict[str, dict]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(stored, indent=1))
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache costs a measurement per run, not the job
        logging.getLogger("trt_modnet").warning("precision gate: cannot cache in %s (%s)", path, exc)
    finally:
        tmp.unlink(missing_ok=True)


def _verdict_of(entry: dict, *, cached: bool) -> Verdict:
    drift = {name: Drift(**d) for name, d in entry["drift"].items()}
    return Verdict(
        entry["recipe"], drift, entry["frames"], entry["seconds"], cached=cached, note=entry.get("note", "")
    )
