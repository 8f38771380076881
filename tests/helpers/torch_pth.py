"""Write ``.pth`` files in torch.save's zip format without torch, for the tests.

The pickle is written opcode by opcode (protocol 2, as ``torch.save`` writes it), so
the tests can name torch's globals (``torch._utils._rebuild_tensor_v2``,
``torch.FloatStorage``) that cannot be imported here, and can also plant a hostile
global (``posix.system``) to check that the reader refuses it. Storages are raw
little-endian bytes in ``<archive>/data/<key>``, with torch's persistent id
``("storage", torch.FloatStorage, key, "cpu", numel)``.

Checked against real torch 2.13: ``torch.load(path, weights_only=True)`` reads these
files back equal, and ``tests/models/data/torch_2_13_tiny.pth`` (written by torch
itself) reads the same through ``keras_resnet.models.torch_checkpoint``.
"""

from __future__ import annotations

import dataclasses
import struct
import zipfile
from pathlib import Path

import numpy as np

STORAGE_TYPES = {
    np.dtype("float32"): "FloatStorage",
    np.dtype("float64"): "DoubleStorage",
    np.dtype("float16"): "HalfStorage",
    np.dtype("int64"): "LongStorage",
    np.dtype("int32"): "IntStorage",
    np.dtype("uint8"): "ByteStorage",
    np.dtype("bool"): "BoolStorage",
}


@dataclasses.dataclass(frozen=True)
class Global:
    """A ``GLOBAL module name`` opcode."""

    module: str
    name: str


@dataclasses.dataclass(frozen=True)
class Call:
    """``func(*args)`` through the REDUCE opcode."""

    func: object
    args: tuple = ()


@dataclasses.dataclass(frozen=True)
class PersistentId:
    """A BINPERSID opcode carrying ``value``."""

    value: tuple


@dataclasses.dataclass(frozen=True)
class Build:
    """``obj`` then ``state`` and the BUILD opcode (what ``__setstate__``/``__dict__`` updates use)."""

    obj: object
    state: object


@dataclasses.dataclass
class TensorView:
    """A tensor over an explicit storage: ``storage`` (1-D array), offset, size, stride."""

    storage: np.ndarray
    offset: int
    size: tuple
    stride: tuple
    key: str | None = None
    storage_type: str | None = None


class _Pickle:
    def __init__(self, byteorder: str = "little"):
        self.out = bytearray(b"\x80\x02")  # PROTO 2
        self.storages: dict[str, bytes] = {}
        self.order = "<" if byteorder == "little" else ">"

    def value(self, v):
        out = self.out
        if v is None:
            out += b"N"
        elif isinstance(v, bool):
            out += b"\x88" if v else b"\x89"
        elif isinstance(v, int):
            if -(2**31) <= v < 2**31:
                out += b"J" + struct.pack("<i", v)
            else:
                raw = v.to_bytes(9, "little", signed=True)
                out += b"\x8a" + bytes([len(raw)]) + raw
        elif isinstance(v, float):
            out += b"G" + struct.pack(">d", v)
        elif isinstance(v, str):
            raw = v.encode("utf-8")
            out += b"X" + struct.pack("<I", len(raw)) + raw
        elif isinstance(v, tuple):
            if not v:
                out += b")"
            else:
                out += b"("
                for item in v:
                    self.value(item)
                out += b"t"
        elif isinstance(v, Global):
            out += b"c" + f"{v.module}\n{v.name}\n".encode()
        elif isinstance(v, Call):
            self.value(v.func)
            self.value(tuple(v.args))
            out += b"R"
        elif isinstance(v, Build):
            self.value(v.obj)
            self.value(v.state)
            out += b"b"
        elif isinstance(v, PersistentId):
            self.value(v.value)
            out += b"Q"
        elif isinstance(v, dict):  # as an OrderedDict, the way a state dict is pickled
            self.value(Call(Global("collections", "OrderedDict")))
            items = list(v.items())
            if items:
                out += b"("
                for key, item in items:
                    self.value(key)
                    self.value(item)
                out += b"u"  # SETITEMS
        elif isinstance(v, np.ndarray):
            self.value(self.tensor(TensorView(np.ascontiguousarray(v).reshape(-1), 0, v.shape, _strides(v.shape))))
        elif isinstance(v, TensorView):
            self.value(self.tensor(v))
        else:
            raise TypeError(f"cannot write {type(v).__name__} into a test .pth")

    def tensor(self, view: TensorView) -> Call:
        key = view.key if view.key is not None else str(len(self.storages))
        storage = np.ascontiguousarray(view.storage).reshape(-1)
        self.storages.setdefault(key, storage.astype(storage.dtype.newbyteorder(self.order)).tobytes())
        storage_type = view.storage_type or STORAGE_TYPES[storage.dtype]
        pid = PersistentId(("storage", Global("torch", storage_type), key, "cpu", int(storage.size)))
        args = (pid, int(view.offset), tuple(int(n) for n in view.size), tuple(int(s) for s in view.stride), False,
                Call(Global("collections", "OrderedDict")))
        return Call(Global("torch._utils", "_rebuild_tensor_v2"), args)


def _strides(shape) -> tuple:
    strides, step = [], 1
    for n in reversed(tuple(shape)):
        strides.append(step)
        step *= int(n)
    return tuple(reversed(strides))


def pickle_bytes(obj, byteorder: str = "little") -> tuple[bytes, dict[str, bytes]]:
    """The protocol-2 pickle of ``obj`` and the storages it refers to (``{key: raw bytes}``)."""
    writer = _Pickle(byteorder)
    writer.value(obj)
    writer.out += b"."  # STOP
    return bytes(writer.out), writer.storages


def write_pth(path, obj, archive: str = "archive", byteorder: str | None = "little") -> Path:
    """Write ``obj`` (a dict of numpy arrays / `TensorView` / `Call` ...) as torch.save would.

    Args:
        path: The ``.pth`` file to write.
        obj: Usually ``{key: np.ndarray}``: becomes an ``OrderedDict`` of tensors.
        archive: The zip's top folder (torch writes ``archive`` or the file stem).
        byteorder: Storage byte order, written to ``<archive>/byteorder`` (newer torch
            does); None writes little-endian storages and no such record (older torch).

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    data, storages = pickle_bytes(obj, byteorder or "little")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as handle:
        handle.writestr(f"{archive}/data.pkl", data)
        if byteorder:
            handle.writestr(f"{archive}/byteorder", byteorder)
        for key, raw in storages.items():
            handle.writestr(f"{archive}/data/{key}", raw)
        handle.writestr(f"{archive}/version", "3\n")
    return path
