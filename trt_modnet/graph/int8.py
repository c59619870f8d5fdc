"""INT8 recipes: the low stage of a recipe's partition quantised by NNCF, calibrated on the shipped frames.

An INT8 recipe (`precision.Recipe.int8`) cuts the deployment graph as any recipe does
(`precision.stages`), then quantises its low stages with NNCF's post-training quantisation (MinMax
ranges and fast bias correction, `nncf.quantize`), calibrated on what those stages read when the FP32
stages before them run on the precision gate's calibration frames. Modules of the recipe's
`float_scope` stay unquantised inside the stage (NNCF's `ignored_scope`) and run in the stage's
precision (FP32 or bf16). The quantised stages are OpenVINO models with FakeQuantize nodes, which the
CPU plugin runs as INT8 kernels (VNNI or AMX-INT8 where the CPU has them).

Quantising costs seconds, so the result is cached beside the converted models,
`$TRT_MODNET_HOME/models/onnx/<model sha256>.<recipe>.<key>.int8/` (OpenVINO IR, one pair of files per
quantised stage), under a key of the recipe, the recipe and gate versions, OpenVINO's and NNCF's
versions and the reference size; written under a lock to a temporary folder, then renamed.
NNCF is the optional `[int8]` extra: without it no INT8 recipe runs (`missing_reason`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx

from trt_modnet.errors import MattingError
from trt_modnet.graph.deploy import IMAGE, size_feeds, spec_of
from trt_modnet.graph.gate_files import GATE_VERSION, calibration_frames, verdict_path
from trt_modnet.graph.official import inference_size, network_input
from trt_modnet.graph.precision import RECIPE_VERSION, RECIPES, Stage, stages
from trt_modnet.models.cache import file_digest, locked, models_dir, writable_dir

INSTALL_HINT = 'pip install "trt_modnet[int8]"'


def nncf_version() -> str | None:
    """NNCF's installed version, or None; read from its metadata, since importing NNCF costs ~1.7 s at
    every job's start (the gate's cache key needs it even when the verdict is cached)."""
    try:
        return metadata.version("nncf")
    except metadata.PackageNotFoundError:
        return None


def missing_reason() -> str | None:
    """Why INT8 recipes cannot run here (NNCF not installed), or None."""
    if nncf_version() is None:
        return f"NNCF is not installed ({INSTALL_HINT})"
    return None


def low_stages(stage_list: list[Stage]) -> list[int]:
    """The indices of a partition's low stages (stages alternate FP32, low, FP32, ...)."""
    return list(range(1, len(stage_list), 2))


def stage_models(
    model_path: Path,
    modnet: onnx.ModelProto,
    deploy: onnx.ModelProto,
    recipe: str,
    *,
    threads: int = 2,
    log: logging.Logger | None = None,
) -> list[object]:
    """OpenVINO models of `recipe`'s stages of `deploy` (the job's graph), the low ones quantised: from
    the cache (the precision gate writes it when it picks the recipe), else quantised now and cached."""

    log = log or logging.getLogger("trt_modnet")
    digest = file_digest(model_path, "sha256")
    ref_size = spec_of(deploy).ref_size
    lock = verdict_path(digest)

    def quantised_now() -> dict[int, object]:
        log.info("INT8: quantising %s for %s with NNCF", recipe, model_path.name)
        return quantise(calibration_deploy(modnet, ref_size), recipe, calibration_frames(), threads=threads)

    try:
        writable_dir(lock.parent)
    except MattingError as exc:  # a read-only cache costs a quantisation per run, not the job
        log.warning("INT8: cannot cache the quantised model (%s)", exc)
        return assemble(deploy, recipe, quantised_now())
    with locked(lock):  # the gate's lock: one process quantises, the others read its result
        low = load(digest, recipe, ref_size)
        if low is None:
            low = quantised_now()
            save(digest, recipe, ref_size, low)
    return assemble(deploy, recipe, low)


def calibration_deploy(modnet: onnx.ModelProto, ref_size: int) -> onnx.ModelProto:
    """The graph the gate measures and NNCF calibrates: alpha only, MODNet's input made on the host."""
    from trt_modnet.graph.deploy import DeploySpec, build

    return build(modnet, DeploySpec(outputs=("alpha",), ref_size=ref_size, host_input=True))


def assemble(deploy: onnx.ModelProto, recipe: str, low: dict[int, object]) -> list[object]:
    """The stages of `deploy` cut for `recipe` as OpenVINO models, the low ones from `low` (quantised on
    the calibration graph: MODNet's part of the cut is the same whatever the job's outputs)."""
    import openvino as ov

    core = ov.Core()
    models = []
    for i, stage in enumerate(stages(deploy, recipe)):
        if i not in low:
            models.append(core.read_model(stage.model.SerializeToString(), b""))
            continue
        model = low[i]
        has = {n for port in (*model.inputs, *model.outputs) for n in port.get_names()}  # type: ignore[attr-defined]
        if not {*stage.inputs, *stage.outputs} <= has:
            raise MattingError(f"the quantised stage {i} of {recipe} does not fit this graph's cut")
        models.append(model)
    return models


