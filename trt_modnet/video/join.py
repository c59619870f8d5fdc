"""Joining the pieces of one output (`--segment-seconds`): a stream copy, nothing decoded or encoded again.

The pieces' video packets go into the final container as they are, with the timestamps their writers
gave them (those of the unsplit run, see `formats.Piece`), and the source's audio is carried over once
for the whole file, exactly as a plain run carries it (`AudioPassthrough`). That is a valid stream for
intra-only codecs (ProRes, FFV1) and for H.264, whose pieces each start with an IDR frame from encoders
with the same settings; their global headers (SPS/PPS in the avcC extradata) must then be identical,
which is checked. A PNG sequence is the pieces' images renumbered into one folder. VP9 .webm is not
joined (its alpha travels in Matroska block additions; not built or tested here): refused up front.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av

from trt_modnet.errors import MattingError
from trt_modnet.video.audio import AudioPassthrough
from trt_modnet.video.formats import OutputPlan
from trt_modnet.video.info import VideoInfo
from trt_modnet.video.matroska import MATROSKA_MUXERS
from trt_modnet.video.staging import Staging
from trt_modnet.video.writers import (
    container_target,
    mark_default,
    pixel_aspect,
    say_display_aspect,
    timecode,
    timecode_track,
)

#: Formats whose pieces are joined by stream copy (or renumbering, PNG).
JOINABLE = ("mov", "mkv", "mp4", "png")


def join_pieces(plan: OutputPlan, info: VideoInfo, pieces: Sequence[Path], origin: Fraction) -> int:
    """Join `pieces` (in order) into `plan.path`, renamed into place when complete; returns the frames.

    `origin` is the source's first frame in seconds: what `--timestamps zero` took off every time.
    """
    staging = Staging(plan.path, folder=plan.folder, replace=plan.replace)
    try:
        with _errors(plan.path):
            if plan.folder:
                frames = _join_images(pieces, staging.temp)
            else:
                frames = _join_video(plan, info, pieces, staging.temp, origin)
        staging.commit()
    except BaseException:
        staging.discard()
        raise
    return frames


def _join_images(pieces: Sequence[Path], folder: Path) -> int:
    count = 0
    for piece in pieces:
        for image in sorted(piece.glob("*.png")):
            os.rename(image, folder / f"{count:06d}.png")
            count += 1
    return count


def _join_video(
    plan: OutputPlan, info: VideoInfo, pieces: Sequence[Path], temp: Path, origin: Fraction
) -> int:
    target, options = container_target(plan, temp, info)
    with contextlib.ExitStack() as stack:
        output = stack.enter_context(
            av.open(str(target), "w", format=plan.format.muxer, container_options=options)
        )
        stream, header = _video_stream(output, pieces[0], info)
        offset = float(_offset(plan, info, origin, stream))
        audio = None
        if plan.audio and info.audio and plan.format.audio_fallback:
            fmt = plan.format
            audio = AudioPassthrough(
                info.path, info.audio, output, fallback=fmt.audio_fallback, codecs=fmt.audio_codecs
            )
            stack.callback(audio.close)
        mark_default(output)
        output.start_encoding()
        if audio is not None:
            audio.begin(None, offset)
        count = 0
        for piece in pieces:
            for packet in _packets(piece, header, plan.path):
                # The writers feed the audio up to each frame's source time; so does the join.
                time = float(packet.pts * packet.time_base) + offset if packet.pts is not None else 0.0
                packet.stream = stream
                output.mux(packet)
                count += 1
                if audio is not None:
                    audio.feed(time)
        if audio is not None:
            audio.finish(math.inf)
    if plan.format.muxer in MATROSKA_MUXERS:
        say_display_aspect(target, pixel_aspect(info), plan.format.muxer, plan.path)
    return count


def _video_stream(
    output: av.container.OutputContainer, first: Path, info: VideoInfo
) -> tuple[av.VideoStream, bytes | None]:
    """The output's video stream, as the first piece's (its time base too), and that piece's header."""
    with av.open(str(first)) as container:
        template = container.streams.video[0]
        stream = output.add_stream_from_template(template)
        stream.time_base = template.time_base
        if info.average_rate:  # as the writer says it (Matroska's default duration, for one)
            stream.codec_context.framerate = info.average_rate
        return stream, template.codec_context.extradata


def _offset(plan: OutputPlan, info: VideoInfo, origin: Fraction, stream: av.VideoStream) -> Fraction:
    """What the writers took off every time (seconds), as `Writer._first_offset` does for a whole file;
    the timecode track, where the format has one, says where the first frame sat in the source."""
    if plan.timestamps == "zero":
        return origin
    if not timecode_track(plan, info):
        return Fraction(0)
    if origin > 0:
        assert info.average_rate is not None  # no timecode track without a frame rate
        stream.metadata["timecode"] = timecode(origin, info.average_rate)
    return max(origin, Fraction(0))


def _packets(piece: Path, header: bytes | None, final: Path) -> Iterator[av.Packet]:
    with av.open(str(piece)) as container:
        stream = container.streams.video[0]
        if stream.codec_context.extradata != header:
            raise MattingError(
                f"{final}: the pieces' encoders wrote different stream headers ({piece.name}); "
                "cannot join them by stream copy: leave out --segment-seconds"
            )
        for packet in container.demux(stream):
            if packet.size:  # not the demuxer's flush packet
                yield packet


@contextlib.contextmanager
def _errors(final: Path) -> Iterator[None]:
    try:
        yield
    except (av.FFmpegError, OSError) as exc:
        raise MattingError(
            f"{final}: joining the pieces failed: {getattr(exc, 'strerror', None) or exc}"
        ) from None
