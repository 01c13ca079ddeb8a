"""Launching ``mpirun -n N`` from tests. Missing MPI fails the test with the install commands (CI installs them)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from labkit.distributed.comm import INSTALL_HINT

ROOT = Path(__file__).resolve().parents[2]


def require_mpi() -> str:
    """The path of ``mpirun``; fails (not skips) the test when mpirun or mpi4py is missing."""
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        pytest.fail(f"mpirun not found: {INSTALL_HINT}", pytrace=False)
    probe = subprocess.run([sys.executable, "-c", "from mpi4py import MPI"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"mpi4py does not import ({probe.stderr.strip().splitlines()[-1:]}): {INSTALL_HINT}", pytrace=False)
    return mpirun


def mpi_env() -> dict[str, str]:
    """The environment of ranks: root allowed (containers, CI), one BLAS thread per rank, labkit importable."""
    env = dict(os.environ)
    env.update(
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        OMPI_MCA_rmaps_base_oversubscribe="1",  # more ranks than cores on small machines
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    return env


def mpirun(n: int, args: Sequence[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """``mpirun -n n ARGS`` in ``cwd``; the test fails with both ranks' output when it does not exit 0."""
    command = [require_mpi(), "-n", str(n), "--oversubscribe", *args]
    done = subprocess.run(command, cwd=cwd, env=mpi_env(), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}")
    return done
