"""Read the tensors of a `torch.save` checkpoint without PyTorch, in either of its two formats.

- zip (torch >= 1.6): `data.pkl`, a pickle whose tensors point at raw little-endian storages under `data/`;
- legacy (torch 0.4 to 1.5, and `_use_new_zipfile_serialization=False` since; the official MODNet files):
  five pickles in a row (magic number, protocol version, `sys_info`, the object, the sorted storage keys),
  then each storage's raw bytes after its int64 element count, in the keys' order.

A restricted unpickler admits only the tensor-rebuild functions, the storage types and plain containers,
so a file from the internet cannot run code while it is read (a full unpickle could). Storages of any
device (`cuda:0`, `cpu`) load on the host.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

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
    "BFloat16Storage": None,  # no numpy type: refused by name when a tensor uses it
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_DAMAGE = (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, IndexError, struct.error)
#: A storage record as the pickle names it: (type, key, element count, (view key, offset, size) or None).
StorageRecord = tuple["_Storage", str, int, "tuple[str, int, int] | None"]


class _Storage:
    """A storage type named in the pickle: only its element type matters here."""

    def __init__(self, name: str, dtype: type | None) -> None:
        self.name = name
        self.dtype = None if dtype is None else np.dtype(dtype).newbyteorder("<")


def _rebuild_tensor_v2(
    storage: np.ndarray | None,
    offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    *_: object,
) -> np.ndarray | None:
    if storage is None:  # the legacy reader's first pass: the storages' bytes come after the pickle
        return None
    needed = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) + 1 if all(size) else 0
    if offset < 0 or needed > storage.size:
        raise ValueError(f"a tensor of size {tuple(size)} at offset {offset} overruns its storage")
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride)
    )
    return np.array(view)


def _rebuild_tensor(storage: np.ndarray | None, offset: int, size: tuple[int, ...], stride: tuple[int, ...]):
    return _rebuild_tensor_v2(storage, offset, size, stride)


def _rebuild_parameter(data: np.ndarray | None, *_: object) -> np.ndarray | None:
    return data


_ALLOWED: dict[tuple[str, str], Callable[..., object] | object] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    # GPU-trained legacy files of torch < 1.6 name the CUDA storage types.
    **{
        (module, name): _Storage(name, dtype)
        for name, dtype in _STORAGE_DTYPES.items()
        for module in ("torch", "torch.cuda")
    },
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Only `_ALLOWED` globals; each storage record goes to `storage(record)`."""

    def __init__(self, file: BinaryIO, path: Path, storage: Callable[[StorageRecord], object]) -> None:
        super().__init__(file)
        self._path = path
        self._storage = storage

    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise MattingError(
                f"{self._path}: not a plain MODNet checkpoint (it pickles {module}.{name}, which is not "
                f"read without PyTorch); {_CONVERT_HINT}"
            ) from None

    def persistent_load(self, pid: object) -> object:
        if isinstance(pid, tuple) and pid and pid[0] == "module":
            raise MattingError(f"{self._path}: a pickled model, not a state dict; {_CONVERT_HINT}")
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise MattingError(f"{self._path}: unexpected storage record {pid!r} in the checkpoint")
        # zip: (storage, type, key, location, numel); legacy adds a view (key, offset, size) or None.
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        view = pid[5] if len(pid) >= 6 else None
        if not isinstance(storage_type, _Storage):
            raise MattingError(f"{self._path}: unexpected storage type {storage_type!r} in the checkpoint")
        if storage_type.dtype is None:
            raise MattingError(f"{self._path}: holds {storage_type.name} tensors; {_CONVERT_HINT}")
        return self._storage((storage_type, key, int(numel), view))


