"""Models by name, URL or file: download, cache, verification, and checkpoint -> ONNX without PyTorch."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import onnxruntime as ort
import pytest

from tests.conftest import CHECKPOINT, IMAGES, VIDEOS, Cli, need, run_module
from tests.model_server import ModelServer, Served, model_server
from trt_modnet.errors import MattingError
from trt_modnet.models import resolve_model
from trt_modnet.models.__main__ import main as models_main
from trt_modnet.models.download import DownloadSettings
from trt_modnet.models.registry import Pin, RegisteredModel
from trt_modnet.models.resolve import fetch_registered

NAME = "modnet_synthetic.ckpt"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRT_MODNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TRT_MODNET_MIRROR", raising=False)
    monkeypatch.delenv("TRT_MODNET_MODEL", raising=False)
    return tmp_path / "home"


@pytest.fixture(scope="module")
def ckpt_bytes() -> bytes:
    return need(CHECKPOINT).read_bytes()


@pytest.fixture
def server(ckpt_bytes: bytes) -> Iterator[ModelServer]:
    files = {
        f"/{NAME}": Served(ckpt_bytes),
        f"/mirror/{NAME}": Served(ckpt_bytes),
        f"/drop/{NAME}": Served(ckpt_bytes, behaviour="drop"),
        f"/stall/{NAME}": Served(ckpt_bytes, behaviour="stall"),
        f"/html/{NAME}": Served(b"<html><body>Sign in to continue</body></html>", "text/html"),
    }
    with model_server(files) as s:
        yield s


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cached_files(home: Path) -> list[str]:
    return sorted(p.name for p in home.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def test_first_run_downloads_with_progress_and_second_run_hits_the_cache(
    home: Path, server: ModelServer, ckpt_bytes: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{server.base}/{NAME}#sha256={sha256(ckpt_bytes)}"
    first = resolve_model(url)
    assert "modnet_synthetic.ckpt" in capsys.readouterr().err  # the progress bar names the file
    assert first.suffix == ".onnx" and first.is_relative_to(home)
    assert resolve_model(url) == first
    assert server.requests == [f"/{NAME}"]
    assert NAME in cached_files(home)


def test_two_processes_fetching_at_once_download_once(
    home: Path, server: ModelServer, ckpt_bytes: bytes
) -> None:
    url = f"{server.base}/{NAME}#sha256={sha256(ckpt_bytes)}"
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(resolve_model(url))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1]
    assert server.requests == [f"/{NAME}"]


@pytest.mark.parametrize(
    ("path", "fragment", "expected"),
    [
        (NAME, "#sha256=" + "0" * 64, "sha256 is"),
        (f"drop/{NAME}", "", "ended after"),
        (f"html/{NAME}", "", "HTML page"),
        (f"absent/{NAME}", "", "HTTP 404"),
        (f"stall/{NAME}", "", "timed out"),
    ],
    ids=["wrong_digest", "dropped", "html", "404", "timeout"],
)
def test_a_bad_download_is_one_clear_error_and_caches_nothing(
    home: Path, server: ModelServer, path: str, fragment: str, expected: str
) -> None:
    url = f"{server.base}/{path}"
    with pytest.raises(MattingError) as err:
        resolve_model(url + fragment, DownloadSettings(timeout=0.5, progress=False))
    message = str(err.value)
    assert expected in message and url in message and "\n" not in message
    assert "by hand" in message and str(home) in message
    assert cached_files(home) == []


def test_the_mirror_is_tried_before_the_public_hosts(
    home: Path, server: ModelServer, ckpt_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = RegisteredModel("synthetic", NAME, Pin("sha256", sha256(ckpt_bytes), len(ckpt_bytes)),
                            (f"{server.base}/{NAME}",))  # fmt: skip
    monkeypatch.setenv("TRT_MODNET_MIRROR", f"{server.base}/mirror/")
    assert fetch_registered(model).read_bytes() == ckpt_bytes
    assert server.requests == [f"/mirror/{NAME}"]


def test_a_local_mirror_folder_needs_no_server(
    home: Path, tmp_path: Path, ckpt_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "artifacts"
    folder.mkdir()
    shutil.copy(need(CHECKPOINT), folder / NAME)
    model = RegisteredModel("synthetic", NAME, Pin("sha256", sha256(ckpt_bytes)), ("http://127.0.0.1:9/x",))
    monkeypatch.setenv("TRT_MODNET_MIRROR", str(folder))
    assert fetch_registered(model) == home / "models" / NAME


def test_an_unwritable_cache_folder_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("TRT_MODNET_HOME", str(blocker / "home"))
    with pytest.raises(MattingError, match=r"model cache folder.*TRT_MODNET_HOME"):
        resolve_model(str(need(CHECKPOINT)))


def test_an_unknown_name_lists_the_known_ones(home: Path) -> None:
    with pytest.raises(MattingError, match="photographic, webcam"):
        resolve_model("portrait")


def _checkpoint_zip(path: Path, pickled: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickled)
        z.writestr("archive/byteorder", "little")
    return path


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def test_a_checkpoint_that_pickles_code_is_refused_unrun(home: Path, tmp_path: Path) -> None:
    ckpt = _checkpoint_zip(tmp_path / "evil.ckpt", pickle.dumps({"x": _Evil()}, protocol=2))
    with pytest.raises(MattingError, match=r"not a plain MODNet checkpoint.*system.*trt_modnet\[torch\]"):
        resolve_model(str(ckpt))
    assert cached_files(home) == []


def test_a_cut_legacy_an_unknown_or_a_foreign_checkpoint_is_one_line(home: Path, tmp_path: Path) -> None:
    legacy = tmp_path / "legacy.ckpt"
    legacy.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2))  # the legacy magic, then nothing
    with pytest.raises(MattingError, match=r"legacy.ckpt: a damaged PyTorch checkpoint"):
        resolve_model(str(legacy))
    unknown = tmp_path / "notes.ckpt"
    unknown.write_text("not a checkpoint")
    with pytest.raises(MattingError, match=r"not a PyTorch checkpoint.*trt_modnet\[torch\]"):
        resolve_model(str(unknown))
    foreign = _checkpoint_zip(tmp_path / "foreign.ckpt", pickle.dumps({"epoch": 3}, protocol=2))
    with pytest.raises(MattingError, match="not a MODNet checkpoint"):
        resolve_model(str(foreign))
    assert cached_files(home) == []


def test_a_torch_checkpoint_of_another_network_is_not_modnet(home: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "resnet_like.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3)}, path)
    with pytest.raises(MattingError, match=r"not a MODNet checkpoint.*no tensor"):
        resolve_model(str(path))
    state = torch.load(need(CHECKPOINT), weights_only=True)
    state["module.hr_branch.conv_hr4x.1.layers.0.weight"] = torch.zeros(64, 60, 3, 3)
    torch.save(state, path)
    with pytest.raises(
        MattingError,
        match=r"not a MODNet checkpoint \(hr_branch.conv_hr4x.1.layers.0.weight is \(64, 60, 3, 3\)",
    ):
        resolve_model(str(path))
    assert cached_files(home) == []


def _real_inputs() -> np.ndarray:
    """Two real frames at an odd (non-square, not a power of two) size, normalised as MODNet expects."""
    with av.open(str(need(VIDEOS / "chaplin_360p.mp4"))) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    portrait = cv2.cvtColor(cv2.imread(str(next(iter(sorted(need(IMAGES / "p3m" / "original").glob("*")))))),
                            cv2.COLOR_BGR2RGB)  # fmt: skip
    images = [cv2.resize(i, (480, 288), interpolation=cv2.INTER_AREA) for i in (frame, portrait)]
    return np.stack([(i.astype(np.float32) / 127.5 - 1).transpose(2, 0, 1) for i in images])


def test_the_converted_checkpoint_equals_our_pytorch_export(home: Path, synthetic_onnx: Path) -> None:
    converted = resolve_model(str(need(CHECKPOINT)))
    x = _real_inputs()
    ours, reference = (
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
        for p in (converted, synthetic_onnx)
    )
    assert ours.shape == (2, 1, 288, 480)
    np.testing.assert_allclose(ours, reference, atol=1e-5, rtol=0)


def test_models_cli_lists_fetches_and_verifies(
    cli: Cli, home: Path, server: ModelServer, ckpt_bytes: bytes
) -> None:
    url = f"{server.base}/{NAME}#sha256={sha256(ckpt_bytes)}"
    fetched = cli("fetch", url, main=models_main)
    assert fetched.returncode == 0, fetched.stderr
    assert Path(fetched.stdout.split(": ", 1)[1].strip()).is_file()
    (home / "models" / "modnet_webcam_portrait_matting.ckpt").write_bytes(b"not the webcam model")
    listed = cli("list", main=models_main)
    assert "photographic (default)" in listed.stdout and "webcam" in listed.stdout
    assert f"cached {home / 'models' / 'modnet_webcam_portrait_matting.ckpt'}" in listed.stdout
    verified = cli("verify", main=models_main)
    assert verified.returncode == 1 and "BAD webcam" in verified.stdout
    unknown = cli("fetch", "portrait", main=models_main)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr


@pytest.mark.no_torch
def test_main_job_runs_from_a_checkpoint_url(
    home: Path, server: ModelServer, ckpt_bytes: bytes, tmp_path: Path
) -> None:
    """Run by .ci/run in a venv without PyTorch too (TRT_MODNET_EXPECT_NO_TORCH=1 there)."""
    if os.environ.get("TRT_MODNET_EXPECT_NO_TORCH") == "1":
        import importlib.util

        assert importlib.util.find_spec("torch") is None
    out = tmp_path / "clip.alpha.mp4"
    proc = run_module(
        "trt_modnet.process", str(need(VIDEOS / "carphone_qcif.mp4")), "-o", str(out), "--mode", "alpha",
        "--model", f"{server.base}/{NAME}#sha256={sha256(ckpt_bytes)}", "--duration", "0.3",
        "--ref-size", "256", "--backend", "onnxruntime", "--quiet",
        env={**os.environ, "TRT_MODNET_HOME": str(home)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    assert len(frames) >= 3 and frames[0].shape == (144, 176)
    assert max(f.std() for f in frames) > 1  # a matte, not a blank frame
