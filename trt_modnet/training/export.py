"""`python -m trt_modnet.export CKPT -o model.onnx`: MODNet checkpoint -> ONNX (needs the `torch` extra)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from trt_modnet.errors import MattingError


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m trt_modnet.export",
        description="Export a MODNet checkpoint (official .ckpt or our own) to the ONNX inference graph: "
        "input `input` float32 [N,3,H,W] in [-1,1], output `output` float32 [N,1,H,W], dynamic N, H, W.",
    )
    p.add_argument("checkpoint", nargs="?", type=Path, help="MODNet checkpoint (.ckpt / .pth)")
    p.add_argument("-o", "--output", type=Path, required=True, help="ONNX file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (17 or later; default 17)")
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="export seeded random weights instead of a checkpoint (tests and benchmarks only; "
        "the file is marked and every tool that loads it warns)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for --random-weights (default 0)")
    args = p.parse_args(argv)
    if args.random_weights == (args.checkpoint is not None):
        p.error("give either a checkpoint or --random-weights")
    if args.opset < 17:
        p.error("--opset must be 17 or later")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.output
    if not out.parent.is_dir():
        raise MattingError(f"{out}: the folder {out.parent} does not exist")
    try:
        from trt_modnet.modnet.checkpoint import load_checkpoint
        from trt_modnet.modnet.export import export_onnx, random_model
    except ImportError as exc:
        raise MattingError(
            f"export needs PyTorch ({exc.name} is missing): pip install 'trt_modnet[torch]'"
        ) from None
    if args.random_weights:
        export_onnx(random_model(args.seed), out, opset=args.opset, random_seed=args.seed)
        print(f"wrote {out} (RANDOM weights, seed {args.seed}: not a usable matting model)")
    else:
        export_onnx(load_checkpoint(args.checkpoint), out, opset=args.opset)
        print(f"wrote {out} from {args.checkpoint}")
    return 0
