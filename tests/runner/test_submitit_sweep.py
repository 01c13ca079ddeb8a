"""Cluster sweeps through Hydra's submitit launcher: ``hydra/launcher=slurm`` and ``slurm_local``.

The end-to-end test runs ``labkit train -m hydra/launcher=slurm_local`` on the toy task: every
trial is pickled by submitit and runs in a process of its own, which must find the sweep's MLflow
parent run and store through the sweep file. The Slurm config is checked by the sbatch script
submitit would submit (no Slurm here).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from labkit.runner.hydra_app import CONFIG_DIR
from labkit.runner.schema import register_configs
from labkit.runner.sweep import SWEEP_FILE, MLflowSweepCallback
from tests.runner.helpers import TOY, AllowToyTargets

submitit = pytest.importorskip("submitit")  # the `cluster` extra: hydra-submitit-launcher

REPO = Path(__file__).resolve().parents[2]


def _hydra_compose(*overrides: str) -> Any:
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="train"):
        return compose("config", overrides=[*TOY, *overrides], return_hydra_config=True)


# ---------------------------------------------------------------- the configs


@pytest.mark.parametrize(("option", "launcher"), [("slurm", "SlurmLauncher"), ("slurm_local", "LocalLauncher")])
def test_launcher_configs_compose_without_warnings(option, launcher):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Hydra's automatic schema matching warns on a same-named file
        cfg = _hydra_compose(f"hydra/launcher={option}")
    node = cfg.hydra.launcher
    assert node._target_ == f"hydra_plugins.hydra_submitit_launcher.submitit_launcher.{launcher}"
    assert node.timeout_min == 60 and node.tasks_per_node == 1 and node.nodes == 1
    assert node.max_num_timeout == 0  # a resubmitted trial would start a new run from scratch
    assert node.submitit_folder.startswith("multirun/") and node.submitit_folder.endswith("/.submitit/%j")


def test_slurm_config_extends_the_plugin_schema():
    """A wrong type is refused at composition, naming the key; the plugin's other sbatch keys are there."""
    with pytest.raises(ConfigCompositionException, match="timeout_min"):
        _hydra_compose("hydra/launcher=slurm", "hydra.launcher.timeout_min=an_hour")
    node = _hydra_compose("hydra/launcher=slurm", "hydra.launcher.qos=high").hydra.launcher
    assert node.qos == "high" and node.signal_delay_s == 120 and node.array_parallelism == 16


def test_slurm_config_makes_the_sbatch_array_script(tmp_path, monkeypatch):
    """The script submitit would hand to sbatch for a 3-trial sweep (captured instead of submitted)."""
    from submitit.slurm.slurm import SlurmExecutor

    scripts: list[str] = []

    def capture(self: Any, command: str) -> Any:
        scripts.append(self._make_submission_file_text(command, "0"))
        raise KeyboardInterrupt  # stop where sbatch would run

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # as if srun were installed
    monkeypatch.setattr(SlurmExecutor, "_submit_command", capture)
    cfg = _hydra_compose(
        "hydra/launcher=slurm",
        f"hydra.sweep.dir={tmp_path}/multirun",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.array_parallelism=2",
        "hydra.launcher.gpus_per_node=1",
        "hydra.launcher.setup=[module load cuda,source /shared/venv/bin/activate]",
        "+hydra.launcher.additional_parameters.account=mylab",
    )
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=lambda c: None, config=cfg)
    with pytest.raises(KeyboardInterrupt):
        launcher.launch([[f"optim.lr={lr}"] for lr in (0.1, 0.2, 0.3)], initial_job_idx=0)
    (script,) = scripts
    for flag in ("--partition=gpu", "--time=60", "--cpus-per-task=4", "--mem=16GB", "--gpus-per-node=1"):
        assert f"#SBATCH {flag}\n" in script
    assert "#SBATCH --array=0-2%2\n" in script and "#SBATCH --account=mylab\n" in script
    assert "#SBATCH --job-name=labkit-train\n" in script
    assert f"#SBATCH --output={tmp_path}/multirun/.submitit/%A_%a/%A_%a_0_log.out" in script
    assert "module load cuda\nsource /shared/venv/bin/activate\n" in script
    assert script.index("source /shared/venv/bin/activate") < script.index("srun ")
    assert "-u -m submitit.core._submit" in script
    assert len(list((tmp_path / "multirun" / ".submitit").rglob("*.pkl"))) == 3  # one pickled job per trial


