"""``NCCLCommunicator``: sums and broadcasts of GPU arrays through cupy's NCCL bindings.

One process per GPU (``cuda:<local rank>``). An MPI communicator bootstraps it (rank 0's
NCCL unique id is broadcast over MPI) and carries everything that is not a GPU array:
byte messages, numpy arrays. NCCL calls are queued on the array's current CUDA stream, so
they are ordered with the kernels that produce and consume the gradients without a host
synchronisation.

cupy is reached through the cupy backend (``labkit.backends.cupy_backend``, the one module
that imports cupy); only its ``cuda.nccl`` submodule is loaded here, by name.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import numpy as np

from labkit.backends.device import Device
from labkit.backends.registry import backends
from labkit.distributed.comm import Communicator, Request

log = logging.getLogger("labkit.distributed")


def _nccl_module() -> Any:
    xp = backends.for_device("cuda").xp
    if xp is None:
        raise ImportError("NCCL needs cupy, which is not installed (pip install 'labkit[gpu]')")
    return importlib.import_module(f"{xp.__name__}.cuda.nccl")


def nccl_available() -> bool:
    """Whether cupy imports, sees a GPU and was built with NCCL."""
    try:
        if not backends.for_device("cuda").is_available():
            return False
        return bool(getattr(_nccl_module(), "available", True))
    except Exception:
        return False


def _share_unique_id(bootstrap: Communicator, make: Any) -> Any:
    """Rank 0's NCCL unique id on every rank, in the type this cupy takes (bytes in cupy 14, int tuples before)."""
    message = None
    if make is not None:
        uid = make()
        message = {"bytes": isinstance(uid, (bytes, bytearray)), "id": list(uid)}
    message = bootstrap.broadcast_json(message)
    return bytes(message["id"]) if message["bytes"] else tuple(message["id"])


class NCCLCommunicator(Communicator):
    """NCCL for cupy arrays on this rank's GPU; ``bootstrap`` (MPI) for bytes and host arrays.

    Args:
        bootstrap: the MPI (or single-process) communicator of the same ranks.
        device: this rank's GPU, ``cuda:N`` (``cuda`` means ``cuda:<local rank>``).
    """

    name = "nccl"

    def __init__(self, bootstrap: Communicator, device: Device | str) -> None:
        device = Device.parse(device)
        if device.type != "cuda":
            raise ValueError(f"NCCLCommunicator: expected a cuda device, got {device}")
        self.bootstrap = bootstrap
        self.rank, self.size, self.local_rank = bootstrap.rank, bootstrap.size, bootstrap.local_rank
        self.device = Device("cuda", bootstrap.local_rank if device.index is None else device.index)
        self.nccl = _nccl_module()
        self.cupy = backends.for_device(self.device).xp
        uid = _share_unique_id(bootstrap, self.nccl.get_unique_id if self.rank == 0 else None)
        with self.cupy.cuda.Device(self.device.index):
            self.comm = self.nccl.NcclCommunicator(self.size, uid, self.rank)
        self._dtypes = {
            np.dtype(np.float16): self.nccl.NCCL_FLOAT16,
            np.dtype(np.float32): self.nccl.NCCL_FLOAT32,
            np.dtype(np.float64): self.nccl.NCCL_FLOAT64,
            np.dtype(np.int32): self.nccl.NCCL_INT32,
            np.dtype(np.int64): self.nccl.NCCL_INT64,
            np.dtype(np.uint8): self.nccl.NCCL_UINT8,
        }
        log.info("NCCL communicator: rank %d of %d on %s", self.rank, self.size, self.device)

    def _on_gpu(self, array: Any) -> bool:
        return isinstance(array, self.cupy.ndarray)

    def _nccl_type(self, array: Any) -> int:
        kind = self._dtypes.get(np.dtype(array.dtype))
        if kind is None:
            raise TypeError(f"nccl collective: expected one of {sorted(map(str, self._dtypes))}, got {array.dtype}")
        if not array.flags.c_contiguous:
            raise ValueError("nccl collective: expected a C-contiguous array")
        return kind

    def allreduce_(self, array: Any) -> None:
        if not self._on_gpu(array):
            self.bootstrap.allreduce_(array)
            return
        kind = self._nccl_type(array)
        stream = self.cupy.cuda.get_current_stream().ptr
        self.comm.allReduce(array.data.ptr, array.data.ptr, array.size, kind, self.nccl.NCCL_SUM, stream)

    def iallreduce_(self, array: Any) -> Request:
        # queued on the current stream: later kernels on it see the sum without waiting here
        self.allreduce_(array)
        return Request()

    def broadcast_(self, array: Any, root: int = 0) -> None:
        if not self._on_gpu(array):
            self.bootstrap.broadcast_(array, root)
            return
        kind = self._nccl_type(array)
        stream = self.cupy.cuda.get_current_stream().ptr
        self.comm.bcast(array.data.ptr, array.size, kind, root, stream)

    def broadcast_bytes(self, data: bytes | None, root: int = 0) -> bytes:
        return self.bootstrap.broadcast_bytes(data, root)

    def allgather_bytes(self, data: bytes) -> list[bytes]:
        return self.bootstrap.allgather_bytes(data)

    def barrier(self) -> None:
        self.cupy.cuda.get_current_stream().synchronize()
        self.bootstrap.barrier()

    def abort(self, code: int = 1) -> None:
        self.bootstrap.abort(code)
