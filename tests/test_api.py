"""The Python API (issue 22, docs/api.md): `trt_modnet.Matter` against the CLI's files byte for byte,
`.stream`, threads and clean-up, bad input, and `trt_modnet.process` (cancel, progress, bad calls)."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

import trt_modnet
from tests.conftest import IMAGES, SHARED, VIDEOS, need
from trt_modnet import FileResult, Matter, MattingError
from trt_modnet.process import main

Image = pytest.importorskip("PIL.Image")

PEOPLE = SHARED / "models" / "modnet_people.ckpt"
SYNTHETIC = SHARED / "models" / "modnet_synthetic.ckpt"
FAST = {"backend": "onnxruntime", "ref_size": 256}
CLI_FAST = ["--backend", "onnxruntime", "--ref-size", "256", "--quiet"]
DOCS = Path(__file__).resolve().parent.parent / "docs" / "api.md"


@pytest.fixture(scope="module")
def matter() -> Iterator[Matter]:
    with Matter(need(PEOPLE), **FAST) as m:
        yield m


def photo() -> Path:
    return need(IMAGES / "portraits" / "astronaut.png")


def rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def video_frames(count: int, name: str = "chaplin_360p.mp4") -> list[np.ndarray]:
    with av.open(str(need(VIDEOS / name))) as container:
        frames = container.decode(video=0)
        return [next(frames).to_ndarray(format="rgb24") for _ in range(count)]


def test_alpha_rgba_composite_equal_the_cli_pngs(matter: Matter, tmp_path: Path) -> None:
    src = photo()
    out = tmp_path / "cli"
    argv = [str(src), "-o", f"{out}/", "--model", str(PEOPLE), "--mode", "rgba,alpha,composite"]
    assert main([*argv, "--background", "#3060c0", *CLI_FAST]) == 0
    png = {p.name.split(".")[1]: np.asarray(Image.open(p)) for p in out.iterdir()}
    image = rgb(src)
    assert np.array_equal(matter.alpha(image), png["alpha"])
    assert np.array_equal(matter.rgba(image), png["matte"])
    composite = matter.composite(image, "#3060c0")
    assert np.array_equal(composite, png[next(k for k in png if k not in ("alpha", "matte"))])
    assert np.array_equal(matter.composite(image, (0x30, 0x60, 0xC0)), composite)
    assert 0 < matter.alpha(image).mean() < 255  # a real matte, not a constant


def test_process_writes_the_same_bytes_as_the_cli(tmp_path: Path) -> None:
    src = need(VIDEOS / "chaplin_360p.mp4")
    cli, api = tmp_path / "cli.mov", tmp_path / "api.mov"
    assert main([str(src), "-o", str(cli), "--model", str(PEOPLE), "--duration", "0.2", *CLI_FAST]) == 0
    seen: list[tuple[Path, int, int | None]] = []
    results = trt_modnet.process(
        src, api, model=PEOPLE, duration=0.2, progress=lambda f, d, t: seen.append((f, d, t)), **FAST
    )
    assert [(r.status, r.frames, r.outputs, r.error) for r in results] == [("ok", 5, (api,), None)]
    assert isinstance(results[0], FileResult)
    assert cli.read_bytes() == api.read_bytes()
    assert seen[-1][0].samefile(src) and seen[-1][1:] == (5, 5)
    assert [d for _, d, _ in seen] == sorted(d for _, d, _ in seen)


def test_stream_equals_one_call_per_frame_and_pil_round_trips(matter: Matter) -> None:
    frames = video_frames(5)  # two batches of the default 4
    rows = list(matter.stream(iter(frames), outputs=("alpha", "rgba")))
    assert len(rows) == 5
    for frame, row in zip(frames, rows, strict=True):
        assert np.array_equal(row["alpha"], matter.alpha(frame))
    assert np.array_equal(matter.rgba(np.stack(frames)), np.stack([r["rgba"] for r in rows]))
    bgr = [f[..., ::-1] for f in frames[:2]]
    assert np.array_equal(next(matter.stream(bgr, bgr=True))["alpha"], rows[0]["alpha"])
    assert np.array_equal(matter.alpha(np.stack(frames)), np.stack([r["alpha"] for r in rows]))
    out = matter.rgba(Image.fromarray(frames[0]))
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out), rows[0]["rgba"])
    assert matter.alpha(Image.fromarray(frames[0])).mode == "L"


def test_stream_raises_the_generators_error_and_an_early_break_leaves_no_thread(matter: Matter) -> None:
    frames = video_frames(3)
    before = set(threading.enumerate())

    def failing() -> Iterator[np.ndarray]:
        yield from frames
        raise OSError("camera unplugged")

    with pytest.raises(OSError, match="camera unplugged"):
        for _ in matter.stream(failing()):
            pass
    assert set(threading.enumerate()) == before

    def endless() -> Iterator[np.ndarray]:
        while True:
            yield frames[0]

    for i, _ in enumerate(matter.stream(endless())):
        with pytest.raises(MattingError, match=r"busy with a \.stream"):
            matter.alpha(frames[0])  # the stream's runner, in flight
        if i == 1:
            break
    assert set(threading.enumerate()) == before
    assert matter.alpha(frames[0]).shape == frames[0].shape[:2]  # the runner is free again


def test_two_matters_at_once_across_sizes_and_threads(matter: Matter) -> None:
    small, big = video_frames(1)[0], rgb(photo())
    expected = {"small": matter.alpha(small), "big": matter.alpha(big)}
    with Matter(need(SYNTHETIC), **FAST) as other:
        got: dict[str, np.ndarray] = {}

        def run(name: str, m: Matter, image: np.ndarray) -> None:
            for _ in range(2):  # sizes alternate: the runner is prepared again each time
                got[name] = m.alpha(image)

        threads = [
            threading.Thread(target=run, args=("small", matter, small)),
            threading.Thread(target=run, args=("big", matter, big)),
            threading.Thread(target=run, args=("other", other, big)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert np.array_equal(got["small"], expected["small"]) and np.array_equal(got["big"], expected["big"])
    assert not np.array_equal(got["other"], got["big"])  # another model: another matte


def test_close_twice_then_refused_and_what_it_runs_is_said() -> None:
    m = Matter(need(PEOPLE), **FAST)
    assert m.backend.startswith("onnxruntime (") and m.precision == "fp32"
    assert "onnxruntime" in repr(m) and "open" in repr(m)
    m.close()
    m.close()
    assert "closed" in repr(m)
    with pytest.raises(MattingError, match="closed"):
        m.alpha(np.zeros((64, 64, 3), np.uint8))


@pytest.mark.parametrize(
    ("frames", "words"),
    [
        (np.zeros((64, 64, 3), np.float32), "uint8"),
        (np.zeros((64, 64, 3), np.uint16), "uint8"),
        (np.zeros((64, 64), np.uint8), r"\[H,W,3\]"),
        (np.zeros((64, 64, 4), np.uint8), r"\[H,W,3\]"),
        (np.zeros((0, 64, 64, 3), np.uint8), r"\[H,W,3\]"),
        (np.zeros((31, 64, 3), np.uint8), "32x32"),
        ([[0, 0, 0]], "numpy array"),
    ],
)
def test_bad_frames_say_what_was_given(matter: Matter, frames: object, words: str) -> None:
    with pytest.raises(MattingError, match=words) as info:
        matter.alpha(frames)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_bad_backgrounds_and_options(matter: Matter) -> None:
    frames = np.zeros((2, 64, 64, 3), np.uint8)
    with pytest.raises(MattingError, match=r"does not fit 2 frames of 64x64"):
        matter.composite(frames, np.zeros((3, 64, 64, 3), np.uint8))
    with pytest.raises(MattingError, match="not a colour"):
        matter.composite(frames, "no-such-colour")
    with pytest.raises(MattingError, match="outputs"):
        matter.stream([frames[0]], outputs=("matte",))
    with pytest.raises(TypeError, match="bgrr"):
        matter.alpha(frames, bgrr=True)  # type: ignore[call-arg]
    with pytest.raises(MattingError, match="batch"):
        Matter(PEOPLE, batch=0)


@pytest.mark.parametrize(
    ("keywords", "words"),
    [
        ({"batch": 0}, "batch"),
        ({"mode": "matte"}, "unknown mode"),
        ({"backend": "cuda"}, "backend 'cuda'"),
        ({"ref_size": 16}, "at least 32"),
        ({"start": -1}, "start"),
        ({"overwrites": True}, "did you mean 'overwrite'"),
    ],
)
def test_process_refuses_a_bad_call_without_writing(tmp_path: Path, keywords: dict, words: str) -> None:
    with pytest.raises(MattingError, match=words):
        trt_modnet.process(photo(), f"{tmp_path}/out/", **keywords)
    assert not (tmp_path / "out").exists()


def test_process_with_no_inputs_and_a_disagreeing_matter(matter: Matter, tmp_path: Path) -> None:
    with pytest.raises(MattingError, match="no inputs"):
        trt_modnet.process([])
    with pytest.raises(MattingError, match="backend 'openvino' differs"):
        trt_modnet.process(photo(), f"{tmp_path}/o/", matter=matter, backend="openvino")
    results = trt_modnet.process(photo(), f"{tmp_path}/o/", matter=matter, mode="alpha")
    assert [r.status for r in results] == ["ok"]
    assert np.array_equal(np.asarray(Image.open(results[0].outputs[0])), matter.alpha(rgb(photo())))


def test_cancel_removes_the_partial_outputs(tmp_path: Path) -> None:
    src = need(VIDEOS / "chaplin_360p.mp4")
    cancel = threading.Event()
    out = tmp_path / "out"
    results = trt_modnet.process(
        [src, need(VIDEOS / "carphone_qcif.mp4")],
        f"{out}/",
        model=PEOPLE,
        batch=1,
        duration=2,
        cancel=cancel,
        progress=lambda f, done, total: cancel.set(),  # cancelled once the first frame is written
        **FAST,
    )
    assert [r.status for r in results] == ["cancelled", "cancelled"]
    assert all(r.outputs == () and r.frames == 0 for r in results)
    assert sorted(os.listdir(out)) == []  # neither the final nor a temporary name left


def test_docs_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ```python block of docs/api.md, in order, in a folder where `shared/` is the shared media."""
    need(PEOPLE)
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert len(blocks) >= 4
    (tmp_path / "shared").symlink_to(SHARED)
    monkeypatch.chdir(tmp_path)
    for n, code in enumerate(blocks):
        exec(compile(code, f"docs/api.md block {n + 1}", "exec"), {"__name__": "__docs__"})


def test_openvino_matter_equals_its_cli_png(tmp_path: Path) -> None:
    """The other CPU backend through the same runner; the frame is small to keep the compile short."""
    pytest.importorskip("openvino")
    frame = video_frames(1, "carphone_qcif.mp4")[0]
    src = tmp_path / "carphone.png"
    Image.fromarray(frame).save(src)
    argv = [str(src), "-o", f"{tmp_path}/cli/", "--model", str(PEOPLE), "--mode", "alpha", "--quiet"]
    assert main([*argv, "--backend", "openvino", "--precision", "fp32", "--ref-size", "256"]) == 0
    with Matter(need(PEOPLE), backend="openvino", precision="fp32", ref_size=256) as m:
        assert m.backend.startswith("openvino") and m.precision == "fp32"
        alpha = m.alpha(frame)
    assert np.array_equal(alpha, np.asarray(Image.open(next((tmp_path / "cli").iterdir()))))
