"""Data-parallel training over MPI (mpi4py) or NCCL (cupy): ``trainer.strategy=ddp`` under ``mpirun``.

    mpirun -n 2 labkit train trainer.strategy=ddp          # see docs/distributed.md

- ``comm``: ``Communicator`` (``SingleProcess``, ``MPICommunicator``; ``nccl.NCCLCommunicator``
  for GPU arrays) and ``communicator_for(device)``.
- ``ddp``: ``DistributedDataParallel``: broadcast of the initial replica, bucketed
  count-weighted gradient all-reduce, buffer and optimizer-state sync.
- ``sampler``: ``shard_loader`` / ``ShardedBatchSampler``: each rank's shard of every global
  batch; per-rank random streams.
- ``strategy``: what the runner calls (``build_strategy("single" | "ddp", device)``).

Nothing here imports mpi4py or cupy until a communicator is built.
"""

from __future__ import annotations

from labkit.distributed.comm import Communicator, MPICommunicator, SingleProcess, communicator_for
from labkit.distributed.ddp import DistributedDataParallel
from labkit.distributed.sampler import ShardedBatchSampler, shard_loader
from labkit.distributed.strategy import STRATEGIES, DDPStrategy, Strategy, build_strategy

__all__ = [
    "STRATEGIES",
    "Communicator",
    "DDPStrategy",
    "DistributedDataParallel",
    "MPICommunicator",
    "SingleProcess",
    "ShardedBatchSampler",
    "Strategy",
    "build_strategy",
    "communicator_for",
    "shard_loader",
]
