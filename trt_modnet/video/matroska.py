"""What FFmpeg's Matroska muxer cannot be told through PyAV, written into a finished file in place: the
display aspect (`write_display_aspect`) and a segment's duration (`start_duration_at`).

FFmpeg's Matroska muxer takes DisplayWidth/DisplayHeight from `AVStream.sample_aspect_ratio`, which
PyAV cannot set (its setter reaches the codec context only), so without this every output says
DisplayUnit 4 ("unknown") and an anamorphic source plays squeezed. After the muxer has closed the file,
`write_display_aspect` rewrites the video track's `Video` element as FFmpeg's CLI writes it:

    Matroska, square pixels      nothing (1:1 is the default)
    Matroska, other pixels       DisplayWidth/DisplayHeight = the display aspect, DisplayUnit 3
    WebM, other pixels           DisplayWidth = width x SAR (rounded), DisplayHeight = height

Only the file's first kilobytes change: the muxer reserves room for its SeekHead and pads it with an
EBML Void, so the Info and Tracks elements that follow move into that Void by exactly what the track
header grew (or out of it, by what it shrank), the SeekHead's positions for them are updated, and the
CRC-32 of each rewritten element is recomputed. Every Cluster and Cue stays where it was.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

_SEGMENT = 0x18538067
_INFO = 0x1549A966
_TIMESTAMP_SCALE = 0x2AD7B1
_DURATION = 0x4489
_SEEKHEAD = 0x114D9B74
_SEEK = 0x4DBB
_SEEK_ID = 0x53AB
_SEEK_POSITION = 0x53AC
_TRACKS = 0x1654AE6B
_TRACK_ENTRY = 0xAE
_TRACK_TYPE = 0x83
_VIDEO = 0xE0
_CLUSTER = 0x1F43B675
_VOID = 0xEC
_CRC32 = 0xBF
_DISPLAY_WIDTH = 0x54B0
_DISPLAY_HEIGHT = 0x54BA
_DISPLAY_UNIT = 0x54B2
_PIXEL_WIDTH = 0xB0
_PIXEL_HEIGHT = 0xBA
_DEFAULT_SCALE = 1_000_000  # ns per tick when Info has no TimestampScale
_UNIT_ASPECT = 3  # DisplayUnit 3: DisplayWidth/DisplayHeight are the display aspect ratio
_TRACK_TYPE_VIDEO = 1
#: The FFmpeg muxers whose files these are.
MATROSKA_MUXERS = ("matroska", "webm")
_HEAD = 1 << 16  # the header elements sit well inside the first 64 KiB


class MatroskaLayoutError(ValueError):
    """The file is not laid out as FFmpeg's muxer writes it (no Void to grow into, say)."""


@dataclass(frozen=True)
class _Element:
    id: int
    start: int  # of the ID
    data: int  # of the payload
    end: int
    size_width: int  # bytes of the size field, kept when the element is rewritten

    def payload(self, buf: bytes) -> bytes:
        return buf[self.data : self.end]


def write_display_aspect(path: Path, sar: Fraction, *, webm: bool) -> None:
    """Say `sar` (the pixel aspect) in `path`'s video track header, as FFmpeg's CLI would."""
    with open(path, "r+b") as f:
        head = f.read(_HEAD)
        patched = _patched(head, sar, webm=webm)
        if patched is not None:
            start, data = patched
            f.seek(start)
            f.write(data)


def start_duration_at(path: Path, start: Fraction) -> None:
    """Make the Info's Duration the span from `start` (seconds), where the first frame sits.

    FFmpeg's muxer writes the last frame's end time, so a segment that keeps the source's timestamps
    (2 s to 3 s, say) says 3 s and players show two seconds that are not there; the span is what the
    `.mov` says too. Same bytes, same size: only Duration and Info's CRC-32 change.
    """
    with open(path, "r+b") as f:
        head = f.read(_HEAD)
        info = next((e for e in _header(head) if e.id == _INFO), None)
        if info is None:
            raise MatroskaLayoutError("no Info element")
        fields = {c.id: c for c in _children(head, info.data, info.end)}
        if _DURATION not in fields:
            raise MatroskaLayoutError("no Duration in Info")
        scale = (
            _uint(fields[_TIMESTAMP_SCALE].payload(head)) if _TIMESTAMP_SCALE in fields else _DEFAULT_SCALE
        )
        duration = fields[_DURATION]
        width = duration.end - duration.data
        kind = ">d" if width == 8 else ">f"
        (ticks,) = struct.unpack(kind, duration.payload(head))
        span = max(ticks - round(start * 1_000_000_000 / scale), 0)
        new_info = _rebuilt(head, info, _DURATION, lambda _: struct.pack(kind, span))
        if len(new_info) != info.end - info.start:
            raise MatroskaLayoutError("Info would change size")
        f.seek(info.start)
        f.write(new_info)


