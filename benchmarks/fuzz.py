"""Seeded mutations of the shared media through the main job, each in a child with a time and memory bound.

`python -m benchmarks.fuzz --cases N --seed S [--replay DIR] [--failures DIR] [--output JSON] [--spawn]`

The corpus is made in a temporary folder from the shared clips with PyAV (one second of
carphone_qcif as MP4, MOV, MKV, MPEG-TS and VP9 WebM) and OpenCV (a portrait shrunk to PNG and JPEG).
Case i of seed S draws its source and mutation from `random.Random(f"{S}:{i}")`, so any case is
reproduced from its seed and index alone. A case passes when the job exits 0 with its outputs in place, or
exits 2 with one `error:` line and no traceback; it fails on anything else, a hang (the time limit), memory
over the bound (RLIMIT_AS), a changed input or a file left in the output folder by a failed run. Failing
cases are written to `--failures` (the mutated file and `case.json`); `--replay DIR` runs those again.

Each case is a fork of a server process that has imported the job, PyAV and ONNX Runtime once
(multiprocessing's "forkserver"): the child runs the command line's `main` in-process with its standard
output and error sent to files, which saves the interpreter's start-up (most of a case). `--spawn` runs
`python -m trt_modnet.process` in a fresh interpreter instead, as a user does: it also covers what a fork
skips, the import of the package and the interpreter's shutdown (atexit handlers, finalizers).
"""

from __future__ import annotations

import argparse
import atexit
import functools
import hashlib
import json
import multiprocessing
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2

from benchmarks.machine import load_average, system_info
from benchmarks.parity import write_result

# A fork server's child runs this module again as __mp_main__ (multiprocessing's start-up for a `python
# -m` main), and runpy warns, harmlessly, that it is imported already: the filter is inherited by forks.
warnings.filterwarnings("ignore", "'benchmarks.fuzz' found in sys.modules", RuntimeWarning)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRT_MODNET_SHARED", REPO.parent / "shared"))
VIDEO = SHARED / "data" / "videos" / "carphone_qcif.mp4"
PORTRAIT = SHARED / "data" / "images" / "portraits" / "obama.jpg"
RESULTS = REPO / "benchmarks" / "results"
SUFFIXES = (".mp4", ".mov", ".mkv", ".ts", ".webm", ".png", ".jpg")
#: The job's options: a tiny graph, one thread, so that a case costs about its start-up.
JOB_ARGS = ("--ref-size", "64", "--backend", "onnxruntime", "--threads", "1", "--batch", "2", "--quiet")
#: What the fork server imports once, so that a case's child starts with them in place.
PRELOAD = ("trt_modnet.process", "trt_modnet.cli", "av", "cv2", "numpy", "onnxruntime", "benchmarks.fuzz")


@dataclass(frozen=True)
class FuzzSettings:
    time_limit_s: float = 60.0
    memory_limit_bytes: int = 6 << 30  # address space: the job maps about 2 GB before it reads a frame
    #: Peak resident memory beyond this fails the case (RLIMIT_AS bounds what is mapped, not what is used).
    rss_limit_mb: float = 3072.0
    #: A fresh interpreter per case (`python -m trt_modnet.process`) instead of a fork of the server.
    spawn: bool = False


@dataclass(frozen=True)
class Case:
    seed: int
    index: int
    source: str  # corpus file name
    mutation: str


@dataclass(frozen=True)
class Outcome:
    case: Case
    passed: bool
    verdict: str  # ok, refused, or what failed
    returncode: int
    seconds: float
    peak_rss_mb: float
    stderr_tail: str


# -- the corpus ---------------------------------------------------------------------------------------