def test_slurm_config_requests_no_gpus_by_default():
    from submitit.slurm.slurm import _make_sbatch_string

    node = _hydra_compose("hydra/launcher=slurm").hydra.launcher
    assert node.gpus_per_node is None  # not 0: some clusters refuse --gpus-per-node=0
    script = _make_sbatch_string(command="true", folder="/tmp/x", gpus_per_node=node.gpus_per_node)
    assert "gpus" not in script


# ---------------------------------------------------------------- what travels to the jobs


def test_sweep_callback_pickles_without_its_parent_tracker():
    """Process launchers pickle Hydra's callbacks into every job after the parent run was opened."""
    import cloudpickle

    callback = MLflowSweepCallback(monitor="val/loss")
    callback.tracker = type("SpooledTracker", (), {})()
    callback.tracker.lock = threading.RLock()  # a spooled tracker holds a lock and a thread
    callback.sweep_dir = Path("/shared/multirun/x")
    copy = cloudpickle.loads(cloudpickle.dumps(callback))
    assert copy.tracker is None and callback.tracker is not None
    assert copy.sweep_dir == Path("/shared/multirun/x") and copy.monitor == "val/loss"
    copy.on_multirun_end(config=None)  # a job's copy never ends (or summarises) the parent run


# ---------------------------------------------------------------- labkit train -m hydra/launcher=slurm_local


@pytest.mark.slow
def test_submitit_local_sweep_tracks_trials_of_other_processes_under_one_parent(tmp_path):
    from labkit.tracking.store import make_client

    store = tmp_path / "team" / "mlflow.db"  # the parent's store, given to the callback only: jobs learn it
    sweep_dir = tmp_path / "multirun" / "cluster"
    args = [
        *TOY,
        "hydra/launcher=slurm_local",
        "tracking=mlflow",
        "tracking.experiment=cluster",
        f"+hydra.callbacks.mlflow_sweep.uri=sqlite:///{store}",
        f"+hydra.callbacks.allow_toy._target_={AllowToyTargets.__module__}.AllowToyTargets",
        f"hydra.sweep.dir={sweep_dir}",
        "trainer.max_epochs=1",
        "trainer.max_steps=2",
        "trainer.log_model=false",
        "trainer.log_checkpoints=false",
        "optimized_metric=val/accuracy",
        "optim.lr=0.001,0.01",
        "task.poison_at=null,1",  # 1: the loss is NaN at the first step, that trial fails
        "--multirun",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "labkit", "train", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]

    client = make_client(f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name("cluster").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_name: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert len(children) == 4 and {r.data.tags["mlflow.parentRunId"] for r in children.values()} == {parent.info.run_id}
    status = {name: r.info.status for name, r in children.items()}
    for lr in ("0.001", "0.01"):
        (finished,) = [n for n in status if f"optim.lr={lr}," in n and "poison_at=null" in n]
        (failed,) = [n for n in status if f"optim.lr={lr}," in n and "poison_at=1" in n]
        assert status[finished] == "FINISHED" and "val/accuracy" in children[finished].data.metrics
        assert status[failed] == "FAILED"
        assert children[failed].data.tags["labkit.error_type"] == "NonFiniteLossError"
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["labkit.sweep.trials"] == "4" and parent.data.tags["labkit.sweep.failed"] == "2"
    assert parent.data.tags["labkit.best.run_id"] in {r.info.run_id for r in children.values()}
    assert not (tmp_path / "mlflow.db").exists()  # no job fell back to a store of its own

    # each trial ran in a submitit worker process: its pickle, result and log under <sweep dir>/.submitit/
    assert (sweep_dir / SWEEP_FILE).is_file() and (sweep_dir / "trials.csv").is_file()
    logs = sorted((sweep_dir / ".submitit").glob("*/*_log.out"))
    results = sorted((sweep_dir / ".submitit").glob("*/*_result.pkl"))
    assert len(logs) == 4 and len(results) == 4
    assert all("Loading pickle" in log.read_text() for log in logs)
    assert sorted(p.name for p in sweep_dir.iterdir() if p.name.isdigit()) == ["0", "1", "2", "3"]
