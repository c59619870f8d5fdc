"""Checkpoints in PyTorch's legacy format (the official MODNet files' format), read without PyTorch."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import pickletools
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CHECKPOINT, VIDEOS, Cli, need, run_module
from tests.data.make_legacy_fixture import FIXTURE, expected, fixture_bytes
from tests.legacy_checkpoint import MAGIC, PROTOCOL, Storage, Tensor, legacy_bytes, legacy_state_dict
from tests.model_server import ModelServer, Served, model_server
from trt_modnet.errors import MattingError
from trt_modnet.models import resolve_model
from trt_modnet.models.__main__ import main as models_main
from trt_modnet.models.torchfile import checkpoint_format, read_tensors

pytestmark = pytest.mark.no_torch


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRT_MODNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TRT_MODNET_MIRROR", raising=False)
    return tmp_path / "home"


@pytest.fixture(scope="module")
def legacy_standin() -> bytes:
    """The stand-in's weights in the legacy format, tagged `cuda:0` like a GPU-trained checkpoint."""
    return legacy_state_dict(read_tensors(need(CHECKPOINT)), location="cuda:0")


def _cached(home: Path) -> list[str]:
    return sorted(p.name for p in home.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def _sections(data: bytes) -> list[int]:
    """The offsets where each of the five pickles and each storage's count and bytes end."""
    f = io.BytesIO(data)
    ends = []
    for _ in range(5):
        for _ in pickletools.genops(f):
            pass
        ends.append(f.tell())
    while f.tell() < len(data):
        (count,) = struct.unpack("<q", f.read(8))
        ends.append(f.tell())
        itemsize = {12: 4, 5: 2, 3: 8}[count]  # the fixture's three storages
        f.seek(count * itemsize, os.SEEK_CUR)
        ends.append(f.tell())
    return ends


def test_the_committed_fixture_is_what_its_script_writes() -> None:
    assert FIXTURE.read_bytes() == fixture_bytes()
    assert checkpoint_format(FIXTURE) == "legacy"


def test_shared_storages_views_offsets_fp16_and_cuda_tags_read_right() -> None:
    read = read_tensors(FIXTURE)
    assert read["epoch"] == 7
    for name, want in expected().items():
        got = read["state_dict"][name]
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_torch_reads_the_fixture_as_we_do() -> None:
    torch = pytest.importorskip("torch")
    theirs = torch.load(FIXTURE, map_location="cpu", weights_only=True)["state_dict"]
    ours = read_tensors(FIXTURE)["state_dict"]
    assert list(theirs) == list(ours)
    for name, tensor in theirs.items():
        np.testing.assert_array_equal(tensor.numpy(), ours[name], err_msg=name)


@pytest.mark.parametrize("cut", range(len(_sections(fixture_bytes())) - 1))
def test_a_file_cut_at_any_section_boundary_is_one_line(tmp_path: Path, cut: int) -> None:
    data = fixture_bytes()
    end = _sections(data)[cut]
    for size in (end, end + 3):
        path = tmp_path / f"cut{size}.ckpt"
        path.write_bytes(data[:size])
        with pytest.raises(MattingError, match=rf"^{path}: a damaged PyTorch checkpoint \(") as err:
            read_tensors(path)
        assert "\n" not in str(err.value)


def test_a_flipped_byte_in_the_key_list_is_one_line(tmp_path: Path) -> None:
    data = bytearray(fixture_bytes())
    start, end = _sections(bytes(data))[3:5]
    key = data.index(b"X\x01\x00\x00\x003", start, end)  # the key "3" in the pickled list
    data[key + 5] = ord("9")
    path = tmp_path / "flipped.ckpt"
    path.write_bytes(data)
    with pytest.raises(MattingError, match=r"damaged PyTorch checkpoint \(its storage key list"):
        read_tensors(path)


def test_a_storage_count_past_the_end_is_one_line(tmp_path: Path) -> None:
    data = bytearray(fixture_bytes())
    last_count = _sections(bytes(data))[-3]  # where the last storage's count starts
    data[last_count : last_count + 8] = struct.pack("<q", 10**12)
    path = tmp_path / "count.ckpt"
    path.write_bytes(data)
    with pytest.raises(MattingError, match=r"damaged PyTorch checkpoint \(storage 3 says 10{12} elements"):
        read_tensors(path)


def test_big_endian_and_tar_files_are_one_line_each(tmp_path: Path) -> None:
    storage = Storage("0", np.zeros(2, np.float32))
    big = tmp_path / "big.ckpt"
    big.write_bytes(legacy_bytes({"w": Tensor(storage, 0, (2,), (1,))}, [storage], little_endian=False))
    with pytest.raises(MattingError, match=r"big-endian checkpoint.*trt_modnet\[torch\]"):
        read_tensors(big)
    import tarfile

    old = tmp_path / "old.ckpt"
    with tarfile.open(old, "w") as tar:
        info = tarfile.TarInfo("sys_info")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    assert checkpoint_format(old) == "tar"
    with pytest.raises(MattingError, match=r"pre-0.4 tar format.*trt_modnet\[torch\]"):
        read_tensors(old)


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def test_a_legacy_file_that_pickles_code_is_refused_unrun(tmp_path: Path) -> None:
    out = io.BytesIO()
    for part in (MAGIC, PROTOCOL, {"little_endian": True}, {"x": _Evil()}, []):
        pickle.dump(part, out, protocol=2)
    path = tmp_path / "evil.ckpt"
    path.write_bytes(out.getvalue())
    with pytest.raises(MattingError, match=r"not a plain MODNet checkpoint \(it pickles posix.system"):
        read_tensors(path)


def test_a_damaged_legacy_checkpoint_fails_the_job_in_one_line_and_caches_nothing(
    cli: Cli, home: Path, tmp_path: Path, legacy_standin: bytes
) -> None:
    path = tmp_path / "modnet.ckpt"
    path.write_bytes(legacy_standin[: len(legacy_standin) // 2])
    out = tmp_path / "out.mov"
    proc = cli(str(need(VIDEOS / "carphone_qcif.mp4")), "-o", str(out), "--model", str(path), "--quiet")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert f"{path}: a damaged PyTorch checkpoint" in proc.stderr
    assert not out.exists() and _cached(home) == []


@pytest.fixture
def server(legacy_standin: bytes) -> Iterator[ModelServer]:
    with model_server({"/modnet_legacy.ckpt": Served(legacy_standin)}) as s:
        yield s


def test_main_job_from_a_legacy_checkpoint_url_equals_the_zip_file(
    home: Path, server: ModelServer, legacy_standin: bytes, tmp_path: Path
) -> None:
    """Also run by .ci/run in a venv without PyTorch."""
    digest = hashlib.sha256(legacy_standin).hexdigest()
    outputs = {}
    for name, model in (("legacy", f"{server.base}/modnet_legacy.ckpt#sha256={digest}"),
                        ("zip", str(need(CHECKPOINT)))):  # fmt: skip
        outputs[name] = tmp_path / f"{name}.mov"
        proc = run_module(
            "trt_modnet.process", str(need(VIDEOS / "carphone_qcif.mp4")), "-o", str(outputs[name]),
            "--model", model, "--duration", "0.3", "--ref-size", "256", "--backend", "onnxruntime",
            "--quiet", env={**os.environ, "TRT_MODNET_HOME": str(home)},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    assert outputs["legacy"].read_bytes() == outputs["zip"].read_bytes()
    converted = sorted((home / "models" / "onnx").glob("*.onnx"))
    assert len(converted) == 2 and converted[0].read_bytes() == converted[1].read_bytes()


@pytest.mark.parametrize("half", [False, True], ids=["fp32", "fp16"])
def test_torch_written_legacy_files_convert_to_the_zip_files_onnx(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, half: bool
) -> None:
    torch = pytest.importorskip("torch")
    state = torch.load(need(CHECKPOINT), weights_only=True)
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    zipped, legacy = tmp_path / "zip.ckpt", tmp_path / "legacy.ckpt"
    torch.save(state, zipped)
    with monkeypatch.context() as m:  # the tag a GPU-trained checkpoint carries
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(state, legacy, _use_new_zipfile_serialization=False)
    assert b"cuda:0" in legacy.read_bytes()[:200000]
    assert (checkpoint_format(zipped), checkpoint_format(legacy)) == ("zip", "legacy")
    assert resolve_model(str(legacy)).read_bytes() == resolve_model(str(zipped)).read_bytes()


def test_models_list_and_verify_name_the_format(cli: Cli, home: Path, legacy_standin: bytes) -> None:
    folder = home / "models"
    folder.mkdir(parents=True)
    (folder / "modnet_photographic_portrait_matting.ckpt").write_bytes(legacy_standin)
    (folder / "modnet_webcam_portrait_matting.ckpt").write_bytes(need(CHECKPOINT).read_bytes())
    listed = cli("list", main=models_main)
    assert "modnet_photographic_portrait_matting.ckpt (legacy format)" in listed.stdout
    assert "modnet_webcam_portrait_matting.ckpt (zip format)" in listed.stdout
    verified = cli("verify", main=models_main)
    assert "(legacy format)" in verified.stdout and "(zip format)" in verified.stdout
