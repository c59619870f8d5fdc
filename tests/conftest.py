"""Shared fixtures: the shared media and models exported once per test session with our exporter."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The shared media and models sit beside the repository; TRT_MODNET_SHARED points elsewhere.
SHARED = Path(os.environ.get("TRT_MODNET_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"
VIDEOS = DATA / "videos"
IMAGES = DATA / "images"
CHECKPOINT = SHARED / "models" / "modnet_synthetic.ckpt"
KEYS_FILE = SHARED / "reference" / "modnet_state_dict_keys.txt"


def need(path: Path) -> Path:
    """Skip (with the reason) when a shared file is absent."""
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared data/models folder is not next to the repository")
    return path


@pytest.fixture(scope="session")
def synthetic_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in checkpoint exported by `python -m trt_modnet.export`, as a user exports the official one
    (alone in its folder, so that tests can see what else the export left there)."""
    pytest.importorskip("torch")
    from trt_modnet.training import export

    out = tmp_path_factory.mktemp("models") / "modnet_synthetic.onnx"
    assert export.main([str(need(CHECKPOINT)), "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def random_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from trt_modnet.modnet.export import export_onnx, random_model

    out = tmp_path_factory.mktemp("models") / "modnet_random.onnx"
    export_onnx(random_model(7), out, random_seed=7)
    return out


Completed = subprocess.CompletedProcess[str]
#: The `cli` fixture's type.
Cli = Callable[..., Completed]


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Torch on one thread for the test (the training tests use tiny tensors)."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_module(
    module: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m module args...` in a subprocess, as a user runs it."""
    cmd = [sys.executable, "-m", module, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture
def fresh_cli_logging() -> Iterator[None]:
    """The CLI's logging setup undone before and after the test: its handler keeps the stderr it first saw,
    and pytest hangs its own capture on a logger that does not propagate."""
    logger = logging.getLogger("trt_modnet")

    def undo() -> None:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True

    undo()
    yield
    undo()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], fresh_cli_logging: None) -> Cli:
    """A command line run in this process, without a start-up: `cli(*args, main=process.main)`, with the
    exit code, stdout and stderr that `python -m` would give (through run_main). `main` is any entry
    point's `main(argv)`."""
    import importlib

    from trt_modnet.cli import run_main

    # The module, not the package's lazy `process` function of the same name.
    process = importlib.import_module("trt_modnet.process")

    def run(*args: str | Path, main: Callable[[list[str]], int] = process.main) -> Completed:
        argv = [str(a) for a in args]
        capsys.readouterr()
        code = run_main(main, argv)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(argv, code, out.out, out.err)

    return run
