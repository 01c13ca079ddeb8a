"""``labkit train experiment=charlm_mingru`` through the runner: 3 steps into a temporary MLflow store.

The run is nested under a parent run and tagged like a trial of the study
``experiments/charlm_mingru_vs_lstm``, whose ``analyze.py`` then reads it back (the store is the
slow part to create, so one serves both checks).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from labkit.runner import run
from labkit.runner.hydra_app import compose

pytestmark = pytest.mark.slow  # a fresh MLflow store and a real run: ~12 s idle, ~25 s on the busy machine

mlflow = pytest.importorskip("mlflow")

STUDY = Path(__file__).resolve().parents[3] / "experiments" / "charlm_mingru_vs_lstm"


def _analyze_module():
    spec = importlib.util.spec_from_file_location("charlm_mingru_vs_lstm_analyze", STUDY / "analyze.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_charlm_mingru_runs_three_steps(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = compose(
        [
            "experiment=charlm_mingru",
            "trainer.max_steps=3",
            "trainer.progress_bar=false",
            # small and quick: the experiment's own sizes are checked by the config test
            "model.embed_dim=16",
            "model.hidden_size=16",
            "data.seq_len=32",
            "data.limit=96",
            "data.max_eval_windows=8",
            "data.sample_chars=20",
            "trainer.log_checkpoints=false",
            f"work_dir={tmp_path}",
            f"tracking.uri={uri}",
            "tracking.experiment=mingru-smoke",
        ]
    )
    assert cfg.model._target_ == "labkit_mingru.models.MinGRULM" and cfg.data.name == "python_stdlib"
    from labkit.tracking.mlflow_tracker import MLflowTracker

    parent = MLflowTracker(uri=uri, experiment="mingru-smoke", run_name="sweep")
    result = run(cfg, parent_run_id=parent.run_id, tags={"study": "charlm_mingru_vs_lstm"})
    parent.finish("FINISHED")
    assert result["step"] == 3 and result["epoch"] == 1
    assert result["test/bits_per_char"] > 0 and result["val/loss"] > 0
    from labkit.tracking.store import make_client

    client = make_client(uri)
    finished = client.get_run(result["run_id"])
    assert finished.info.status == "FINISHED"
    assert finished.data.tags["labkit.model"] == "labkit_mingru.models.MinGRULM"
    artifacts = {a.path for a in client.list_artifacts(result["run_id"])}
    assert {"samples", "model_summary.txt", "model"} <= artifacts  # "model": the MLflow pyfunc of the MinGRULM

    # the study's analysis reads the run back: one trial, its size, curve and test score
    analyze = _analyze_module()
    out = tmp_path / "report"
    assert analyze.main(["--tracking-uri", uri, "--out-dir", str(out)]) == 0
    trial = analyze.read_trial(client, finished)
    assert trial.model == "minGRU" and trial.status == "FINISHED"
    assert trial.val_bpc == [(1, pytest.approx(result["val/bits_per_char"]))]
    assert trial.test_bpc == pytest.approx(result["test/bits_per_char"])
    assert len(trial.epoch_wall_s) == 1 and trial.epoch_wall_s[0] > 0
    from labkit_mingru.models import MinGRULM

    expected_params = MinGRULM(162, 16, 16, 2).num_parameters()  # python_stdlib's 162 characters
    assert trial.params == expected_params
    table = (out / "results.md").read_text()
    assert f"| minGRU | {expected_params:,} | {result['val/bits_per_char']:.3f} |" in table
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
