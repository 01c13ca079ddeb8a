"""The three example plugins in plugins/: installed (entry points present) and conforming, experiments included.

Install them first: ``pip install ./plugins/labkit-mingru ./plugins/labkit-audio ./plugins/labkit-fastkernels``
(``.ci/run`` does). Each check trains the plugin's experiments for 3 steps against one temporary MLflow store.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from labkit.plugins import check_plugin, registry
from labkit.plugins.conformance import EXPERIMENT_LIMIT
from labkit.runner.hydra_app import compose

EXAMPLES = ("mingru", "audio", "fastkernels")


def _require_installed(name: str) -> None:
    installed = {ep.name for ep in entry_points(group="labkit.plugins")}
    assert name in installed, (
        f"example plugin {name!r} is not installed (no 'labkit.plugins' entry point named {name!r}); "
        f"install it with: pip install ./plugins/labkit-{name}"
    )


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("example-plugins")  # one MLflow store for all three checks


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_plugin_is_installed_and_loads(name: str) -> None:
    _require_installed(name)
    info = registry.load_plugins(reload=True)[name]
    assert info.ok, info.details
    assert info.registered, f"plugin {name!r} registers nothing"
    assert any(c.startswith("experiment/") for c in info.configs()), f"plugin {name!r} ships no experiment config"


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_plugin_passes_the_conformance_kit(name: str, work_dir: Path) -> None:
    _require_installed(name)
    report = check_plugin(name, work_dir=work_dir)
    assert report.ok, report.table()
    ran = [i for i in report.items if i.name.startswith("experiment ")]
    assert ran and all("FINISHED after 3 steps" in i.message for i in ran), report.table()


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_labkit_train_runs_each_example_experiment(name: str, work_dir: Path) -> None:
    """``labkit train experiment=...`` in a fresh process: configs found through labkit's SearchPathPlugin."""
    _require_installed(name)
    experiments = [c.split("/", 1)[1] for c in registry.load_plugins()[name].configs() if c.startswith("experiment/")]
    store = f"sqlite:///{work_dir / 'mlflow.db'}"
    for experiment in experiments:
        short = ["trainer.max_steps=3", "trainer.max_epochs=1", "trainer.progress_bar=false"]
        if "limit" in compose([f"experiment={experiment}"]).data:
            short.append(f"data.limit={EXPERIMENT_LIMIT}")
        command = ["train", f"experiment={experiment}", *short, f"tracking.uri={store}", f"work_dir={work_dir}"]
        done = subprocess.run(
            [sys.executable, "-m", "labkit", *command],
            cwd=work_dir,
            env={**os.environ, "HYDRA_FULL_ERROR": "1"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"labkit {' '.join(command)}:\n{done.stderr[-3000:]}"
        assert re.search(r"Run \w+ finished after [01] epochs, 3 steps\.", done.stdout), done.stdout
