"""`python -m trt_modnet.serve`: the HTTP API in-process (Starlette's test client) and on a real uvicorn."""

from __future__ import annotations

import io
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IMAGES, REPO, need
from tests.serve_helpers import BACKEND, CLIP, PEOPLE, REF_SIZE, need_api, uvicorn_server, wait_for

pytest.importorskip("starlette", reason="the [serve] extra is not installed")
httpx = pytest.importorskip("httpx", reason="the [serve] extra's test client needs httpx")
from starlette.testclient import TestClient  # noqa: E402

from trt_modnet.serve.app import create_app  # noqa: E402
from trt_modnet.serve.settings import ServeSettings  # noqa: E402

TOKEN = "s3cret-token"
SHORT = {"duration": "0.4"}  # twelve frames of the 30 fps clip


@pytest.fixture(scope="module")
def matter() -> Iterator[object]:
    need_api()
    import trt_modnet

    with trt_modnet.Matter(str(PEOPLE), backend=BACKEND, ref_size=REF_SIZE) as m:
        yield m


@pytest.fixture(scope="module")
def allowed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An --allow-dir with the clip, a symlink inside it to the clip, and one leading out of it."""
    folder = tmp_path_factory.mktemp("shared_storage")
    shutil.copy(CLIP, folder / "clip.mp4")
    (folder / "inside.mp4").symlink_to(folder / "clip.mp4")
    outside = tmp_path_factory.mktemp("elsewhere") / "secret.mp4"
    shutil.copy(CLIP, outside)
    (folder / "escape.mp4").symlink_to(outside)
    return folder


@pytest.fixture(scope="module")
def client(matter: object, allowed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    jobs = tmp_path_factory.mktemp("jobs")
    settings = ServeSettings(jobs=jobs, model=str(PEOPLE), allow_dirs=(allowed,))
    with TestClient(create_app(settings, matter)) as c:
        yield c


@pytest.fixture(scope="module")
def guarded(matter: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A server with a token, a 1 MB upload limit and a queue of one."""
    jobs = tmp_path_factory.mktemp("guarded_jobs")
    settings = ServeSettings(jobs=jobs, token=TOKEN, max_upload=1_000_000, max_queue=1)
    with TestClient(create_app(settings, matter)) as c:
        yield c


def _post_clip(c, data: dict[str, str] | None = None, **kw) -> httpx.Response:
    with CLIP.open("rb") as f:
        return c.post("/api/jobs", files=[("file", ("my clip.mp4", f, "video/mp4"))], data=data, **kw)


def _cli(tmp: Path, *args: str) -> Path:
    """The CLI on a copy of the clip with the same options: the folder holding its outputs."""
    folder = tmp / "cli"
    folder.mkdir()
    shutil.copy(CLIP, folder / "input0.mp4")
    cmd = [sys.executable, "-m", "trt_modnet.process", str(folder / "input0.mp4"), "-q", "-o", f"{folder}/"]
    cmd += ["--model", str(PEOPLE), "--backend", BACKEND, "--ref-size", str(REF_SIZE), *args]
    cmd += ["--preview", str(folder / "job.preview.png")]
    subprocess.run(cmd, check=True, cwd=REPO, timeout=300, capture_output=True)
    return folder


def test_upload_poll_download_equals_cli(client: TestClient, tmp_path: Path) -> None:
    created = _post_clip(client, {"mode": "rgba,alpha", **SHORT})
    assert created.status_code == 201 and created.json()["state"] == "queued"
    job = wait_for(client.get, created.json()["id"], ("done", "failed", "cancelled"))
    assert job["state"] == "done", job["error"]
    assert job["names"] == ["my clip.mp4"] and job["frames_done"] == 12
    assert job["preview"] is not None
    cli = _cli(tmp_path, "--mode", "rgba,alpha", "--duration", "0.4")
    expected = sorted(p.name for p in cli.iterdir() if p.name != "input0.mp4")
    assert sorted(o["name"] for o in job["outputs"]) == expected
    for out in job["outputs"]:
        body = client.get(out["url"]).content
        assert len(body) == out["size"]
        expected = (cli / out["name"]).read_bytes()
        assert body == expected, _difference(out["name"], body, expected)


def _difference(name: str, body: bytes, expected: bytes) -> str:
    """What differs between two video files, for the failure message: per frame, the largest |delta| of
    the decoded pictures (seen twice in CI for the H.264 matte, never reproduced here)."""
    import av
    import numpy as np

    frames = []
    for data in (body, expected):
        with av.open(io.BytesIO(data)) as c:
            frames.append([f.to_ndarray(format="gray").astype(int) for f in c.decode(video=0)])
    if len(frames[0]) != len(frames[1]):
        return f"{name}: {len(frames[0])} frames served against the CLI's {len(frames[1])}"
    deltas = [int(np.abs(a - b).max()) for a, b in zip(*frames, strict=True)]
    return f"{name}: served bytes differ from the CLI's; decoded max |delta| per frame {deltas}"