def make_corpus(folder: Path, seconds: float = 1.0, timestamps: Sequence[bool] = (True, False)) -> list[Path]:
    """The shared clip re-encoded short into every container, and a small portrait as PNG and JPEG.

    The clips come with clean timestamps (`clip.*`) and without any (`bare.*`, as some muxers write
    them: the job fills them in from the rate); the seed-26 run had only the latter, and its replayed
    defect needs them (`timestamps=(False,)`)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for timed in timestamps:
        for suffix in SUFFIXES[:5]:
            path = folder / f"{'clip' if timed else 'bare'}{suffix}"
            codec = "libvpx-vp9" if suffix == ".webm" else "libx264"
            _encode(VIDEO, path, codec, seconds, timed)
            out.append(path)
    image = cv2.imread(str(PORTRAIT))
    small = cv2.resize(image, (96, 128), interpolation=cv2.INTER_AREA)
    for suffix in (".png", ".jpg"):
        path = folder / f"photo{suffix}"
        cv2.imwrite(str(path), small)
        out.append(path)
    return out


def _encode(src: Path, dst: Path, codec: str, seconds: float, timestamps: bool) -> None:
    with av.open(str(src)) as inp, av.open(str(dst), "w") as outp:
        vin = inp.streams.video[0]
        vout = outp.add_stream(codec, rate=vin.average_rate or 25)
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        if codec == "libx264":
            vout.options = {"preset": "ultrafast", "g": "8"}
        else:
            vout.options = {"deadline": "realtime", "cpu-used": "8", "g": "8"}
        for index, frame in enumerate(inp.decode(vin)):
            if frame.time is not None and frame.time >= seconds:
                break
            if timestamps:  # a clean file to damage
                frame = frame.reformat(format="yuv420p")
                frame.pts, frame.time_base = index, 1 / Fraction(vout.codec_context.framerate)
            else:
                frame.pts = None
                frame = frame.reformat(format="yuv420p")
            outp.mux(vout.encode(frame))
        outp.mux(vout.encode(None))


# -- mutations ------------------------------------------------------------------------------------------


def boundaries(data: bytes, suffix: str) -> list[int]:
    """Offsets where a structure starts: MP4/MOV boxes (two levels), Matroska level-1 elements, MPEG-TS
    packets, PNG chunks, JPEG markers."""
    if suffix in (".mp4", ".mov"):
        return _boxes(data, 0, len(data), depth=2)
    if suffix in (".mkv", ".webm"):
        ids = (
            b"\x1a\x45\xdf\xa3",
            b"\x18\x53\x80\x67",
            b"\x15\x49\xa9\x66",
            b"\x16\x54\xae\x6b",
            b"\x1f\x43\xb6\x75",
            b"\x1c\x53\xbb\x6b",
            b"\xa3",
            b"\xa0",
        )
        found = [i for tag in ids[:6] for i in _find_all(data, tag)]
        return sorted(set(found)) or [0]
    if suffix == ".ts":
        return list(range(0, len(data), 188))
    if suffix == ".png":
        at, out = 8, [8]
        while at + 12 <= len(data):
            at += 12 + struct.unpack(">I", data[at : at + 4])[0]
            out.append(at)
        return out
    return [i for i in _find_all(data, b"\xff") if i + 1 < len(data) and data[i + 1] not in (0, 0xFF)]


def _boxes(data: bytes, start: int, end: int, depth: int) -> list[int]:
    out, at = [], start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        out.append(at)
        if size < 8 or at + size > end:
            break
        if depth > 1 and kind in (b"moov", b"trak", b"mdia", b"minf", b"stbl"):
            out += _boxes(data, at + 8, at + size, depth - 1)
        at += size
    return out


def _find_all(data: bytes, tag: bytes) -> list[int]:
    out, at = [], data.find(tag)
    while at >= 0 and len(out) < 10_000:
        out.append(at)
        at = data.find(tag, at + 1)
    return out


def _flip(rng: random.Random, data: bytearray, suffix: str) -> str:
    n = rng.choice((1, 4, 16, 64))
    for _ in range(n):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return f"flip {n} bits"


def _truncate(rng: random.Random, data: bytearray, suffix: str) -> str:
    cut = rng.randrange(1, len(data))
    del data[cut:]
    return f"truncate at {cut}"


def _truncate_boundary(rng: random.Random, data: bytearray, suffix: str) -> str:
    cut = rng.choice(boundaries(bytes(data), suffix)[1:] or [len(data) // 2])
    cut += rng.choice((0, 1, 4, 8))
    del data[max(1, cut) :]
    return f"truncate at boundary {cut}"


def _cut_chunk(rng: random.Random, data: bytearray, suffix: str) -> str:
    a = rng.randrange(len(data))
    n = rng.randrange(1, max(2, len(data) // 8))
    del data[a : a + n]
    return f"cut {n} bytes at {a}"


def _dup_chunk(rng: random.Random, data: bytearray, suffix: str) -> str:
    a = rng.randrange(len(data))
    n = rng.randrange(1, max(2, len(data) // 8))
    data[a:a] = data[a : a + n]
    return f"duplicate {n} bytes at {a}"


def _zero_header(rng: random.Random, data: bytearray, suffix: str) -> str:
    marks = boundaries(bytes(data), suffix)
    a = rng.choice(marks[:8]) if marks else 0
    n = rng.choice((4, 16, 64, 256))
    data[a : a + n] = bytes(len(data[a : a + n]))
    return f"zero {n} bytes at {a}"


def _shuffle_header(rng: random.Random, data: bytearray, suffix: str) -> str:
    marks = boundaries(bytes(data), suffix)
    a = rng.choice(marks[:8]) if marks else 0
    n = rng.choice((8, 32, 128))
    part = list(data[a : a + n])
    rng.shuffle(part)
    data[a : a + n] = bytes(part)
    return f"shuffle {n} bytes at {a}"


#: Field patches that state absurd sizes, counts and time bases (see `_absurd`).
_HUGE = (100_000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0)


def _absurd(rng: random.Random, data: bytearray, suffix: str) -> str:
    """A header field set to an absurd value: the frame size, the sample or frame count, the time base."""
    value = rng.choice(_HUGE)
    if suffix in (".mp4", ".mov"):
        targets = [
            (b"tkhd", 84, 4, "width"),
            (b"tkhd", 88, 4, "height"),  # 16.16 fixed point, at 76/80 in v0
            (b"avc1", 32, 2, "avc1 width"),
            (b"avc1", 34, 2, "avc1 height"),
            (b"mdhd", 20, 4, "timescale"),
            (b"mvhd", 20, 4, "movie timescale"),
            (b"stsz", 16, 4, "sample count"),
            (b"stts", 12, 4, "stts count"),
            (b"stts", 20, 4, "sample delta"),
        ]
        tag, offset, width, name = rng.choice(targets)
        at = data.find(tag)
        if at < 0:
            return _flip(rng, data, suffix)
        field = at - 4 + offset
        if name in ("width", "height"):
            field -= 8  # tkhd v0: width at 76, height at 80 from the box start
            value = (value & 0xFFFF) << 16
        data[field : field + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "big")
        return f"{name} = {value}"
    if suffix in (".mkv", ".webm"):
        targets = [
            (b"\xb0", "PixelWidth"),
            (b"\xba", "PixelHeight"),
            (b"\x2a\xd7\xb1", "TimestampScale"),
            (b"\x23\xe3\x83", "DefaultDuration"),
        ]
        tag, name = rng.choice(targets)
        at = data.find(b"\x16\x54\xae\x6b") if len(tag) == 1 else 0  # sizes: inside Tracks
        at = data.find(tag, max(0, at))
        if at < 0 or at + len(tag) >= len(data):
            return _flip(rng, data, suffix)
        size = data[at + len(tag)] & 0x7F if data[at + len(tag)] & 0x80 else 0
        if not 1 <= size <= 8:
            return _flip(rng, data, suffix)
        start = at + len(tag) + 1
        data[start : start + size] = (value % (1 << (8 * size))).to_bytes(size, "big")
        return f"{name} = {value}"
    if suffix == ".png" and data[12:16] == b"IHDR":
        which = rng.choice((16, 20))
        data[which : which + 4] = value.to_bytes(4, "big")
        data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # a valid CRC: reach the size check
        return f"IHDR {'width' if which == 16 else 'height'} = {value}"
    if suffix == ".jpg":
        sof = next((i for i in _find_all(bytes(data), b"\xff\xc0")), -1)
        if sof >= 0:
            which = rng.choice((5, 7))
            data[sof + which : sof + which + 2] = (value & 0xFFFF or 0xFFFF).to_bytes(2, "big")
            return f"SOF {'height' if which == 5 else 'width'} = {value & 0xFFFF or 0xFFFF}"
    return _flip(rng, data, suffix)


MUTATIONS: dict[str, Callable[[random.Random, bytearray, str], str]] = {
    "flip": _flip,
    "truncate": _truncate,
    "truncate_boundary": _truncate_boundary,
    "cut": _cut_chunk,
    "duplicate": _dup_chunk,
    "zero_header": _zero_header,
    "shuffle_header": _shuffle_header,
    "absurd": _absurd,
}


def mutate(corpus: Sequence[Path], seed: int, index: int) -> tuple[Case, bytes]:
    """Case `index` of `seed`: its source and mutated bytes, the same on every run."""
    rng = random.Random(f"{seed}:{index}")
    source = rng.choice(sorted(corpus))
    kind = rng.choice(sorted(MUTATIONS))
    data = bytearray(source.read_bytes())
    what = MUTATIONS[kind](rng, data, source.suffix)
    if not data:
        data = bytearray(b"\0")
    return Case(seed, index, source.name, f"{kind}: {what}"), bytes(data)


# -- running a case -------------------------------------------------------------------------------------


def run_case(
    case: Case, data: bytes, model: Path, work: Path, settings: FuzzSettings = FuzzSettings()
) -> Outcome:
    """The main job on the mutated file in a child process, judged by what a user would see."""
    folder = work / f"case{case.index}"
    shutil.rmtree(folder, ignore_errors=True)
    out = folder / "out"
    out.mkdir(parents=True)
    src = folder / f"input{Path(case.source).suffix}"
    src.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    args = [str(src), "-o", f"{out}/", "--model", str(model), *JOB_ARGS]
    started = time.perf_counter()
    returncode, stderr, hung, peak = (_spawned if settings.spawn else _forked)(args, folder, settings)
    seconds = time.perf_counter() - started
    verdict = judge(returncode, stderr, hung, src, digest, out)
    if verdict in ("ok", "refused") and peak > settings.rss_limit_mb:
        verdict = f"peak RSS {peak:.0f} MB"
    outcome = Outcome(
        case,
        verdict in ("ok", "refused"),
        verdict,
        returncode,
        round(seconds, 2),
        round(peak, 1),
        "\n".join(stderr.strip().splitlines()[-6:]),
    )
    shutil.rmtree(folder, ignore_errors=True)
    return outcome


def _spawned(args: list[str], folder: Path, settings: FuzzSettings) -> tuple[int, str, bool, float]:
    """`python -m trt_modnet.process ARGS` in a fresh interpreter: (exit code, stderr, hung, peak MB)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "trt_modnet.process", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        preexec_fn=lambda: _limit_memory(settings.memory_limit_bytes),
    )
    hung = False
    try:
        _, stderr = proc.communicate(timeout=settings.time_limit_s)
    except subprocess.TimeoutExpired:
        hung = True
        proc.kill()
        _, stderr = proc.communicate()
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child so far
    return proc.returncode, stderr, hung, peak


