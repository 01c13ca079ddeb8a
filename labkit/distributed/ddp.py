"""``DistributedDataParallel``: identical replicas of a model that average their gradients in buckets.

Every rank holds the whole model and trains on its shard of each global batch. The loss
of a task is a mean over the examples (or tokens) of the batch, so the gradient of the
mean over the global batch is the count-weighted mean of the ranks' gradients::

    g = sum_r (n_r / n) * g_r,    n = sum_r n_r

``prepare(n_r, n)`` sets this rank's weight ``n_r / n`` before backward; after backward
``reduce_gradients()`` packs ``weight * grad`` into flat per-dtype buckets (about
``bucket_mb`` MiB each, last parameters first, the order in which backward finishes them),
sums every bucket over the ranks with a non-blocking all-reduce (the next bucket is packed
while the previous one travels), and unpacks the sums into ``.grad``. With equal counts the
weight is ``1 / N``: the plain average. Each bucket carries one extra slot per parameter, 1
where the rank had a gradient, so a parameter no rank used keeps ``grad = None`` (optimizers
skip it, as they would in one process) and one used by some ranks gets the correct sum.

The replicas start equal (rank 0's parameters and buffers are broadcast) and stay equal:
equal gradients and equal optimizer states give equal updates. Buffers that forward
changes (batch-norm running statistics, computed from each rank's own shard) are
broadcast from rank 0 after every step (``sync_buffers``).

Overlap with backward: each parameter has a post-accumulate gradient hook
(``Tensor.register_post_accumulate_grad_hook``) that calls ``grad_ready(param)`` as soon as
its ``.grad`` is final, while backward goes on with earlier layers. A bucket's all-reduce
starts when all its parameters are ready, and buckets start in the same order on every rank
(bucket 1 not before bucket 0), as non-blocking collectives require. ``reduce_gradients()``
starts what is left (parameters that got no gradient on this rank), waits for all buckets
and unpacks them. The hooks act only between ``prepare()`` and ``reduce_gradients()``: a
backward outside a training step (a user's own ``labkit.grad``, say) reduces nothing.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np

from labkit.backends.registry import backends
from labkit.core.tensor import Tensor
from labkit.distributed.comm import Communicator, Request

log = logging.getLogger("labkit.distributed")

DEFAULT_BUCKET_MB = 25.0


class _Bucket:
    """Flat storage for the gradients of some parameters of one dtype and device, plus their presence flags."""

    def __init__(self, params: list[Tensor], xp: Any, dtype: Any) -> None:
        self.params = params
        self.sizes = [int(p.data.size) for p in params]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64).tolist()
        self.numel = self.offsets[-1]
        self.buffer = xp.zeros(self.numel + len(params), dtype=dtype)  # gradients, then one flag per parameter
        self.ready: set[int] = set()
        self.request: Request | None = None

    def pack(self, weight: float) -> None:
        buf = self.buffer
        for k, p in enumerate(self.params):
            view = buf[self.offsets[k] : self.offsets[k + 1]]
            if p.grad is None:
                view.fill(0)
                buf[self.numel + k] = 0
            else:
                np_like = p.grad.data.reshape(-1)
                if weight == 1.0:
                    view[...] = np_like
                else:
                    backends.for_array(view).xp.multiply(np_like, weight, out=view)
                buf[self.numel + k] = 1

    def unpack(self) -> None:
        buf = self.buffer
        flags = backends.for_array(buf).to_numpy(buf[self.numel :])
        for k, p in enumerate(self.params):
            if flags[k] == 0:
                p.grad = None
                continue
            summed = buf[self.offsets[k] : self.offsets[k + 1]].reshape(p.data.shape)
            if p.grad is None or p.grad.creator is not None:
                p.grad = Tensor._wrap(summed.copy())
            else:
                p.grad.data[...] = summed


class DistributedDataParallel:
    """Gradient averaging and replica sync for ``model`` over ``comm``.

    Args:
        model: a ``labkit.nn.Module`` (its trainable parameters are reduced, its buffers synced).
        comm: the ranks' communicator.
        bucket_mb: the size of one all-reduce, in MiB (a parameter larger than that gets its own).
        broadcast_buffers: send rank 0's buffers to every rank after each step.

    Construction is collective: every rank must build it with the same model structure
    (checked; a mismatch raises ValueError on every rank) and rank 0's parameters and
    buffers are copied to all.
    """

    def __init__(
        self,
        model: Any,
        comm: Communicator,
        bucket_mb: float = DEFAULT_BUCKET_MB,
        broadcast_buffers: bool = True,
    ) -> None:
        if not isinstance(bucket_mb, (int, float)) or bucket_mb <= 0:
            raise ValueError(f"DistributedDataParallel bucket_mb: expected a positive number, got {bucket_mb!r}")
        self.model, self.comm = model, comm
        self.broadcast_buffers = bool(broadcast_buffers)
        self.named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.buffers = [b for _, b in model.named_buffers()]
        self._check_same_structure()
        self.sync_parameters()
        self.buckets = self._make_buckets(float(bucket_mb) * 2**20)
        self._bucket_of = {id(p): b for b in self.buckets for p in b.params}
        self.weight = 1.0 / comm.size
        self._armed = False  # between prepare() and reduce_gradients(): hooks start all-reduces
        self._next = 0  # the first bucket not started yet (buckets start in order on every rank)
        self._hooks = [p.register_post_accumulate_grad_hook(self._on_gradient) for _, p in self.named]
        log.info(
            "DistributedDataParallel: %d parameters in %d bucket(s) over %d ranks (%s)",
            len(self.named),
            len(self.buckets),
            comm.size,
            comm.name,
        )

    # ---- set-up --------------------------------------------------------------------------

    def _check_same_structure(self) -> None:
        layout = [(n, list(p.data.shape), str(p.data.dtype)) for n, p in self.named]
        digest = hashlib.sha256(repr(layout).encode()).hexdigest()
        digests = self.comm.allgather_json(digest)
        if len(set(digests)) != 1:
            mismatched = [r for r, d in enumerate(digests) if d != digests[0]]
            raise ValueError(
                f"DistributedDataParallel: expected the same parameters (names, shapes, dtypes) on every rank, "
                f"got different ones on rank(s) {mismatched} than on rank 0"
            )

    def _make_buckets(self, cap_bytes: float) -> list[_Bucket]:
        buckets: list[_Bucket] = []
        open_: dict[tuple[str, str], list[Tensor]] = {}
        sizes: dict[tuple[str, str], int] = {}
        for _, p in reversed(self.named):  # backward finishes the last layers first
            key = (str(p.data.dtype), str(p.device))
            group = open_.setdefault(key, [])
            if group and sizes[key] + p.data.nbytes > cap_bytes:
                buckets.append(self._bucket(group))
                group = open_[key] = []
                sizes[key] = 0
            group.append(p)
            sizes[key] = sizes.get(key, 0) + int(p.data.nbytes)
        buckets += [self._bucket(group) for group in open_.values() if group]
        return buckets

    @staticmethod
    def _bucket(params: list[Tensor]) -> _Bucket:
        data = params[0].data
        return _Bucket(params, backends.for_array(data).xp, data.dtype)

    def sync_parameters(self) -> None:
        """Copy rank 0's parameters and buffers to every rank (collective)."""
        for _, p in self.named:
            self.comm.broadcast_(p.data, root=0)
        self.sync_buffers(force=True)

    def sync_buffers(self, force: bool = False) -> None:
        """Copy rank 0's buffers to every rank (each step when ``broadcast_buffers``; collective)."""
        if force or self.broadcast_buffers:
            for b in self.buffers:
                self.comm.broadcast_(b.data, root=0)

    def broadcast_optimizer_state(self, optimizer: Any) -> None:
        """Make every rank's optimizer state rank 0's (collective; after a resume or a hand-made change)."""
        device = self.named[0][1].device if self.named else None
        state = self.comm.broadcast_state(optimizer.state_dict(), map_location=device)
        if not self.comm.is_main:
            optimizer.load_state_dict(state)

    # ---- each step -----------------------------------------------------------------------

    def prepare(self, count: float, total: float) -> None:
        """This rank averages with weight ``count / total`` (its examples over the global batch's)."""
        if total <= 0 or count < 0:
            raise ValueError(
                f"DistributedDataParallel.prepare: expected 0 <= count <= total, total > 0, got {count}/{total}"
            )
        self.weight = float(count) / float(total)
        for bucket in self.buckets:
            bucket.ready.clear()
        self._next = 0
        self._armed = True

    def _on_gradient(self, param: Tensor) -> None:
        if self._armed:
            self.grad_ready(param)

    def grad_ready(self, param: Tensor) -> None:
        """``param``'s gradient is final: start the all-reduce of every complete bucket, in bucket order."""
        self._bucket_of[id(param)].ready.add(id(param))
        while self._next < len(self.buckets):
            bucket = self.buckets[self._next]
            if len(bucket.ready) < len(bucket.params):
                return
            bucket.pack(self.weight)
            bucket.request = self.comm.iallreduce_(bucket.buffer)
            self._next += 1

    def reduce_gradients(self) -> None:
        """After backward: every gradient becomes the weighted sum over the ranks (collective)."""
        self._armed = False
        for bucket in self.buckets:
            for p in bucket.params:
                if id(p) not in bucket.ready:
                    self.grad_ready(p)
        for bucket in self.buckets:
            assert bucket.request is not None  # every bucket was started just above
            bucket.request.wait()
            bucket.request = None
            bucket.unpack()
            bucket.ready.clear()
        self._next = 0

    def close(self) -> None:
        """Remove the gradient hooks from the model's parameters (the model trains alone again)."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def parameters_digest(self) -> str:
        """A hash of this rank's parameter values (to check that the replicas are identical)."""
        h = hashlib.sha256()
        for name, p in self.named:
            h.update(name.encode())
            h.update(np.ascontiguousarray(backends.for_array(p.data).to_numpy(p.data)).tobytes())
        return h.hexdigest()