def _patched(buf: bytes, sar: Fraction, *, webm: bool) -> tuple[int, bytes] | None:
    """The changed span of `buf` as (offset, bytes); None when the header already says `sar`."""
    level1 = _header(buf)
    by_id = {e.id: e for e in level1}
    if _TRACKS not in by_id or _SEEKHEAD not in by_id:
        raise MatroskaLayoutError("no Tracks or SeekHead before the first Cluster")
    tracks = by_id[_TRACKS]
    new_tracks = _rebuilt(buf, tracks, _TRACK_ENTRY, lambda entry: _with_video(buf, entry, sar, webm=webm))
    if new_tracks == buf[tracks.start : tracks.end]:
        return None
    grow = len(new_tracks) - (tracks.end - tracks.start)
    # The Void nearest before Tracks gives or takes the difference; what lies between moves with Tracks.
    index = level1.index(tracks)
    voids = [i for i in range(index) if level1[i].id == _VOID]
    if not voids:
        raise MatroskaLayoutError("no Void before Tracks")
    void = level1[voids[-1]]
    moved = level1[voids[-1] + 1 : index]
    room = void.end - void.start - grow
    if room < 2:
        raise MatroskaLayoutError(f"the Void before Tracks has {void.end - void.start} bytes, {grow} needed")
    span = _void(room) + b"".join(buf[e.start : e.end] for e in moved) + new_tracks
    shift = {e.id: -grow for e in (*moved, tracks)}
    seekhead = by_id[_SEEKHEAD]
    new_seekhead = _rebuilt(buf, seekhead, _SEEK, lambda seek: _moved_seek(buf, seek, shift))
    if seekhead.end > void.start or len(new_seekhead) != seekhead.end - seekhead.start:
        raise MatroskaLayoutError("the SeekHead does not precede the Void")
    gap = buf[seekhead.end : void.start]
    return seekhead.start, new_seekhead + gap + span


def _with_video(buf: bytes, entry: _Element, sar: Fraction, *, webm: bool) -> bytes | None:
    """A video TrackEntry's children with its display elements for `sar`; None for other tracks."""
    children = list(_children(buf, entry.data, entry.end))
    kinds = {c.id: c for c in children}
    if _VIDEO not in kinds or _TRACK_TYPE not in kinds:
        return None
    if _uint(kinds[_TRACK_TYPE].payload(buf)) != _TRACK_TYPE_VIDEO:
        return None
    video = kinds[_VIDEO]
    parts = list(_children(buf, video.data, video.end))
    fields = {p.id: _uint(p.payload(buf)) for p in parts if p.id in (_PIXEL_WIDTH, _PIXEL_HEIGHT)}
    width, height = fields[_PIXEL_WIDTH], fields[_PIXEL_HEIGHT]
    kept = b"".join(
        buf[p.start : p.end] for p in parts if p.id not in (_DISPLAY_WIDTH, _DISPLAY_HEIGHT, _DISPLAY_UNIT)
    )
    new_video = _encode(_VIDEO, kept + _display(sar, width, height, webm=webm), video.size_width)
    return b"".join(new_video if c is video else buf[c.start : c.end] for c in children)


def _display(sar: Fraction, width: int, height: int, *, webm: bool) -> bytes:
    """The display elements FFmpeg's muxer writes for `sar` at width x height."""
    shown = int(width * sar + Fraction(1, 2))  # av_rescale's rounding, to nearest
    if shown == width:
        return b""
    if webm:  # WebM allows pixels as the only unit
        return _uint_element(_DISPLAY_WIDTH, shown) + _uint_element(_DISPLAY_HEIGHT, height)
    aspect = Fraction(width * sar.numerator, height * sar.denominator).limit_denominator(1 << 20)
    return (
        _uint_element(_DISPLAY_WIDTH, aspect.numerator)
        + _uint_element(_DISPLAY_HEIGHT, aspect.denominator)
        + _uint_element(_DISPLAY_UNIT, _UNIT_ASPECT)
    )


