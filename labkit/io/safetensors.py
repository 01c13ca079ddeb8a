"""Read and write the safetensors format (Hugging Face) without the ``safetensors`` package.

The format: an 8-byte little-endian unsigned header length N, then N bytes of JSON
``{"__metadata__": {str: str}, NAME: {"dtype": "F32", "shape": [2, 3],
"data_offsets": [begin, end]}, ...}`` (space-padded), then the byte buffer. Offsets
are relative to the buffer; tensors tile it exactly, with no gaps or overlaps.
Reading validates all of that. BF16 has no numpy dtype, so it is upcast to float32.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping
from typing import Any, BinaryIO

import numpy as np

from labkit.backends.device import Device, DeviceLike
from labkit.backends.registry import backends
from labkit.core.creation import to_array
from labkit.core.tensor import Tensor
from labkit.io.checkpoint import (
    CheckpointError,
    atomic_write,
    host_array,
    is_count,
    read_array,
    read_json_header,
    write_array,
)

MAX_HEADER_BYTES = 100_000_000  # the reference implementation's limit
_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}  # fmt: skip
_CODES = {dt.name: code for code, dt in _DTYPES.items() if code != "BF16"}
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}


def _bf16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 is the top half of a float32: shift the 16 bits up and reinterpret."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _read_header(f: BinaryIO, path: str) -> tuple[dict[str, Any], int, int]:
    """The parsed JSON header, the buffer's start and its length."""
    size = os.fstat(f.fileno()).st_size
    prefix = f.read(8)
    if len(prefix) < 8:
        raise CheckpointError(f"load_safetensors {path}: the file is {size} bytes, too short for a header length")
    (n,) = struct.unpack("<Q", prefix)
    if n > min(size - 8, MAX_HEADER_BYTES):
        raise CheckpointError(
            f"load_safetensors {path}: header length {n} exceeds the file ({size} bytes) or the limit"
        )
    if f.read(1) != b"{":
        raise CheckpointError(f"load_safetensors {path}: expected the JSON header to start with '{{'")
    f.seek(8)
    header = read_json_header(f, n, path)
    if not isinstance(header, dict):
        raise CheckpointError(f"load_safetensors {path}: expected a JSON object header, got {type(header).__name__}")
    return header, 8 + n, size - 8 - n


def _check_entries(
    header: dict[str, Any], buffer_len: int, path: str
) -> dict[str, tuple[str, tuple[int, ...], int, int]]:
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise CheckpointError(f"load_safetensors {path}: __metadata__ must map str to str")
    entries = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        where = f"load_safetensors {path}: tensor {name!r}"
        if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
            raise CheckpointError(f"{where}: expected keys {sorted(_ENTRY_KEYS)}, got {entry!r:.200}")
        code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if code not in _DTYPES:
            raise CheckpointError(f"{where}: unsupported dtype {code!r:.40}; supported: {sorted(_DTYPES)}")
        if not isinstance(shape, list) or not all(is_count(d) for d in shape):
            raise CheckpointError(f"{where}: expected a shape of non-negative ints, got {shape!r:.200}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(is_count(o) for o in offsets)):
            raise CheckpointError(f"{where}: expected data_offsets [begin, end], got {offsets!r:.80}")
        begin, end = offsets
        if not begin <= end <= buffer_len:
            raise CheckpointError(
                f"{where}: data_offsets [{begin}, {end}] are outside the buffer of {buffer_len} bytes"
            )
        if end - begin != math.prod(shape) * _DTYPES[code].itemsize:
            raise CheckpointError(f"{where}: {end - begin} bytes do not hold shape {shape} of {code}")
        entries[name] = (code, tuple(shape), begin, end)
    position = 0  # the tensors must tile the buffer: no gaps, no overlaps, nothing after
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda item: item[1][2:]):
        if begin != position:
            raise CheckpointError(f"load_safetensors {path}: tensor {name!r} starts at {begin}, expected {position}")
        position = end
    if position != buffer_len:
        raise CheckpointError(f"load_safetensors {path}: tensors end at byte {position} of a {buffer_len}-byte buffer")
    return entries


def load_safetensors(path: str | os.PathLike[str], device: DeviceLike | None = None) -> dict[str, Tensor]:
    """Name -> Tensor (in the file's header order) from a ``.safetensors`` file, on ``device``."""
    path = os.fspath(path)
    dev = None if device is None else Device.parse(device)
    if dev is not None:
        backends.for_device(dev)  # an unknown device fails before reading anything
    out: dict[str, Tensor] = {}
    with open(path, "rb") as f:
        header, start, buffer_len = _read_header(f, path)
        for name, (code, shape, begin, _) in _check_entries(header, buffer_len, path).items():
            array = read_array(f, start + begin, _DTYPES[code], shape, path)
            if code == "BF16":
                array = _bf16_to_float32(array)
            out[name] = Tensor._wrap(array if dev is None else to_array(array, None, dev))
    return out


def safetensors_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``__metadata__`` of a ``.safetensors`` file (empty if it has none)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        header, _, buffer_len = _read_header(f, path)
    _check_entries(header, buffer_len, path)
    return dict(header.get("__metadata__", {}))


def save_safetensors(
    tensors: Mapping[str, Any], path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None
) -> None:
    """Write name -> Tensor/array as a ``.safetensors`` file, atomically (GPU data is copied to the host)."""
    if not isinstance(tensors, Mapping):
        raise TypeError(f"save_safetensors: expected a mapping of name -> Tensor, got {type(tensors).__name__}")
    meta = dict(metadata or {})
    for k, v in meta.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"save_safetensors: metadata must map str to str, got {k!r}: {type(v).__name__}")
    arrays = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(
                f"save_safetensors: expected non-empty str tensor names other than __metadata__, got {name!r}"
            )
        data = value.data if isinstance(value, Tensor) else value
        if not hasattr(data, "dtype"):
            raise TypeError(f"save_safetensors: {name!r}: expected a Tensor or array, got {type(value).__name__}")
        array = host_array(data, repr(name))
        if array.dtype.name not in _CODES:
            raise TypeError(f"save_safetensors: {name!r}: expected a dtype in {sorted(_CODES)}, got {array.dtype}")
        arrays[name] = array
    # like the reference writer: widest dtypes first (keeps every tensor aligned), then by name
    order = sorted(arrays, key=lambda n: (-arrays[n].dtype.itemsize, n))
    header: dict[str, Any] = {"__metadata__": meta} if meta else {}
    offset = 0
    for name in order:
        a = arrays[name]
        header[name] = {
            "dtype": _CODES[a.dtype.name],
            "shape": list(a.shape),
            "data_offsets": [offset, offset + a.nbytes],
        }
        offset += a.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    with atomic_write(path) as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name in order:
            write_array(f, arrays[name])
