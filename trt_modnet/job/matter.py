"""`trt_modnet.Matter`: MODNet matting of frames in memory, on the runner the main job uses (docs/api.md)."""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Union

import numpy as np

from trt_modnet.errors import MattingError
from trt_modnet.graph.deploy import OUTPUTS, DeploySpec
from trt_modnet.graph.official import DEFAULT_REF_SIZE, SIZE_MULTIPLE, inference_size
from trt_modnet.job.background import cover, parse_colour
from trt_modnet.job.file_job import Cancelled
from trt_modnet.job.pipeline import Pipeline, PipelineSettings
from trt_modnet.job.settings import JobSettings
from trt_modnet.job.threads import thread_budget
from trt_modnet.models import resolve_model
from trt_modnet.models.download import DownloadSettings
from trt_modnet.runtime.base import Runner
from trt_modnet.runtime.select import Choice, choose, open_runner
from trt_modnet.video import Frame

log = logging.getLogger("trt_modnet")

#: A frame [H,W,3], frames [N,H,W,3] (uint8), or a PIL image.
Frames = Union[np.ndarray, "PILImage"]
#: A colour name, "#RRGGBB", an (R, G, B) tuple, an image [H,W,3] (scaled to cover), or [N,H,W,3].
BackgroundLike = Union[str, tuple[int, int, int], np.ndarray, "PILImage"]
_END = object()
_POLL_S = 0.1
_DEFAULT_BACKGROUND = "green"

try:  # Pillow is optional: PIL images in and out where it is installed
    from PIL.Image import Image as PILImage
except ImportError:  # pragma: no cover - Pillow is in the dev extra
    PILImage = None  # type: ignore[assignment,misc]