def test_composite_over_an_uploaded_image_equals_cli(client: TestClient, tmp_path: Path) -> None:
    image = IMAGES / "portraits" / "astronaut.png"
    with CLIP.open("rb") as f, need(image).open("rb") as bg:
        files = [("file", ("clip.mp4", f, "video/mp4")), ("background_file", ("sky.png", bg, "image/png"))]
        created = client.post("/api/jobs", files=files, data={"mode": "composite", **SHORT})
    job = wait_for(client.get, created.json()["id"], ("done", "failed"))
    assert job["state"] == "done", job["error"]
    cli = _cli(tmp_path, "--mode", "composite", "--duration", "0.4", "--background", str(image))
    video = next(o for o in job["outputs"] if o["name"].endswith(".mp4"))  # the background is no output
    assert [o["name"] for o in job["outputs"]] == sorted(
        p.name for p in cli.iterdir() if p.name != "input0.mp4"
    )
    assert client.get(video["url"]).content == (cli / video["name"]).read_bytes()


def test_range_request_serves_a_slice(client: TestClient) -> None:
    job = wait_for(client.get, _post_clip(client, {"mode": "alpha", **SHORT}).json()["id"], ("done",))
    url = next(o["url"] for o in job["outputs"] if o["name"].endswith(".mp4"))
    whole = client.get(url).content
    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole[100:200]


def test_non_video_upload_fails_with_the_cli_reason(client: TestClient) -> None:
    files = [("file", ("notes.mp4", b"these are not frames\n" * 50, "video/mp4"))]
    job = wait_for(client.get, client.post("/api/jobs", files=files).json()["id"], ("done", "failed"))
    assert job["state"] == "failed" and job["outputs"] == []
    assert job["error"] and "\n" not in job["error"]


def test_cancel_a_running_job_leaves_nothing(client: TestClient) -> None:
    job_id = _post_clip(client, {"mode": "rgba"}).json()["id"]  # the whole clip: long enough to stop
    wait_for(client.get, job_id, ("running",))
    assert client.delete(f"/api/jobs/{job_id}").status_code == 202
    job = wait_for(client.get, job_id, ("cancelled", "done", "failed"))
    assert job["state"] == "cancelled" and job["outputs"] == []
    files = _jobs_root(client) / job_id / "files"
    assert sorted(p.name for p in files.iterdir()) == ["input0.mp4"]
    assert client.delete(f"/api/jobs/{job_id}").status_code == 204
    assert client.get(f"/api/jobs/{job_id}").status_code == 404 and not files.exists()


def _jobs_root(client: TestClient) -> Path:
    return Path(client.get("/api/health").json()["jobs"])


def test_output_names_are_matched_against_the_job(client: TestClient) -> None:
    job = wait_for(client.get, _post_clip(client, {"mode": "alpha", **SHORT}).json()["id"], ("done",))
    for name in ("input0.mp4", "../state.json", "..%2Fstate.json", "/etc/passwd", "nothing.mp4"):
        assert client.get(f"/api/jobs/{job['id']}/outputs/{name}").status_code == 404, name


@pytest.mark.parametrize(
    ("path", "status"),
    [("../elsewhere/secret.mp4", 403), ("/etc/passwd", 403), ("escape.mp4", 403), ("clip\0.mp4", 400)],
)
def test_path_requests_outside_the_allow_dir_are_refused(
    client: TestClient, allowed: Path, path: str, status: int
) -> None:
    before = len(client.get("/api/jobs").json()["jobs"])
    response = client.post("/api/jobs", json={"path": path})
    assert response.status_code == status and "error" in response.json()
    assert len(client.get("/api/jobs").json()["jobs"]) == before


def test_path_request_under_the_allow_dir_runs(client: TestClient, allowed: Path) -> None:
    before = (allowed / "clip.mp4").read_bytes()
    for path in ("inside.mp4", str(allowed / "clip.mp4")):
        created = client.post("/api/jobs", json={"path": path, "mode": "alpha", "duration": 0.4})
        assert created.status_code == 201, created.text
        assert wait_for(client.get, created.json()["id"], ("done", "failed"))["state"] == "done"
    assert sorted(p.name for p in allowed.iterdir()) == ["clip.mp4", "escape.mp4", "inside.mp4"]
    assert (allowed / "clip.mp4").read_bytes() == before


def test_wrong_or_missing_token_is_401_with_nothing_done(guarded: TestClient) -> None:
    jobs = Path(guarded.get("/api/health", headers=_auth()).json()["jobs"])
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        assert _post_clip(guarded, SHORT, headers=headers).status_code == 401
        assert guarded.get("/api/jobs", headers=headers).status_code == 401
    assert list(jobs.iterdir()) == []
    assert guarded.get("/").status_code == 200  # the page itself asks for the token