def cache_key(recipe: str, ref_size: int) -> dict[str, object]:
    import nncf
    import openvino

    return {
        "recipe": recipe,
        "recipe_version": RECIPE_VERSION,
        "gate_version": GATE_VERSION,
        "openvino": openvino.__version__,
        "nncf": nncf.__version__,
        "ref_size": ref_size,
    }


def cache_folder(digest: str, recipe: str, ref_size: int) -> Path:
    key = json.dumps(cache_key(recipe, ref_size), sort_keys=True)
    short = hashlib.sha256(key.encode()).hexdigest()[:16]
    return models_dir() / "onnx" / f"{digest}.{recipe}.{short}.int8"


def quantise(
    deploy: onnx.ModelProto, recipe: str, frames: np.ndarray, *, threads: int = 2
) -> dict[int, object]:
    """The recipe's low stages of `deploy` (by index), quantised by NNCF on what they read for `frames`
    (RGB uint8 [N,H,W,3]) when the stages before them run in FP32."""
    if (reason := missing_reason()) is not None:
        raise MattingError(f"--precision {recipe} needs NNCF: {reason}")
    import nncf
    import openvino as ov

    stage_list = stages(deploy, recipe)
    core = ov.Core()
    models = [core.read_model(s.model.SerializeToString(), b"") for s in stage_list]
    samples = _stage_inputs(core, deploy, stage_list, models, frames, threads)
    scope = RECIPES[recipe].float_scope
    ignored = nncf.IgnoredScope(patterns=[f".*{re.escape(m)}.*" for m in scope], validate=False)
    nncf.set_log_level(logging.ERROR)  # its INFO lines are not the job's
    low = {}
    for i in low_stages(stage_list):
        # Its progress bars go to sys.stdout (rich's console), which may be the job's output pipe.
        with contextlib.redirect_stdout(io.StringIO()):
            low[i] = nncf.quantize(
                models[i],
                nncf.Dataset(samples[i]),
                preset=nncf.QuantizationPreset(RECIPES[recipe].preset),
                target_device=nncf.TargetDevice.CPU,
                subset_size=len(samples[i]),
                fast_bias_correction=True,
                ignored_scope=ignored,
            )
    return low


def _stage_inputs(
    core: object,
    deploy: onnx.ModelProto,
    stage_list: list[Stage],
    models: list[object],
    frames: np.ndarray,
    threads: int,
) -> dict[int, list[dict[str, np.ndarray]]]:
    """What each low stage reads per frame when the stages run in FP32 one after the other."""
    spec = spec_of(deploy)
    height, width = frames.shape[1:3]
    image = np.empty((1, 3, *inference_size(height, width, spec.ref_size)), np.float32)
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads}
    last = max(low_stages(stage_list))
    compiled = [core.compile_model(m, "CPU", config) for m in models[:last]]  # type: ignore[attr-defined]
    samples: dict[int, list[dict[str, np.ndarray]]] = {i: [] for i in low_stages(stage_list)}
    for frame in frames:
        network_input(frame[None], image)
        tensors = {**size_feeds(spec, height, width), IMAGE: image.copy()}
        for i, stage in enumerate(stage_list[: last + 1]):
            feeds = {name: tensors[name] for name in stage.inputs}
            if i in samples:
                samples[i].append(feeds)
            if i == last:
                break
            result = compiled[i](feeds)
            for port in compiled[i].outputs:
                for name in port.get_names():
                    tensors[name] = np.asarray(result[port])
    return samples


def save(digest: str, recipe: str, ref_size: int, low: dict[int, object]) -> None:
    """Cache the quantised stages (the caller holds the gate's lock): a temporary folder, renamed."""
    import openvino as ov

    folder = cache_folder(digest, recipe, ref_size)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        for i, model in low.items():
            ov.save_model(model, str(tmp / f"stage{i}.xml"), compress_to_fp16=False)
        shutil.rmtree(folder, ignore_errors=True)  # a damaged entry of an older run
        os.replace(tmp, folder)
    except OSError as exc:  # a read-only cache costs a quantisation per run, not the job
        logging.getLogger("trt_modnet").warning("INT8: cannot cache in %s (%s)", folder, exc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load(digest: str, recipe: str, ref_size: int) -> dict[int, object] | None:
    """The cached quantised stages, or None."""
    import openvino as ov

    folder = cache_folder(digest, recipe, ref_size)
    files = sorted(folder.glob("stage*.xml"))
    if not files:
        return None
    core = ov.Core()
    try:
        return {int(f.stem.removeprefix("stage")): core.read_model(str(f)) for f in files}
    except RuntimeError:  # damaged: quantised again
        return None