class Matter:
    """MODNet matting of frames in memory: the runner the main job uses, opened once.

    `Matter(model, backend=, precision=, ref_size=, batch=, threads=)` takes the CLI's options; it resolves
    (downloads, converts) the model and opens the runner as `python -m trt_modnet.process` does, so its
    mattes equal the CLI's outputs byte for byte. Frames are RGB uint8, [H,W,3] or [N,H,W,3]; pass
    `bgr=True` for OpenCV's BGR frames (outputs then come back BGR/BGRA too). Any size from 32x32; a new
    size prepares the runner again. PIL images in give PIL images out.

    Thread-safety: a lock inside. One Matter may be shared by threads; their calls run one at a time (a
    `.stream` holds the Matter until it ends or is closed: iterate it in one thread, and inside its loop
    call only Matter methods that use other outputs). For calls in parallel, open one Matter per thread.
    Use as a context manager, or call `close()` (idempotent).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = "photographic",
        *,
        backend: str = "auto",
        precision: str = "auto",
        ref_size: int = DEFAULT_REF_SIZE,
        batch: int = 4,
        threads: int | None = None,
        engines: str | os.PathLike[str] = "engines",
    ) -> None:
        _check_int("batch", batch, 1)
        _check_int("ref_size", ref_size, SIZE_MULTIPLE)
        if threads is not None:
            _check_int("threads", threads, 1)
        self.model = model
        self.ref_size = ref_size
        self.batch = batch
        self.threads = threads
        self.engines = Path(engines)
        self._choice: Choice = choose(backend, precision)
        self._asked = (backend, precision)
        self.model_path = resolve_model(model, DownloadSettings(progress=False))
        self._runners: dict[tuple[str, ...], Runner] = {}
        self._lock = threading.RLock()
        self._closed = False
        self._streaming: set[tuple[str, ...]] = set()  # runners a live .stream holds
        self._runner(("alpha",))  # open now: a bad model or backend fails here, not at the first frame

    @property
    def backend(self) -> str:
        """What runs, with the CLI's one-line reason, e.g. "onnxruntime (no TensorRT: ...)"."""
        return f"{self._choice.backend} ({self._choice.reason})"

    @property
    def precision(self) -> str:
        """ "fp16", "fp32" or a bf16 recipe's name: what the runner computes in."""
        runner = next(iter(self._runners.values()), None)
        settings = getattr(runner, "settings", None)  # OpenVINO may fall back to fp32 for a model
        return str(getattr(settings, "precision", self._choice.precision))

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"Matter(model={str(self.model)!r}, backend={self._choice.backend!r}, "
            f"precision={self.precision!r}, ref_size={self.ref_size}, batch={self.batch}, {state}: "
            f"{self._choice.reason})"
        )

    # -- frames in memory ------------------------------------------------------------------------------

    def alpha(self, frames: Frames, *, bgr: bool = False) -> Any:
        """The matte: uint8 [H,W] for a frame [H,W,3], [N,H,W] for [N,H,W,3]; a PIL image gives mode L."""
        return self._one("alpha", frames, bgr=bgr)

    def rgba(self, frames: Frames, *, bgr: bool = False) -> Any:
        """The frame with the matte as its alpha: uint8 [...,4] (BGRA with `bgr`); PIL: mode RGBA."""
        return self._one("rgba", frames, bgr=bgr)

    def composite(
        self, frames: Frames, background: BackgroundLike = _DEFAULT_BACKGROUND, *, bgr: bool = False
    ) -> Any:
        """The person over `background`: uint8 [...,3]. `background` is a colour name, "#RRGGBB", an RGB
        tuple, an image [h,w,3] (scaled to cover the frame) or one image per frame [N,H,W,3]."""
        return self._one("composite", frames, bgr=bgr, background=background)

    def stream(
        self,
        frames: Iterable[Frames],
        *,
        outputs: Sequence[str] = ("alpha",),
        background: BackgroundLike = _DEFAULT_BACKGROUND,
        bgr: bool = False,
    ) -> Iterator[dict[str, np.ndarray]]:
        """Yield `{output: array}` for each frame of `frames` (any iterable of [H,W,3] frames, all one
        size), in order, with batches in flight as the main job has them. The iterable's exceptions are
        raised from this generator; breaking out of the loop (or `close()` on the generator) stops and
        joins every thread it started."""
        names = _outputs(outputs)
        return self._stream(iter(frames), names, background, bgr)

    def close(self) -> None:
        """Release the runners (idempotent). Waits for a call in progress in another thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            runners, self._runners = list(self._runners.values()), {}
            for runner in runners:
                runner.close()

    def __enter__(self) -> Matter:
        self._check_open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- for trt_modnet.process(matter=...) ------------------------------------------------------------

    def job_settings(self, job: JobSettings) -> JobSettings:
        """`job` run through this Matter: its model, backend and precision must be unset or agree."""
        self._check_open()
        if job.model is not None and resolve_model(job.model) != self.model_path:
            raise MattingError(f"model {str(job.model)!r} differs from the Matter's {str(self.model)!r}")
        for key, asked in (("backend", job.backend), ("precision", job.precision)):
            ours = getattr(self._choice, key)
            if asked not in ("auto", ours):
                raise MattingError(f"{key} {asked!r} differs from the Matter's {ours!r}")
        # The default ref_size means "the Matter's": its graphs are built for its own.
        if job.ref_size not in (DEFAULT_REF_SIZE, self.ref_size):
            raise MattingError(f"ref_size {job.ref_size} differs from the Matter's {self.ref_size}")
        return dataclasses.replace(job, model=self.model_path, ref_size=self.ref_size)

    @contextmanager
    def job_runner(self, outputs: tuple[str, ...]) -> Iterator[Runner]:
        """The runner for a job's outputs, held (the lock) for the whole job."""
        with self._lock:
            yield self._runner(outputs)

    # -- inside ----------------------------------------------------------------------------------------

    def _runner(self, outputs: tuple[str, ...]) -> Runner:
        """One runner per set of outputs, as the CLI opens for that set (the same graph: the same bytes)."""
        self._check_open()
        if outputs in self._streaming:  # only the stream's own thread gets here: the lock is reentrant
            raise MattingError(
                "this Matter's runner is busy with a .stream being iterated: finish the stream first, or "
                "use a second Matter"
            )
        runner = self._runners.get(outputs)
        if runner is None:
            budget = thread_budget(threads=self.threads)
            runner = open_runner(
                self._asked[0],
                self.model_path,
                DeploySpec(outputs=outputs, ref_size=self.ref_size),
                precision=self._asked[1],
                threads=budget.inference,
                streams=budget.streams,
                engines_dir=self.engines,
            )
            self._runners[outputs] = runner
        return runner

    def _check_open(self) -> None:
        if self._closed:
            raise MattingError("this Matter is closed; open a new one")

    def _one(
        self, output: str, frames: Frames, *, bgr: bool, background: BackgroundLike | None = None
    ) -> Any:
        pil = PILImage is not None and isinstance(frames, PILImage)
        array = _from_pil(frames) if pil else _check_frames(frames)
        single = array.ndim == 3
        batch = array[None] if single else array
        if bgr:
            batch = batch[..., ::-1]
        batch = np.ascontiguousarray(batch)
        n, h, w = batch.shape[:3]
        plate = None if background is None else _plate(background, n, h, w, bgr)
        with self._lock:
            runner = self._runner((output,))
            _prepare(runner, h, w, self.batch)
            parts = []
            for i in range(0, n, self.batch):
                feeds = {"frames": batch[i : i + self.batch]}
                if plate is not None:
                    feeds["background"] = plate if len(plate) == 1 else plate[i : i + self.batch]
                parts.append(runner.result(runner.submit(feeds))[output])
        result = np.concatenate(parts) if len(parts) > 1 else parts[0]
        result = _to_bgr(result, output) if bgr else result
        if pil:
            from PIL import Image

            return Image.fromarray(result[0], mode={"alpha": "L", "rgba": "RGBA", "composite": "RGB"}[output])
        return result[0] if single else result

    def _stream(
        self, frames: Iterator[Frames], names: tuple[str, ...], background: BackgroundLike, bgr: bool
    ) -> Iterator[dict[str, np.ndarray]]:
        first = next(frames, None)
        if first is None:
            return
        image = _frame(first, bgr)
        h, w = image.shape[:2]
        stop = threading.Event()
        sinks = [_Sink(name, stop, 2 * self.batch) for name in names]
        results: queue.Queue[Any] = queue.Queue()  # the worker's end: None, or the exception it raised

        def source() -> Iterator[Frame]:
            for index, item in enumerate(_chain(image, frames, bgr)):
                if stop.is_set():
                    raise Cancelled
                if item.shape[:2] != (h, w):
                    raise MattingError(
                        f"frame {index} is {item.shape[1]}x{item.shape[0]}, the stream's first is {w}x{h}: "
                        "one size per stream (call .stream again for another size)"
                    )
                yield Frame(item, index, Fraction(1), index)

        with self._lock:
            key = tuple(o for o in OUTPUTS if o in names)
            runner = self._runner(key)
            plate = _PlateBackground(_plate(background, 1, h, w, bgr)) if "composite" in names else None
            pipeline = Pipeline(
                runner,
                [(s.name, s) for s in sinks],
                settings=PipelineSettings(batch=self.batch),
                background=plate,
            )

            def work() -> None:
                try:
                    pipeline.run(source(), h, w)
                    results.put(None)
                except BaseException as exc:  # handed to the consumer's thread
                    results.put(exc)
                finally:
                    for s in sinks:
                        s.end()

            worker = threading.Thread(target=work, name="matter-stream", daemon=True)
            self._streaming.add(key)
            worker.start()
            try:
                while True:
                    row = {s.name: s.take() for s in sinks}
                    if any(v is _END for v in row.values()):
                        break
                    if bgr:
                        row = {k: _to_bgr(v, k) for k, v in row.items()}
                    yield row
                worker.join()
                error = results.get()
                if error is not None:
                    raise error
            finally:
                stop.set()  # an early break: the stages stop at their next poll
                worker.join()
                self._streaming.discard(key)


