"""NCCL through cupy on one GPU (marked gpu: skipped where there is none). Two ranks need two GPUs;
here one rank exercises the NCCL calls, the bucket packing on GPU arrays and the device choice."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit import nn
from labkit.backends.registry import backends
from labkit.distributed import DistributedDataParallel, SingleProcess
from labkit.distributed.nccl import NCCLCommunicator, nccl_available

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _gpu_with_nccl():
    if not labkit.cuda_is_available() or not nccl_available():
        pytest.skip("no NVIDIA GPU with cupy and NCCL here")


def test_nccl_communicator_sums_and_broadcasts_gpu_arrays():
    comm = NCCLCommunicator(SingleProcess(), "cuda")
    assert comm.device.index == 0 and comm.size == 1 and comm.name == "nccl"
    xp = backends.for_device("cuda").xp
    a = xp.arange(6, dtype=xp.float32)
    comm.allreduce_(a)
    comm.broadcast_(a, root=0)
    xp.cuda.get_current_stream().synchronize()
    np.testing.assert_array_equal(xp.asnumpy(a), np.arange(6, dtype=np.float32))
    host = np.ones(3)
    comm.allreduce_(host)  # host arrays go through the bootstrap communicator
    np.testing.assert_array_equal(host, np.ones(3))
    with pytest.raises(TypeError, match="nccl collective: expected one of"):
        comm.allreduce_(xp.zeros(2, dtype=xp.complex64))
    assert comm.broadcast_json({"k": 1}) == {"k": 1}


def test_ddp_buckets_gpu_gradients_through_nccl():
    comm = NCCLCommunicator(SingleProcess(), "cuda")
    g = labkit.Generator(0)
    model = nn.Sequential(nn.Linear(4, 8, generator=g), nn.Tanh(), nn.Linear(8, 3, generator=g)).to("cuda")
    ddp = DistributedDataParallel(model, comm, bucket_mb=1e-4)
    assert len(ddp.buckets) > 1
    x = labkit.tensor(np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32), device="cuda")
    y = labkit.tensor(np.array([0, 1, 2, 1, 0]), device="cuda")
    F.cross_entropy(model(x), y).backward()
    before = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    ddp.prepare(count=1, total=4)  # weight 1/4: the sum over one rank is a quarter of its gradient
    ddp.reduce_gradients()
    for name, p in model.named_parameters():
        assert p.grad.device.type == "cuda"
        np.testing.assert_allclose(p.grad.numpy(), before[name] / 4, rtol=1e-6, err_msg=name)


def test_ddp_strategy_runs_each_rank_on_its_local_gpu():
    from labkit.distributed.strategy import DDPStrategy

    strategy = DDPStrategy("cuda")
    assert str(strategy.device) == f"cuda:{strategy.comm.local_rank}"
    assert strategy.comm.name == "nccl"
    strategy.finish()
