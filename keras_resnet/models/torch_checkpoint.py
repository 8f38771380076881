"""Read a PyTorch ``.pth`` state dict without torch, and without running its pickle.

A ``.pth`` written by ``torch.save`` (torch >= 1.6, the zip format) is a zip archive::

    <archive>/data.pkl         the state dict, pickled (protocol 2)
    <archive>/data/<key>       one raw storage per key (little-endian unless
                               <archive>/byteorder says "big")
    <archive>/version, ...     ignored

(``<archive>`` is ``archive`` or the file's stem, depending on the torch version.)
In the pickle a tensor is ``torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, requires_grad, backward_hooks)`` and each storage is a *persistent id*, the
tuple ``("storage", torch.FloatStorage, "<key>", "cpu", numel)``.

A pickle can name any importable callable (``os.system``) and have it called while
loading, so this module never calls ``pickle.load`` on the file. `read_pth` uses a
restricted ``pickle.Unpickler`` whose ``find_class`` resolves only the globals in
`ALLOWED_GLOBALS`, each to a numpy stand-in defined here: tensor rebuilding,
``nn.Parameter`` rebuilding, ``collections.OrderedDict`` and the storage types. Any
other global raises `UnsafeCheckpointError` the moment the unpickler meets it, before
the object is looked up, so it can never be called. Storage bounds are checked before
any strided view is taken.

Only numpy and the standard library are imported (no Keras, no torch).

Example:
    >>> state = read_pth("resnet18-f37072fd.pth")
    >>> state["conv1.weight"].shape, state["bn1.num_batches_tracked"].dtype
    ((64, 3, 7, 7), dtype('int64'))
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np


class TorchCheckpointError(ValueError):
    """A ``.pth`` file that cannot be read as a tensor checkpoint (format or bounds)."""


class UnsafeCheckpointError(TorchCheckpointError):
    """The checkpoint's pickle asks for a global outside `ALLOWED_GLOBALS`; nothing was run."""


class _ReadOnly:
    """Base of the stand-ins a pickle can reach: no attribute can be set or restored on them.

    A pickle's BUILD opcode calls ``__setstate__`` (or updates ``__dict__``/slots) on any
    object on its stack; without this it could retarget a shared stand-in (say, make
    ``torch.FloatStorage`` read float16) for every later load in the process.
    """

    __slots__ = ()

    def __init__(self, **fields):
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise TorchCheckpointError(f"{self!r} is read-only. Received: setting {name}")

    def __delattr__(self, name):
        raise TorchCheckpointError(f"{self!r} is read-only. Received: deleting {name}")

    def __setstate__(self, state):
        raise TorchCheckpointError(f"a pickle may not change {self!r}. Received: state {state!r:.80}")


class _StorageType(_ReadOnly):
    """Stand-in for ``torch.FloatStorage`` & co.: only carries the element dtype."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: str):
        super().__init__(name=name, dtype=dtype)

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class _Storage(_ReadOnly):
    """One storage of the archive: a 1-D native-endian numpy array (bfloat16 widened to float32)."""

    __slots__ = ("array", "key")

    def __init__(self, array: np.ndarray, key: str):
        super().__init__(array=array, key=key)

    def __repr__(self) -> str:
        return f"storage {self.key!r}"


class _Function(_ReadOnly):
    """An allowed callable global."""

    __slots__ = ("qualname", "function")

    def __init__(self, qualname: str, function):
        super().__init__(qualname=qualname, function=function)

    def __call__(self, *args, **kwargs):
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return self.qualname


#: torch storage type -> numpy dtype ("bfloat16" is widened to float32 on reading).
STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "UntypedStorage": "uint8",
}


#: A zero-stride (expanded) tensor may have more elements than its storage, but not more than this.
_MAX_EXPANDED_ELEMENTS = 1 << 28


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """numpy stand-in of ``torch._utils._rebuild_tensor_v2``: a strided view of a storage, copied."""
    if not isinstance(storage, _Storage) or not isinstance(storage.array, np.ndarray):
        raise TorchCheckpointError(
            f"_rebuild_tensor_v2 expects a storage (a persistent id) as its first argument. Received: {storage!r:.80}"
        )
    try:
        offset = int(storage_offset)
        size = tuple(int(n) for n in size)
        stride = tuple(int(s) for s in stride)
    except (TypeError, ValueError):
        raise TorchCheckpointError(
            f"tensor of storage {storage.key!r} has a malformed offset/size/stride. "
            f"Received: offset={storage_offset!r}, size={size!r}, stride={stride!r}"
        ) from None
    array = storage.array
    if len(size) != len(stride) or offset < 0 or any(n < 0 for n in size) or any(s < 0 for s in stride):
        raise TorchCheckpointError(
            f"tensor of storage {storage.key!r} has an invalid layout. Expected non-negative offset, sizes and "
            f"strides of equal length. Received: offset={offset}, size={size}, stride={stride}"
        )
    if 0 in size:
        return np.zeros(size, dtype=array.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= array.size:
        raise TorchCheckpointError(
            f"tensor of size {size}, stride {stride} and offset {offset} reaches element {last} of storage "
            f"{storage.key!r}, which holds {array.size} elements."
        )
    numel = int(np.prod(size, dtype=np.int64)) if size else 1
    if numel > max(array.size, _MAX_EXPANDED_ELEMENTS):
        raise TorchCheckpointError(
            f"tensor of size {size} (stride {stride}) would expand storage {storage.key!r} of {array.size} "
            f"elements to {numel}. Expected at most {max(array.size, _MAX_EXPANDED_ELEMENTS)}."
        )
    view = np.lib.stride_tricks.as_strided(
        array[offset:], shape=size, strides=tuple(s * array.itemsize for s in stride), writeable=False
    )
    return np.array(view, copy=True)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    """numpy stand-in of ``torch._utils._rebuild_parameter``: the parameter's data."""
    if not isinstance(data, np.ndarray):
        raise TorchCheckpointError(f"_rebuild_parameter expects a tensor. Received: {data!r:.80}")
    return data


