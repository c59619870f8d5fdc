"""Write tests/data/legacy_small.pt: a small checkpoint in PyTorch's legacy format, made without torch.

`python -m tests.data.make_legacy_fixture` rewrites it. It holds what the torch-free reader must get
right: two tensors sharing one storage (one of them transposed), a tensor read through a storage view,
a tensor at an offset, fp16 and int64 storages, and a `cuda:0` location tag as a GPU-trained file has.
`tests/test_legacy_checkpoint.py` checks it against torch.load where torch is installed.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np

from tests.legacy_checkpoint import Storage, Tensor, legacy_bytes

FIXTURE = Path(__file__).with_name("legacy_small.pt")


def fixture_bytes() -> bytes:
    shared = Storage("0", np.arange(12, dtype=np.float32), "cuda:0")
    half = Storage("2", (np.arange(5, dtype=np.float16) - 2) / 4)
    longs = Storage("3", np.array([7, -1, 3], dtype=np.int64))
    state = collections.OrderedDict(
        w=Tensor(shared, 0, (3, 4), (4, 1)),
        wt=Tensor(shared, 0, (4, 3), (1, 4)),
        tail=Tensor(shared, 0, (4,), (1,), view=("1", 8, 4)),
        h=Tensor(half, 0, (5,), (1,)),
        n=Tensor(longs, 1, (2,), (1,)),
    )
    return legacy_bytes({"state_dict": state, "epoch": 7}, [shared, half, longs])


def expected() -> dict[str, np.ndarray]:
    """What the fixture's tensors hold, computed apart from the file."""
    base = np.arange(12, dtype=np.float32)
    return {
        "w": base.reshape(3, 4),
        "wt": base.reshape(3, 4).T,
        "tail": base[8:12],
        "h": (np.arange(5, dtype=np.float16) - 2) / 4,
        "n": np.array([-1, 3], dtype=np.int64),
    }


if __name__ == "__main__":
    FIXTURE.write_bytes(fixture_bytes())
    print(f"{FIXTURE}: {FIXTURE.stat().st_size} bytes")