class _Sink:
    """A writer for the pipeline that hands each matted frame to the generator (copied: a lending runner
    reuses its memory)."""

    def __init__(self, name: str, stop: threading.Event, size: int) -> None:
        self.name = name
        self._stop = stop
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=size)

    def write(self, image: np.ndarray, frame: Frame) -> None:
        item = np.array(image)
        while True:
            if self._stop.is_set():
                raise Cancelled
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        pass

    def end(self) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(_END, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def take(self) -> Any:
        return self._queue.get()


class _PlateBackground:
    """One prepared background image for the whole stream (the runner keeps it on its device)."""

    def __init__(self, plate: np.ndarray) -> None:
        self._plate = plate

    def prepare(self, height: int, width: int) -> None:
        pass

    def batch(self, count: int) -> np.ndarray:
        return self._plate


def _prepare(runner: Runner, h: int, w: int, batch: int) -> None:
    if runner.frame_size != (h, w) or runner.max_batch < batch:
        runner.prepare(h, w, batch)


def _outputs(outputs: Sequence[str]) -> tuple[str, ...]:
    names = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    bad = [o for o in names if o not in OUTPUTS]
    if bad or not names:
        raise MattingError(f"outputs {names!r}: choose one or more of {', '.join(OUTPUTS)}")
    return names


def _check_int(name: str, value: object, least: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise MattingError(f"{name} must be an integer of at least {least}, got {value!r}")


def _describe(a: object) -> str:
    if isinstance(a, np.ndarray):
        return f"an array of {a.dtype} {list(a.shape)}"
    return f"a {type(a).__name__}"


def _check_frames(frames: object) -> np.ndarray:
    """uint8 [H,W,3] or [N,H,W,3], at least 32x32; anything else is one sentence saying what was given."""
    if not isinstance(frames, np.ndarray):
        raise MattingError(f"frames must be a numpy array or a PIL image, got {_describe(frames)}")
    if frames.dtype != np.uint8:
        raise MattingError(
            f"frames must be uint8 (0..255), got {_describe(frames)}; convert floats with "
            "(x * 255).round().astype(np.uint8)"
        )
    if frames.ndim not in (3, 4) or frames.shape[-1] != 3 or 0 in frames.shape:
        raise MattingError(f"frames must be [H,W,3] or [N,H,W,3] (RGB), got {_describe(frames)}")
    h, w = frames.shape[-3:-1]
    if h < SIZE_MULTIPLE or w < SIZE_MULTIPLE:
        raise MattingError(f"frames of {w}x{h} are too small: MODNet needs at least 32x32")
    inference_size(h, w)
    return frames


def _from_pil(image: PILImage) -> np.ndarray:
    return _check_frames(np.asarray(image.convert("RGB")))


def _frame(item: Frames, bgr: bool) -> np.ndarray:
    array = _from_pil(item) if PILImage is not None and isinstance(item, PILImage) else _check_frames(item)
    if array.ndim != 3:
        raise MattingError(f".stream takes one frame [H,W,3] at a time, got {_describe(array)}")
    return np.ascontiguousarray(array[..., ::-1] if bgr else array)


def _chain(first: np.ndarray, rest: Iterator[Frames], bgr: bool) -> Iterator[np.ndarray]:
    yield first
    for item in rest:
        yield _frame(item, bgr)


def _to_bgr(result: np.ndarray, output: str) -> np.ndarray:
    if output == "alpha":
        return result
    order = [2, 1, 0, 3] if output == "rgba" else [2, 1, 0]
    return np.ascontiguousarray(result[..., order])


def _plate(background: BackgroundLike, n: int, h: int, w: int, bgr: bool) -> np.ndarray:
    """The composite's background as the runner's feed: uint8 [1 or n, h, w, 3] RGB."""
    if isinstance(background, str):
        rgb = parse_colour(background)
        if rgb is None:
            raise MattingError(f"background {background!r} is not a colour name or #RRGGBB")
        return np.full((1, h, w, 3), rgb, np.uint8)
    if isinstance(background, tuple):
        if len(background) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in background):
            raise MattingError(f"background {background!r}: an RGB tuple is three integers 0..255")
        return np.full((1, h, w, 3), background, np.uint8)
    if PILImage is not None and isinstance(background, PILImage):
        background = np.asarray(background.convert("RGB"))
        bgr = False
    if (
        not isinstance(background, np.ndarray)
        or background.dtype != np.uint8
        or background.shape[-1:] != (3,)
    ):
        raise MattingError(
            f"background must be a colour, an RGB tuple or a uint8 image [h,w,3], got {_describe(background)}"
        )
    if bgr:
        background = background[..., ::-1]
    if background.ndim == 3:
        return cover(np.ascontiguousarray(background), h, w)[None]
    if background.ndim == 4 and background.shape[:3] == (n, h, w):
        return np.ascontiguousarray(background)
    raise MattingError(
        f"background {_describe(background)} does not fit {n} frames of {w}x{h}: give one image [h,w,3] "
        f"(scaled to cover) or one per frame [{n},{h},{w},3]"
    )
