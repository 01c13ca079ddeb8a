"""``experiment=audio_cnn`` through labkit's runner for 3 steps against a temporary MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.runner import run
from labkit.runner.hydra_app import compose

pytestmark = pytest.mark.slow

pytest.importorskip("mlflow")

CONF = Path(__file__).resolve().parents[1] / "labkit_audio" / "conf"


def _artifacts(client, run_id: str, path: str = "") -> set[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_three_step_run_of_the_experiment_finishes_with_metrics_and_figures(tmp_path):
    from labkit.tracking.store import make_client

    cfg = compose(
        [
            "experiment=audio_cnn",
            "tracking=mlflow",
            f"work_dir={tmp_path}",
            f"data.data_dir={tmp_path / 'data'}",
            "data.dataset_kwargs.n_per_class=3",
            "data.dataset_kwargs.n_test_per_class=1",
            "data.batch_size=8",
            "trainer.max_steps=3",
            "trainer.max_epochs=1",
            "trainer.log_every=1",
            "trainer.log_model=false",
            f"hydra.searchpath=[file://{CONF}]",  # also found by labkit's SearchPathPlugin once installed
        ]
    )
    assert cfg.task._target_ == "labkit_audio.task.AudioClassification"
    assert cfg.model._target_ == "labkit_audio.models.AudioCNN" and cfg.data.name == "audio.tones"
    result = run(cfg)
    assert result["step"] == 3 and 0.0 <= result["test/accuracy"] <= 1.0
    assert result["tracking_uri"] == f"sqlite:///{tmp_path}/mlflow.db"
    client = make_client(result["tracking_uri"])
    info = client.get_run(result["run_id"])
    assert info.info.status == "FINISHED"
    assert {"train/loss", "val/accuracy", "test/accuracy", "test/macro_f1"} <= set(info.data.metrics)
    assert info.data.params["data.name"] == "audio.tones"
    files = _artifacts(client, result["run_id"])
    assert {"figures/confusion_matrix_test.png", "figures/examples_test.png"} <= files
