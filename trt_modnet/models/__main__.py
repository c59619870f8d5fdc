"""`python -m trt_modnet.models [list | fetch NAME... | verify [--precision]]`: the model cache."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from trt_modnet.cli import run_main
from trt_modnet.models.cache import file_digest, models_dir
from trt_modnet.models.registry import DEFAULT_MODEL, MODELS
from trt_modnet.models.resolve import resolve_model
from trt_modnet.models.torchfile import checkpoint_format

EXIT_BAD_FILES = 1


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trt_modnet.models", description=__doc__)
    sub = p.add_subparsers(dest="command")
    sub.add_parser("list", help="registered models, what is cached and where (the default)")
    fetch = sub.add_parser("fetch", help="download, verify and convert models into the cache")
    fetch.add_argument("names", nargs="+", metavar="NAME", help=f"a name ({', '.join(MODELS)}) or a URL")
    verify = sub.add_parser("verify", help="re-check the cached checkpoints' digests, name their format")
    verify.add_argument(
        "--precision", action="store_true", help="rerun the CPU precision gate for --model (docs/cpu.md)"
    )
    verify.add_argument("--model", help="with --precision: the model (default as the main job's)")
    verify.add_argument("--ref-size", type=int, default=512, help="with --precision: the job's (512)")
    args = p.parse_args(argv)
    if args.command == "fetch":
        for name in args.names:
            print(f"{name}: {resolve_model(name)}")
        return 0
    if args.command == "verify":
        return _verify_precision(args.model, args.ref_size) if args.precision else _verify()
    _list()
    return 0


def _list() -> None:
    folder = models_dir()
    print(f"cache: {folder}")
    for m in MODELS.values():
        path = folder / m.filename
        state = f"cached {path} ({checkpoint_format(path)} format)" if path.is_file() else "not cached"
        default = " (default)" if m.name == DEFAULT_MODEL else ""
        print(f"  {m.name}{default}: {m.filename}, {m.pin.size} bytes, {state}; {m.about}")
    converted = sorted((folder / "onnx").glob("*.onnx"))
    if converted:
        print(f"  {len(converted)} converted ONNX in {folder / 'onnx'}")


def _verify() -> int:
    bad = 0
    for m in MODELS.values():
        path = models_dir() / m.filename
        if not path.is_file():
            continue
        digest = file_digest(path, m.pin.algo)
        if digest == m.pin.hexdigest:
            print(f"ok {m.name}: {path} ({checkpoint_format(path)} format)")
        else:
            bad += 1
            print(
                f"BAD {m.name}: {path} ({checkpoint_format(path)} format) has {m.pin.algo} {digest}, "
                f"expected {m.pin.hexdigest}; delete it"
            )
    return EXIT_BAD_FILES if bad else 0


def _verify_precision(model: str | None, ref_size: int) -> int:
    """Measure the recipes for this model on this CPU again and cache the new verdict."""
    from trt_modnet.graph.gate import verdict_for
    from trt_modnet.graph.modelfile import load_modnet

    path = resolve_model(model)
    print(f"{path}: {verdict_for(path, load_modnet(path), ref_size, rerun=True).line()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
