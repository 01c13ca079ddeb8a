"""labkit's SearchPathPlugin: an installed plugin's conf/ joins labkit's configs (and only labkit's)."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml
from hydra._internal.utils import create_config_search_path

from labkit.runner.hydra_app import CONFIG_DIR, compose
from tests.plugins.fakes import BOOM_FILES, GOOD_FILES


def test_plugin_conf_dirs_are_appended_after_labkits_own(plugin_env, tmp_path):
    root = plugin_env.install("labkit-goodfake", {"goodfake": "fake_good.plugin"}, GOOD_FILES)
    path = create_config_search_path(str(CONFIG_DIR)).get_path()
    providers = [e.provider for e in path]
    assert providers.index("main") < providers.index("labkit-plugin-goodfake") < providers.index("schema")
    element = path[providers.index("labkit-plugin-goodfake")]
    assert element.path == f"file://{(root / 'fake_good' / 'conf').resolve()}"
    other_app = create_config_search_path(str(tmp_path)).get_path()  # some other Hydra app
    assert not any(e.provider.startswith("labkit-plugin-") for e in other_app)
    cfg = compose(["model=cubenet"])
    assert cfg.model._target_ == "fake_good.models.CubeNet" and cfg.model.hidden == 8


def test_labkit_train_sees_plugin_experiments_in_a_fresh_process(plugin_env, tmp_path):
    plugin_env.install("labkit-goodfake", {"goodfake": "fake_good.plugin"}, GOOD_FILES)
    plugin_env.install("labkit-boom", {"boom": "fake_boom.plugin"}, BOOM_FILES)  # broken: must not get in the way
    env = {**os.environ, "PYTHONPATH": plugin_env.pythonpath}
    done = subprocess.run(
        [sys.executable, "-m", "labkit", "train", "--cfg", "job", "experiment=fake_toy", "backend.kernels=[]"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    cfg = yaml.safe_load(done.stdout)
    assert cfg["model"]["_target_"] == "fake_good.models.CubeNet"
    assert cfg["task"]["_target_"] == "fake_good.task.ToyTask"
    assert cfg["data"] == {"name": "toy", "batch_size": 16, "n": 96}
    assert cfg["backend"]["kernels"] == []
