"""Shared behaviour of the command-line entry points: error reporting and exit codes."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType

from trt_modnet.errors import MattingError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: Stopped like Ctrl-C (clean up, exit 128 + signal): `kill`, `timeout`, a closed terminal.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread so that every output is cleaned up as for Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a CLI `main`, turning expected failures into one line on stderr and an exit code."""
    setup_logging()
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _stop)
    try:
        return main(argv)
    except MattingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        name = exc.args[0] if isinstance(exc, Stopped) else "SIGINT"
        print(f"interrupted ({name})", file=sys.stderr)
        return 128 + exc.signum if isinstance(exc, Stopped) else EXIT_INTERRUPTED


def _stop(signum: int, frame: FrameType | None) -> None:
    for other in _STOP_SIGNALS:  # a second signal must not cut the clean-up short
        signal.signal(other, signal.SIG_IGN)
    raise Stopped(signum)


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def setup_logging(level: int = logging.INFO) -> None:
    """Library messages as single lines on stderr: `warning: ...`, info lines as they are."""
    logger = logging.getLogger("trt_modnet")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_LowerLevelFormatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level)


class _LowerLevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno != logging.INFO:
            text = f"{record.levelname.lower()}: {text}"
        if record.exc_info:  # only for internal errors (bugs): expected failures carry no traceback
            text += "\n" + self.formatException(record.exc_info)
        return text
