"""Training and adaptation data: image + matte folders, frames sampled from footage, synthetic samples."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from trt_modnet.errors import MattingError
from trt_modnet.graph.official import inference_size
from trt_modnet.job.inputs import IMAGE_SUFFIXES, is_image
from trt_modnet.video import open_reader

log = logging.getLogger("trt_modnet")

_SHOWN = 3


def normalise(rgb: np.ndarray) -> torch.Tensor:
    """[H,W,3] RGB in 0..255 (uint8 or float) -> float [3,H,W] in [-1,1], as the official preprocessing."""
    return torch.from_numpy(rgb).permute(2, 0, 1).float().sub_(127.5).div_(127.5)


def network_input(rgb: np.ndarray, ref_size: int) -> torch.Tensor:
    """[1,3,h,w]: a uint8 frame as the deployment graph feeds it to MODNet: INTER_AREA in float down to
    the inference size of the official rule, normalised."""
    h, w = inference_size(*rgb.shape[:2], ref_size)
    return normalise(cv2.resize(rgb.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA))[None]


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise MattingError(f"{path}: cannot read the image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_matte(path: Path) -> np.ndarray:
    """uint8 [H,W]: a grey image, the first channel of a colour one, or the alpha of an RGBA one."""
    matte = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if matte is None:
        raise MattingError(f"{path}: cannot read the matte")
    if matte.dtype == np.uint16:
        matte = (matte >> 8).astype(np.uint8)
    if matte.dtype != np.uint8:
        raise MattingError(f"{path}: mattes must be 8- or 16-bit images, not {matte.dtype}")
    if matte.ndim == 3:
        matte = matte[:, :, 3] if matte.shape[2] == 4 else matte[:, :, 0]
    return np.ascontiguousarray(matte)


class MattePairs(Dataset):
    """Images and mattes paired by file stem, served as random square crops of side `size`.

    Each pair is scaled so that its short side is `size`, cropped at a random place and flipped at random
    (torch's global generator, so `torch.manual_seed` makes an epoch reproducible). Items: image
    [3,size,size] in [-1,1] and matte [1,size,size] in [0,1].
    """

    def __init__(self, images: Path, mattes: Path, *, size: int) -> None:
        self.pairs = pair_files(Path(images), Path(mattes))
        self.size = size

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, matte_path = self.pairs[index]
        rgb, matte = read_rgb(image_path), read_matte(matte_path)
        if rgb.shape[:2] != matte.shape:
            raise MattingError(
                f"{matte_path}: the matte is {matte.shape[1]}x{matte.shape[0]}, "
                f"its image {image_path.name} is {rgb.shape[1]}x{rgb.shape[0]}"
            )
        rgb, matte = _random_crop(rgb, matte, self.size)
        return normalise(rgb), torch.from_numpy(matte).float().div_(255)[None]


def pair_files(images: Path, mattes: Path) -> list[tuple[Path, Path]]:
    """(image, matte) pairs matched by file stem; an image without a matte (or the reverse) is an error."""
    found = []
    for folder in (images, mattes):
        if not folder.is_dir():
            raise MattingError(f"{folder}: no such folder")
        files = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
        if not files:
            raise MattingError(f"{folder}: the folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        found.append(files)
    image_files, matte_files = found
    _check_counterparts(image_files, matte_files, f"{mattes}: no matte for", f"images of {images}")
    _check_counterparts(matte_files, image_files, f"{images}: no image for", f"mattes of {mattes}")
    return [(image_files[stem], matte_files[stem]) for stem in sorted(image_files)]


def _check_counterparts(have: dict[str, Path], lack: dict[str, Path], missing: str, of: str) -> None:
    orphans = sorted(set(have) - set(lack))
    if orphans:
        more = ", ..." if len(orphans) > _SHOWN else ""
        raise MattingError(f"{missing} {len(orphans)} {of} ({', '.join(orphans[:_SHOWN])}{more})")


def _random_crop(rgb: np.ndarray, matte: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = matte.shape
    scale = size / min(h, w)
    th, tw = max(size, round(h * scale)), max(size, round(w * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    rgb = cv2.resize(rgb, (tw, th), interpolation=interpolation)
    matte = cv2.resize(matte, (tw, th), interpolation=interpolation)
    top = int(torch.randint(th - size + 1, ()))
    left = int(torch.randint(tw - size + 1, ()))
    rgb, matte = rgb[top : top + size, left : left + size], matte[top : top + size, left : left + size]
    if torch.rand(()) < 0.5:
        rgb, matte = rgb[:, ::-1], matte[:, ::-1]
    return np.ascontiguousarray(rgb), np.ascontiguousarray(matte)


def sample_frames(paths: Sequence[Path], count: int) -> list[np.ndarray]:
    """`count` uint8 RGB frames spread evenly over the footage: each video, and all images together.

    The frames are split evenly between the sources (every video is one, the images given are one pool);
    within a source they sit at evenly spaced times (videos are seeked, not decoded in full) or positions.
    """
    images = [p for p in paths if is_image(p)]
    videos = [p for p in paths if not is_image(p)]
    sources: list[Path | list[Path]] = [*videos, *([images] if images else [])]
    if count < len(sources):
        raise MattingError(f"{count} frames are too few for {len(sources)} sources: give at least one each")
    frames: list[np.ndarray] = []
    for i, source in enumerate(sources):
        share = count // len(sources) + (1 if i < count % len(sources) else 0)
        if isinstance(source, list):
            picks = [source[int((k + 0.5) * len(source) / share)] for k in range(share)]
            frames.extend(_first_frame(p) for p in picks)
        else:
            frames.extend(video_frames(source, share))
    return frames


def video_frames(path: Path, count: int) -> list[np.ndarray]:
    """`count` RGB frames of a video at evenly spaced times (the first frame at or after each time)."""
    with open_reader(path) as reader:
        info = reader.info
        if info.duration is None:
            log.warning("%s: the duration is unknown; using its first %d frames", path, count)
            return [frame.image for frame, _ in zip(reader, range(count), strict=False)]
    # Keep the last time a frame before the end, so that every seek finds a frame.
    last = max(0.0, info.duration - 1.5 / float(info.average_rate or 25))
    return [_first_frame(path, min(last, info.duration * (k + 0.5) / count)) for k in range(count)]


def _first_frame(path: Path, start: float | None = None) -> np.ndarray:
    with open_reader(path, start=start) as reader:
        return next(iter(reader)).image


def synthetic_pair(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A person-like shape (head and torso, soft edges) composited over a texture: (RGB, matte), uint8."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cx = width * rng.uniform(0.35, 0.65)
    head_y, head_r = height * rng.uniform(0.2, 0.35), min(height, width) * rng.uniform(0.12, 0.18)
    inside = ((xx - cx) / head_r) ** 2 + ((yy - head_y) / (head_r * 1.2)) ** 2 <= 1
    torso_w = head_r * rng.uniform(1.8, 2.4)
    inside |= (((xx - cx) / torso_w) ** 2 + ((yy - height) / (height - head_y - head_r)) ** 2) <= 1
    matte = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), max(0.8, min(height, width) / 96))
    background = _texture(rng, height, width)
    foreground = _texture(rng, height, width, smooth=True)
    alpha = matte[:, :, None]
    rgb = alpha * foreground + (1 - alpha) * background
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8), np.clip(matte * 255 + 0.5, 0, 255).astype(np.uint8)


def _texture(rng: np.random.Generator, height: int, width: int, *, smooth: bool = False) -> np.ndarray:
    cells = 3 if smooth else 12
    grid = rng.uniform(0, 255, (cells, cells, 3)).astype(np.float32)
    texture = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    if not smooth:
        stripes = 40 * np.sin(np.arange(width, dtype=np.float32) * rng.uniform(0.2, 0.6))
        texture += stripes[None, :, None]
    return texture
