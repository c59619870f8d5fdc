"""`python -m trt_modnet.serve`: the web page and HTTP API on http://127.0.0.1:8700."""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from trt_modnet.cli import positive_int, run_main, setup_logging
from trt_modnet.errors import MattingError
from trt_modnet.graph.precision import PRECISIONS
from trt_modnet.runtime.select import BACKENDS
from trt_modnet.serve.settings import (
    DEFAULT_PORT,
    LOCAL_HOSTS,
    ServeSettings,
    default_jobs_folder,
    parse_size,
)

log = logging.getLogger("trt_modnet.serve")


def parse_args(argv: Sequence[str] | None) -> ServeSettings:
    args = _parser().parse_args(argv)
    token = args.token
    if token is None and args.host not in LOCAL_HOSTS:
        token = secrets.token_urlsafe(24)  # printed once by main(): a door off this machine needs a key
    for folder in args.allow_dir:
        if not folder.is_dir():
            raise MattingError(f"{folder}: --allow-dir is not a folder")
    return ServeSettings(
        jobs=args.jobs or default_jobs_folder(),
        host=args.host,
        port=args.port,
        model=args.model,
        backend=args.backend,
        precision=args.precision,
        ref_size=args.ref_size,
        token=token,
        token_generated=token is not None and args.token is None,
        max_upload=parse_size(args.max_upload),
        max_queue=args.max_queue,
        allow_dirs=tuple(args.allow_dir),
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trt_modnet.serve",
        description="A web page and an HTTP API for the main job: one runner, one job at a time.",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need a token)"
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--model", help="as the CLI's --model (default: photographic)")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="as the CLI's --backend")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="as the CLI's --precision")
    p.add_argument("--ref-size", type=positive_int, default=512, help="as the CLI's --ref-size (512)")
    p.add_argument("--jobs", type=Path, help="jobs folder (default $TRT_MODNET_HOME/serve)")
    p.add_argument("--token", help="require Authorization: Bearer TOKEN (generated for a non-local --host)")
    p.add_argument("--max-upload", default="4G", help="largest request body (default 4G)")
    p.add_argument("--max-queue", type=int, default=100, help="most queued and running jobs (default 100)")
    p.add_argument(
        "--allow-dir",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help='accept {"path": ...} jobs for files under DIR (repeatable)',
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    setup_logging()
    import uvicorn

    import trt_modnet
    from trt_modnet.serve.app import create_app

    with trt_modnet.Matter(
        settings.model or "photographic",
        backend=settings.backend,
        precision=settings.precision,
        ref_size=settings.ref_size,
    ) as matter:
        log.info("runner: %r", matter)
        if settings.token_generated:
            print(f"token (give it to the page once): {settings.token}", file=sys.stderr, flush=True)
        app = create_app(settings, matter)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