def _storage_types() -> dict[tuple[str, str], _StorageType]:
    types = {("torch", name): _StorageType(name, dtype) for name, dtype in STORAGE_DTYPES.items()}
    types[("torch.storage", "UntypedStorage")] = _StorageType("UntypedStorage", "uint8")
    return types


#: ``(module, name)`` -> what it resolves to. Nothing else can be named by the pickle.
ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    ("torch._utils", "_rebuild_tensor_v2"): _Function("torch._utils._rebuild_tensor_v2", _rebuild_tensor_v2),
    ("torch._utils", "_rebuild_parameter"): _Function("torch._utils._rebuild_parameter", _rebuild_parameter),
    ("collections", "OrderedDict"): collections.OrderedDict,
    **_storage_types(),
}


def _allowed_names() -> str:
    return ", ".join(f"{m}.{n}" for m, n in ALLOWED_GLOBALS)


class _RestrictedUnpickler(pickle.Unpickler):
    """``find_class`` limited to `ALLOWED_GLOBALS`; storages come from the zip archive."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, big_endian: bool, source: str):
        super().__init__(io.BytesIO(data), encoding="utf-8")
        self._archive, self._prefix, self._big_endian, self._source = archive, prefix, big_endian, source
        self._storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        """Resolve an allowed global to its numpy stand-in; refuse every other one."""
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"Refusing to load {self._source}: its pickle ({self._prefix}data.pkl) names the global "
                f"'{module}.{name}', which a tensor checkpoint does not need; nothing in the file was run. "
                f"Allowed: {_allowed_names()}. Expected a state dict saved with torch.save(model.state_dict(), "
                "path). A whole pickled model or a training checkpoint with other objects cannot be read "
                "without torch: re-save its state_dict, or use a .safetensors file."
            ) from None

    def persistent_load(self, pid):
        """``("storage", storage_type, key, location, numel)`` -> the storage, read from ``data/<key>``."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise TorchCheckpointError(
                f"{self._source}: unexpected persistent id {pid!r:.120}. "
                "Expected ('storage', storage_type, key, location, numel)."
            )
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not isinstance(numel, int):
            raise TorchCheckpointError(
                f"{self._source}: malformed storage id {pid!r:.120}. Expected a torch storage type, a string key "
                "and an integer element count."
            )
        if key not in self._storages:
            self._storages[key] = self._read_storage(storage_type, key, numel)
        return self._storages[key]

    def _read_storage(self, storage_type: _StorageType, key: str, numel: int) -> _Storage:
        record = f"{self._prefix}data/{key}"
        try:
            raw = self._archive.read(record)
        except KeyError:
            raise TorchCheckpointError(
                f"{self._source}: storage record {record!r} is missing from the archive."
            ) from None
        bf16 = storage_type.dtype == "bfloat16"
        dtype = np.dtype("uint16" if bf16 else storage_type.dtype)
        if self._big_endian:
            dtype = dtype.newbyteorder(">")
        if numel < 0 or len(raw) < numel * dtype.itemsize:
            raise TorchCheckpointError(
                f"{self._source}: storage {record!r} has {len(raw)} bytes; {storage_type!r} with {numel} elements "
                f"needs {numel * dtype.itemsize}."
            )
        array = np.frombuffer(raw, dtype=dtype, count=numel)
        if bf16:  # bfloat16 is the upper half of a float32
            array = (array.astype(np.uint32) << 16).view(np.float32)
        else:
            array = array.astype(dtype.newbyteorder("="), copy=False)
        return _Storage(array, key)