def checkpoint_format(path: str | Path) -> str:
    """'zip', 'legacy', 'tar' (torch < 0.4) or 'unknown', from the file's first bytes."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    with path.open("rb") as f:
        try:
            magic = _RestrictedUnpickler(f, path, _no_storage).load()
        except (MattingError, *_DAMAGE):
            return "unknown"
    return "legacy" if magic == _LEGACY_MAGIC else "unknown"


def read_tensors(path: str | Path) -> object:
    """The unpickled checkpoint with every tensor as a numpy array."""
    path = Path(path)
    if not path.is_file():
        raise MattingError(f"{path}: no such checkpoint file")
    kind = checkpoint_format(path)
    try:
        if kind == "zip":
            return _read_zip(path)
        if kind == "legacy":
            return _read_legacy(path)
    except MattingError:
        raise
    except (zipfile.BadZipFile, *_DAMAGE) as exc:
        raise MattingError(f"{path}: a damaged PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    if kind == "tar":
        raise MattingError(f"{path}: a checkpoint in PyTorch's pre-0.4 tar format; {_CONVERT_HINT}")
    raise MattingError(
        f"{path}: not a PyTorch checkpoint (neither the zip nor the legacy format); {_CONVERT_HINT}"
    )


def _read_zip(path: Path) -> object:
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise MattingError(
                f"{path}: a zip file but not a PyTorch checkpoint (no data.pkl); {_CONVERT_HINT}"
            )
        prefix = pickles[0].removesuffix("data.pkl")
        byteorder = f"{prefix}byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise MattingError(f"{path}: a big-endian checkpoint; {_CONVERT_HINT}")

        def storage(record: StorageRecord) -> np.ndarray:
            storage_type, key, _, _ = record
            return np.frombuffer(archive.read(f"{prefix}data/{key}"), dtype=storage_type.dtype)

        return _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), path, storage).load()


def _read_legacy(path: Path) -> object:
    data = path.read_bytes()
    f = io.BytesIO(data)
    _check_legacy_header(f, path)
    start = f.tell()
    records: dict[str, StorageRecord] = {}
    _RestrictedUnpickler(f, path, lambda r: records.setdefault(r[1], r) and None).load()
    keys = _RestrictedUnpickler(f, path, _no_storage).load()
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(records):
        raise MattingError(f"{path}: a damaged PyTorch checkpoint (its storage key list does not match)")
    storages = {str(key): _read_storage(f, records[str(key)], path) for key in keys}
    if f.tell() != len(data):
        raise MattingError(
            f"{path}: a damaged PyTorch checkpoint ({len(data) - f.tell()} bytes after the data)"
        )
    f.seek(start)
    return _RestrictedUnpickler(f, path, lambda r: _view(storages[r[1]], r[3])).load()


def _check_legacy_header(f: io.BytesIO, path: Path) -> None:
    header = [_RestrictedUnpickler(f, path, _no_storage).load() for _ in range(3)]
    magic, protocol, sys_info = header
    if magic != _LEGACY_MAGIC or protocol != _LEGACY_PROTOCOL or not isinstance(sys_info, dict):
        raise MattingError(f"{path}: a damaged PyTorch checkpoint (legacy header {header[:2]!r})")
    if not sys_info.get("little_endian", True):
        raise MattingError(
            f"{path}: a big-endian checkpoint (saved on a big-endian machine); {_CONVERT_HINT}"
        )


def _read_storage(f: io.BytesIO, record: StorageRecord, path: Path) -> np.ndarray:
    storage_type, key, numel, _ = record
    (count,) = struct.unpack("<q", f.read(8))
    nbytes = count * storage_type.dtype.itemsize
    left = f.getbuffer().nbytes - f.tell()
    if count != numel or nbytes > left:
        raise MattingError(
            f"{path}: a damaged PyTorch checkpoint (storage {key} says {count} elements, "
            f"the pickle {numel}, {left} bytes left)"
        )
    return np.frombuffer(f.read(nbytes), dtype=storage_type.dtype)


def _view(storage: np.ndarray, view: tuple[str, int, int] | None) -> np.ndarray:
    if view is None:
        return storage
    _, offset, size = view
    if offset < 0 or offset + size > storage.size:
        raise ValueError(f"a storage view [{offset}:{offset + size}] overruns its storage of {storage.size}")
    return storage[offset : offset + size]


def _no_storage(record: StorageRecord) -> object:
    raise pickle.UnpicklingError("a storage record outside the object pickle")
