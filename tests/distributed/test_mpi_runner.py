"""``run(cfg)`` with ``trainer.strategy=ddp`` under ``mpirun -n 2``: an interrupt on one rank stops both at
the same step, and the resumed run restores every rank (parameters, per-rank dropout streams, metrics)."""

from __future__ import annotations

import json
import sys

import numpy as np

from labkit.runner.checkpointing import CheckpointStore
from tests.distributed.mpi import ROOT, mpirun


def test_interrupted_and_resumed_ddp_run_matches_an_uninterrupted_one_on_every_rank(tmp_path):
    mpirun(2, [sys.executable, "-m", "tests.distributed.mpi_worker", "runner", str(tmp_path)], cwd=ROOT)
    ranks = [json.loads((tmp_path / f"runner_rank{r}.json").read_text()) for r in range(2)]
    for report in ranks:
        # toy task: 64 training examples, 16 per rank and step -> 2 steps an epoch, 3 epochs
        assert report["plain"]["result"]["step"] == 6 and report["resumed"]["result"]["step"] == 6
        # rank 1 alone got SIGINT after step 3; both ranks agreed at step 4's all-reduce and stopped after it
        status = None if report["rank"] == 1 else "KILLED"  # rank 1 records nothing: its tracker is a replica
        assert report["interrupted"] == {"signal": "SIGINT", "status": status}
        for name, value in report["plain"]["params"].items():
            np.testing.assert_array_equal(report["resumed"]["params"][name], value, err_msg=name)
        assert report["resumed"]["draw"] == report["plain"]["draw"]  # this rank's dropout stream came back
    for name, value in ranks[0]["plain"]["params"].items():
        np.testing.assert_array_equal(ranks[1]["plain"]["params"][name], value, err_msg=name)  # identical replicas
    assert ranks[0]["plain"]["draw"] != ranks[1]["plain"]["draw"]  # ... with their own dropout masks
    main = ranks[0]
    assert main["stopped_at"] == 4 and main["resumed"]["status"] == "FINISHED"
    assert main["resumed_series"] == main["plain_series"]  # rank 0 logged every step once, same values
    assert [s for s, _ in main["plain_series"]["train/loss"]] == [1, 2, 3, 4, 5, 6]
    assert ranks[1]["plain_series"] == {}  # rank 1 logs nothing
    assert main["plain"]["result"]["test/accuracy"] == ranks[1]["plain"]["result"]["test/accuracy"]
    state = CheckpointStore(tmp_path / "r" / "checkpoints", "labkit", "r").load("last")
    assert state["ddp"]["world_size"] == 2 and len(state["ddp"]["ranks"]) == 2
    runs = sorted(p.name for p in (tmp_path / "r" / "checkpoints" / "labkit").iterdir())
    assert runs == ["r"]  # one checkpoint set, written by rank 0
