"""The YUV matrix a source is decoded with, so that encoding uses (and tags) the same one.

Colours survive the round trip when RGB is made with the matrix the source was meant to be shown with,
and the output is converted back with that matrix and tagged with it. Untagged sources get the matrix
players assume (mpv's rule: BT.709 from HD up, BT.601 below); swscale alone would assume BT.601 for all,
which shifts the colours of untagged HD footage.
"""

from __future__ import annotations

BT709 = 1
SMPTE170M = 6

# swscale's own slice threads (FFmpeg 8.1 in PyAV 18) give different results run to run for some
# conversions (RGB or gray to yuv422p10le: values off by up to 250; found by a test here). One thread is
# deterministic and, measured at 1080p on 2 cores, no slower; the pipeline's stages run in parallel anyway.
SWSCALE_THREADS = 1

# AVColorSpace value -> swscale colorspace name (av.video.reformatter.Colorspace).
_SWS_NAMES = {
    1: "ITU709",
    4: "FCC",
    5: "ITU601",
    6: "SMPTE170M",
    7: "SMPTE240M",
    9: "BT2020",
    10: "BT2020",
}


def yuv_matrix(space: int, width: int, height: int) -> int:
    """The AVColorSpace to decode (and re-encode) with: the tag when it names a matrix, else by size."""
    if space in _SWS_NAMES:
        return space
    hd = max(width, height) >= 1280 or min(width, height) > 576
    return BT709 if hd else SMPTE170M


def sws_name(space: int) -> str:
    """The swscale name of a matrix returned by `yuv_matrix`."""
    return _SWS_NAMES[space]


# The primaries and transfer that go with a matrix when the source tags none (ITU-R BT.709 for HD;
# BT.601: SMPTE 170M for 525 lines, BT.470BG primaries for 625), as FFmpeg's CLI and editors pair them.
_PRIMARIES_FOR = {1: 1, 5: 5, 6: 6, 7: 7, 9: 9, 10: 9}
_TRANSFER_FOR = {1: 1, 5: 6, 6: 6, 7: 7, 9: 1, 10: 1}
_UNSPECIFIED = 2


def output_tags(space: int, primaries: int, transfer: int, width: int, height: int) -> tuple[int, int, int]:
    """(matrix, primaries, transfer) to tag an output with: the source's tags, defaults where it has none."""
    matrix = yuv_matrix(space, width, height)
    if primaries == _UNSPECIFIED:
        primaries = _PRIMARIES_FOR.get(matrix, BT709)
    if transfer == _UNSPECIFIED:
        transfer = _TRANSFER_FOR.get(matrix, BT709)
    return matrix, primaries, transfer
