"""MODNet as released (SE block in the low-resolution branch), reimplemented from its description.

Module names and parameter shapes match the official checkpoints, so their state_dicts load as they are.
The training-only heads (`lr_branch.conv_lr`, `hr_branch.conv_hr`) are kept for training and SOC and
skipped when `inference=True`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trt_modnet.modnet.backbone import MobileNetV2Backbone
from trt_modnet.modnet.easpp import EASPP

SIZE_MULTIPLE = 32
# The low-resolution context module: the released SE block, or the paper's e-ASPP (for new models).
LR_MODULES = ("se", "easpp")


def _up(x: torch.Tensor, scale: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


class IBNorm(nn.Module):
    """Batch norm on the first half of the channels, instance norm on the rest."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bnorm_channels = channels // 2
        self.bnorm = nn.BatchNorm2d(self.bnorm_channels, affine=True)
        # Instance norm uses per-image statistics in eval mode too: that is the released behaviour.
        self.inorm = nn.InstanceNorm2d(channels - self.bnorm_channels, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bnorm(x[:, : self.bnorm_channels].contiguous())
        i = self.inorm(x[:, self.bnorm_channels :].contiguous())
        return torch.cat((b, i), dim=1)


class Conv2dIBNormRelu(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        *,
        with_ibn: bool = True,
        with_relu: bool = True,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)]
        if with_ibn:
            layers.append(IBNorm(out_channels))
        if with_relu:
            layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _head(in_channels: int, out_channels: int = 1, kernel_size: int = 1, stride: int = 1) -> Conv2dIBNormRelu:
    return Conv2dIBNormRelu(
        in_channels, out_channels, kernel_size, stride, kernel_size // 2, with_ibn=False, with_relu=False
    )


class SEBlock(nn.Module):
    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc(self.pool(x).flatten(1))
        return x * w[:, :, None, None]


class LRBranch(nn.Module):
    """Semantic estimation at 1/8 resolution from the backbone's 1/32 feature."""

    def __init__(self, backbone: MobileNetV2Backbone, lr_module: str = "se") -> None:
        super().__init__()
        enc = backbone.enc_channels
        self.backbone = backbone
        # Distinct attribute names give distinct state_dict keys, so a checkpoint says which module it holds.
        if lr_module == "se":
            self.se_block = SEBlock(enc[4], reduction=4)
        elif lr_module == "easpp":
            self.easpp = EASPP(enc[4])
        else:
            raise ValueError(f"lr_module must be one of {LR_MODULES}, not {lr_module!r}")
        self.lr_module = lr_module
        self.conv_lr16x = Conv2dIBNormRelu(enc[4], enc[3], 5, padding=2)
        self.conv_lr8x = Conv2dIBNormRelu(enc[3], enc[2], 5, padding=2)
        self.conv_lr = _head(enc[2], kernel_size=3, stride=2)

    def forward(
        self, img: torch.Tensor, inference: bool
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor]:
        enc2x, enc4x, _, _, enc32x = self.backbone(img)
        context = self.se_block(enc32x) if self.lr_module == "se" else self.easpp(enc32x)
        lr16x = self.conv_lr16x(_up(context, 2))
        lr8x = self.conv_lr8x(_up(lr16x, 2))
        semantic = None if inference else torch.sigmoid(self.conv_lr(lr8x))
        return semantic, lr8x, enc2x, enc4x


