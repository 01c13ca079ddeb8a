"""``trainer.strategy``: how the runner spreads one run over processes.

``single`` (the default) is one process; every hook below is a no-op and checkpoints are
unchanged. ``ddp`` is data-parallel training over MPI (``mpirun -n N labkit train
trainer.strategy=ddp``): every rank builds the same task, model and optimizer from the same
config, reads its shard of every global batch, and takes the same optimizer steps on
averaged gradients. Rank 0 alone talks to the tracker, writes checkpoints, evaluates and
shares the metrics, so every rank takes the same decisions (best checkpoint, early
stopping, LR on plateau). Anything rank 0 does alone goes through :meth:`on_main`, which
hands its result (or its error) to every rank, so a failure there never leaves the others
waiting.
"""

from __future__ import annotations

import logging
import signal
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from labkit.backends.device import Device
from labkit.distributed.comm import Communicator, SingleProcess, communicator_for, rank_device
from labkit.distributed.ddp import DistributedDataParallel
from labkit.distributed.sampler import jump_generator, rank_seed, shard_loader

log = logging.getLogger("labkit.distributed")

STRATEGIES = ("single", "ddp")
#: the checkpoint key holding every rank's random streams (ddp runs only)
STATE_KEY = "ddp"
_ERRORS: dict[str, type[Exception]] = {e.__name__: e for e in (ValueError, TypeError, FileNotFoundError, KeyError)}


