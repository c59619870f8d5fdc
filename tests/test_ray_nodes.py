"""`--ray` on a two-node Ray cluster on this machine (`ray.cluster_utils.Cluster`, one CPU each, 127.0.0.1):
files spread over both nodes; a node removed, or a worker killed, mid-file: the file runs again on a live
worker, the outputs are the plain job's and nothing partial is left; the head lost: one line, exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import VIDEOS, need
from tests.test_ray import BATCH, FAST, PIECES, fresh_log_handler, job, keyframed  # noqa: F401
from trt_modnet.distributed.worker import HOLD_ENV

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PNG = ["--format", "png", *FAST]
LOCAL = {"num_cpus": 1}


class Nodes:
    """The cluster, and the file that holds every worker after its first frames while it exists."""

    def __init__(self, hold: Path) -> None:
        from ray.cluster_utils import Cluster

        self.hold = hold
        self.cluster = Cluster(initialize_head=True, head_node_args=LOCAL)

    def others(self, count: int) -> list:
        """Exactly `count` nodes besides the head, added as needed."""
        import ray

        extra = [n for n in self.cluster.list_all_nodes() if n is not self.cluster.head_node]
        while len(extra) < count:
            extra.append(self.cluster.add_node(**LOCAL))
        self.cluster.wait_for_nodes()
        while len([n for n in ray.nodes() if n["Alive"]]) < count + 1:
            time.sleep(0.2)
        return extra


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    ray = pytest.importorskip("ray")
    hold = tmp_path_factory.mktemp("hold") / "hold"
    os.environ[HOLD_ENV] = str(hold)  # inherited by the nodes' workers
    cluster = Nodes(hold)
    ray.init(address=cluster.cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.cluster.shutdown()
    del os.environ[HOLD_ENV]


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("batch")
    for name in BATCH:
        shutil.copy(need(VIDEOS / name), folder / name)
    return folder


@pytest.fixture(scope="module")
def plain(batch: Path, synthetic_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plain") / "out"
    assert job(batch, "-o", out, "--model", synthetic_onnx, *PNG, "-q") == 0
    return out


def same_frames(plain: Path, out: Path) -> None:
    """The same PNG folders, byte for byte, and nothing else (no temporary name left)."""
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in plain.iterdir())
    for folder in plain.iterdir():
        frames = sorted(p.name for p in folder.iterdir())
        assert frames and frames == sorted(p.name for p in (out / folder.name).iterdir())
        assert all((folder / f).read_bytes() == (out / folder.name / f).read_bytes() for f in frames)


def busy(out: Path, workers: int) -> None:
    """Wait until `workers` units have frames on disk (under their temporary names)."""
    for _ in range(600):
        if len({p.parent for p in out.rglob("*.png")}) >= workers:
            return
        time.sleep(0.1)
    raise AssertionError("the workers never wrote their first frames")


def mid_run(nodes: Nodes, out: Path, workers: int, act: Callable[[], None]) -> threading.Thread:
    """Hold the workers after their first frames, `act` (remove a node, kill a worker), then let go."""
    nodes.hold.touch()

    def go() -> None:
        try:
            busy(out, workers)
            act()
        finally:
            nodes.hold.unlink()

    thread = threading.Thread(target=go)
    thread.start()
    return thread


def ray_job(src: Path, out: Path, model: Path, *extra: str) -> int:
    return job(src, "-o", out, "--model", model, *PNG, "--ray", "auto", *extra)


def table(out: str) -> tuple[list[list[str]], list[str]]:
    """The summary's rows (split in columns) and its `retried` lines."""
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("file "))
    rows = [line.split() for line in lines[head + 2 :] if line.split() and line.split()[0] in BATCH]
    return rows, [line for line in lines if line.startswith("retried ")]


def test_files_spread_over_both_nodes_give_the_plain_jobs_frames(
    nodes: Nodes, batch: Path, plain: Path, synthetic_onnx: Path, tmp_path: Path, capfd
) -> None:
    nodes.others(1)
    out = tmp_path / "out"
    thread = mid_run(nodes, out, 2, lambda: None)  # both workers busy at once: one file on each node
    assert ray_job(batch, out, synthetic_onnx) == 0
    thread.join()
    same_frames(plain, out)
    rows, retried = table(capfd.readouterr().out)
    assert len({row[4] for row in rows}) == 2 and retried == []  # the node column: two nodes


