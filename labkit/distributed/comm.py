"""Communicators: the few collectives data-parallel training needs, over MPI, NCCL or nothing.

A ``Communicator`` knows its ``rank`` among ``size`` processes and offers in-place sums and
broadcasts of arrays plus byte-string exchange (for small JSON messages and checkpoint
files; never pickle). Three implementations:

- ``SingleProcess``: one process, every collective a no-op (``trainer.strategy=single``).
- ``MPICommunicator``: mpi4py's ``COMM_WORLD`` (``mpirun -n N`` / Slurm ``srun``) on host
  buffers; arrays on a GPU are staged through host memory.
- ``NCCLCommunicator`` (labkit/distributed/nccl.py): GPU arrays through cupy's NCCL bindings,
  with an MPI communicator for the bootstrap and the byte messages.

``communicator_for(device)`` picks one for a run.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from labkit.backends.device import Device
from labkit.backends.registry import backends

log = logging.getLogger("labkit.distributed")

#: what to run when mpi4py or the MPI library is missing
INSTALL_HINT = (
    "install an MPI library and mpi4py: on Debian/Ubuntu `apt-get install -y openmpi-bin libopenmpi-dev`, "
    'then `pip install "labkit[mpi]"` (mpi4py>=4)'
)
#: variables that MPI launchers (OpenMPI, MPICH/Hydra, Slurm) set in every rank
_LAUNCHER_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS")


class Request:
    """A collective in flight; ``wait()`` completes it (already complete by default)."""

    def wait(self) -> None:
        return None


class Communicator(ABC):
    """Collectives among ``size`` processes; this one is ``rank`` (0 is the main rank).

    Array collectives work in place on numpy arrays, and on GPU arrays where the
    implementation supports them (``MPICommunicator`` copies through host memory).
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # the rank among the processes of this node (picks the GPU)
    name: str = "?"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @abstractmethod
    def allreduce_(self, array: Any) -> None:
        """Sum ``array`` (any shape, contiguous) over all ranks, in place."""

    def iallreduce_(self, array: Any) -> Request:
        """Start summing ``array`` in place; the sum is there after ``request.wait()``."""
        self.allreduce_(array)
        return Request()

    @abstractmethod
    def broadcast_(self, array: Any, root: int = 0) -> None:
        """Overwrite ``array`` on every rank with ``root``'s (same shape and dtype everywhere)."""

    @abstractmethod
    def broadcast_bytes(self, data: bytes | None, root: int = 0) -> bytes:
        """``root``'s ``data`` on every rank (the others pass None)."""

    @abstractmethod
    def allgather_bytes(self, data: bytes) -> list[bytes]:
        """Every rank's ``data``, in rank order, on every rank."""

    def barrier(self) -> None:
        """Wait until every rank got here."""
        self.allgather_bytes(b"")

    def abort(self, code: int = 1) -> None:
        """End every rank's process now (a rank that failed while the others wait in a collective)."""
        os._exit(code)

    # ---- built on the byte collectives ---------------------------------------------------

    def broadcast_json(self, value: Any, root: int = 0) -> Any:
        """``root``'s JSON-able ``value`` on every rank."""
        data = json.dumps(value).encode() if self.rank == root else None
        return json.loads(self.broadcast_bytes(data, root))

    def allgather_json(self, value: Any) -> list[Any]:
        """Every rank's JSON-able ``value``, in rank order."""
        return [json.loads(b) for b in self.allgather_bytes(json.dumps(value).encode())]

    def broadcast_state(self, state: Any, root: int = 0, map_location: Any = None) -> Any:
        """``root``'s ``state`` (a tree that ``labkit.save`` accepts) on every rank, in the checkpoint format."""
        from labkit.io import load, save

        with tempfile.TemporaryDirectory(prefix="labkit-bcast-") as folder:
            path = Path(folder) / "state.lk"
            if self.rank == root:
                save(state, path)
                self.broadcast_bytes(path.read_bytes(), root)
                return state
            path.write_bytes(self.broadcast_bytes(None, root))
            return load(path, map_location=map_location)


class SingleProcess(Communicator):
    """One process: sums and broadcasts leave arrays as they are."""

    name = "single"

    def allreduce_(self, array: Any) -> None:
        return None

    def broadcast_(self, array: Any, root: int = 0) -> None:
        _check_root(root, 1)

    def broadcast_bytes(self, data: bytes | None, root: int = 0) -> bytes:
        _check_root(root, 1)
        if data is None:
            raise ValueError("broadcast_bytes: expected bytes on the root rank, got None")
        return bytes(data)

    def allgather_bytes(self, data: bytes) -> list[bytes]:
        return [bytes(data)]


class _MPIRequest(Request):
    def __init__(self, request: Any, finish: Any = None) -> None:
        self.request, self.finish = request, finish

    def wait(self) -> None:
        self.request.Wait()
        if self.finish is not None:
            self.finish()
            self.finish = None


