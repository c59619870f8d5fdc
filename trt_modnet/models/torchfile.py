"""Read the tensors of a `torch.save` checkpoint without PyTorch.

The zip format (torch >= 1.6) holds `data.pkl`, a pickle whose tensors point at raw little-endian
storages under `data/`. A restricted unpickler admits only the tensor-rebuild functions, the storage
types and plain containers, so a file from the internet cannot run code while it is read (a full unpickle
could).
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from trt_modnet.errors import MattingError

_CONVERT_HINT = (
    "convert it with the torch extra instead: pip install 'trt_modnet[torch]', then "
    "`python -m trt_modnet.export CKPT -o model.onnx` and pass the .onnx"
)
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _Storage:
    """A storage type named in the pickle: only its element type matters here."""

    def __init__(self, dtype: type) -> None:
        self.dtype = np.dtype(dtype)


def _rebuild_tensor_v2(
    storage: np.ndarray,
    offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    *_: object,
) -> np.ndarray:
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride)
    )
    return np.array(view)


def _rebuild_parameter(data: np.ndarray, *_: object) -> np.ndarray:
    return data


_ALLOWED: dict[tuple[str, str], Callable[..., object] | object] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _Storage(dtype) for name, dtype in _STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, path: Path) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix
        self._path = path

    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise MattingError(
                f"{self._path}: not a plain MODNet checkpoint (it pickles {module}.{name}, which is not "
                f"read without PyTorch); {_CONVERT_HINT}"
            ) from None

    def persistent_load(self, pid: object) -> np.ndarray:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise MattingError(f"{self._path}: unexpected storage record {pid!r} in the checkpoint")
        storage_type, key = pid[1], pid[2]
        if not isinstance(storage_type, _Storage):
            raise MattingError(f"{self._path}: unexpected storage type {storage_type!r} in the checkpoint")
        raw = self._archive.read(f"{self._prefix}data/{key}")
        return np.frombuffer(raw, dtype=storage_type.dtype.newbyteorder("<"))


def read_tensors(path: str | Path) -> object:
    """The unpickled checkpoint with every tensor as a numpy array (zip format only)."""
    path = Path(path)
    if not path.is_file():
        raise MattingError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):
        raise MattingError(
            f"{path}: not a checkpoint in PyTorch's zip format (torch >= 1.6), e.g. a legacy or foreign "
            f"file; {_CONVERT_HINT}"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(pickles) != 1:
                raise MattingError(
                    f"{path}: a zip file but not a PyTorch checkpoint (no data.pkl); {_CONVERT_HINT}"
                )
            prefix = pickles[0].removesuffix("data.pkl")
            _check_byteorder(archive, prefix, path)
            return _RestrictedUnpickler(archive.read(pickles[0]), archive, prefix, path).load()
    except MattingError:
        raise
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as exc:
        raise MattingError(f"{path}: a damaged PyTorch checkpoint ({type(exc).__name__}: {exc})") from None


def _check_byteorder(archive: zipfile.ZipFile, prefix: str, path: Path) -> None:
    name = f"{prefix}byteorder"
    if name in archive.namelist() and archive.read(name).strip() != b"little":
        raise MattingError(f"{path}: a big-endian checkpoint; {_CONVERT_HINT}")
