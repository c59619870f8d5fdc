"""Streams (docs/streams.md): the main job in an FFmpeg pipe chain, on a live UDP stream on loopback, with
the latency budget's dropping, and the one-line refusals. The commands are docs/streams.md's examples."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import VIDEOS, need
from trt_modnet.job.live import is_live, live_model, run_stream_job
from trt_modnet.job.settings import JobSettings
from trt_modnet.runtime.base import Runner

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg CLI is not installed")

FAST = "--ref-size 256 --backend onnxruntime"
JOB = f"{sys.executable} -m trt_modnet.process"
_STATS = re.compile(
    r"(\d+) frames in, (\d+) out, (\d+) dropped(?:; latency median ([\d.]+) s, p95 ([\d.]+) s)?"
)


def bash(command: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120, **kwargs
    )


def stats(stderr: str) -> tuple[int, int, int, float | None]:
    match = _STATS.search(stderr)
    assert match, stderr
    latency = float(match.group(5)) if match.group(5) else None
    return int(match.group(1)), int(match.group(2)), int(match.group(3)), latency


def frames_of(path: Path) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as c:
        return [(round(float(f.time), 3), f.to_ndarray(format="rgba")) for f in c.decode(video=0)]


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(audio=0) if p.size]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """0.3 s of the shared chaplin clip (H.264 and MP3), cut by stream copy."""
    out = tmp_path_factory.mktemp("streams") / "clip.mkv"
    src = need(VIDEOS / "chaplin_360p.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-i", src, "-t", "0.3", "-c", "copy", out], check=True)
    return out


def test_pipe_chain_gives_the_file_runs_frames_times_and_audio(
    clip: Path, synthetic_onnx: Path, tmp_path: Path
) -> None:
    file_run = tmp_path / "file.mkv"
    piped = tmp_path / "piped.nut"
    preview = tmp_path / "preview.png"
    args = f"--model {synthetic_onnx} {FAST} --ofd"  # OFD smooths across frames: the same on a stream
    assert bash(f"{JOB} {clip} -o {file_run} {args} -q").returncode == 0
    # docs/streams.md: matting in the middle of an FFmpeg chain
    chain = bash(
        f"ffmpeg -v error -i {clip} -c copy -f nut - | {JOB} - -o - --format nut {args} --preview {preview} "
        f"| ffmpeg -v error -i - -c copy {piped}"
    )
    assert chain.returncode == 0, chain.stderr
    assert preview.stat().st_size > 0
    expected, got = frames_of(file_run), frames_of(piped)
    assert len(got) == len(expected) >= 6
    for (t_exp, exp), (t_got, img) in zip(expected, got, strict=True):
        assert t_got == t_exp
        np.testing.assert_array_equal(img, exp)  # rawvideo RGBA and FFV1: lossless both
    assert audio_packets(piped) == audio_packets(file_run) != []
    frames_in, frames_out, dropped, _ = stats(chain.stderr)
    assert (frames_in, frames_out, dropped) == (len(got), len(got), 0)


def test_reader_closing_stdout_ends_the_job_with_exit_0(clip: Path, synthetic_onnx: Path) -> None:
    done = bash(
        f"set +o pipefail; {JOB} {clip} -o - --model {synthetic_onnx} {FAST} | head -c 1000 >/dev/null; "
        "echo ${PIPESTATUS[0]} >&2"
    )
    assert done.stderr.strip().splitlines()[-1] == "0", done.stderr
    assert "Traceback" not in done.stderr
    assert "closed it" in done.stderr


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_listening(port: int, job: subprocess.Popen[str]) -> None:
    """Until the job has bound the port (Linux: /proc/net/udp; elsewhere a pause)."""
    table = Path("/proc/net/udp")
    for _ in range(300):
        if not table.exists():
            time.sleep(2.0)
            return
        if f":{port:04X} " in table.read_text() or job.poll() is not None:
            return
        time.sleep(0.1)


def test_live_udp_stream_to_mkv_ends_on_idle_timeout(synthetic_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "live.mkv"
    port = _free_udp_port()
    url = f"udp://127.0.0.1:{port}"
    job = subprocess.Popen(
        [*JOB.split(), url, "-o", out, "--model", synthetic_onnx, *FAST.split(), "--idle-timeout", "2"],
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_until_listening(port, job)  # UDP: what is sent before is lost, as on a real feed
    src = need(VIDEOS / "carphone_qcif.mp4")
    sender = ["ffmpeg", "-v", "error", "-re", "-i", src, "-t", "2", "-c:v", "libx264", "-g", "10"]
    subprocess.run([*sender, "-f", "mpegts", f"{url}?pkt_size=1316"], check=True, timeout=30)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 0, err
    assert "ended: nothing received for 2 s (--idle-timeout)" in err
    frames_in, frames_out, dropped, latency = stats(err)
    with av.open(str(src)) as c:
        sent = sum(1 for f in c.decode(video=0) if f.time < 2)
    # What arrived (UDP: all of it but what came before the job listened), each frame written or dropped.
    assert sent // 2 <= frames_in <= sent and frames_out + dropped == frames_in
    assert latency is not None and "budget 0.5 s" in err
    assert len(frames_of(out)) == frames_out  # a playable file with what was reported


class SlowRunner(Runner):
    """The Runner contract with a fixed time per batch: the matte is the green channel."""

    outputs = ("alpha",)

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self._results: dict[int, dict[str, np.ndarray]] = {}

    def _prepare(self, height: int, width: int, batch: int) -> None:
        pass

    def _submit(self, slot: int, feeds: object) -> None:
        time.sleep(self.seconds)
        self._results[slot] = {"alpha": np.ascontiguousarray(feeds["frames"][..., 1])}  # type: ignore[index]

    def _result(self, slot: int) -> dict[str, np.ndarray]:
        return self._results.pop(slot)

    def _close(self) -> None:
        pass


@pytest.fixture
def paced_stdin() -> Iterator[None]:
    """Standard input fed in real time (`ffmpeg -re`) with one second of the carphone clip (30 fps)."""
    src = need(VIDEOS / "carphone_qcif.mp4")
    sender = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-i", src, "-t", "1", "-c:v", "ffv1", "-f", "nut", "-"],
        stdout=subprocess.PIPE,
    )
    assert sender.stdout is not None
    saved = os.dup(0)
    os.dup2(sender.stdout.fileno(), 0)
    try:
        yield
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        sender.kill()
        sender.wait()


@pytest.mark.parametrize("drop", ["late", "never"])
def test_slow_runner_drops_late_frames_or_keeps_all(
    drop: str, paced_stdin: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "alpha.nut"
    job = JobSettings(
        inputs=("-",), output=out, modes=("alpha",), live=True, drop=drop, max_latency=0.4, batch=1
    )
    results = run_stream_job(job, runner=SlowRunner(0.1))  # 10 fps against a 30 fps source
    frames_in, frames_out, dropped, p95 = stats(capsys.readouterr().err)
    assert frames_in >= 29 and frames_out + dropped == frames_in
    assert results[0].frames == frames_out == len(frames_of(out))
    if drop == "late":
        assert dropped > frames_in // 3
        # The budget holds for the frames that go on, give or take one frame's processing (0.1 s).
        assert p95 is not None and p95 < 0.4 + 0.15
    else:
        assert dropped == 0 and frames_out == frames_in


def test_live_sources_default_to_the_webcam_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRT_MODNET_MODEL", raising=False)
    camera = JobSettings(inputs=("v4l2:/dev/video0",), output=Path("cam.mkv"))
    assert is_live(camera) and live_model(camera, True)[0] == "webcam"
    assert "webcam" in live_model(camera, True)[1]
    named = JobSettings(inputs=("udp://127.0.0.1:5000",), output=Path("o.mkv"), model="photographic")
    assert live_model(named, is_live(named)) == ("photographic", "")
    assert not is_live(JobSettings(inputs=("-",), output=Path("-")))


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed on return: nothing listens there


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (f"{JOB} - -o - < /dev/null", "-: empty, or not a video stream"),
        (f"true | {JOB} - -o out.nut", "-: standard input is empty"),
        (f"{JOB} http://127.0.0.1:{_refused_port()}/feed -o out.mkv", "Connection refused"),
        (f"{JOB} gopher://127.0.0.1/feed -o out.mkv", "unsupported scheme 'gopher'"),
        (f"true | {JOB} - -o - --format mov | cat", "-: --format mov needs a seekable file"),
        (f"true | {JOB} - -o - --format ts | cat", "has no alpha channel for rgba"),
    ],
)
def test_bad_stream_inputs_are_one_line_exit_2(command: str, message: str, tmp_path: Path) -> None:
    done = bash(command, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []
