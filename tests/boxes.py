"""Small readers for what PyAV does not show: MP4/QuickTime boxes, Matroska elements, PNG chunks.

They read the bytes the way an editor's or browser's demuxer does, so a test sees what those clients see.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

# Boxes that hold only boxes (and the sample entries' fixed fields, skipped below).
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"udta"}
_VISUAL_ENTRIES = {b"apch", b"apcn", b"ap4h", b"ap4x", b"avc1"}


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each box in data[start:end], depth first, in file order."""
    end = len(data) if end is None else end
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[start + 8 : start + 16])[0], 16
        elif size == 0:
            size = end - start
        yield kind, start + header, start + size
        if kind in _CONTAINERS:
            yield from boxes(data, start + header, start + size)
        elif kind == b"stsd":
            yield from boxes(data, start + header + 8, start + size)
        elif kind in _VISUAL_ENTRIES:
            yield from boxes(data, start + header + 78, start + size)
        start += size


def mp4_boxes(path: Path) -> dict[bytes, list[bytes]]:
    """Every box's payload by type, in file order (the top level's order is in `top_level`)."""
    data = path.read_bytes()
    found: dict[bytes, list[bytes]] = {}
    for kind, begin, end in boxes(data):
        found.setdefault(kind, []).append(data[begin:end])
    return found


def top_level(path: Path) -> list[bytes]:
    data = path.read_bytes()
    order, start = [], 0
    while start + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        if size == 1:
            size = struct.unpack(">Q", data[start + 8 : start + 16])[0]
        order.append(kind)
        start += size or len(data)
    return order


def colr(payload: bytes) -> tuple[bytes, int, int, int]:
    """A colr box: (kind nclc/nclx, primaries, transfer, matrix)."""
    kind = payload[:4]
    primaries, transfer, matrix = struct.unpack(">HHH", payload[4:10])
    return kind, primaries, transfer, matrix


def pasp(payload: bytes) -> tuple[int, int]:
    return struct.unpack(">II", payload[:8])


def fiel(payload: bytes) -> tuple[int, int]:
    """(fields 1 progressive or 2 interlaced, detail)."""
    return payload[0], payload[1]


def elst(payload: bytes) -> list[tuple[int, int, float]]:
    """An edit list: (segment duration in movie timescale, media time, rate) for each entry."""
    version = payload[0]
    (count,) = struct.unpack(">I", payload[4:8])
    entries, offset = [], 8
    for _ in range(count):
        if version == 1:
            duration, media = struct.unpack(">Qq", payload[offset : offset + 16])
            offset += 16
        else:
            duration, media = struct.unpack(">Ii", payload[offset : offset + 8])
            offset += 8
        rate = struct.unpack(">i", payload[offset : offset + 4])[0] / 65536
        offset += 4
        entries.append((duration, media, rate))
    return entries


def prores_frame_colour(path: Path) -> tuple[int, int, int]:
    """The first ProRes frame header's (primaries, transfer, matrix) (Apple ProRes RDD 36, 'icpf')."""
    data = path.read_bytes()
    at = data.index(b"icpf")
    header = data[at + 4 :]
    # header size (2), version (2), creator (4), width (2), height (2), flags (1), reserved (1), then:
    return header[14], header[15], header[16]


def png_chunks(path: Path) -> dict[bytes, bytes]:
    data = path.read_bytes()
    chunks, at = {}, 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        chunks[kind] = data[at + 8 : at + 8 + length]
        at += 12 + length
    return chunks


def ebml_elements(path: Path, wanted: dict[int, str]) -> dict[str, list[int]]:
    """Unsigned values of the wanted Matroska elements (id -> name), walking the master elements."""
    data = path.read_bytes()
    found: dict[str, list[int]] = {name: [] for name in wanted.values()}
    masters = {0x1A45DFA3, 0x18538067, 0x1654AE6B, 0xAE, 0xE0, 0x55B0}

    def vint(at: int, keep_marker: bool) -> tuple[int, int]:
        first = data[at]
        length = 1
        while length <= 8 and not first & (0x80 >> (length - 1)):
            length += 1
        value = first if keep_marker else first & (0xFF >> length)
        for byte in data[at + 1 : at + length]:
            value = value << 8 | byte
        return value, length

    def walk(at: int, end: int) -> None:
        while at < end:
            element, n = vint(at, True)
            size, m = vint(at + n, False)
            body = at + n + m
            if size == (1 << (7 * m)) - 1:  # unknown size (a live segment)
                size = end - body
            if element in wanted:
                found[wanted[element]].append(int.from_bytes(data[body : body + size], "big"))
            if element in masters:
                walk(body, min(end, body + size))
            at = body + size

    walk(0, len(data))
    return found
