"""The README and docs/ stay true: every command they show parses, every relative link resolves."""

from __future__ import annotations

import argparse
import re
import runpy
import shlex
import signal
import sys
from pathlib import Path
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_INLINE = re.compile(r"`(python -m [^`]+)`")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# A synopsis marks optional parts as [--flag VALUE] or [options]: they are not arguments.
_OPTIONAL = re.compile(r"\s\[[^\]]*\]")
_MODULES = ("trt_modnet", "benchmarks")


def _commands(text: str) -> list[str]:
    found = []
    for block in _FENCE.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" # ")[0].strip()
            found += [part.strip() for part in re.split(r"&&|\|\||\s\|\s|;", line)]
    found += [
        c for c in _INLINE.findall(text) if len(c.split()) > 3
    ]  # a bare module named in prose is no command
    return [c for c in found if c.startswith("python -m ") and c.split()[2].startswith(_MODULES)]


def _cases() -> list[tuple[str, str]]:
    cases = []
    for page in PAGES:
        for command in _commands(page.read_text()):
            cases.append((page.relative_to(REPO).as_posix(), command))
    return cases


class _Parsed(Exception):
    """Raised right after argparse accepted the command line: nothing of the job runs."""


def _parse(command: str) -> None:
    argv = shlex.split(_OPTIONAL.sub("", command))
    module, args = argv[2], argv[3:]
    real = argparse.ArgumentParser.parse_args

    def accept(self: argparse.ArgumentParser, args=None, namespace=None):
        real(self, args, namespace)
        raise _Parsed

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with (
            mock.patch.object(argparse.ArgumentParser, "parse_args", accept),
            mock.patch.object(sys, "argv", [module, *args]),
        ):
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except _Parsed:
        return
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    raise AssertionError(f"{command}: the module never parsed its arguments")


@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")
@pytest.mark.parametrize(("page", "command"), _cases(), ids=lambda v: v[:60])
def test_documented_command_parses(page: str, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        _parse(command)
    except SystemExit as exc:
        pytest.fail(
            f"{page}: `{command}` is refused by its parser (exit {exc.code}): {capsys.readouterr().err}"
        )


def test_every_page_shows_commands() -> None:
    """The extraction itself works: the README's main job and the docs' commands are found."""
    cases = _cases()
    assert any(c.startswith("python -m trt_modnet.process") for p, c in cases if p == "README.md")
    assert len({p for p, _ in cases}) >= 5


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in _LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{page.name}: links to missing files: {broken}"
