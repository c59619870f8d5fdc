"""Bad input and failures: one clear `MattingError` naming the file, and nothing left behind."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import VIDEOS, need
from tests.test_video_media import leftovers, make_audio_only, make_clip, pattern
from trt_modnet.errors import MattingError
from trt_modnet.video import OutputSpec, open_reader, open_writer, validate_output


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "clip.mp4", [pattern(48, 64, i) for i in range(5)])


def _one_line(error: pytest.ExceptionInfo[MattingError], *parts: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for part in parts:
        assert part in message


def _run(reader_path: Path, spec: OutputSpec) -> None:
    with open_reader(reader_path) as reader, open_writer(spec, reader) as writer:
        for frame in reader:
            writer.write(frame.image, frame)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MattingError) as error:
        open_reader(tmp_path / "nothing.mp4")
    _one_line(error, "nothing.mp4", "no such file")


def test_file_that_is_not_media(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 100)
    with pytest.raises(MattingError) as error:
        open_reader(path)
    _one_line(error, str(path), "not a video or image file")


def test_image_that_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8 broken")
    with pytest.raises(MattingError) as error:
        open_reader(path)
    _one_line(error, str(path), "not an image")


def test_media_without_video(tmp_path: Path) -> None:
    path = make_audio_only(tmp_path / "song.m4a")
    with pytest.raises(MattingError) as error:
        open_reader(path)
    _one_line(error, str(path), "no video stream")


def test_empty_folder_and_mixed_image_sizes(tmp_path: Path) -> None:
    with pytest.raises(MattingError, match="no images"):
        open_reader(tmp_path)
    cv2.imwrite(str(tmp_path / "a.png"), pattern(20, 30))
    cv2.imwrite(str(tmp_path / "b.png"), pattern(24, 30))
    with pytest.raises(MattingError) as error, open_reader(tmp_path) as reader:
        list(reader)
    _one_line(error, "b.png", "30x24", "30x20")


def test_bad_segments(clip: Path) -> None:
    with pytest.raises(MattingError, match="start must be"):
        open_reader(clip, start=-1)
    with pytest.raises(MattingError, match="duration must be"):
        open_reader(clip, duration=0)
    with pytest.raises(MattingError, match="no video frames in the requested segment"):
        open_reader(clip, start=60)


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_damaged_video_names_the_frame_and_leaves_nothing(tmp_path: Path, damage: str) -> None:
    data = bytearray(need(VIDEOS / "juggle_720p.mp4").read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:  # garbage over a third of the picture data
        start = len(data) // 3
        data[start : start + 200_000] = np.random.default_rng(0).integers(0, 256, 200_000, np.uint8).tobytes()
    source = tmp_path / "damaged.mp4"
    source.write_bytes(bytes(data))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(MattingError) as error:
        _run(source, OutputSpec(path=out_dir / "out.mp4", content="composite"))
    _one_line(error, str(source), "decoding failed at frame")
    assert list(out_dir.iterdir()) == []
    assert source.read_bytes() == bytes(data)


def test_alpha_into_mp4_is_refused_before_any_file(tmp_path: Path, clip: Path) -> None:
    out = tmp_path / "out.mp4"
    with open_reader(clip) as reader, pytest.raises(MattingError) as error:
        open_writer(OutputSpec(path=out, content="rgba"), reader)
    _one_line(error, str(out), "cannot hold rgba", "mov")
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("clip.mp4", "is the input itself"),
        ("missing/out.mov", "does not exist"),
        ("out.avi", "cannot write .avi"),
        ("clip.png", "name a folder"),
    ],
)
def test_refused_destinations(tmp_path: Path, clip: Path, name: str, message: str) -> None:
    before = clip.read_bytes()
    with open_reader(clip) as reader, pytest.raises(MattingError) as error:
        open_writer(OutputSpec(path=tmp_path / name, content="composite"), reader)
    _one_line(error, message)
    assert clip.read_bytes() == before and leftovers(tmp_path) == []


def test_png_folder_must_be_new_or_empty(tmp_path: Path, clip: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with open_reader(clip) as reader, pytest.raises(MattingError, match="not an empty folder"):
        open_writer(OutputSpec(path=folder), reader)
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_destination(tmp_path: Path, clip: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with open_reader(clip) as reader, pytest.raises(MattingError) as error:
            open_writer(OutputSpec(path=locked / "out.mov"), reader)
        _one_line(error, "permission denied")
    finally:
        locked.chmod(0o700)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_destination_that_cannot_be_created(clip: Path) -> None:
    """/proc takes no new files, not even from root (for whom the permission test above is skipped)."""
    out = Path("/proc/trt_modnet_test.mov")
    with open_reader(clip) as reader, pytest.raises(MattingError) as error:
        open_writer(OutputSpec(path=out), reader)
    _one_line(error, str(out))


def test_bad_codec_options_fail_before_decoding(tmp_path: Path, clip: Path) -> None:
    with open_reader(clip) as reader:
        with pytest.raises(MattingError) as error:
            validate_output(
                OutputSpec(path=tmp_path / "a.mp4", content="alpha", codec_options={"crf": "x"}), reader.info
            )
        _one_line(error, "libx264", "refused")
        with pytest.raises(MattingError) as error:
            open_writer(OutputSpec(path=tmp_path / "b.mov", codec_options={"bogus": "1"}), reader)
        _one_line(error, "prores_ks", "no option bogus=1")
    assert list(tmp_path.iterdir()) == [clip]


@pytest.mark.parametrize("interruption", [RuntimeError("pipeline failed"), KeyboardInterrupt()])
def test_interrupted_writing_leaves_nothing(tmp_path: Path, clip: Path, interruption: BaseException) -> None:
    outputs = [tmp_path / "out.mov", tmp_path / "out.webm", tmp_path / "seq"]
    with pytest.raises(type(interruption)), open_reader(clip) as reader, contextlib.ExitStack() as stack:
        writers = [stack.enter_context(open_writer(OutputSpec(path=p), reader)) for p in outputs]
        for frame in reader:
            for writer in writers:
                writer.write(np.dstack([frame.image, frame.image[..., 0]]), frame)
            raise interruption
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_close_abort_and_empty_outputs(tmp_path: Path, clip: Path) -> None:
    with open_reader(clip) as reader:
        empty = open_writer(OutputSpec(path=tmp_path / "empty.mov"), reader)
        with pytest.raises(MattingError, match="no frames were written"):
            empty.close()
        empty.abort()  # safe after a failed close
        writer = open_writer(OutputSpec(path=tmp_path / "out.mkv", content="alpha"), reader)
        for frame in reader:
            writer.write(frame.image[..., 1], frame)
        writer.close()
        writer.close()
        writer.abort()  # after a successful close: nothing to undo
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "out.mkv"]


def test_wrong_frames_are_a_programming_error(tmp_path: Path, clip: Path) -> None:
    with open_reader(clip) as reader:
        frames = list(reader)
        writer = open_writer(OutputSpec(path=tmp_path / "out.mov"), reader)
        with pytest.raises(ValueError, match="must be uint8"):
            writer.write(frames[0].image, frames[0])  # RGB given to an rgba writer
    assert leftovers(tmp_path) == [] and not (tmp_path / "out.mov").exists()


def test_closed_reader_cannot_be_read(clip: Path) -> None:
    reader = open_reader(clip)
    reader.close()
    reader.close()
    with pytest.raises(RuntimeError, match="closed"):
        iter(reader)


def test_output_folder_removed_even_when_png_frames_were_written(tmp_path: Path) -> None:
    source = need(VIDEOS / "carphone_qcif.mp4")
    copy = tmp_path / "carphone.mp4"
    shutil.copy(source, copy)
    spec = OutputSpec(path=tmp_path / "seq", content="composite")
    with (
        pytest.raises(RuntimeError),
        open_reader(copy, duration=0.2) as reader,
        open_writer(spec, reader) as writer,
    ):
        for frame in reader:
            writer.write(frame.image, frame)
        raise RuntimeError("stop after all frames")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["carphone.mp4"]
