"""DistributedDataParallel and the ddp strategy on thread ranks (tests/distributed/threadcomm.py).

The gradients are checked against the closed form: the gradient of the mean loss over the
concatenated shards, computed by one model in one process.
"""

from __future__ import annotations

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit import nn, optim
from labkit.core.random import default_generator
from labkit.distributed import DistributedDataParallel, SingleProcess
from labkit.distributed.strategy import DDPStrategy, Strategy, build_strategy
from labkit.runner.seed import seed_everything
from tests.distributed.threadcomm import run_ranks


@pytest.fixture(autouse=True)
def _keep_default_generator():
    """The strategy jumps labkit's default generator per rank; thread ranks share it in one process."""
    state = default_generator.get_state()
    yield
    default_generator.set_state(state)


class Net(nn.Module):
    """(B, 4) -> (B, 3); ``extra`` is used only when ``use_extra`` and ``unused`` never."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        g = labkit.Generator(seed)
        self.fc1 = nn.Linear(4, 6, generator=g).double()
        self.fc2 = nn.Linear(6, 3, generator=g).double()
        self.extra = nn.Parameter(labkit.randn(3, generator=g).double().data)
        self.unused = nn.Parameter(labkit.randn(2, generator=g).double().data)
        self.register_buffer("seen", labkit.zeros(1).double())
        self.use_extra = False

    def forward(self, x: labkit.Tensor) -> labkit.Tensor:
        out = self.fc2(F.tanh(self.fc1(x)))
        return out * self.extra if self.use_extra else out


def _data(seed: int, n: int) -> tuple[labkit.Tensor, labkit.Tensor]:
    rng = np.random.default_rng(seed)
    return labkit.tensor(rng.normal(size=(n, 4))), labkit.tensor(rng.integers(0, 3, size=n))


def _grads(model: nn.Module) -> dict[str, np.ndarray | None]:
    return {n: None if p.grad is None else p.grad.numpy().copy() for n, p in model.named_parameters()}


def _host(value) -> np.ndarray:
    return np.array(value.numpy() if isinstance(value, labkit.Tensor) else value, copy=True)


COUNTS = [3, 5, 1]  # uneven shards: the weights n_r / n make the sum the global mean's gradient


def test_reduced_gradients_equal_the_gradient_of_the_mean_over_all_shards():
    def rank_fn(comm):
        model = Net(seed=comm.rank)  # different initial values: the wrapper copies rank 0's
        ddp = DistributedDataParallel(model, comm, bucket_mb=1e-4)  # ~100-byte buckets: several
        x, y = _data(comm.rank, COUNTS[comm.rank])
        model.use_extra = comm.rank == 1  # a parameter only one rank uses
        loss = F.cross_entropy(model(x), y)
        ddp.prepare(COUNTS[comm.rank], sum(COUNTS))
        loss.backward()
        ddp.reduce_gradients()
        return len(ddp.buckets), _grads(model), {n: p.numpy().copy() for n, p in model.named_parameters()}

    results = run_ranks(3, rank_fn)
    assert results[0][0] > 2
    reference = Net(seed=0)
    total = labkit.tensor(0.0).double()
    for rank, n in enumerate(COUNTS):  # the mean over all examples, as one process would compute it
        x, y = _data(rank, n)
        reference.use_extra = rank == 1
        total = total + F.cross_entropy(reference(x), y) * float(n)
    (total / float(sum(COUNTS))).backward()
    expected = _grads(reference)
    assert expected["unused"] is None
    for _, grads, params in results:
        for name, p in reference.named_parameters():
            np.testing.assert_array_equal(params[name], p.numpy())  # rank 0's initial parameters everywhere
            if expected[name] is None:
                assert grads[name] is None, name  # no rank used it: optimizers skip it, as in one process
            else:
                np.testing.assert_allclose(grads[name], expected[name], rtol=1e-12, atol=1e-15, err_msg=name)
    for name in expected:  # and every rank holds the same bits
        assert all(np.array_equal(r[1][name], results[0][1][name]) for r in results if r[1][name] is not None)


def test_optimizer_state_and_buffers_follow_rank_0():
    def rank_fn(comm):
        model = Net(seed=0)
        opt = optim.Adam(model.parameters(), lr=0.1)
        if comm.rank == 0:  # rank 0 alone has taken a step: moments and a step count
            F.cross_entropy(model(_data(0, 4)[0]), _data(0, 4)[1]).backward()
            opt.step()
            model.seen.data[...] = 7.0
        ddp = DistributedDataParallel(model, comm)
        ddp.broadcast_optimizer_state(opt)
        state = opt.state_dict()["state"]
        return ddp.parameters_digest(), float(model.seen.numpy()[0]), {k: _host(v["exp_avg"]) for k, v in state.items()}

    (d0, seen0, m0), (d1, seen1, m1) = run_ranks(2, rank_fn)
    assert d0 == d1 and seen0 == seen1 == 7.0
    assert sorted(m0) == sorted(m1) and len(m0) > 0
    for key in m0:
        np.testing.assert_array_equal(np.asarray(m0[key]), np.asarray(m1[key]))


def test_different_models_on_the_ranks_fail_on_every_rank():
    def rank_fn(comm):
        model = Net(0) if comm.rank == 0 else nn.Linear(4, 3)
        try:
            DistributedDataParallel(model, comm)
        except ValueError as exc:
            return str(exc)
        return "no error"

    messages = run_ranks(2, rank_fn)
    assert all("expected the same parameters (names, shapes, dtypes) on every rank" in m for m in messages)
    assert "rank(s) [1]" in messages[1]


def test_strategy_agrees_on_loss_interrupts_and_rank_0_results():
    def rank_fn(comm):
        strategy = DDPStrategy("cpu", comm, quiet_replicas=False)
        model, seeds = Net(0), seed_everything(3)
        strategy.setup(model, optim.SGD(model.parameters(), lr=0.1), seeds, loader=None)
        signalled = "SIGINT" if comm.rank == 1 else None
        value, total = strategy.begin_step(loss=float(comm.rank + 1), count=comm.rank + 1, interrupted=signalled)
        shared = strategy.on_main(lambda: {"val/accuracy": 0.5 + comm.rank})
        try:
            strategy.on_main(lambda: (_ for _ in ()).throw(ValueError("trainer.resume=x: no checkpoint")))
        except ValueError as exc:
            error = str(exc)
        draws = seeds.model.np.random(2).tolist(), default_generator.np.random(1).tolist()
        strategy.finish()
        return value, total, strategy.interrupted(None), shared, error, draws[0]

    results = run_ranks(2, rank_fn)
    for value, total, signal, shared, error, _ in results:
        assert total == 3 and value == pytest.approx((1 * 1 + 2 * 2) / 3)  # mean over the global batch
        assert signal == "SIGINT"  # rank 1 was signalled: both ranks stop after this step, naming its signal
        assert shared == {"val/accuracy": 0.5} and error == "trainer.resume=x: no checkpoint"
    assert results[0][5] != results[1][5]  # dropout streams differ between ranks


def test_rank_state_round_trip_restores_each_rank_its_own_streams():
    def rank_fn(comm):
        strategy = DDPStrategy("cpu", comm, quiet_replicas=False)
        seeds = seed_everything(5)
        strategy.setup(Net(0), optim.SGD(Net(0).parameters(), lr=0.1), seeds, loader=None)
        seeds.model.np.random(4)  # the streams move on during training
        saved = strategy.rank_state(seeds, loader=None)
        after = seeds.model.np.random(2).tolist()
        fresh = seed_everything(5)  # a resumed process: rank 0's state from the checkpoint, then its own
        fresh.load_state_dict(saved["ddp"]["ranks"][0]["generators"])
        strategy.restore_rank_state(saved, fresh, loader=None)
        return after, fresh.model.np.random(2).tolist(), saved["ddp"]["world_size"]

    (a0, r0, size), (a1, r1, _) = run_ranks(2, rank_fn)
    assert size == 2 and a0 == r0 and a1 == r1 and a0 != a1


def test_single_strategy_and_names():
    strategy = build_strategy("single", "cpu")
    assert type(strategy) is Strategy and strategy.is_main and strategy.world_size == 1
    assert strategy.begin_step(2.0, 4, "SIGINT") == (2.0, 4) and strategy.rank_state(None, None) == {}
    assert strategy.on_main(lambda: 3) == 3
    with pytest.raises(ValueError, match=r"trainer.strategy': expected one of \['single', 'ddp'\], got 'dp'"):
        build_strategy("dp", "cpu")
    one = DDPStrategy("cpu", SingleProcess())  # trainer.strategy=ddp without mpirun: one rank, nothing to reduce
    model = Net(0)
    one.setup(model, optim.SGD(model.parameters(), lr=0.1), seed_everything(0), loader=None)
    assert one.begin_step(1.5, 2, None) == (1.5, 2) and one.world_size == 1


def test_ddp_without_mpi4py_trains_alone_outside_mpirun_and_fails_under_it(monkeypatch, caplog):
    from labkit.distributed import comm as comm_module

    def no_mpi() -> None:
        raise ImportError("trainer.strategy=ddp needs mpi4py and an MPI library (No module named 'mpi4py'); install")

    monkeypatch.setattr(comm_module.MPICommunicator, "__init__", lambda self: no_mpi())
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)
    with caplog.at_level("WARNING", logger="labkit.distributed"):
        assert isinstance(comm_module.communicator_for("cpu"), SingleProcess)
    assert "without mpi4py: training in one process" in caplog.text and "apt-get install" in caplog.text
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")  # started by mpirun -n 2: one process alone would be wrong
    with pytest.raises(ImportError, match="needs mpi4py"):
        comm_module.communicator_for("cpu")
    with pytest.raises(ValueError, match="'nccl': expected a cuda device, got cpu"):
        monkeypatch.delenv("OMPI_COMM_WORLD_SIZE")
        comm_module.communicator_for("cpu", backend="nccl")


def test_buckets_start_during_backward_and_in_the_same_order_on_every_rank():
    """Post-accumulate hooks start the last layers' all-reduce before backward reaches the first layer."""

    def rank_fn(comm):
        g = labkit.Generator(0)
        model = nn.Sequential(nn.Linear(4, 6, generator=g), nn.Tanh(), nn.Linear(6, 3, generator=g)).double()
        ddp = DistributedDataParallel(model, comm, bucket_mb=1e-4)
        first = model[0].weight
        started: list[tuple[int, bool]] = []
        reduce = comm.iallreduce_

        def recording(array):
            bucket = next(k for k, b in enumerate(ddp.buckets) if b.buffer is array)
            started.append((bucket, first.grad is None))  # True: backward has not finished the first layer
            return reduce(array)

        comm.iallreduce_ = recording
        x, y = _data(comm.rank, COUNTS[comm.rank])
        loss = F.cross_entropy(model(x), y)
        ddp.prepare(COUNTS[comm.rank], sum(COUNTS))
        loss.backward()
        ddp.reduce_gradients()
        ddp.close()
        return started, _grads(model)

    results = run_ranks(3, rank_fn)
    for started, _ in results:
        assert [k for k, _ in started] == list(range(len(started))) and len(started) > 2  # in bucket order
        assert started[0][1]  # the first bucket left while the first layer's gradient was not yet final
    g = labkit.Generator(0)
    reference = nn.Sequential(nn.Linear(4, 6, generator=g), nn.Tanh(), nn.Linear(6, 3, generator=g)).double()
    total = labkit.tensor(0.0).double()
    for rank, n in enumerate(COUNTS):
        x, y = _data(rank, n)
        total = total + F.cross_entropy(reference(x), y) * float(n)
    (total / float(sum(COUNTS))).backward()
    for name, expected in _grads(reference).items():
        for _, grads in results:
            np.testing.assert_allclose(grads[name], expected, rtol=1e-12, atol=1e-15, err_msg=name)