def _moved_seek(buf: bytes, seek: _Element, shift: dict[int, int]) -> bytes | None:
    """A Seek entry's children with its position moved by `shift[its element's ID]`; None if unmoved."""
    children = list(_children(buf, seek.data, seek.end))
    ids = [c for c in children if c.id == _SEEK_ID]
    if not ids or _uint(ids[0].payload(buf)) not in shift:
        return None
    delta = shift[_uint(ids[0].payload(buf))]
    out = []
    for child in children:
        if child.id == _SEEK_POSITION:  # same width, so the SeekHead keeps its size
            payload = child.payload(buf)
            value = (_uint(payload) + delta).to_bytes(len(payload), "big")
            out.append(buf[child.start : child.data] + value)
        else:
            out.append(buf[child.start : child.end])
    return b"".join(out)


def _rebuilt(buf: bytes, master: _Element, kind: int, change: Callable[[_Element], bytes | None]) -> bytes:
    """`master` with each child of ID `kind` given `change(child)` as its payload (unless None), and
    the sizes and CRC-32 redone."""
    children = list(_children(buf, master.data, master.end))
    parts = []
    for child in children:
        if child.id == _CRC32:
            continue
        payload = change(child) if child.id == kind else None
        if payload is None:
            parts.append(buf[child.start : child.end])
        else:
            parts.append(_encode(child.id, payload, child.size_width))
    body = b"".join(parts)
    if children and children[0].id == _CRC32:  # Matroska's CRC-32 covers what follows it, little-endian
        body = _encode(_CRC32, zlib.crc32(body).to_bytes(4, "little"), children[0].size_width) + body
    return _encode(master.id, body, master.size_width)


def _children(buf: bytes, start: int, end: int) -> Iterator[_Element]:
    """The elements from `start` to `end`; the last may run past `buf` (the Segment, a Cluster)."""
    pos = start
    while pos < min(end, len(buf) - 12):  # an element's ID and size take at most 12 bytes
        element_id, id_width = _vint(buf, pos, keep_marker=True)
        size, size_width = _vint(buf, pos + id_width, keep_marker=False)
        data = pos + id_width + size_width
        unknown = size == (1 << (7 * size_width)) - 1
        stop = end if unknown else data + size
        yield _Element(element_id, pos, data, stop, size_width)
        pos = stop


def _header(buf: bytes) -> list[_Element]:
    """The Segment's elements before its first Cluster, each whole within `buf`."""
    segment = next((e for e in _children(buf, 0, len(buf)) if e.id == _SEGMENT), None)
    if segment is None:
        raise MatroskaLayoutError("no Segment")
    elements = []
    for element in _children(buf, segment.data, segment.end):
        if element.id == _CLUSTER:
            return elements
        elements.append(element)
    raise MatroskaLayoutError(f"no Cluster in the first {len(buf)} bytes")


def _vint(buf: bytes, pos: int, *, keep_marker: bool) -> tuple[int, int]:
    first = buf[pos]
    width = 1
    while width <= 8 and not first & (0x80 >> (width - 1)):
        width += 1
    if width > 8:
        raise MatroskaLayoutError(f"not an EBML number at {pos}")
    value = first if keep_marker else first & ((0x80 >> (width - 1)) - 1)
    for byte in buf[pos + 1 : pos + width]:
        value = value << 8 | byte
    return value, width


def _encode(element_id: int, payload: bytes, size_width: int = 1) -> bytes:
    """ID, size (at least `size_width` bytes wide) and payload."""
    width = max(size_width, 1)
    while len(payload) >= (1 << (7 * width)) - 1:
        width += 1
    size = len(payload) | 1 << (7 * width)  # the length marker bit above the number
    id_bytes = element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")
    return id_bytes + size.to_bytes(width, "big") + payload


def _void(total: int) -> bytes:
    """A Void element of exactly `total` (>= 2) bytes."""
    if total - 2 <= 126:
        return _encode(_VOID, bytes(total - 2), 1)
    return _encode(_VOID, bytes(total - 9), 8)


def _uint_element(element_id: int, value: int) -> bytes:
    return _encode(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _uint(payload: bytes) -> int:
    return int.from_bytes(payload, "big")
