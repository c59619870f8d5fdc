"""Issue 26: `python -m benchmarks.soak --minutes M`: the long clip it makes, and the verdict on its samples
(a leak must read as not flat, a steady run as flat)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from benchmarks.soak import FlatBounds, flatness, make_clip


def test_the_long_clip_is_a_moving_pattern_with_clean_timestamps(tmp_path: Path) -> None:
    clip = tmp_path / "soak.mp4"
    assert make_clip(clip, minutes=2 / 60) == 50
    with av.open(str(clip)) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == 50 and (frames[0].width, frames[0].height) == (640, 360)
    pts = [f.pts for f in frames]
    assert pts == sorted(set(pts))
    first, later = frames[0].to_ndarray(format="gray"), frames[25].to_ndarray(format="gray")
    assert np.abs(first.astype(int) - later).mean() > 5  # it moves: the job's frames are not all alike


def _samples(rss_per_min: float, fds_at: float | None = None) -> list[tuple[float, ...]]:
    """Ten minutes sampled each second after a start-up jump: RSS growing at `rss_per_min`, one more
    fd from `fds_at` seconds on."""
    rng = np.random.default_rng(0)
    out = []
    for t in range(600):
        rss = (80.0 if t < 5 else 400.0) + rss_per_min * t / 60 + rng.normal(0, 0.5)
        fds = 8 + (max(0, t - fds_at) // 60 if fds_at is not None else 0)
        out.append((float(t), rss, float(fds), 13.0))
    return out


def test_a_steady_run_is_flat_and_a_leak_is_not() -> None:
    steady = flatness(_samples(0.0), fps=25.0, bounds=FlatBounds())
    assert steady["flat"] and abs(steady["rss_mb"]["per_min"]) < 0.2 and steady["fds"]["per_min"] == 0
    leak = flatness(_samples(1.5), fps=25.0, bounds=FlatBounds())  # 1 KB a frame at 25 fps
    assert not leak["flat"] and abs(leak["rss_mb"]["per_1000_frames"] - 1.0) < 0.1
    fds = flatness(_samples(0.0, fds_at=60), fps=25.0, bounds=FlatBounds())  # one fd a minute
    assert not fds["flat"] and 0.8 < fds["fds"]["per_min"] < 1.2
