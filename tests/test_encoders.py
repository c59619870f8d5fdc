"""Encoders: parallel intra-only instances write one encoder's packets; `--encoder` chooses; NVENC
falls back to the CPU in one line where it does not open (here: no GPU)."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import VIDEOS, need
from tests.test_video_media import matte, read_rgba, video_pts
from trt_modnet.errors import MattingError
from trt_modnet.video import OutputSpec, open_reader, open_writer

FRAMES = 0.4  # seconds of juggle_720p: 10 frames, enough for every instance to take several


def _write(source: Path, specs: list[OutputSpec]) -> list[np.ndarray]:
    written = []
    with open_reader(source, duration=FRAMES) as reader:
        writers = [open_writer(spec, reader) for spec in specs]
        for frame in reader:
            h, w = frame.image.shape[:2]
            rgba = np.dstack([frame.image, matte(h, w, frame.index)])
            written.append(rgba)
            for writer in writers:
                writer.write(rgba if writer.plan.content == "rgba" else frame.image, frame)
        for writer in writers:
            writer.close()
    return written


def _packets(path: Path) -> list[tuple[int | None, int | None, bytes]]:
    if path.is_dir():
        return [(None, None, p.read_bytes()) for p in sorted(path.glob("*.png"))]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(p.pts, p.dts, bytes(p)) for p in container.demux(stream) if p.size]


@pytest.mark.parametrize(
    ("name", "encoder"), [("m.mov", None), ("m.mov", "prores_aw"), ("m.mkv", None), ("m", None)]
)
def test_parallel_instances_write_the_packets_of_one_encoder(
    tmp_path: Path, name: str, encoder: str | None
) -> None:
    source = need(VIDEOS / "juggle_720p.mp4")
    one, three = tmp_path / "one" / name, tmp_path / "three" / name
    one.parent.mkdir(), three.parent.mkdir()
    written = _write(
        source,
        [OutputSpec(one, encoder=encoder), OutputSpec(three, encoder=encoder, instances=3)],
    )
    reference = _packets(one)
    assert len(reference) == len(written) == 10
    assert _packets(three) == reference  # byte for byte, same pts and dts
    back = read_rgba(three)
    assert all(np.array_equal(b[..., 3], w[..., 3]) for b, w in zip(back, written, strict=True))


def test_parallel_instances_are_kept_for_intra_only_codecs_only(tmp_path: Path) -> None:
    source = need(VIDEOS / "chaplin_360p.mp4")
    with open_reader(source, duration=0.1) as reader:
        mp4 = open_writer(OutputSpec(tmp_path / "c.mp4", content="composite", instances=4), reader)
        mkv = open_writer(OutputSpec(tmp_path / "c.mkv", codec_options={"g": "25"}, instances=4), reader)
        mov = open_writer(OutputSpec(tmp_path / "c.mov", instances=4), reader)
        plans = [w.plan.instances for w in (mp4, mkv, mov)]
        for writer in (mp4, mkv, mov):
            writer.abort()
    assert plans == [1, 1, 4]  # H.264 and FFV1 with GOPs have frames that depend on others


def test_prores_aw_writes_ap4h_with_the_source_tags_and_exact_alpha(tmp_path: Path) -> None:
    source = need(VIDEOS / "juggle_720p.mp4")
    out = tmp_path / "aw.mov"
    written = _write(source, [OutputSpec(out, encoder="prores_aw")])
    with av.open(str(out)) as container:
        ctx = container.streams.video[0].codec_context
        assert (ctx.codec_tag, ctx.pix_fmt) == ("ap4h", "yuva444p12le")
        raw = bytes(next(container.demux(video=0)))
    header = raw[raw.index(b"icpf") + 4 :]
    assert header[4:8] == b"apl0"
    assert header[14:17] == bytes([1, 1, 1])  # BT.709 primaries, transfer, matrix, as the source
    assert header[17] & 0x0F == 2  # 16-bit alpha
    back = read_rgba(out)
    assert all(np.array_equal(b[..., 3], w[..., 3]) for b, w in zip(back, written, strict=True))


def test_an_encoder_the_format_has_not_is_one_clear_error(tmp_path: Path) -> None:
    source = need(VIDEOS / "chaplin_360p.mp4")
    with open_reader(source, duration=0.1) as reader, pytest.raises(MattingError) as error:
        open_writer(OutputSpec(tmp_path / "c.mov", encoder="libx264"), reader)
    assert str(error.value) == (
        f"{tmp_path / 'c.mov'}: the mov format is written by prores_ks, prores_aw, not 'libx264'"
    )
    assert not list(tmp_path.iterdir())


def test_nvenc_that_does_not_open_falls_back_to_libx264_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No GPU here: `auto` beside a GPU tries h264_nvenc, says in one line that it did not open, and the
    output is the CPU encoder's, with the same timing."""
    source = need(VIDEOS / "chaplin_360p.mp4")
    gpu, cpu = tmp_path / "gpu.mp4", tmp_path / "cpu.mp4"
    with caplog.at_level(logging.WARNING, logger="trt_modnet"):
        _write(
            source,
            [OutputSpec(gpu, content="composite", gpu=True), OutputSpec(cpu, content="composite")],
        )
    lines = [r.getMessage() for r in caplog.records if "h264_nvenc" in r.getMessage()]
    assert len(lines) == 1 and lines[0].endswith("writing with libx264 on the CPU"), lines
    assert "\n" not in lines[0]
    with av.open(str(gpu)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    assert video_pts(gpu) == video_pts(cpu)
    assert _packets(gpu) == _packets(cpu)  # the same encoder with the same options


def test_naming_nvenc_without_a_gpu_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    source = need(VIDEOS / "chaplin_360p.mp4")
    with open_reader(source, duration=0.1) as reader, pytest.raises(MattingError) as error:
        open_writer(OutputSpec(tmp_path / "c.mp4", content="composite", encoder="h264_nvenc"), reader)
    assert "h264_nvenc" in str(error.value)
    assert not list(tmp_path.iterdir())


def test_nvdec_that_does_not_open_decodes_on_the_cpu_with_the_same_frames(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = need(VIDEOS / "chaplin_360p.mp4")
    with (
        caplog.at_level(logging.INFO, logger="trt_modnet"),
        open_reader(source, duration=0.2, decoder="nvdec") as reader,
    ):
        nvdec = [(f.pts, f.image.copy()) for f in reader]
    with open_reader(source, duration=0.2) as reader:
        cpu = [(f.pts, f.image.copy()) for f in reader]
    lines = [r.getMessage() for r in caplog.records if "h264_cuvid" in r.getMessage()]
    assert len(lines) == 1 and lines[0].endswith("decoding on the CPU"), lines
    assert len(nvdec) == len(cpu) == 5
    assert all(a[0] == b[0] and np.array_equal(a[1], b[1]) for a, b in zip(nvdec, cpu, strict=True))


def test_the_cli_writes_with_the_encoder_named_and_refuses_an_unknown_one(
    synthetic_onnx: Path, tmp_path: Path
) -> None:
    from tests.test_process import FAST, process

    src = need(VIDEOS / "chaplin_360p.mp4")
    out = tmp_path / "c.matte.mov"
    args = ("--model", synthetic_onnx, "--duration", "0.12", *FAST)
    proc = process(src, "-o", out, "--encoder", "prores_aw", "--decoder", "nvdec", *args)
    assert proc.returncode == 0, proc.stderr
    assert "h264_cuvid did not open" in proc.stderr  # the one-line fallback, then the CPU decodes
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.codec_tag == "ap4h"
        assert container.streams.audio  # the audio is kept
    bad = tmp_path / "bad.mov"
    proc = process(src, "-o", bad, "--encoder", "nvenc", *args)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {bad}: the mov format is written by prores_ks, prores_aw, not 'nvenc'"
    )
    assert "Traceback" not in proc.stderr and not bad.exists()


def test_encoder_instances_take_the_cores_inference_leaves() -> None:
    from trt_modnet.job.settings import JobSettings
    from trt_modnet.job.threads import decoder_for, encoder_instances

    cpu = JobSettings(inputs=("a.mp4",), backend="onnxruntime")
    assert encoder_instances(cpu, cores=8) == 1  # inference takes every core: FFmpeg's own threads
    assert encoder_instances(JobSettings(inputs=("a",), backend="openvino", threads=2), cores=8) == 6
    assert encoder_instances(JobSettings(inputs=("a",), backend="tensorrt"), cores=8) == 8
    assert decoder_for(cpu) == "cpu"
    assert decoder_for(JobSettings(inputs=("a",), backend="tensorrt")) == "nvdec"
