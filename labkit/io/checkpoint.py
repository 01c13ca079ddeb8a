"""Checkpoints without pickle: ``save(obj, path)`` and ``load(path, map_location=None)``.

A checkpoint holds a tree of dicts, lists and tuples whose leaves are Tensors,
arrays, numpy scalars, None, bool, int (any size), float or str. One file is::

    preamble  8s magic b"LABKITCK" | u32 format version | u32 flags (0) | u64 header length   (24 bytes)
    header    JSON (UTF-8), space-padded so the data starts on a 64-byte boundary:
              {"format": "labkit-checkpoint", "tree": NODE, "arrays": [SPEC, ...], "data_size": N}
    data      raw little-endian C-order array bytes, each at a 64-byte aligned offset

A NODE is a JSON null/bool/number/string, a JSON list of NODEs (a Python list), or an
object tagged by "$type": ``dict`` (``items``: [[key, NODE], ...], so int keys survive),
``tuple`` (``items``), ``float`` (``value``: "nan", "inf" or "-inf"), ``tensor``
(``array``, ``requires_grad``, ``parameter``), ``ndarray`` or ``scalar`` (``array``).
A SPEC is ``{"dtype": "float32", "shape": [3, 4], "offset": 0, "nbytes": 48}`` with the
offset relative to the data section. Arrays shared by several leaves are stored once.

``load`` trusts nothing: magic, version, JSON, dtypes (numeric and bool only) and every
offset are checked, and any fault raises ``CheckpointError`` (a ValueError) naming the
file. Writes are atomic (``atomic_write``): a crash leaves the previous file intact.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import numpy as np

from labkit.backends.device import Device, DeviceLike
from labkit.backends.registry import backends
from labkit.core.creation import to_array
from labkit.core.tensor import Tensor

MAGIC = b"LABKITCK"
VERSION = 1
ALIGN = 64
MAX_HEADER_BYTES = 1 << 30
_PREAMBLE = struct.Struct("<8sIIQ")
_CHUNK = 1 << 26  # write big arrays in 64 MiB slices
DTYPES = frozenset(
    "bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64 complex64 complex128".split()
)
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class CheckpointError(ValueError):
    """A file that is not a well-formed labkit checkpoint (or safetensors file)."""


# ---- atomic writes ----------------------------------------------------------------------


@contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` only once fully written and synced.

    The data goes to a temporary file in the same directory, is flushed and fsynced,
    then ``os.replace``-d onto ``path`` and the directory is fsynced. On any error the
    temporary file is removed and ``path`` is untouched.
    """
    target = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"save {target}: directory {directory} does not exist")
    tmp = os.path.join(directory, f".{os.path.basename(target)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename durable; some platforms (Windows) cannot open directories, which is fine."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_array(f: BinaryIO, array: np.ndarray) -> None:
    """Write a C-contiguous little-endian array's bytes."""
    if array.nbytes == 0:
        return
    buf = memoryview(array.reshape(-1).view(np.uint8))
    for start in range(0, len(buf), _CHUNK):
        f.write(buf[start : start + _CHUNK])


def host_array(array: Any, where: str) -> np.ndarray:
    """``array`` (numpy or any backend) as a C-contiguous little-endian numpy array."""
    host = np.asarray(backends.for_array(array).to_numpy(array))
    if host.dtype.name not in DTYPES:
        raise TypeError(f"save: {where}: expected an array of a numeric or bool dtype, got {host.dtype}")
    # astype, not ascontiguousarray: the latter turns 0-d arrays into 1-d ones
    return host.astype(host.dtype.newbyteorder("<"), order="C", copy=False)


# ---- save -------------------------------------------------------------------------------


class _Encoder:
    """Turns the object tree into JSON nodes and a list of arrays (shared arrays once)."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self._index: dict[int, int] = {}
        self._keep: list[Any] = []  # keeps arrays alive so their ids stay unique while saving
        self._active: set[int] = set()

    def _array(self, array: Any, where: str) -> int:
        key = id(array)
        if key not in self._index:
            self._keep.append(array)
            self._index[key] = len(self.arrays)
            self.arrays.append(host_array(array, where))
        return self._index[key]

    def encode(self, obj: Any, where: str) -> Any:
        if obj is None or isinstance(obj, (bool, int, str)):
            return obj
        if isinstance(obj, float):
            if math.isfinite(obj):
                return obj
            return {"$type": "float", "value": "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")}
        if isinstance(obj, Tensor):
            from labkit.nn.parameter import Parameter

            node = {"$type": "tensor", "array": self._array(obj.data, where), "requires_grad": bool(obj.requires_grad)}
            return node | {"parameter": True} if isinstance(obj, Parameter) else node
        if isinstance(obj, np.generic):
            return {"$type": "scalar", "array": self._array(np.asarray(obj), where)}
        if isinstance(obj, (dict, list, tuple)):
            if id(obj) in self._active:
                raise ValueError(f"save: {where} contains itself; cyclic structures cannot be saved")
            self._active.add(id(obj))
            try:
                if isinstance(obj, dict):
                    items = []
                    for k, v in obj.items():
                        if not (
                            k is None or isinstance(k, (bool, int, str)) or (isinstance(k, float) and math.isfinite(k))
                        ):
                            raise TypeError(
                                f"save: {where}: expected dict keys of type str, int, float or bool, got {k!r}"
                            )
                        items.append([k, self.encode(v, f"{where}[{k!r}]")])
                    return {"$type": "dict", "items": items}
                nodes = [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
                return nodes if isinstance(obj, list) else {"$type": "tuple", "items": nodes}
            finally:
                self._active.discard(id(obj))
        if hasattr(obj, "shape") and hasattr(obj, "dtype"):
            try:
                backends.for_array(obj)
            except TypeError:
                pass
            else:
                return {"$type": "ndarray", "array": self._array(obj, where)}
        raise TypeError(
            f"save: {where}: cannot save a value of type {type(obj).__name__}; expected Tensor, array, dict, "
            "list, tuple, None, bool, int, float or str"
        )


def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` (a tree of dicts/lists/tuples of Tensors, arrays and plain values) atomically."""
    encoder = _Encoder()
    tree = encoder.encode(obj, "obj")
    specs, offset = [], 0
    for array in encoder.arrays:
        offset = -(-offset // ALIGN) * ALIGN
        specs.append({"dtype": array.dtype.name, "shape": list(array.shape), "offset": offset, "nbytes": array.nbytes})
        offset += array.nbytes
    header = {"format": "labkit-checkpoint", "tree": tree, "arrays": specs, "data_size": offset}
    raw = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    raw += b" " * (-(_PREAMBLE.size + len(raw)) % ALIGN)
    with atomic_write(path) as f:
        f.write(_PREAMBLE.pack(MAGIC, VERSION, 0, len(raw)))
        f.write(raw)
        position = 0
        for array, spec in zip(encoder.arrays, specs, strict=True):
            f.write(b"\0" * (spec["offset"] - position))
            write_array(f, array)
            position = spec["offset"] + array.nbytes


# ---- load -------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def read_json_header(f: BinaryIO, length: int, path: str) -> Any:
    try:
        return json.loads(f.read(length).decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"load {path}: the header is not valid JSON ({exc})") from None


def is_count(value: Any) -> bool:
    """A non-negative int that is not a bool (JSON true would pass isinstance(int))."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_spec(path: str, i: int, spec: Any, data_size: int) -> tuple[np.dtype, tuple[int, ...], int, int]:
    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"load {path}: array {i}: {why}")

    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "offset", "nbytes"}:
        raise bad(f"expected an object with keys dtype, shape, offset, nbytes, got {spec!r:.200}")
    if spec["dtype"] not in DTYPES:
        raise bad(f"dtype {spec['dtype']!r:.40} is not allowed; expected one of {sorted(DTYPES)}")
    shape, offset, nbytes = spec["shape"], spec["offset"], spec["nbytes"]
    if not isinstance(shape, list) or len(shape) > 64 or not all(is_count(d) for d in shape):
        raise bad(f"expected a shape of at most 64 non-negative ints, got {shape!r:.200}")
    if not is_count(offset) or not is_count(nbytes):
        raise bad(f"expected non-negative int offset and nbytes, got {offset!r:.40}, {nbytes!r:.40}")
    dtype = np.dtype(spec["dtype"]).newbyteorder("<")
    if nbytes != math.prod(shape) * dtype.itemsize:
        raise bad(f"nbytes {nbytes} does not match shape {shape} of {spec['dtype']}")
    if offset + nbytes > data_size:
        raise bad(f"bytes [{offset}, {offset + nbytes}) lie beyond the end of the data ({data_size} bytes)")
    return dtype, tuple(shape), offset, nbytes


def read_array(f: BinaryIO, start: int, dtype: np.dtype, shape: tuple[int, ...], path: str) -> np.ndarray:
    """Read one array into fresh memory (valid after the file is closed, writable)."""
    array = np.empty(shape, dtype=dtype)
    if array.nbytes:
        f.seek(start)
        if f.readinto(memoryview(array.reshape(-1).view(np.uint8))) != array.nbytes:
            raise CheckpointError(f"load {path}: the file ends inside an array (truncated?)")
    return array


class _Decoder:
    def __init__(self, path: str, arrays: list[np.ndarray], device: Device | None) -> None:
        self.path, self.arrays, self.device = path, arrays, device
        self._moved: dict[int, Any] = {}

    def bad(self, where: str, why: str) -> CheckpointError:
        return CheckpointError(f"load {self.path}: {where}: {why}")

    def _index(self, node: dict[str, Any], where: str, keys: set[str]) -> int:
        if not set(node) <= keys or "array" not in node:
            raise self.bad(where, f"expected keys {sorted(keys)}, got {sorted(node)}")
        idx = node["array"]
        if not is_count(idx) or idx >= len(self.arrays):
            raise self.bad(where, f"array index {idx!r:.40} is out of range (file has {len(self.arrays)} arrays)")
        return idx

    def _tensor(self, node: dict[str, Any], where: str) -> Tensor:
        idx = self._index(node, where, {"$type", "array", "requires_grad", "parameter"})
        requires_grad, parameter = node.get("requires_grad", False), node.get("parameter", False)
        if not isinstance(requires_grad, bool) or not isinstance(parameter, bool):
            raise self.bad(where, "expected bool requires_grad and parameter")
        array = self.arrays[idx]
        if array.dtype.kind not in "biuf" or (requires_grad and array.dtype.kind != "f"):
            raise self.bad(where, f"a tensor cannot hold {array.dtype} data with requires_grad={requires_grad}")
        if self.device is not None:
            if idx not in self._moved:  # tensors that shared an array on save share it on load
                self._moved[idx] = to_array(array, None, self.device)
            array = self._moved[idx]
        if parameter:
            from labkit.nn.parameter import Parameter

            return Parameter(array, requires_grad=requires_grad)
        return Tensor(array, requires_grad=requires_grad)

    def decode(self, node: Any, where: str) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v, f"{where}[{i}]") for i, v in enumerate(node)]
        if not isinstance(node, dict):
            raise self.bad(where, f"unexpected node {node!r:.80}")
        kind = node.get("$type")
        if kind == "tensor":
            return self._tensor(node, where)
        if kind == "ndarray":
            return self.arrays[self._index(node, where, {"$type", "array"})]
        if kind == "scalar":
            array = self.arrays[self._index(node, where, {"$type", "array"})]
            if array.ndim != 0:
                raise self.bad(where, f"a scalar must be 0-d, got shape {array.shape}")
            return array[()]
        if kind == "float" and set(node) == {"$type", "value"} and node["value"] in _NONFINITE:
            return _NONFINITE[node["value"]]
        if kind in ("dict", "tuple") and set(node) == {"$type", "items"} and isinstance(node["items"], list):
            if kind == "tuple":
                return tuple(self.decode(v, f"{where}[{i}]") for i, v in enumerate(node["items"]))
            out = {}
            for item in node["items"]:
                if not (
                    isinstance(item, list)
                    and len(item) == 2
                    and (item[0] is None or isinstance(item[0], (bool, int, float, str)))
                ):
                    raise self.bad(where, f"expected [key, value] dict items, got {item!r:.80}")
                out[item[0]] = self.decode(item[1], f"{where}[{item[0]!r}]")
            return out
        raise self.bad(where, f"unknown or malformed node {node!r:.80}")


def load(path: str | os.PathLike[str], map_location: DeviceLike | None = None) -> Any:
    """Read a checkpoint written by ``save``. Tensors land on ``map_location`` (default: cpu).

    Tensors come back as leaves with ``requires_grad`` as saved; arrays as numpy arrays.
    """
    path = os.fspath(path)
    device = None if map_location is None else Device.parse(map_location)
    if device is not None:
        backends.for_device(device)  # an unknown device fails here, before reading anything
        device = None if device.type == "cpu" else device
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        preamble = f.read(_PREAMBLE.size)
        if len(preamble) < _PREAMBLE.size or preamble[:8] != MAGIC:
            raise CheckpointError(
                f"load {path}: not a labkit checkpoint (expected magic bytes {MAGIC!r}, got {preamble[:8]!r})"
            )
        _, version, _, header_len = _PREAMBLE.unpack(preamble)
        if version != VERSION:
            raise CheckpointError(f"load {path}: unsupported format version {version}; this labkit reads {VERSION}")
        if header_len > min(size - _PREAMBLE.size, MAX_HEADER_BYTES):
            raise CheckpointError(
                f"load {path}: header length {header_len} exceeds the file ({size} bytes); truncated?"
            )
        header = read_json_header(f, header_len, path)
        if (
            not isinstance(header, dict)
            or header.get("format") != "labkit-checkpoint"
            or set(header) != {"format", "tree", "arrays", "data_size"}
        ):
            raise CheckpointError(f"load {path}: expected a labkit-checkpoint header with tree, arrays, data_size")
        data_start, data_size, specs = _PREAMBLE.size + header_len, header["data_size"], header["arrays"]
        if not is_count(data_size) or not isinstance(specs, list):
            raise CheckpointError(f"load {path}: expected int data_size and an arrays list")
        if size != data_start + data_size:
            raise CheckpointError(
                f"load {path}: expected {data_start + data_size} bytes from the header, the file has {size} (truncated?)"
            )
        arrays = []
        for i, spec in enumerate(specs):
            dtype, shape, offset, _ = _check_spec(path, i, spec, data_size)
            arrays.append(read_array(f, data_start + offset, dtype, shape, path))
    try:
        return _Decoder(path, arrays, device).decode(header["tree"], "obj")
    except RecursionError:
        raise CheckpointError(f"load {path}: the tree is nested too deeply") from None
