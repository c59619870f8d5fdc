"""Supervised training of MODNet on image + matte pairs, as the official `src/trainer.py` does it.

One step: forward in training mode, the semantic, detail and matte losses (`losses.py`), backward, update.
The loop follows the official recipe: SGD (lr 0.01, momentum 0.9), StepLR every quarter of the epochs
with gamma 0.1. Checkpoints are written in the official format after every epoch, with a resume file
beside them that also holds the optimizer and scheduler state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from trt_modnet.errors import MattingError
from trt_modnet.modnet.checkpoint import apply_state_dict, read_state_dict, save_checkpoint
from trt_modnet.modnet.losses import (
    OFFICIAL_SUPERVISED,
    SupervisedLosses,
    SupervisedWeights,
    supervised_losses,
    trimap_from_matte,
)
from trt_modnet.modnet.model import MODNet

# Half-width of a derived trimap's unknown band, as a fraction of the mean side (10 px at 512x512).
TRIMAP_BAND_FRACTION = 0.02
LATEST_NAME = "modnet.ckpt"
RESUME_NAME = "resume.pt"

Progress = Callable[[int, int, SupervisedLosses], None]


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 40
    batch: int = 16
    lr: float = 0.01
    momentum: float = 0.9
    lr_module: str = "se"
    save_every: int = 10
    seed: int = 0
    device: str = "cpu"


def derived_trimap(matte: torch.Tensor) -> torch.Tensor:
    """A trimap from the ground-truth matte by dilation and erosion, band scaled to the image size."""
    h, w = matte.shape[2:]
    return trimap_from_matte(matte, band=max(1, round(TRIMAP_BAND_FRACTION * (h + w) / 2)))


def supervised_step(
    model: MODNet,
    optimizer: torch.optim.Optimizer,
    image: torch.Tensor,
    matte: torch.Tensor,
    *,
    trimap: torch.Tensor | None = None,
    weights: SupervisedWeights = OFFICIAL_SUPERVISED,
) -> SupervisedLosses:
    """One training iteration; returns the three weighted losses (detached)."""
    model.train()
    optimizer.zero_grad()
    if trimap is None:
        trimap = derived_trimap(matte)
    losses = supervised_losses(model(image, inference=False), image, trimap, matte, weights)
    losses.total.backward()
    optimizer.step()
    return SupervisedLosses(*(loss.detach() for loss in losses))


def make_optimizer(
    model: MODNet, settings: TrainSettings
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.StepLR]:
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum)
    step = max(1, settings.epochs // 4)
    return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=step, gamma=0.1)


@dataclass(frozen=True)
class ResumeState:
    """What `resume.pt` holds: the weights, the optimizer and scheduler state, and the epochs done."""

    path: Path
    weights: dict[str, torch.Tensor]
    optimizer: dict
    scheduler: dict
    epoch: int
    lr_module: str


def read_resume(path: Path) -> ResumeState:
    if not path.is_file():
        raise MattingError(f"{path}: no resume file (train into this folder without --resume first)")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    keys = ("optimizer", "scheduler", "epoch", "settings")
    if not isinstance(raw, dict) or any(k not in raw for k in keys):
        raise MattingError(f"{path}: not a resume file written by python -m trt_modnet.train")
    return ResumeState(
        path=path,
        weights=read_state_dict(path),
        optimizer=raw["optimizer"],
        scheduler=raw["scheduler"],
        epoch=int(raw["epoch"]),
        lr_module=str(raw["settings"].get("lr_module")),
    )


def train(
    dataset: Dataset,
    settings: TrainSettings,
    *,
    out_dir: Path,
    model: MODNet | None = None,
    resume: ResumeState | None = None,
    progress: Progress | None = None,
) -> Path:
    """Train `model` (a new one when None) up to `settings.epochs` epochs in all, or continue `resume`.

    Returns the latest checkpoint, `out_dir/modnet.ckpt`. `progress(epoch, step, losses)` after each step.
    """
    torch.manual_seed(settings.seed)  # the initial weights of a new model
    model = _initial_model(settings, model)
    if resume is not None:
        check_resume(resume, settings)
        apply_state_dict(model, resume.weights, resume.path)
    # The optimizer state must land on the device of the parameters it belongs to: move them first.
    model.to(settings.device)
    optimizer, scheduler = make_optimizer(model, settings)
    start = 0
    if resume is not None:
        optimizer.load_state_dict(resume.optimizer)
        scheduler.load_state_dict(resume.scheduler)
        start = resume.epoch
    # Shuffles and crops are seeded per starting epoch: a resumed run does not replay the first ones.
    torch.manual_seed(settings.seed + start)
    batch = min(settings.batch, len(dataset))
    # A last batch of one image would break batch norm's statistics; the shuffle covers it next epoch.
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True)
    for epoch in range(start, settings.epochs):
        for step, (image, matte) in enumerate(loader):
            losses = supervised_step(model, optimizer, image.to(settings.device), matte.to(settings.device))
            if progress is not None:
                progress(epoch, step, losses)
        scheduler.step()
        _save_epoch(out_dir, epoch + 1, model, optimizer, scheduler, settings)
    return out_dir / LATEST_NAME


def steps_per_epoch(dataset_size: int, batch: int) -> int:
    return dataset_size // min(batch, dataset_size)


def _initial_model(settings: TrainSettings, model: MODNet | None) -> MODNet:
    if model is None:
        return MODNet(lr_module=settings.lr_module)
    if model.lr_branch.lr_module != settings.lr_module:
        raise ValueError(f"the model has {model.lr_branch.lr_module!r}, the settings {settings.lr_module!r}")
    return model


def _save_epoch(
    out_dir: Path,
    epoch: int,
    model: MODNet,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    settings: TrainSettings,
) -> None:
    save_checkpoint(model, out_dir / LATEST_NAME)
    if settings.save_every and epoch % settings.save_every == 0:
        save_checkpoint(model, out_dir / f"epoch_{epoch:03d}.ckpt")
    extra = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "settings": asdict(settings),
    }
    save_checkpoint(model, out_dir / RESUME_NAME, extra=extra)


def check_resume(resume: ResumeState, settings: TrainSettings) -> None:
    """Refuse to continue a run with another low-resolution module, or one that is already complete."""
    if resume.lr_module != settings.lr_module:
        raise MattingError(
            f"{resume.path}: the run used --lr-module {resume.lr_module}, not {settings.lr_module}"
        )
    if resume.epoch >= settings.epochs:
        raise MattingError(
            f"{resume.path}: already trained {resume.epoch} epochs; ask for more with --epochs"
        )
