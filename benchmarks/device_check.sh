#!/usr/bin/env bash
# Device check for the GPU path without TensorRT: trt_modnet/tensorrt/cuda.py on a real GPU (pinned round trip,
# copies overlapping on two streams, events, errors) and the TensorRT runner's stream/event pipeline driven
# by a stand-in engine that runs CuPy kernels: composites over static and per-frame backgrounds, prepare()
# at two sizes without leaking device memory, blocking-sync waits against spinning, and the runner's
# host-side ceiling with an engine that computes nothing (1080p, 4K). Run from the repository root on a GPU
# machine:
#     bash benchmarks/device_check.sh            (figures as JSON in $OUT/device_check.json when OUT is set)
#     bash benchmarks/device_check.sh nvenc nvdec   (only NVENC/NVDEC through PyAV: fps, outputs that decode)
# Needs python3 with numpy and cuda-bindings; CuPy for the kernel steps, which are skipped without it.
# Every step is guarded and prints one line; the whole check stops itself after 240 s.
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
echo "== trt_modnet device check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 | head -4
else
    echo "nvidia-smi: not found"
fi
# PyAV for the NVENC/NVDEC steps: from a wheel placed beside this script (av-*.whl) when the machine
# has none; unpacked into a scratch folder, not installed into the system.
if ! "$PY" -c "import av" >/dev/null 2>&1; then
    wheel=$(ls benchmarks/av-*.whl 2>/dev/null | head -1)
    if [ -n "$wheel" ]; then
        # A wheel is a zip: unpacked, it imports (its FFmpeg libraries sit beside it), with no pip.
        "$PY" -m zipfile -e "$wheel" /tmp/trt_modnet_av \
            && export PYTHONPATH="/tmp/trt_modnet_av${PYTHONPATH:+:$PYTHONPATH}" \
            && echo "PyAV installed from $wheel"
    else
        echo "PyAV: not installed and no benchmarks/av-*.whl beside the script; NVENC/NVDEC steps skip"
    fi
fi
timeout 240 env PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 "$PY" benchmarks/device_check.py "$@"
rc=$?
[ "$rc" = 124 ] && echo "== stopped after 240 s"
echo "== device check exit code $rc"
exit "$rc"