class HRBranch(nn.Module):
    """Boundary detail at 1/2 resolution from the image and the shallow features."""

    def __init__(self, hr: int, enc: tuple[int, ...]) -> None:
        super().__init__()
        self.tohr_enc2x = Conv2dIBNormRelu(enc[0], hr, 1)
        self.conv_enc2x = Conv2dIBNormRelu(hr + 3, hr, 3, stride=2, padding=1)
        self.tohr_enc4x = Conv2dIBNormRelu(enc[1], hr, 1)
        self.conv_enc4x = Conv2dIBNormRelu(2 * hr, 2 * hr, 3, padding=1)
        self.conv_hr4x = nn.Sequential(
            Conv2dIBNormRelu(3 * hr + 3, 2 * hr, 3, padding=1),
            Conv2dIBNormRelu(2 * hr, 2 * hr, 3, padding=1),
            Conv2dIBNormRelu(2 * hr, hr, 3, padding=1),
        )
        self.conv_hr2x = nn.Sequential(
            Conv2dIBNormRelu(2 * hr, 2 * hr, 3, padding=1),
            Conv2dIBNormRelu(2 * hr, hr, 3, padding=1),
            Conv2dIBNormRelu(hr, hr, 3, padding=1),
            Conv2dIBNormRelu(hr, hr, 3, padding=1),
        )
        self.conv_hr = nn.Sequential(Conv2dIBNormRelu(hr + 3, hr, 3, padding=1), _head(hr))

    def forward(
        self, img: torch.Tensor, enc2x: torch.Tensor, enc4x: torch.Tensor, lr8x: torch.Tensor, inference: bool
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        img2x = _up(img, 1 / 2)
        img4x = _up(img, 1 / 4)
        enc2x = self.tohr_enc2x(enc2x)
        hr4x = self.conv_enc2x(torch.cat((img2x, enc2x), dim=1))
        hr4x = self.conv_enc4x(torch.cat((hr4x, self.tohr_enc4x(enc4x)), dim=1))
        hr4x = self.conv_hr4x(torch.cat((hr4x, _up(lr8x, 2), img4x), dim=1))
        hr2x = self.conv_hr2x(torch.cat((_up(hr4x, 2), enc2x), dim=1))
        if inference:
            return None, hr2x
        detail = torch.sigmoid(self.conv_hr(torch.cat((_up(hr2x, 2), img), dim=1)))
        return detail, hr2x


class FusionBranch(nn.Module):
    """Fuses semantics and detail into the full-resolution matte."""

    def __init__(self, hr: int, enc: tuple[int, ...]) -> None:
        super().__init__()
        self.conv_lr4x = Conv2dIBNormRelu(enc[2], hr, 5, padding=2)
        self.conv_f2x = Conv2dIBNormRelu(2 * hr, hr, 3, padding=1)
        self.conv_f = nn.Sequential(Conv2dIBNormRelu(hr + 3, hr // 2, 3, padding=1), _head(hr // 2))

    def forward(self, img: torch.Tensor, lr8x: torch.Tensor, hr2x: torch.Tensor) -> torch.Tensor:
        lr2x = _up(self.conv_lr4x(_up(lr8x, 2)), 2)
        f2x = self.conv_f2x(torch.cat((lr2x, hr2x), dim=1))
        return torch.sigmoid(self.conv_f(torch.cat((_up(f2x, 2), img), dim=1)))


class MODNet(nn.Module):
    """Input: RGB normalised to [-1, 1], [N, 3, H, W] with H and W multiples of 32."""

    def __init__(self, hr_channels: int = 32, lr_module: str = "se") -> None:
        super().__init__()
        self.backbone = MobileNetV2Backbone()
        self.lr_branch = LRBranch(self.backbone, lr_module)
        self.hr_branch = HRBranch(hr_channels, self.backbone.enc_channels)
        self.f_branch = FusionBranch(hr_channels, self.backbone.enc_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=0, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(
        self, img: torch.Tensor, inference: bool = False
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """Returns (semantic at 1/16, detail, matte); the first two are None when `inference`."""
        semantic, lr8x, enc2x, enc4x = self.lr_branch(img, inference)
        detail, hr2x = self.hr_branch(img, enc2x, enc4x, lr8x, inference)
        matte = self.f_branch(img, lr8x, hr2x)
        return semantic, detail, matte


class MatteOnly(nn.Module):
    """The exported inference graph: `input` [N,3,H,W] in [-1,1] -> `output` [N,1,H,W] in [0,1]."""

    def __init__(self, modnet: MODNet) -> None:
        super().__init__()
        self.modnet = modnet

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.modnet(img, inference=True)[2]
