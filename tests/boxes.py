"""Small readers for what PyAV does not show: MP4/QuickTime boxes, Matroska elements, PNG chunks.

They read the bytes the way an editor's or browser's demuxer does, so a test sees what those clients see.
"""

from __future__ import annotations

import struct
import zlib
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


_EBML_MASTERS = {0x1A45DFA3, 0x18538067, 0x114D9B74, 0x4DBB, 0x1549A966, 0x1654AE6B, 0xAE, 0xE0, 0x55B0}


def ebml_tree(path: Path) -> list[tuple[int, int, int, int, int]]:
    """Every Matroska element before the first Cluster and the level-1 ones after it, as
    (id, start, body, end, depth), in file order; master elements are walked into."""
    data = path.read_bytes()
    found: list[tuple[int, int, int, int, int]] = []

    def vint(at: int, keep_marker: bool) -> tuple[int, int]:
        first = data[at]
        length = 1
        while length <= 8 and not first & (0x80 >> (length - 1)):
            length += 1
        value = first if keep_marker else first & (0xFF >> length)
        for byte in data[at + 1 : at + length]:
            value = value << 8 | byte
        return value, length

    def walk(at: int, end: int, depth: int) -> None:
        while at < end:
            element, n = vint(at, True)
            size, m = vint(at + n, False)
            body = at + n + m
            if size == (1 << (7 * m)) - 1:  # unknown size (a live segment)
                size = end - body
            found.append((element, at, body, body + size, depth))
            if element in _EBML_MASTERS:
                walk(body, min(end, body + size), depth + 1)
            at = body + size

    walk(0, len(data), 0)
    return found


def ebml_elements(path: Path, wanted: dict[int, str]) -> dict[str, list[int]]:
    """Unsigned values of the wanted Matroska elements (id -> name), walking the master elements."""
    data = path.read_bytes()
    found: dict[str, list[int]] = {name: [] for name in wanted.values()}
    for element, _, body, end, _ in ebml_tree(path):
        if element in wanted:
            found[wanted[element]].append(int.from_bytes(data[body:end], "big"))
    return found


def ebml_problems(path: Path) -> list[str]:
    """What mkvalidator would flag in the header: a CRC-32 that does not match the rest of its element,
    a SeekHead entry that does not point at an element of its ID."""
    data = path.read_bytes()
    tree = ebml_tree(path)
    segment = next(body for element, _, body, _, depth in tree if element == 0x18538067 and depth == 0)
    level1 = {start - segment: element for element, start, _, _, depth in tree if depth == 1}
    problems = []
    for i, (element, _, body, end, depth) in enumerate(tree):
        first_child = tree[i + 1] if i + 1 < len(tree) else None
        if element in _EBML_MASTERS and first_child and first_child[0] == 0xBF and first_child[1] == body:
            stored = int.from_bytes(data[first_child[2] : first_child[3]], "little")
            if stored != zlib.crc32(data[first_child[3] : end]):
                problems.append(f"CRC-32 of element {element:#x} at {body}")
        if element == 0x4DBB:  # Seek: SeekID then SeekPosition, relative to the Segment's body
            children = {c[0]: data[c[2] : c[3]] for c in tree if c[4] == depth + 1 and body <= c[1] < end}
            target, position = (
                int.from_bytes(children[0x53AB], "big"),
                int.from_bytes(children[0x53AC], "big"),
            )
            if level1.get(position) != target:
                problems.append(f"Seek to {target:#x} points at {position}")
    return problems
