"""Under ``mpirun -n 2`` (Debian's OpenMPI, mpi4py): after training, the parameters on both ranks are
identical and equal to those of one process trained on the combined batches."""

from __future__ import annotations

import sys

import numpy as np

from tests.distributed import mpi_worker
from tests.distributed.mpi import ROOT, mpirun


def test_two_ranks_train_exactly_like_one_process_on_the_combined_batches(tmp_path):
    mpirun(2, [sys.executable, "-m", "tests.distributed.mpi_worker", "equal", str(tmp_path)], cwd=ROOT)
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2)]
    assert int(ranks[0]["world"]) == 2
    expected, expected_losses = mpi_worker.reference_training(ranks=2)
    # 53 examples, global batch 8: 7 steps an epoch, the last one split 3 + 2 and averaged by count
    assert len(expected_losses) == 2 * 7 == len(ranks[0]["losses"])
    for name, value in expected.items():
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name], err_msg=name)  # identical replicas
        np.testing.assert_allclose(ranks[0][name], value, rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(ranks[0]["losses"], expected_losses, rtol=1e-12)  # the global batch's mean loss
    start = mpi_worker.model(seed=1)
    assert not np.allclose(start[0].weight.numpy(), expected["0.weight"])  # training moved the parameters
