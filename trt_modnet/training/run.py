"""What a training command's run shares: the torch device it runs on, and its progress on the console."""

from __future__ import annotations

from typing import NamedTuple

from tqdm import tqdm

from trt_modnet.errors import MattingError


class ProgressReport:
    """A progress bar with the latest losses, and one line of mean losses per epoch."""

    def __init__(self, *, first_epoch: int, epochs: int, steps_per_epoch: int) -> None:
        self.epochs = epochs
        self.steps = steps_per_epoch
        self.bar = tqdm(total=(epochs - first_epoch) * steps_per_epoch, unit="step", dynamic_ncols=True)
        self.sums: dict[str, float] = {}

    def __call__(self, epoch: int, step: int, losses: NamedTuple) -> None:
        values = {name: float(v) for name, v in zip(losses._fields, losses, strict=True)}
        self.bar.update(1)
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in values.items()}, refresh=False)
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        if step == self.steps - 1:
            means = ", ".join(f"{k} {v / self.steps:.4f}" for k, v in self.sums.items())
            self.bar.write(f"epoch {epoch + 1}/{self.epochs}: mean losses {means}")
            self.sums.clear()

    def __enter__(self) -> ProgressReport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def resolve_device(name: str) -> str:
    """The torch device that `--device` names ("auto": CUDA when present), checked to be usable."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.empty(0, device=name)
    except (RuntimeError, AssertionError) as exc:
        raise MattingError(f"--device {name}: not usable here ({str(exc).splitlines()[0]})") from None
    return name
