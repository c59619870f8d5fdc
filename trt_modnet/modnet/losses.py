"""MODNet's supervised and SOC losses, as the official `src/trainer.py` computes them.

Shapes: images [N,3,H,W] in [-1,1]; mattes, trimaps and predictions [N,1,H,W] in [0,1]; semantic
predictions [N,1,H/16,W/16]. Trimaps hold 0 (background), 0.5 (unknown band) and 1 (foreground).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

SEMANTIC_SCALE = 1 / 16
UNKNOWN = 0.5
# The official SOC band: dilation minus erosion with a square of side 5% of (h + w) / 2.
SOC_BAND_FRACTION = 0.05
SOC_FOREGROUND = 0.1
SOC_PSEUDO_FLOOR = 0.01


@dataclass(frozen=True)
class SupervisedWeights:
    """The official defaults (the trainer notes they may need adjusting to a dataset)."""

    semantic: float = 10.0
    detail: float = 10.0
    matte: float = 1.0


@dataclass(frozen=True)
class SocWeights:
    semantic: float = 100.0
    detail: float = 1.0


OFFICIAL_SUPERVISED = SupervisedWeights()
OFFICIAL_SOC = SocWeights()


class SupervisedLosses(NamedTuple):
    semantic: torch.Tensor
    detail: torch.Tensor
    matte: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.semantic + self.detail + self.matte


class SocLosses(NamedTuple):
    semantic: torch.Tensor
    detail: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.semantic + self.detail


def _official_blur_kernel(size: int = 3) -> torch.Tensor:
    """The official 3x3 kernel: scipy's gaussian_filter (reflect mode, truncate 4) of a centred impulse."""
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    radius = int(4 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    impulse = np.zeros(size)
    impulse[size // 2] = 1
    # numpy's "symmetric" padding is scipy's "reflect": the tails fold back into the 3 taps.
    line = np.convolve(np.pad(impulse, radius, mode="symmetric"), taps / taps.sum(), mode="valid")
    return torch.from_numpy(np.outer(line, line)).float()[None, None]


_BLUR = _official_blur_kernel()


def blur(x: torch.Tensor) -> torch.Tensor:
    """The official Gaussian blur of [N,1,h,w] maps (sigma 0.8, 3x3, reflection padding)."""
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), _BLUR.to(x))


def semantic_target(matte: torch.Tensor) -> torch.Tensor:
    """A matte brought to the semantic branch's 1/16 resolution and blurred."""
    return blur(F.interpolate(matte, scale_factor=SEMANTIC_SCALE, mode="bilinear", align_corners=False))


def _dilate(x: torch.Tensor, side: int) -> torch.Tensor:
    """Grey dilation with a flat side x side square (even sides extend one more pixel up and left)."""
    before, after = side // 2, side - 1 - side // 2
    return F.max_pool2d(F.pad(x, (before, after, before, after), mode="replicate"), side, stride=1)


def _erode(x: torch.Tensor, side: int) -> torch.Tensor:
    return -_dilate(-x, side)


def trimap_from_matte(matte: torch.Tensor, *, band: int) -> torch.Tensor:
    """0 where the matte is 0 within `band` pixels, 1 where it is 1 within `band`, 0.5 elsewhere."""
    side = 2 * band + 1
    trimap = torch.full_like(matte, UNKNOWN)
    trimap[_erode(matte, side) >= 1.0] = 1.0
    trimap[_dilate(matte, side) <= 0.0] = 0.0
    return trimap


def supervised_losses(
    prediction: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    image: torch.Tensor,
    trimap: torch.Tensor,
    matte: torch.Tensor,
    weights: SupervisedWeights = OFFICIAL_SUPERVISED,
) -> SupervisedLosses:
    """Semantic MSE at 1/16, detail L1 on the unknown band, matte L1 + compositional L1 (band x4)."""
    semantic, detail, predicted = prediction
    known = trimap != UNKNOWN
    semantic_loss = F.mse_loss(semantic, semantic_target(matte))
    # Outside the band both sides equal the trimap, so the mean runs over the band only in effect.
    detail_loss = F.l1_loss(torch.where(known, trimap, detail), torch.where(known, trimap, matte))
    in_band = torch.where(known, trimap, predicted)
    l1 = F.l1_loss(predicted, matte) + 4.0 * F.l1_loss(in_band, matte)
    composited = image * matte
    compositional = F.l1_loss(image * predicted, composited) + 4.0 * F.l1_loss(image * in_band, composited)
    return SupervisedLosses(
        weights.semantic * semantic_loss, weights.detail * detail_loss, weights.matte * (l1 + compositional)
    )


def soc_band(semantic: torch.Tensor, matte: torch.Tensor) -> torch.Tensor:
    """Float mask of the boundary band around pixels where both predictions exceed 0.1."""
    up = F.interpolate(
        (semantic > SOC_FOREGROUND).float(), scale_factor=16, mode="bilinear", align_corners=False
    )
    foreground = (matte > SOC_FOREGROUND).float() * up
    h, w = matte.shape[2:]
    side = max(1, int((h + w) / 2 * SOC_BAND_FRACTION))
    return (_dilate(foreground, side) != _erode(foreground, side)).float()


def soc_losses(
    prediction: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    backup: tuple[torch.Tensor, torch.Tensor],
    weights: SocWeights = OFFICIAL_SOC,
) -> SocLosses:
    """Semantic-vs-matte consistency, and band L1 of detail and matte against the backup model's."""
    semantic, detail, matte = prediction
    backup_detail, backup_matte = backup
    with torch.no_grad():
        band = soc_band(semantic, matte)
    down = blur(F.interpolate(matte, scale_factor=SEMANTIC_SCALE, mode="bilinear", align_corners=False))
    pseudo_semantic = down.detach()
    pseudo_semantic = pseudo_semantic * (pseudo_semantic > SOC_PSEUDO_FLOOR)
    pseudo_matte = semantic.detach()
    pseudo_matte = pseudo_matte * (pseudo_matte > SOC_PSEUDO_FLOOR)
    consistency = F.mse_loss(semantic, pseudo_semantic) + F.mse_loss(down, pseudo_matte)
    regularisation = _band_l1(detail, backup_detail, band) + _band_l1(matte, backup_matte, band)
    return SocLosses(weights.semantic * consistency, weights.detail * regularisation)


def _band_l1(x: torch.Tensor, reference: torch.Tensor, band: torch.Tensor) -> torch.Tensor:
    # Per-image mean over the band; an image with no band (nothing detected) contributes 0, not NaN.
    total = (band * (x - reference).abs()).sum(dim=(1, 2, 3))
    return (total / band.sum(dim=(1, 2, 3)).clamp(min=1.0)).mean()