class Strategy:
    """One process (``trainer.strategy=single``): the hooks the runner calls, all without effect."""

    name = "single"

    def __init__(self, device: Device, comm: Communicator | None = None) -> None:
        self.comm = comm if comm is not None else SingleProcess()
        self.device = device

    @property
    def rank(self) -> int:
        return self.comm.rank

    @property
    def world_size(self) -> int:
        return self.comm.size

    @property
    def is_main(self) -> bool:
        return self.comm.rank == 0

    def on_main(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` run on rank 0, its JSON-able result returned on every rank."""
        return fn()

    def shard(self, loader: Any) -> Any:
        return loader

    def setup(self, model: Any, optimizer: Any, seeds: Any, loader: Any) -> None:
        """After the model and optimizer exist: make the replicas equal and the random streams per rank."""

    def begin_step(self, loss: float, count: int, interrupted: str | None) -> tuple[float, int]:
        """The step's loss and example count over the global batch (here: this process's).

        ``interrupted``: the signal this rank received (``"SIGINT"``), or None.
        """
        return loss, count

    def reduce_gradients(self) -> None:
        """After backward: every rank's gradients become the global batch's."""

    def interrupted(self, local: str | None) -> str | None:
        """The signal every rank acts on (the same on all ranks), or None."""
        return local

    def rank_state(self, seeds: Any, loader: Any) -> dict[str, Any]:
        """Extra checkpoint entries: every rank's random streams (collective in ``ddp``)."""
        return {}

    def restore_rank_state(self, state: dict[str, Any], seeds: Any, loader: Any) -> None:
        """After ``restore_state``: put this rank's own streams back."""

    def load_checkpoint(self, store: Any, locate: Callable[[], None]) -> dict[str, Any]:
        """``locate()`` makes ``store``'s ``last.ckpt`` available (or raises); the loaded checkpoint."""
        locate()
        return store.load("last")

    def replicas(self, tracker: Any, store: Any) -> tuple[Any, Any]:
        """The tracker and checkpoint store this rank uses (rank 0: the real ones; ``tracker`` is None on
        ranks > 0 unless the caller gave one)."""
        return tracker, store

    def on_error(self, exc: BaseException) -> None:
        """A run failed on this rank (after the tracker recorded it)."""

    def finish(self) -> None:
        """The run ended on this rank."""


class DDPStrategy(Strategy):
    """Data-parallel training over ``comm`` (see the module docstring and docs/distributed.md).

    Args:
        device: the run's device (``cuda`` becomes ``cuda:<local rank>``).
        comm: the communicator; None: ``communicator_for(device)`` (MPI, NCCL for GPUs).
        bucket_mb: the size of one gradient all-reduce, in MiB.
        quiet_replicas: ranks > 0 log warnings and errors only (the ``labkit`` logger's level).
    """

    name = "ddp"

    def __init__(
        self, device: Device, comm: Communicator | None = None, bucket_mb: float = 25.0, quiet_replicas: bool = True
    ) -> None:
        comm = comm if comm is not None else communicator_for(device)
        super().__init__(rank_device(device, comm) or device, comm)
        self.bucket_mb = bucket_mb
        self.ddp: DistributedDataParallel | None = None
        self._signal: str | None = None
        self._quiet: tuple[logging.Logger, int] | None = None
        self._step_buffer = np.zeros(4, dtype=np.float64)
        if quiet_replicas and not self.is_main:  # one copy of the run's log lines, rank 0's (until finish())
            logger = logging.getLogger("labkit")
            self._quiet = (logger, logger.level)
            logger.setLevel(max(logging.WARNING, logger.getEffectiveLevel()))
        log.info("trainer.strategy=ddp: %d rank(s) over %s, device %s", self.world_size, self.comm.name, self.device)

    def on_main(self, fn: Callable[[], Any]) -> Any:
        if self.world_size == 1:
            return fn()
        if self.is_main:
            try:
                value = fn()
            except Exception as exc:
                self.comm.broadcast_json({"error": type(exc).__name__, "message": str(exc)})
                raise
            self.comm.broadcast_json({"value": value})
            return value
        reply = self.comm.broadcast_json(None)
        if "error" in reply:
            kind = _ERRORS.get(reply["error"], RuntimeError)
            raise kind(f"{reply['message']} (on rank 0)" if kind is RuntimeError else reply["message"])
        return reply["value"]

    def shard(self, loader: Any) -> Any:
        return shard_loader(loader, self.world_size, self.rank)

    def setup(self, model: Any, optimizer: Any, seeds: Any, loader: Any) -> None:
        self.ddp = DistributedDataParallel(model, self.comm, bucket_mb=self.bucket_mb)
        self.ddp.broadcast_optimizer_state(optimizer)
        for generator in _generators(seeds):
            jump_generator(generator, self.rank)

    def begin_step(self, loss: float, count: int, interrupted: str | None) -> tuple[float, int]:
        if self.world_size == 1:
            return loss, count
        # one all-reduce: loss sum, example count, ranks signalled, sum of their signal numbers
        signum = _signal_number(interrupted)
        buf = self._step_buffer
        buf[:] = (loss * count, count, 1.0 if interrupted else 0.0, signum)
        self.comm.allreduce_(buf)
        total = round(float(buf[1]))
        if buf[2] > 0 and self._signal is None:  # some rank got a signal: every rank stops after this step
            self._signal = _signal_name(buf[3] / buf[2])
        assert self.ddp is not None, "DDPStrategy.setup() must run before the first step"
        self.ddp.prepare(count, total)
        return float(buf[0] / total), total

    def reduce_gradients(self) -> None:
        if self.ddp is not None and self.world_size > 1:
            self.ddp.reduce_gradients()
            self.ddp.sync_buffers()

    def interrupted(self, local: str | None) -> str | None:
        return local if self.world_size == 1 else self._signal

    def rank_state(self, seeds: Any, loader: Any) -> dict[str, Any]:
        mine = {"generators": seeds.state_dict(), "loader_seed": getattr(loader, "seed", None)}
        ranks = self.comm.allgather_json(mine)
        return {STATE_KEY: {"world_size": self.world_size, "ranks": ranks}}

    def restore_rank_state(self, state: dict[str, Any], seeds: Any, loader: Any) -> None:
        saved = state.get(STATE_KEY)
        if saved is not None and saved.get("world_size") == self.world_size:
            mine = saved["ranks"][self.rank]
            seeds.load_state_dict(mine["generators"])
            if mine["loader_seed"] is not None and hasattr(loader, "seed"):
                loader.seed = int(mine["loader_seed"])
            return
        if saved is None and self.world_size == 1:
            return  # one rank resuming a one-process run: nothing differs
        if self.is_main:
            log.warning(
                "resuming on %d rank(s) a run checkpointed %s: the ranks' random streams start afresh from rank 0's, "
                "and the batches of the unfinished epoch differ from those of an uninterrupted run",
                self.world_size,
                f"on {saved['world_size']} rank(s)" if saved is not None else "by one process",
            )
        for generator in _generators(seeds):
            jump_generator(generator, self.rank)
        if hasattr(loader, "seed"):
            loader.seed = rank_seed(loader.seed, self.rank)

    def load_checkpoint(self, store: Any, locate: Callable[[], None]) -> dict[str, Any]:
        if self.world_size == 1:
            return super().load_checkpoint(store, locate)
        self.on_main(locate)  # rank 0's error (no checkpoint) reaches every rank
        if self.is_main:
            self.comm.broadcast_bytes(store.path("last").read_bytes())
            return store.load("last")
        data = self.comm.broadcast_bytes(None)
        from labkit.runner.checkpointing import CheckpointStore

        with tempfile.TemporaryDirectory(prefix="labkit-resume-") as folder:
            local = CheckpointStore(folder, store.experiment, store.run_id)
            local.dir.mkdir(parents=True)
            local.path("last").write_bytes(data)
            return local.load("last")

    def replicas(self, tracker: Any, store: Any) -> tuple[Any, Any]:
        if self.is_main:
            return tracker, store
        from labkit.distributed.replica import ReplicaCheckpointStore, ReplicaTracker

        # the tracker given to run() on this rank (if any) records nothing: rank 0 holds the run
        return ReplicaTracker(store.run_id), ReplicaCheckpointStore(store.root, store.experiment, store.run_id)

    def on_error(self, exc: BaseException) -> None:
        from labkit.runner.callbacks import TrainingInterrupted

        if self.world_size == 1 or isinstance(exc, TrainingInterrupted):
            return  # every rank stops at the same step with the same signal
        log.error("rank %d failed; aborting all %d ranks", self.rank, self.world_size, exc_info=exc)
        for handler in logging.getLogger().handlers:
            handler.flush()
        self.comm.abort(1)

    def finish(self) -> None:
        self.comm.barrier()  # ranks > 0 wait for rank 0's artifacts before their processes end
        if self.ddp is not None:
            self.ddp.close()  # the model's parameters lose their gradient hooks
        if self._quiet is not None:
            logger, level = self._quiet
            logger.setLevel(level)
            self._quiet = None


def _signal_number(name: str | None) -> float:
    try:
        return float(signal.Signals[name]) if name else 0.0
    except KeyError:
        return 0.0


def _signal_name(number: float) -> str:
    """The signal all signalled ranks got (their mean number is a whole signal number), else SIGTERM."""
    try:
        return signal.Signals(int(number)).name if float(number).is_integer() else "SIGTERM"
    except ValueError:
        return "SIGTERM"


def _generators(seeds: Any) -> Iterator[Any]:
    """The run's streams that differ between ranks: data, model (dropout draws from it), dropout, default."""
    from labkit.core.random import default_generator

    for name in ("data", "model", "dropout"):
        yield getattr(seeds, name)
    yield default_generator


def build_strategy(name: str, device: Device, comm: Communicator | None = None) -> Strategy:
    """The strategy ``trainer.strategy`` names, for a run on ``device``."""
    if name == "single":
        return Strategy(device, comm)
    if name == "ddp":
        return DDPStrategy(device, comm)
    raise ValueError(f"config key 'trainer.strategy': expected one of {list(STRATEGIES)}, got {name!r}")
