"""The paper's efficient ASPP (e-ASPP), a selectable alternative to the released SE block.

MODNet's AAAI paper describes e-ASPP but never released it, so this is built from the description:
(1) the 1280-channel 1/32 feature is first reduced to a quarter of its channels; (2) every reduced channel
is convolved depth-wise at each atrous rate (no per-rate channel mixing); (3) the multi-scale results are
concatenated and fused by a single point-wise convolution back to the input's channel count, so the rest of
the low-resolution branch is unchanged. Batch norm (not IBNorm) follows each convolution, as in DeepLab's
ASPP; it folds into the convolutions in the exported graph.

The rates are fixed, not an option: they are not recorded in a checkpoint's tensor shapes, so a
configurable rate would let a checkpoint load silently into the wrong network.
"""

from __future__ import annotations

import torch
from torch import nn

# DeepLab's ASPP uses rates 6, 12, 18 at output stride 16; the 1/32 feature halves them, and rate 1 stands in
# for ASPP's 1x1 branch. At 512x896 the feature is 16x28, so rate 9 still reaches across half of it.
RATES = (1, 3, 6, 9)
REDUCTION = 4


def _conv_bn_relu(conv: nn.Conv2d) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(conv.out_channels), nn.ReLU(inplace=True))


class EASPP(nn.Module):
    """[N, C, h, w] -> [N, C, h, w]: multi-scale context on C // 4 channels, fused point-wise."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        reduced = channels // REDUCTION
        self.reduce = _conv_bn_relu(nn.Conv2d(channels, reduced, 1, bias=False))
        self.atrous = nn.ModuleList(
            _conv_bn_relu(nn.Conv2d(reduced, reduced, 3, padding=r, dilation=r, groups=reduced, bias=False))
            for r in RATES
        )
        self.fuse = _conv_bn_relu(nn.Conv2d(reduced * len(RATES), channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        return self.fuse(torch.cat([branch(x) for branch in self.atrous], dim=1))
