"""One-frame delay: flicker goes, real change stays, every frame comes back once, in order."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from trt_modnet.job.ofd import DEFAULT_THRESHOLD, OneFrameDelay

H, W = 72, 128


def disc(cx: int, cy: int = H // 2, r: int = 20) -> np.ndarray:
    matte = np.zeros((H, W), np.uint8)
    cv2.circle(matte, (cx, cy), r, 255, -1, lineType=cv2.LINE_AA)  # soft edge
    return matte


def run(mattes: list[np.ndarray], threshold: int = DEFAULT_THRESHOLD) -> list[tuple[np.ndarray, int]]:
    ofd: OneFrameDelay[int] = OneFrameDelay(threshold)
    out: list[tuple[np.ndarray, int]] = []
    for i, matte in enumerate(mattes):
        out.extend(ofd.push(matte.copy(), i))
    return out + ofd.flush()


def test_a_one_frame_flicker_is_removed() -> None:
    still = disc(64)
    flicker = still.copy()
    flicker[5:15, 5:30] = 200  # a blob in the background for one frame
    flicker[30:40, 60:70] = 0  # a hole in the person for one frame
    out = run([still, still, flicker, still, still])
    assert np.array_equal(out[2][0], still)


def body(left: int) -> np.ndarray:
    """A soft-edged upright shape 40 px wide, so each pixel it moves over is covered for several frames."""
    matte = np.zeros((H, W), np.uint8)
    matte[10:, left : left + 40] = 255
    return cv2.GaussianBlur(matte, (7, 7), 0)


def test_real_motion_and_a_cut_are_kept() -> None:
    moving = [body(10 + 9 * i) for i in range(6)]
    cut = [np.zeros((H, W), np.uint8)] * 3 + [np.full((H, W), 255, np.uint8)] * 3
    for mattes in (moving, cut):
        out = run(mattes)
        assert all(np.array_equal(got, want) for (got, _), want in zip(out, mattes, strict=True))


def test_first_and_last_frames_pass_through_and_count_is_kept() -> None:
    mattes = [disc(64) for _ in range(5)]
    mattes[0][:10] = 255  # differs from its only neighbour, like a flicker would
    mattes[-1][:10] = 255
    out = run(mattes)
    assert [i for _, i in out] == [0, 1, 2, 3, 4]
    assert np.array_equal(out[0][0], mattes[0]) and np.array_equal(out[-1][0], mattes[-1])


def test_replacement_is_the_neighbours_mean_beyond_the_threshold() -> None:
    prev, nxt = np.full((H, W), 100, np.uint8), np.full((H, W), 120, np.uint8)
    cur = np.full((H, W), 100 + 20 + DEFAULT_THRESHOLD, np.uint8)  # just within: 25 from next
    cur[:, W // 2 :] = 120 + DEFAULT_THRESHOLD + 1  # just beyond: 26 from next, 46 from previous
    out = run([prev, cur, nxt])[1][0]
    assert (out[:, : W // 2] == 100 + 20 + DEFAULT_THRESHOLD).all()
    assert (out[:, W // 2 :] == 110).all()
    # Neighbours further apart than the threshold do not agree: nothing is replaced.
    assert np.array_equal(run([prev, cur, np.full((H, W), 126, np.uint8)])[1][0], cur)


def test_frames_of_a_batch_go_through_as_views_and_streams_restart_after_flush() -> None:
    batch = np.stack([disc(64)] * 4)
    batch[2, :8] = 255
    ofd: OneFrameDelay[int] = OneFrameDelay()
    out = [pair for i in range(4) for pair in ofd.push(batch[i], i)] + ofd.flush()
    assert [i for _, i in out] == [0, 1, 2, 3]
    assert out[2][0].base is batch and np.array_equal(batch[2], batch[1])  # fixed in place
    # A new stream of another size after flush: its first frame has no previous one.
    small = [np.zeros((8, 8), np.uint8), np.full((8, 8), 255, np.uint8), np.zeros((8, 8), np.uint8)]
    assert ofd.push(small[0], 0) == []
    assert [i for _, i in ofd.push(small[1], 1) + ofd.push(small[2], 2) + ofd.flush()] == [0, 1, 2]


def test_neighbours_are_predictions_so_pieces_with_one_frame_of_context_smooth_as_one() -> None:
    """The paper's rule compares the network's mattes, never a neighbour already corrected."""
    rng = np.random.default_rng(0)
    mattes = [rng.choice(np.array([0, 100], np.uint8), size=(H, W)) for _ in range(8)]
    whole = [m for m, _ in run(mattes)]
    head, tail = run(mattes[:5]), run(mattes[3:])  # frames 0-3 and 4-7, each with a frame of context
    pieces = [m for m, _ in head[:4] + tail[1:]]
    assert all(np.array_equal(a, b) for a, b in zip(whole, pieces, strict=True))


@pytest.mark.parametrize(
    "matte",
    [np.zeros((H, W), np.float32), np.zeros((1, H, W), np.uint8), np.zeros((H, W * 2), np.uint8)[:, ::2]],
)
def test_bad_mattes_are_refused(matte: np.ndarray) -> None:
    with pytest.raises(ValueError, match="C-contiguous uint8"):
        OneFrameDelay().push(matte, 0)
