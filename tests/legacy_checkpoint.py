"""Write PyTorch's legacy `torch.save` format without PyTorch, for the torch-free reader's tests.

The layout is torch's own (`torch.serialization._legacy_save`): the magic number, the protocol version
and `sys_info` pickles; the object pickle, whose tensors call `torch._utils._rebuild_tensor_v2` on
persistent storage records `('storage', type, key, location, numel, view)`; the sorted storage keys;
then each storage as an int64 element count and its raw little-endian bytes. The torch globals are
written by name (pickle's GLOBAL opcode), so nothing here imports torch.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001
_TYPES = {
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage",
    np.dtype(np.uint8): "ByteStorage",
}


@dataclass(frozen=True)
class Storage:
    key: str
    data: np.ndarray  # 1-D: the storage's elements
    location: str = "cpu"


@dataclass(frozen=True)
class Tensor:
    storage: Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    #: Read through a storage view (view key, offset, size) of `storage`, as torch < 1.6 wrote slices.
    view: tuple[str, int, int] | None = None


class _Global:
    """Pickled as `GLOBAL module name`, with nothing imported."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __reduce__(self) -> str:
        return self.name

    def __call__(self) -> None:  # pickle's save_reduce insists on a callable
        raise TypeError(f"{self.module}.{self.name} is only a name here")


class _Pickler(pickle._Pickler):  # the Python pickler: its save_global can be overridden
    def save_global(self, obj: object, name: str | None = None) -> None:
        if not isinstance(obj, _Global):
            return super().save_global(obj, name)
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)
        return None

    def persistent_id(self, obj: object) -> object:
        if isinstance(obj, _Record):
            return obj.pid
        return None

    def reducer_override(self, obj: object) -> object:
        if isinstance(obj, Tensor):
            args = (_Record(obj), obj.offset, obj.size, obj.stride, False, collections.OrderedDict())
            return _Global("torch._utils", "_rebuild_tensor_v2"), args
        return NotImplemented


class _Record:
    def __init__(self, tensor: Tensor) -> None:
        s = tensor.storage
        storage_type = _Global("torch", _TYPES[s.data.dtype])
        self.pid = ("storage", storage_type, s.key, s.location, int(s.data.size), tensor.view)


def _dump(obj: object, out: io.BytesIO) -> None:
    _Pickler(out, protocol=2).dump(obj)


def legacy_bytes(obj: object, storages: list[Storage], *, little_endian: bool = True) -> bytes:
    """The legacy file of `obj`, whose `Tensor`s point into `storages`."""
    out = io.BytesIO()
    sys_info = {"protocol_version": PROTOCOL, "little_endian": little_endian,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}  # fmt: skip
    for header in (MAGIC, PROTOCOL, sys_info, obj):
        _dump(header, out)
    keys = sorted(s.key for s in storages)
    _dump(keys, out)
    by_key = {s.key: s for s in storages}
    for key in keys:
        data = np.ascontiguousarray(by_key[key].data)
        out.write(struct.pack("<q", data.size) + data.astype(data.dtype.newbyteorder("<")).tobytes())
    return out.getvalue()


def legacy_state_dict(state: Mapping[str, np.ndarray], location: str = "cuda:0") -> bytes:
    """A state dict of arrays as torch's legacy format writes it, one storage per tensor."""
    storages, tensors = [], collections.OrderedDict()
    for i, (name, array) in enumerate(state.items()):
        array = np.ascontiguousarray(array)
        storage = Storage(str(140000000000 + i), array.reshape(-1), location)
        stride = tuple(s // array.itemsize for s in array.strides) if array.ndim else ()
        storages.append(storage)
        tensors[name] = Tensor(storage, 0, array.shape, stride)
    return legacy_bytes(tensors, storages)