def _archive_prefix(archive: zipfile.ZipFile, source: str) -> str:
    """The archive's top folder (``"archive/"``), from where its ``data.pkl`` is."""
    pickles = [name for name in archive.namelist() if name.endswith("data.pkl") and name.count("/") == 1]
    if len(pickles) != 1:
        raise TorchCheckpointError(
            f"{source} is a zip file but not a torch checkpoint: expected one '<archive>/data.pkl', "
            f"found {pickles or 'none'}."
        )
    return pickles[0][: -len("data.pkl")]


def read_pth(path: str | os.PathLike) -> dict:
    """Load the object saved in a zip-format ``.pth`` file, with tensors as numpy arrays.

    Nothing in the file's pickle is executed: only the globals of `ALLOWED_GLOBALS`
    resolve, to numpy stand-ins. ``num_batches_tracked`` comes back as int64,
    fp16 tensors as float16, bfloat16 tensors as float32; strides and storage offsets
    are honoured (views are copied into contiguous arrays).

    Args:
        path: A ``.pth``/``.pt`` file written by ``torch.save`` (torch >= 1.6).

    Returns:
        The saved object: usually an ``OrderedDict`` of ``{key: np.ndarray}``;
        a wrapping dict (``{"state_dict": ...}``) is returned as it is.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the pickle names a global outside `ALLOWED_GLOBALS`
            (the message names the file and the global).
        TorchCheckpointError: not a zip-format checkpoint (e.g. torch's pre-1.6
            format), a missing storage, or a tensor outside its storage.

    Example:
        >>> read_pth("resnet18-f37072fd.pth")["fc.bias"].shape
        (1000,)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint file at {path}.")
    if not zipfile.is_zipfile(path):
        raise TorchCheckpointError(
            f"{path} is not a zip-format torch checkpoint (torch.save's format since torch 1.6). Reading older "
            "formats needs torch: install torch, or re-save the state dict with a current torch, or use a "
            ".safetensors file."
        )
    with zipfile.ZipFile(path) as archive:
        prefix = _archive_prefix(archive, str(path))
        names = set(archive.namelist())
        byteorder = archive.read(f"{prefix}byteorder").decode().strip() if f"{prefix}byteorder" in names else "little"
        if byteorder not in ("little", "big"):
            raise TorchCheckpointError(f"{path}: unknown byteorder {byteorder!r}. Expected 'little' or 'big'.")
        unpickler = _RestrictedUnpickler(
            archive.read(f"{prefix}data.pkl"), archive, prefix, byteorder == "big", str(path)
        )
        try:
            return unpickler.load()
        except UnsafeCheckpointError:
            raise
        except TorchCheckpointError as error:
            if str(path) in str(error):
                raise
            raise TorchCheckpointError(f"{path}: {error}") from error
        except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError, KeyError) as error:
            raise TorchCheckpointError(f"{path}: its pickle ({prefix}data.pkl) is malformed: {error}") from error


def state_dict_arrays(loaded, source: str = "checkpoint") -> dict[str, np.ndarray]:
    """The ``{key: array}`` state dict inside what `read_pth` returned.

    A checkpoint wrapping its state dict in ``"state_dict"`` or ``"model"`` is
    unwrapped; non-array entries (``_metadata``, epoch counters) are dropped.

    Args:
        loaded: `read_pth`'s result.
        source: Named in the error message.

    Returns:
        ``{key: np.ndarray}`` in the file's order.

    Raises:
        TorchCheckpointError: no arrays found.
    """
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    state = {k: v for k, v in loaded.items() if isinstance(v, np.ndarray)} if isinstance(loaded, dict) else {}
    if not state:
        raise TorchCheckpointError(
            f"{source} holds no tensors at the top level or under 'state_dict'/'model'. Received: "
            f"{type(loaded).__name__} with keys {list(loaded)[:8] if isinstance(loaded, dict) else '-'}"
        )
    return state