def test_upload_over_the_limit_is_413_and_leaves_nothing(guarded: TestClient) -> None:
    jobs = Path(guarded.get("/api/health", headers=_auth()).json()["jobs"])
    big = [("file", ("big.mp4", b"\0" * 1_100_000, "video/mp4"))]
    assert guarded.post("/api/jobs", files=big, headers=_auth()).status_code == 413
    # Without a Content-Length (chunked), the bound holds while streaming.
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'
    chunks = (head if i == 0 else b"x" * 200_000 for i in range(10))
    headers = {**_auth(), "Content-Type": "multipart/form-data; boundary=b"}
    assert guarded.post("/api/jobs", content=chunks, headers=headers).status_code == 413
    assert list(jobs.iterdir()) == []


def test_a_full_queue_is_429(guarded: TestClient) -> None:
    first = _post_clip(guarded, {"mode": "rgba"}, headers=_auth()).json()["id"]  # the whole clip
    assert _post_clip(guarded, SHORT, headers=_auth()).status_code == 429
    guarded.delete(f"/api/jobs/{first}", headers=_auth())
    assert wait_for(lambda u: guarded.get(u, headers=_auth()), first, ("cancelled", "done"))


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def test_real_uvicorn_and_restart_with_a_job_running(tmp_path: Path, matter: object) -> None:
    jobs = tmp_path / "jobs"
    with uvicorn_server(jobs) as (url, proc), httpx.Client(base_url=url) as http:
        health = http.get("/api/health").json()
        assert health["queue"] == 0 and health["model"] == str(PEOPLE)
        done = wait_for(http.get, _post_clip(http, {"mode": "alpha", **SHORT}).json()["id"], ("done",))
        out = done["outputs"][0]
        assert len(http.get(out["url"]).content) == out["size"]
        running = _post_clip(http, {"mode": "rgba"}).json()["id"]
        wait_for(http.get, running, ("running",))
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)  # no clean-up at all: a crash or a power cut
        proc.wait(10)
    with uvicorn_server(jobs) as (url, _), httpx.Client(base_url=url) as http:
        listed = {j["id"]: j for j in http.get("/api/jobs").json()["jobs"]}
        assert listed[done["id"]]["state"] == "done" and listed[done["id"]]["outputs"] == done["outputs"]
        assert listed[running]["state"] == "failed" and listed[running]["error"] == "server restarted"
        assert sorted(p.name for p in (jobs / running / "files").iterdir()) == ["input0.mp4"]


def test_a_real_server_writes_the_clis_bytes(tmp_path: Path, matter: object) -> None:
    """`python -m trt_modnet.serve` in its own process, as users run it: every download, the lossy H.264
    matte included, is the CLI's file byte for byte."""
    with uvicorn_server(tmp_path / "jobs") as (url, _), httpx.Client(base_url=url) as http:
        job = wait_for(http.get, _post_clip(http, {"mode": "rgba,alpha", **SHORT}).json()["id"], ("done",))
        served = {o["name"]: http.get(o["url"]).content for o in job["outputs"]}
    cli = _cli(tmp_path, "--mode", "rgba,alpha", "--duration", "0.4")
    assert sorted(served) == sorted(p.name for p in cli.iterdir() if p.name != "input0.mp4")
    for name, body in served.items():
        assert body == (cli / name).read_bytes(), name


def test_a_bad_option_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "no such folder"
    jobs = tmp_path / "j"
    cmd = [sys.executable, "-m", "trt_modnet.serve", "--allow-dir", str(missing), "--jobs", str(jobs)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"error: {missing}: --allow-dir is not a folder"
    assert not jobs.exists()


def test_a_host_off_this_machine_gets_a_generated_token(tmp_path: Path) -> None:
    from trt_modnet.serve.__main__ import parse_args

    local = parse_args(["--jobs", str(tmp_path)])
    assert local.host == "127.0.0.1" and local.token is None and local.max_upload == 4 << 30
    remote = parse_args(["--host", "0.0.0.0", "--jobs", str(tmp_path), "--max-upload", "500M"])
    assert remote.token and len(remote.token) >= 32 and remote.token_generated
    assert remote.max_upload == 500 << 20
    given = parse_args(["--host", "0.0.0.0", "--token", TOKEN, "--jobs", str(tmp_path)])
    assert given.token == TOKEN and not given.token_generated


def test_a_full_disk_fails_the_job_not_the_server(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import trt_modnet

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(trt_modnet, "process", full)
    job = wait_for(client.get, _post_clip(client, SHORT).json()["id"], ("done", "failed"))
    assert job["state"] == "failed" and "No space left on device" in job["error"] and job["outputs"] == []
    monkeypatch.undo()
    after = _post_clip(client, {"mode": "alpha", **SHORT}).json()["id"]
    assert wait_for(client.get, after, ("done", "failed"))["state"] == "done"