def _forked(args: list[str], folder: Path, settings: FuzzSettings) -> tuple[int, str, bool, float]:
    """The command line's `main` in a fork of the server: (exit code, stderr, hung, peak MB)."""
    proc = _fork_server().Process(target=_child, args=(args, str(folder), settings.memory_limit_bytes))
    proc.start()
    try:
        proc.join(settings.time_limit_s)
    finally:
        hung = proc.exitcode is None
        if hung:  # over the time limit, or this run is being stopped
            proc.kill()
            proc.join()
    stderr = (folder / "stderr").read_text(errors="replace") if (folder / "stderr").exists() else ""
    peak_file = folder / "peak_rss_kb"
    peak = int(peak_file.read_text()) / 1024 if peak_file.exists() else 0.0
    return proc.exitcode, stderr, hung, peak  # killed by a signal: minus its number, as subprocess says


@functools.cache
def _fork_server() -> multiprocessing.context.ForkServerContext:
    """The forkserver context, its server importing PRELOAD once (started on the first case)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))
    return context


def _child(args: list[str], folder: str, memory_limit: int) -> None:
    """In the forked child: `python -m trt_modnet.process ARGS` as the interpreter would run it, to the
    exit code (an uncaught exception prints its traceback and exits 1; non-daemon threads are waited for
    and the atexit handlers run, as at interpreter exit). Never returns: the fork must not go on into the
    server's code."""
    code = 1
    try:
        _limit_memory(memory_limit)
        os.environ["OMP_NUM_THREADS"] = "1"
        for fd, name in ((1, "stdout"), (2, "stderr")):
            target = os.open(os.path.join(folder, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        sys.stdin = open(os.devnull)  # noqa: SIM115 - as a job started without a terminal
        code = _run_cli(args)
        for thread in threading.enumerate():  # as the interpreter does at exit
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()  # the exit handlers of the modules the server imported, as at exit
    except BaseException:  # whatever escapes is the child's failure, reported as Python does
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            with open(os.path.join(folder, "peak_rss_kb"), "w") as f:
                f.write(str(peak))
        finally:
            os._exit(code)


def _run_cli(args: list[str]) -> int:
    from trt_modnet.cli import run_main
    from trt_modnet.process import main

    try:
        return run_main(main, args)
    except SystemExit as exc:  # argparse's own exits, or a `raise SystemExit(...)` in the job
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1


def _limit_memory(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def judge(returncode: int, stderr: str, hung: bool, src: Path, digest: str, out: Path) -> str:
    """ok / refused for a pass; otherwise what went wrong."""
    if hung:
        return "hang"
    if not src.exists() or hashlib.sha256(src.read_bytes()).hexdigest() != digest:
        return "input changed"
    left = sorted(p.name for p in out.iterdir())
    if "Traceback" in stderr or "MemoryError" in stderr or "bad_alloc" in stderr:
        return "traceback"
    if returncode == 0:
        if not left or any(name.endswith(".part") for name in left):
            return "exit 0 without its output"
        return "ok"
    if returncode != 2:
        return f"exit {returncode}"
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    if len(errors) != 1:
        return f"exit 2 with {len(errors)} error lines"
    if left:
        return f"partial output left: {left[0]}"
    return "refused"


def save_failure(folder: Path, outcome: Outcome, data: bytes) -> None:
    case = outcome.case
    where = folder / f"seed{case.seed}_case{case.index}"
    where.mkdir(parents=True, exist_ok=True)
    (where / f"input{Path(case.source).suffix}").write_bytes(data)
    (where / "case.json").write_text(json.dumps(asdict(outcome), indent=1) + "\n")


def replay_cases(folder: Path) -> list[tuple[Case, bytes]]:
    """The failing cases a run saved: (case, mutated bytes), in name order."""
    out = []
    for meta in sorted(folder.glob("*/case.json")):
        case = Case(**json.loads(meta.read_text())["case"])
        data = next(p for p in meta.parent.iterdir() if p.name.startswith("input")).read_bytes()
        out.append((case, data))
    return out


def tiny_model(folder: Path) -> Path:
    """Seeded random weights (`python -m trt_modnet.export --random-weights`): the job's path is the same."""
    path = folder / "random.onnx"
    subprocess.run(
        [sys.executable, "-m", "trt_modnet.export", "--random-weights", "--seed", "0", "-o", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--first", type=int, default=0, help="index of the first case (resume a run)")
    p.add_argument("--replay", type=Path, help="run the cases saved in this folder instead")
    p.add_argument("--failures", type=Path, default=Path("fuzz_failures"), help="where failing cases go")
    p.add_argument("--model", type=Path, help="a MODNet .onnx (default: seeded random weights)")
    p.add_argument("--time-limit", type=float, default=FuzzSettings.time_limit_s)
    p.add_argument(
        "--spawn", action="store_true", help="a fresh interpreter per case (slower; also covers exit)"
    )
    p.add_argument("--output", type=Path, help="write the counts as JSON here (rewritten as cases end)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = FuzzSettings(time_limit_s=args.time_limit, spawn=args.spawn)
    started = time.perf_counter()
    command = " ".join(["python -m benchmarks.fuzz", *(argv if argv is not None else sys.argv[1:])])
    outcomes: list[Outcome] = []

    def save(stopped: str | None = None) -> None:
        if args.output:
            write_result(args.output, _result(command, outcomes, time.perf_counter() - started, stopped))

    signal.signal(signal.SIGTERM, _interrupt)  # a stopped run still writes what it counted
    stopped = None
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        work = Path(tmp)
        try:
            model = args.model or tiny_model(work)
            if args.replay:
                cases = iter(replay_cases(args.replay))
            else:
                corpus = make_corpus(work / "corpus")
                cases = (mutate(corpus, args.seed, i) for i in range(args.first, args.first + args.cases))
            for case, data in cases:
                outcome = run_case(case, data, model, work, settings)
                outcomes.append(outcome)
                if not outcome.passed:
                    print(
                        f"FAIL case {case.index} ({case.source}, {case.mutation}): {outcome.verdict}",
                        file=sys.stderr,
                    )
                    if not args.replay:
                        save_failure(args.failures, outcome, data)
                if len(outcomes) % 25 == 0:
                    print(f"{len(outcomes)} cases: {summarise(outcomes)['counts']}", file=sys.stderr)
                    save()
        except KeyboardInterrupt as exc:
            stopped = str(exc) or "SIGINT"
    print(json.dumps(summarise(outcomes)["counts"]))
    save(stopped)
    return 0 if all(o.passed for o in outcomes) and stopped is None else 1


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _result(command: str, outcomes: Sequence[Outcome], seconds: float, stopped: str | None) -> dict:
    return {
        "command": command,
        "machine": {**system_info(), "load_average": load_average()},
        "seconds": round(seconds, 1),
        "stopped": stopped,  # the run was stopped by this signal after the cases counted here
        **summarise(outcomes),
        "failures": [asdict(o) for o in outcomes if not o.passed],
    }


def summarise(outcomes: Sequence[Outcome]) -> dict:
    by: dict[str, int] = {}
    for o in outcomes:
        by[o.verdict] = by.get(o.verdict, 0) + 1
    return {
        "counts": {
            "cases": len(outcomes),
            "passed": sum(o.passed for o in outcomes),
            "failed": sum(not o.passed for o in outcomes),
            "by_verdict": by,
        },
        "slowest_case_s": max((o.seconds for o in outcomes), default=0.0),
        "mean_case_s": round(sum(o.seconds for o in outcomes) / max(1, len(outcomes)), 2),
        "largest_peak_rss_mb": max((o.peak_rss_mb for o in outcomes), default=0.0),
    }


def _cpu() -> dict:
    return {**system_info(), "load_average": load_average()}


if __name__ == "__main__":
    # Run as benchmarks.fuzz, not __main__: the fork server's children find `_child` by that name.
    from benchmarks.fuzz import main as fuzz_main

    raise SystemExit(fuzz_main())
