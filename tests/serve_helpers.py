"""What the server tests share: the stand-in model, a real uvicorn on 127.0.0.1, polling a job."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED, VIDEOS, need

PEOPLE = SHARED / "models" / "modnet_people.ckpt"
CLIP = VIDEOS / "carphone_qcif.mp4"
#: Small and fast on 2 cores: the inference size of the 176x144 clip at ref size 128.
REF_SIZE = 128
BACKEND = "onnxruntime"


def need_api() -> None:
    import trt_modnet

    if not hasattr(trt_modnet, "Matter"):
        pytest.skip("trt_modnet.Matter / trt_modnet.process (issue 22, branch api) are not merged yet")
    need(PEOPLE)
    need(CLIP)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def uvicorn_server(jobs: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`python -m trt_modnet.serve` in a subprocess, as a user starts it; yields its URL once it answers."""
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "trt_modnet.serve", "--port", str(port), "--jobs", str(jobs)]
    cmd += ["--model", str(PEOPLE), "--backend", BACKEND, "--ref-size", str(REF_SIZE), *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"the server exited: {proc.stderr.read() if proc.stderr else ''}")
            try:
                httpx.get(url + "/api/health", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)


def wait_for(get, job_id: str, states: tuple[str, ...], timeout: float = 60) -> dict:
    """Poll `GET /api/jobs/{id}` until the job is in one of `states`."""
    deadline = time.monotonic() + timeout
    while True:
        job = get(f"/api/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job still {job['state']} after {timeout} s"
        time.sleep(0.1)
