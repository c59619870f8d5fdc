"""SOC: self-supervised sub-objective consistency, adapting a trained MODNet to unlabelled footage.

As the official `soc_adaptation_iter`: the norm layers stay in eval mode (their running statistics never
change; batch norm's affine weights are still trained, as in the official code), a frozen copy of the model
is taken at the start of every epoch, and each step makes the semantic prediction and the downsampled matte
agree (weight 100) while keeping detail and matte near the copy's on the boundary band (weight 1).
Adam, lr 1e-5, betas (0.9, 0.99), one frame per step.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from trt_modnet.modnet.losses import OFFICIAL_SOC, SocLosses, SocWeights, soc_losses
from trt_modnet.modnet.model import MODNet

Progress = Callable[[int, int, SocLosses], None]


@dataclass(frozen=True)
class SocSettings:
    epochs: int = 10
    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.99)
    weights: SocWeights = OFFICIAL_SOC
    seed: int = 0
    device: str = "cpu"


def freeze_norm(model: nn.Module) -> None:
    """Norm layers to eval mode: batch norm keeps its running statistics, whatever the batch."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d | nn.InstanceNorm2d):
            module.eval()


def soc_step(
    model: MODNet,
    backup: MODNet,
    optimizer: torch.optim.Optimizer,
    image: torch.Tensor,
    weights: SocWeights = OFFICIAL_SOC,
) -> SocLosses:
    """One SOC iteration on `image` [N,3,H,W]; returns the two weighted losses (detached)."""
    backup.eval()
    model.train()
    freeze_norm(model)
    optimizer.zero_grad()
    prediction = model(image, inference=False)
    with torch.no_grad():
        _, backup_detail, backup_matte = backup(image, inference=False)
    losses = soc_losses(prediction, (backup_detail, backup_matte), weights)
    losses.total.backward()
    optimizer.step()
    return SocLosses(*(loss.detach() for loss in losses))


def adapt(
    model: MODNet, frames: Sequence[torch.Tensor], settings: SocSettings, *, progress: Progress | None = None
) -> MODNet:
    """Run SOC over `frames` ([1,3,H,W] each, sizes may differ) in a seeded order; returns `model` in eval."""
    model.to(settings.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, betas=settings.betas)
    order = torch.Generator().manual_seed(settings.seed)
    for epoch in range(settings.epochs):
        backup = copy.deepcopy(model)
        for step, index in enumerate(torch.randperm(len(frames), generator=order).tolist()):
            image = frames[index].to(settings.device)
            losses = soc_step(model, backup, optimizer, image, settings.weights)
            if progress is not None:
                progress(epoch, step, losses)
    return model.eval()