class MPICommunicator(Communicator):
    """``MPI.COMM_WORLD`` through mpi4py, on host buffers (GPU arrays are copied to the host and back)."""

    name = "mpi"

    def __init__(self, comm: Any = None) -> None:
        self.MPI = import_mpi()
        self.comm = comm if comm is not None else self.MPI.COMM_WORLD
        self.rank, self.size = int(self.comm.Get_rank()), int(self.comm.Get_size())
        node = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank = int(node.Get_rank())
        node.Free()

    def _host(self, array: Any) -> tuple[np.ndarray, Any]:
        """A contiguous host array for ``array`` and a function that copies a result back (None: in place)."""
        if isinstance(array, np.ndarray):
            if not array.flags.c_contiguous:
                raise ValueError(f"{self.name} collective: expected a C-contiguous array, got strides {array.strides}")
            return array, None
        host = np.ascontiguousarray(backends.for_array(array).to_numpy(array))

        def copy_back() -> None:
            array[...] = backends.for_array(array).xp.asarray(host)

        return host, copy_back

    def allreduce_(self, array: Any) -> None:
        host, copy_back = self._host(array)
        self.comm.Allreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM)
        if copy_back is not None:
            copy_back()

    def iallreduce_(self, array: Any) -> Request:
        host, copy_back = self._host(array)
        return _MPIRequest(self.comm.Iallreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM), copy_back)

    def broadcast_(self, array: Any, root: int = 0) -> None:
        _check_root(root, self.size)
        host, copy_back = self._host(array)
        self.comm.Bcast(host, root=root)
        if copy_back is not None and self.rank != root:
            copy_back()

    def broadcast_bytes(self, data: bytes | None, root: int = 0) -> bytes:
        _check_root(root, self.size)
        if self.rank == root and data is None:
            raise ValueError("broadcast_bytes: expected bytes on the root rank, got None")
        length = np.array([len(data) if self.rank == root else 0], dtype=np.int64)
        self._wait(self.comm.Ibcast(length, root=root))
        buffer = np.frombuffer(bytearray(data), dtype=np.uint8) if self.rank == root else np.empty(length[0], np.uint8)
        self._wait(self.comm.Ibcast(buffer, root=root))
        return buffer.tobytes()

    def allgather_bytes(self, data: bytes) -> list[bytes]:
        lengths = np.zeros(self.size, dtype=np.int64)
        self.comm.Allgather(np.array([len(data)], dtype=np.int64), lengths)
        out = np.empty(int(lengths.sum()), dtype=np.uint8)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        mine = np.frombuffer(bytearray(data), dtype=np.uint8)
        self.comm.Allgatherv(mine, [out, lengths.tolist(), offsets.tolist(), self.MPI.BYTE])
        return [out[o : o + n].tobytes() for o, n in zip(offsets.tolist(), lengths.tolist())]

    def barrier(self) -> None:
        self._wait(self.comm.Ibarrier())

    @staticmethod
    def _wait(request: Any) -> None:
        """Wait for ``request`` sleeping between polls: ranks waiting for rank 0 (evaluation, artifacts)
        leave it the CPU instead of spinning in MPI's busy wait."""
        pause = 1e-5
        while not request.Test():
            time.sleep(pause)
            pause = min(pause * 2, 2e-3)

    def abort(self, code: int = 1) -> None:
        self.comm.Abort(code)


def _check_root(root: int, size: int) -> None:
    if isinstance(root, bool) or not isinstance(root, int) or not 0 <= root < size:
        raise ValueError(f"collective root: expected a rank in [0, {size}), got {root!r}")


def launched_size() -> int | None:
    """The number of ranks an MPI launcher or Slurm started (from their variables), or None outside one."""
    for var in _LAUNCHER_SIZE_VARS:
        value = os.environ.get(var)
        if value and value.isdigit():
            return int(value)
    return None


def import_mpi() -> Any:
    """``mpi4py.MPI``, or an ImportError saying how to install it."""
    try:
        from mpi4py import MPI
    except (ImportError, OSError, RuntimeError) as exc:  # the module, or the MPI shared library it loads
        raise ImportError(f"trainer.strategy=ddp needs mpi4py and an MPI library ({exc}); {INSTALL_HINT}") from exc
    return MPI


def rank_device(device: Any, comm: Communicator) -> Device | None:
    """The device of this rank: ``cuda`` without an index becomes ``cuda:<local rank>`` (one GPU per process)."""
    if device is None:
        return None
    device = Device.parse(device)
    if device.type != "cpu" and device.index is None:
        return Device(device.type, comm.local_rank)
    return device


def communicator_for(device: Any = None, backend: str = "auto") -> Communicator:
    """The communicator of a data-parallel run on ``device``.

    Args:
        device: the run's device (``Device`` or name); GPU devices prefer NCCL.
        backend: ``"auto"`` (NCCL for GPU arrays when cupy has it, else MPI), ``"mpi"`` or ``"nccl"``.

    Raises:
        ImportError: mpi4py (or the MPI library) is missing; the message says how to install it.
        ValueError: ``backend`` is not one of the above, or ``"nccl"`` on a CPU device.
    """
    if backend not in ("auto", "mpi", "nccl"):
        raise ValueError(f"communicator backend: expected 'auto', 'mpi' or 'nccl', got {backend!r}")
    try:
        mpi: Communicator = MPICommunicator()
    except ImportError:
        if (launched_size() or 1) > 1:
            raise  # started by mpirun/srun with several ranks: running them as independent copies would be wrong
        log.warning("trainer.strategy=ddp without mpi4py: training in one process (%s)", INSTALL_HINT)
        mpi = SingleProcess()
    device = rank_device(device, mpi)
    on_gpu = device is not None and device.type == "cuda"
    if backend == "nccl" and not on_gpu:
        raise ValueError(f"communicator backend 'nccl': expected a cuda device, got {device}")
    if on_gpu and backend in ("auto", "nccl"):
        from labkit.distributed.nccl import NCCLCommunicator, nccl_available

        if nccl_available():
            return NCCLCommunicator(mpi, device)
        if backend == "nccl":
            raise ImportError("communicator backend 'nccl': cupy.cuda.nccl is not available (install cupy with NCCL)")
        log.info("NCCL is not available: reducing GPU gradients through host memory over MPI")
    return mpi