def test_a_node_removed_mid_file_runs_the_file_again_on_the_other(
    nodes: Nodes, batch: Path, plain: Path, synthetic_onnx: Path, tmp_path: Path, capfd
) -> None:
    (other,) = nodes.others(1)
    out = tmp_path / "out"
    thread = mid_run(nodes, out, 2, lambda: nodes.cluster.remove_node(other))
    assert ray_job(batch, out, synthetic_onnx) == 0
    thread.join()
    same_frames(plain, out)
    rows, retried = table(capfd.readouterr().out)
    assert len(retried) == 1 and "ActorDiedError" in retried[0]
    assert retried[0].endswith(f"finished on {rows[0][4]}") and len({row[4] for row in rows}) == 1


def test_all_nodes_but_the_head_removed_mid_run_finish_on_the_head(
    nodes: Nodes, batch: Path, plain: Path, synthetic_onnx: Path, tmp_path: Path, capfd
) -> None:
    others = nodes.others(2)
    out = tmp_path / "out"

    def remove_all() -> None:
        for node in others:
            nodes.cluster.remove_node(node)

    thread = mid_run(nodes, out, 3, remove_all)
    assert ray_job(batch, out, synthetic_onnx) == 0
    thread.join()
    same_frames(plain, out)
    rows, retried = table(capfd.readouterr().out)
    assert len(retried) == 2 and len({row[4] for row in rows}) == 1


def test_a_worker_killed_with_ray_kill_is_replaced(
    nodes: Nodes, batch: Path, plain: Path, synthetic_onnx: Path, tmp_path: Path, capfd
) -> None:
    import ray

    nodes.others(1)
    out = tmp_path / "out"

    def kill_one() -> None:
        names = sorted(n for n in ray.util.list_named_actors() if n.startswith("trt_modnet-worker-"))
        ray.kill(ray.get_actor(names[0]), no_restart=True)

    thread = mid_run(nodes, out, 2, kill_one)
    assert ray_job(batch, out, synthetic_onnx) == 0
    thread.join()
    same_frames(plain, out)
    assert len(table(capfd.readouterr().out)[1]) == 1


def test_pieces_of_a_node_removed_mid_piece_run_again(
    nodes: Nodes,
    keyframed: Path,  # noqa: F811
    synthetic_onnx: Path,
    tmp_path: Path,
    capfd,
) -> None:
    (other,) = nodes.others(1)
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(keyframed, src / "clip.mp4")
    plain, out = tmp_path / "plain", tmp_path / "out"
    for folder in (plain, out):
        folder.mkdir()  # the PNG folder inside it, its temporary pieces beside that
    assert job(src, "-o", plain / "clip", "--model", synthetic_onnx, *PNG[:-2], "-q") == 0
    thread = mid_run(nodes, out, 2, lambda: nodes.cluster.remove_node(other))
    args = ("--ray", "auto", *PIECES)
    assert job(src, "-o", out / "clip", "--model", synthetic_onnx, *PNG[:-2], *args) == 0
    thread.join()
    same_frames(plain, out)
    assert any(line.startswith("retried clip.mp4") for line in capfd.readouterr().out.splitlines())


def test_the_head_lost_is_one_line_and_exit_2_with_nothing_partial(
    nodes: Nodes, batch: Path, synthetic_onnx: Path, tmp_path: Path
) -> None:
    import ray

    nodes.others(1)
    out = tmp_path / "out"
    address = nodes.cluster.address
    ray.shutdown()  # this process is a driver too: without its head Ray would end it
    nodes.hold.touch()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    args = [batch, "-o", out, "--model", synthetic_onnx, *PNG, "--ray", address, "-q"]
    cmd = [sys.executable, "-m", "trt_modnet.process", *map(str, args)]
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        busy(out, 2)
        nodes.cluster.remove_node(nodes.cluster.head_node)
        _, stderr = child.communicate(timeout=120)
    finally:
        child.kill()
        nodes.hold.unlink()
    assert child.returncode == 2
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Ray head" in lines[0] and "Traceback" not in stderr
    assert not out.exists() or list(out.rglob("*")) == []  # nothing partial
