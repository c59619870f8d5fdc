"""MobileNetV2 (width 1.0, expansion 6, no classifier) as MODNet's encoder."""

from __future__ import annotations

import torch
from torch import nn

# (expansion t, output channels c, repeats n, first stride s), as in the MobileNetV2 paper.
_INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_STEM_CHANNELS = 32
_LAST_CHANNELS = 1280
# features[i] indices after which the 1/2, 1/4, 1/8, 1/16 and 1/32 features are taken.
_TAPS = (1, 3, 6, 13, 18)


def _conv_bn_relu6(inp: int, oup: int, kernel: int, stride: int, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(inp, oup, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU6(inplace=True),
    ]


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = inp * expansion
        self.use_res_connect = stride == 1 and inp == oup
        expand = [] if expansion == 1 else _conv_bn_relu6(inp, hidden, 1, 1)
        self.conv = nn.Sequential(
            *expand,
            *_conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        features: list[nn.Module] = [nn.Sequential(*_conv_bn_relu6(in_channels, _STEM_CHANNELS, 3, 2))]
        channels = _STEM_CHANNELS
        for t, c, n, s in _INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                features.append(InvertedResidual(channels, c, s if i == 0 else 1, t))
                channels = c
        features.append(nn.Sequential(*_conv_bn_relu6(channels, _LAST_CHANNELS, 1, 1)))
        self.features = nn.Sequential(*features)


class MobileNetV2Backbone(nn.Module):
    """Returns the 1/2, 1/4, 1/8, 1/16 and 1/32 features (16, 24, 32, 96, 1280 channels)."""

    enc_channels = (16, 24, 32, 96, 1280)

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.model = MobileNetV2(in_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, layer in enumerate(self.model.features):
            x = layer(x)
            if i in _TAPS:
                taps.append(x)
        return taps
