"""`python -m trt_modnet.adapt FOOTAGE... --ckpt IN.ckpt -o OUT.ckpt`: SOC adaptation to your footage.

Samples frames from the videos and images given, runs MODNet's self-supervised SOC adaptation on them
(needs torch), and writes an official-format checkpoint for `python -m trt_modnet.export`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from trt_modnet.errors import MattingError
from trt_modnet.graph.official import DEFAULT_REF_SIZE
from trt_modnet.job.inputs import collect_inputs, is_image
from trt_modnet.training.run import ProgressReport, resolve_device


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m trt_modnet.adapt",
        description="Adapt a trained MODNet to your footage with SOC (self-supervised, no labels): frames "
        "are sampled evenly from the inputs, resized as for inference, and the model is fine-tuned with "
        "the official procedure (norms frozen, a backup model per epoch, Adam lr 1e-5).",
    )
    p.add_argument("inputs", nargs="+", help="videos, images, folders of them, or globs")
    p.add_argument("--ckpt", type=Path, required=True, help="trained MODNet checkpoint to start from")
    p.add_argument("-o", "--output", type=Path, required=True, help="adapted checkpoint to write")
    p.add_argument("--frames", type=int, default=100, help="frames to sample in all (default 100)")
    p.add_argument("--epochs", type=int, default=10, help="passes over the frames (default 10)")
    p.add_argument(
        "--ref-size", type=int, default=DEFAULT_REF_SIZE, help="inference size rule, as the main job (512)"
    )
    p.add_argument("--lr", type=float, default=1e-5, help="Adam learning rate (default 1e-5)")
    p.add_argument("--seed", type=int, default=0, help="seed for the order of the frames")
    p.add_argument("--device", default="auto", help="torch device: auto (CUDA when present), cpu, cuda, ...")
    args = p.parse_args(argv)
    if args.frames < 1 or args.epochs < 1 or args.lr <= 0 or args.ref_size < 32:
        p.error("--frames and --epochs must be at least 1, --lr positive, --ref-size at least 32")
    return args


def _check_output(out: Path, ckpt: Path) -> None:
    if not out.parent.is_dir():
        raise MattingError(f"{out}: the folder {out.parent} does not exist")
    if out.resolve() == ckpt.resolve():
        raise MattingError(f"{out}: is the input checkpoint; write the adapted model to another file")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        from trt_modnet.modnet.checkpoint import load_checkpoint, save_checkpoint
        from trt_modnet.modnet.data import network_input, sample_frames
        from trt_modnet.modnet.soc import SocSettings, adapt
    except ImportError as exc:
        raise MattingError(
            f"adaptation needs PyTorch ({exc.name} is missing): pip install 'trt_modnet[torch]'"
        ) from None
    out: Path = args.output
    _check_output(out, args.ckpt)
    model = load_checkpoint(args.ckpt)
    paths = collect_inputs(args.inputs)
    frames = [network_input(rgb, args.ref_size) for rgb in sample_frames(paths, args.frames)]
    settings = SocSettings(epochs=args.epochs, lr=args.lr, seed=args.seed, device=resolve_device(args.device))
    images = sum(is_image(p) for p in paths)
    size = "x".join(str(s) for s in frames[0].shape[:1:-1])
    print(
        f"SOC on {len(frames)} frames from {len(paths) - images} videos and {images} images "
        f"(the first at {size}), on {settings.device}"
    )
    with ProgressReport(first_epoch=0, epochs=settings.epochs, steps_per_epoch=len(frames)) as report:
        adapt(model, frames, settings, progress=report)
    save_checkpoint(model, out)
    print(f"wrote {out} (export it with: python -m trt_modnet.export {out} -o model.onnx)")
    return 0
