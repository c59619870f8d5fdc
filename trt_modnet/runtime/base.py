"""The `Runner` contract every backend implements, and the bookkeeping they share.

A runner is prepared once per video with the frame size and the largest batch, then used with
`submit(feeds) -> ticket` and `result(ticket) -> outputs`, so that up to `depth` batches are in flight
while the host decodes and encodes. Named arrays in, named arrays out. `lend(ticket)` is `result` without
the copy where a runner can lend its own memory: the batch then keeps its slot until released.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from types import TracebackType

import numpy as np

from trt_modnet.errors import MattingError

DEFAULT_DEPTH = 2


class State(enum.Enum):
    NEW = "new"
    PREPARED = "prepared"
    CLOSED = "closed"


class InFlight:
    """Tickets handed out by `submit` and not yet collected by `result`, at most `depth` of them."""

    def __init__(self, depth: int) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.depth = depth
        self._next = 0
        self._open: dict[int, int] = {}  # ticket -> slot

    def __len__(self) -> int:
        return len(self._open)

    def acquire(self) -> tuple[int, int]:
        """A new ticket and the buffer slot it owns; slots rotate so a slot is never shared."""
        if len(self._open) >= self.depth:
            raise RuntimeError(f"{self.depth} batches already in flight; collect a result first")
        ticket = self._next
        self._next += 1
        used = set(self._open.values())
        slot = next(s for s in range(self.depth) if s not in used)
        self._open[ticket] = slot
        return ticket, slot

    def slot(self, ticket: int) -> int:
        try:
            return self._open[ticket]
        except KeyError:
            raise RuntimeError(
                f"ticket {ticket} is not in flight (already collected, or never issued)"
            ) from None

    def release(self, ticket: int) -> None:
        self.slot(ticket)
        del self._open[ticket]

    def clear(self) -> None:
        self._open.clear()


class Lease:
    """A batch's outputs lent by its runner: valid, and the batch's slot taken while `held`, until
    `release()`. A runner that copies its outputs anyway lends owned arrays and holds nothing."""

    def __init__(self, outputs: dict[str, np.ndarray], release: Callable[[], None] | None) -> None:
        self.outputs = outputs
        self.held = release is not None
        self._release = release

    def release(self) -> None:
        """Give the slot back (idempotent); the outputs must not be read afterwards."""
        if self._release is not None:
            release, self._release = self._release, None
            release()


def check_feeds(feeds: Mapping[str, np.ndarray], names: set[str]) -> None:
    """The feeds are exactly `names`, each uint8 [1 or N, H, W, 3] beside frames [N, H, W, 3]."""
    if set(feeds) != names:
        raise RuntimeError(f"feeds {sorted(feeds)} do not match the graph's inputs {sorted(names)}")
    frames = feeds["frames"]
    n = len(frames)
    for name, array in feeds.items():
        if array.dtype != np.uint8 or array.shape[1:] != frames.shape[1:] or len(array) not in (1, n):
            raise RuntimeError(
                f"{name} {array.dtype}{list(array.shape)} does not fit frames of "
                f"{list(frames.shape)} (expected uint8 [1 or {n}, H, W, 3])"
            )


class Runner(ABC):
    """Runs the deployment graph. Use as a context manager; `close()` is idempotent."""

    #: Graph outputs this runner produces, e.g. ("alpha", "rgba").
    outputs: tuple[str, ...]
    #: Whether `lend` hands out the runner's own memory (and holds the slot) rather than a copy.
    lends = False

    def __init__(self, depth: int = DEFAULT_DEPTH) -> None:
        self.inflight = InFlight(depth)
        self.state = State.NEW
        self.frame_size: tuple[int, int] | None = None  # (height, width) while prepared
        self.max_batch = 0
        self._lent: set[int] = set()  # tickets collected by `lend` whose slot is not released yet

    def prepare(self, height: int, width: int, batch: int) -> None:
        """Size buffers (and pick or build an engine) for frames of height x width, up to `batch` at once."""
        self._check_open()
        if self.inflight:
            raise RuntimeError("cannot prepare while batches are in flight")
        if batch < 1:
            raise MattingError(f"batch size must be at least 1, got {batch}")
        self._prepare(height, width, batch)
        self.frame_size = (height, width)
        self.max_batch = batch
        self.state = State.PREPARED

    def frame_buffers(self, count: int) -> list[np.ndarray]:
        """`count` uint8 arrays [batch, H, W, 3] (the prepared size) for the caller to decode frames into.

        Submitting frames that are a leading slice (`buffer[:n]`) of one lets a runner skip a copy (the
        TensorRT runner's are pinned: the upload reads them where they were decoded). Rewrite a buffer only
        after collecting the result of the batch that used it. Valid until the next `prepare` or `close`.
        The default is plain numpy arrays; runners override it only to offer memory of their own.
        """
        if self.state is not State.PREPARED or self.frame_size is None:
            self._check_open()
            raise RuntimeError("call prepare(height, width, batch) before frame_buffers")
        height, width = self.frame_size
        return [np.empty((self.max_batch, height, width, 3), np.uint8) for _ in range(count)]

    def submit(self, feeds: Mapping[str, np.ndarray]) -> int:
        """Start one batch; returns a ticket for `result`. Feeds are named uint8 NHWC arrays.

        A one-row `background` passed again as the same array object must be unchanged: a runner may keep
        it on its device from the first batch of the video (TensorRT does; backgrounds.py's plates are).
        """
        if self.state is not State.PREPARED:
            self._check_open()
            raise RuntimeError("call prepare(height, width, batch) before submit")
        self._check_feeds(feeds)
        ticket, slot = self.inflight.acquire()
        try:
            self._submit(slot, feeds)
        except BaseException:
            self.inflight.release(ticket)
            raise
        return ticket

    def result(self, ticket: int) -> dict[str, np.ndarray]:
        """Wait for a batch; the arrays belong to the caller (no buffer of the runner is shared)."""
        slot = self._collect(ticket)
        try:
            return self._result(slot)
        finally:
            self.inflight.release(ticket)

    def lend(self, ticket: int) -> Lease:
        """Wait for a batch, and lend its outputs where they lie (TensorRT's pinned host buffers) instead
        of copying them out: the batch's slot stays taken, so a submit beyond `depth` is refused, until
        `Lease.release()`. For a consumer that finishes with them later. Runners that copy anyway
        (`lends` false) return `result(ticket)` and hold nothing.
        """
        if not self.lends:
            return Lease(self.result(ticket), None)
        slot = self._collect(ticket)
        try:
            outputs = self._lend(slot)
        except BaseException:
            self.inflight.release(ticket)
            raise
        self._lent.add(ticket)
        return Lease(outputs, lambda: self._give_back(ticket))

    def _collect(self, ticket: int) -> int:
        self._check_open()
        if ticket in self._lent:
            raise RuntimeError(f"ticket {ticket} was already collected (lent)")
        return self.inflight.slot(ticket)

    def _give_back(self, ticket: int) -> None:
        if ticket in self._lent:  # not after close, which took every slot back
            self._lent.discard(ticket)
            self.inflight.release(ticket)

    def close(self) -> None:
        if self.state is State.CLOSED:
            return
        try:
            self._close()
        finally:
            self.inflight.clear()
            self._lent.clear()
            self.state = State.CLOSED

    def __enter__(self) -> Runner:
        self._check_open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self.state is State.CLOSED:
            raise RuntimeError(f"{type(self).__name__} is closed")

    def _check_feeds(self, feeds: Mapping[str, np.ndarray]) -> None:
        frames = feeds.get("frames")
        if frames is None:
            raise RuntimeError("feeds must include 'frames'")
        assert self.frame_size is not None
        n, h, w = frames.shape[:3]
        if (h, w) != self.frame_size or not 1 <= n <= self.max_batch or frames.dtype != np.uint8:
            raise RuntimeError(
                f"frames {frames.dtype}{list(frames.shape)} do not fit the prepared "
                f"{self.max_batch}x{self.frame_size[0]}x{self.frame_size[1]}x3 uint8"
            )

    @abstractmethod
    def _prepare(self, height: int, width: int, batch: int) -> None: ...

    @abstractmethod
    def _submit(self, slot: int, feeds: Mapping[str, np.ndarray]) -> None: ...

    @abstractmethod
    def _result(self, slot: int) -> dict[str, np.ndarray]: ...

    def _lend(self, slot: int) -> dict[str, np.ndarray]:
        """The outputs as they lie in the runner's memory (runners with `lends` true)."""
        raise NotImplementedError

    @abstractmethod
    def _close(self) -> None: ...
