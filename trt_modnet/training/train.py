"""`python -m trt_modnet.train IMAGES MATTES -o RUN_DIR`: train MODNet on image + matte pairs (torch)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from trt_modnet.errors import MattingError
from trt_modnet.training.run import ProgressReport, resolve_device

MIN_SIZE = 64
SIZE_MULTIPLE = 32


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m trt_modnet.train",
        description="Train MODNet on images and their alpha mattes (paired by file name) with the official "
        "losses and recipe. Writes RUN_DIR/modnet.ckpt (official format) after every epoch, and "
        "RUN_DIR/resume.pt for --resume.",
    )
    p.add_argument("images", type=Path, help="folder of images (.jpg, .png, ...)")
    p.add_argument("mattes", type=Path, help="folder of mattes with the same file names (stems)")
    p.add_argument("-o", "--output", type=Path, required=True, help="run folder for checkpoints")
    p.add_argument("--epochs", type=int, default=40, help="total epochs (default 40, as the official recipe)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--size", type=int, default=512, help="square crop side, a multiple of 32 (default 512)")
    p.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (default 0.01)")
    p.add_argument(
        "--lr-module",
        choices=("se", "easpp"),
        help="low-resolution module of a new model: the released SE block (default) or the paper's "
        "e-ASPP; --init and --resume take the one in their checkpoint",
    )
    p.add_argument("--init", type=Path, help="start from this checkpoint instead of random weights")
    p.add_argument("--resume", action="store_true", help="continue the run in the output folder")
    p.add_argument("--save-every", type=int, default=10, help="also keep epoch_NNN.ckpt every N epochs")
    p.add_argument("--seed", type=int, default=0, help="seed for initialisation, shuffling and crops")
    p.add_argument("--device", default="auto", help="torch device: auto (CUDA when present), cpu, cuda, ...")
    args = p.parse_args(argv)
    if args.size < MIN_SIZE or args.size % SIZE_MULTIPLE:
        p.error(f"--size must be a multiple of {SIZE_MULTIPLE}, at least {MIN_SIZE}")
    if args.epochs < 1 or args.batch < 1 or args.lr <= 0 or args.save_every < 0:
        p.error("--epochs and --batch must be at least 1, --lr positive, --save-every 0 or more")
    if args.resume and args.init:
        p.error("--resume continues a run; --init starts a new one: give one of them")
    return args


def _check_run_folder(out: Path, *, resume: bool, resume_name: str) -> None:
    if not out.parent.is_dir():
        raise MattingError(f"{out}: the folder {out.parent} does not exist")
    if out.exists() and not out.is_dir():
        raise MattingError(f"{out}: exists and is not a folder")
    if not resume and (out / resume_name).exists():
        raise MattingError(f"{out}: already holds a training run; add --resume or choose another folder")


def _lr_module(asked: str | None, found: tuple[Path, str] | None) -> str:
    """The module asked for, or the one of the checkpoint continued from; they must not disagree."""
    if found is None:
        return asked or "se"
    path, module = found
    if asked and asked != module:
        raise MattingError(f"{path}: holds a model with the {module!r} module, not {asked!r}")
    return module


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        from trt_modnet.modnet.checkpoint import load_checkpoint
        from trt_modnet.modnet.data import MattePairs
        from trt_modnet.modnet.train import (
            RESUME_NAME,
            TrainSettings,
            check_resume,
            read_resume,
            steps_per_epoch,
            train,
        )
    except ImportError as exc:
        raise MattingError(
            f"training needs PyTorch ({exc.name} is missing): pip install 'trt_modnet[torch]'"
        ) from None
    out: Path = args.output
    _check_run_folder(out, resume=args.resume, resume_name=RESUME_NAME)
    dataset = MattePairs(args.images, args.mattes, size=args.size)
    resume = read_resume(out / RESUME_NAME) if args.resume else None
    model = load_checkpoint(args.init) if args.init else None
    found: tuple[Path, str] | None = None
    if resume is not None:
        found = (resume.path, resume.lr_module)
    elif model is not None:
        found = (args.init, model.lr_branch.lr_module)
    settings = TrainSettings(
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        lr_module=_lr_module(args.lr_module, found),
        save_every=args.save_every,
        seed=args.seed,
        device=resolve_device(args.device),
    )
    if resume is not None:
        check_resume(resume, settings)
    first = resume.epoch if resume else 0
    out.mkdir(exist_ok=True)
    print(f"training on {len(dataset)} pairs at {args.size}x{args.size} on {settings.device}, into {out}")
    steps = steps_per_epoch(len(dataset), settings.batch)
    with ProgressReport(first_epoch=first, epochs=settings.epochs, steps_per_epoch=steps) as report:
        latest = train(dataset, settings, out_dir=out, model=model, resume=resume, progress=report)
    print(f"wrote {latest} (export it with: python -m trt_modnet.export {latest} -o model.onnx)")
    return 0
