"""The runner's config groups compose, validate and fail with messages that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from labkit.runner import TargetNotAllowedError, allow_packages
from labkit.runner.hydra_app import CONFIG_DIR
from labkit.runner.instantiate import allowed_prefixes, check_targets
from labkit.runner.schema import register_configs, validate_config
from tests.runner.helpers import TOY, toy_config

GROUPS = ("trainer", "tracking", "backend", "optim", "scheduler")
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONFIG_DIR / g).glob("*.yaml"))]


def _hydra_compose(*overrides: str):
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="train"):
        return compose("config", overrides=[*TOY, *overrides], return_hydra_config=True)


def test_every_group_has_options():
    assert {g for g, _ in OPTIONS} == set(GROUPS)
    assert ("scheduler", "none") in OPTIONS and ("tracking", "memory") in OPTIONS


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_every_option_composes_and_validates(tmp_path, group, option):
    cfg = validate_config(toy_config(tmp_path, f"{group}={option}"))
    assert OmegaConf.to_container(cfg, throw_on_missing=True)
    node = cfg[group]
    if group in ("optim",) or (group == "scheduler" and option != "none"):
        assert node._target_.startswith("labkit.optim.") and node._partial_ is True
    if group == "tracking":
        assert node._target_.startswith("labkit.tracking.")
    if group == "trainer":
        assert cfg.trainer.max_epochs >= 1 and cfg.trainer.early_stopping.patience is None


def test_defaults_are_the_digits_setup_and_hydra_settings():
    cfg = _hydra_compose()
    assert cfg.hydra.job.chdir is False
    assert cfg.hydra.run.dir.startswith("outputs/") and cfg.hydra.sweep.dir.startswith("multirun/")
    assert cfg.hydra.launcher._target_.endswith("BasicLauncher")
    assert cfg.hydra.callbacks.mlflow_sweep._target_ == "labkit.runner.sweep.MLflowSweepCallback"
    assert cfg.hydra.runtime.choices["optim"] == "adam" and cfg.hydra.runtime.choices["tracking"] == "mlflow"
    assert cfg.hydra.runtime.choices["backend"] == "cpu" and cfg.hydra.runtime.choices["scheduler"] == "cosine"
    assert cfg.tracking.uri is None and cfg.seed == 0 and cfg.work_dir is None
    text = (CONFIG_DIR / "config.yaml").read_text()
    for default in ("task: image_classification", "model: small_cnn", "data: digits", "experiment: null"):
        assert default in text


@pytest.mark.parametrize("launcher", ["sequential", "parallel", "slurm", "slurm_local"])
def test_launchers(launcher):
    cfg = _hydra_compose(f"hydra/launcher={launcher}")
    expected = {
        "sequential": "BasicLauncher",
        "parallel": "JoblibLauncher",
        "slurm": "SlurmLauncher",
        "slurm_local": "LocalLauncher",
    }
    assert cfg.hydra.launcher._target_.split(".")[-1] == expected[launcher]


@pytest.mark.parametrize("search", [p.stem for p in sorted((CONFIG_DIR / "hparams_search").glob("*.yaml"))])
def test_hparams_search_configs_are_sweeps(search):
    cfg = _hydra_compose(f"hparams_search={search}")
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.hydra.sweeper.params and cfg.optimized_metric
    if search.startswith("lr_grid"):
        assert set(cfg.hydra.sweeper.params) == {"optim.lr", "optim.weight_decay"}
        assert cfg.optimized_metric == "val/accuracy"
        launcher = "JoblibLauncher" if search.endswith("parallel") else "BasicLauncher"
        assert cfg.hydra.launcher._target_.endswith(launcher)


def test_unknown_group_option_lists_the_valid_ones():
    with pytest.raises(MissingConfigException, match=r"(?s)Could not find 'optim/nope'.*adam.*sgd"):
        _hydra_compose("optim=nope")


def test_schema_refuses_unknown_keys_and_wrong_types(tmp_path):
    with pytest.raises(ConfigCompositionException, match=r"Could not override 'trainer.max_epoch'"):
        _hydra_compose("trainer.max_epoch=3")
    # Hydra lets "+" add a key even to a structured node: validation before the run refuses it
    with pytest.raises(ValueError, match=r"config key 'trainer.max_epoch'"):
        validate_config(toy_config(tmp_path, "+trainer.max_epoch=3"))
    with pytest.raises(ConfigCompositionException) as info:
        _hydra_compose("trainer.max_epochs=ten")
    assert "max_epochs" in str(info.value) + str(info.value.__cause__)


def _plain(tmp_path: Path) -> dict:
    return OmegaConf.to_container(toy_config(tmp_path))


def test_validate_names_unknown_and_mistyped_keys(tmp_path):
    cfg = _plain(tmp_path)
    cfg["trainer"]["max_epoch"] = 3
    with pytest.raises(ValueError, match=r"config key 'trainer.max_epoch'"):
        validate_config(cfg)
    cfg = _plain(tmp_path)
    cfg["trainer"]["max_epochs"] = "ten"
    with pytest.raises(TypeError, match=r"config key 'trainer.max_epochs'"):
        validate_config(cfg)
    cfg = _plain(tmp_path)
    cfg["backend"]["devices"] = "cpu"
    with pytest.raises(ValueError, match=r"config key 'backend.devices'"):
        validate_config(cfg)
    cfg = _plain(tmp_path)
    cfg["trainer"]["checkpoint_interval"] = "hour"
    with pytest.raises(
        ValueError, match=r"'trainer.checkpoint_interval': expected one of \['epoch', 'step'\], got 'hour'"
    ):
        validate_config(cfg)
    cfg = _plain(tmp_path)
    cfg["trainer"]["max_epochs"] = 0
    with pytest.raises(ValueError, match=r"'trainer.max_epochs': expected a positive integer, got 0"):
        validate_config(cfg)


def test_validate_names_missing_values_and_unknown_top_level_keys(tmp_path):
    cfg = _plain(tmp_path)
    cfg["optim"]["lr"] = "???"
    with pytest.raises(ValueError, match=r"config key 'optim.lr': expected a value, got '\?\?\?'"):
        validate_config(cfg)
    cfg = _plain(tmp_path)
    cfg["trainr"] = {}
    with pytest.raises(ValueError, match=r"unknown top-level key\(s\) \['trainr'\]"):
        validate_config(cfg)
    cfg = _plain(tmp_path)
    del cfg["model"]
    with pytest.raises(ValueError, match=r"expected the keys \['model'\] to be set"):
        validate_config(cfg)


def test_validate_fills_schema_defaults(tmp_path):
    cfg = _plain(tmp_path)
    del cfg["trainer"]["grad_clip"]
    cfg["backend"] = {"device": "cpu"}
    out = validate_config(cfg)
    assert out.trainer.grad_clip is None and out.backend.reuse_freed_memory is True


def test_target_allowlist():
    check_targets({"model": {"_target_": "labkit.models.SmallCNN"}, "optim": {"_target_": "labkit.optim.Adam"}})
    for bad in ("os.system", "labkitx.Model", "builtins.eval", "subprocess.run"):
        with pytest.raises(TargetNotAllowedError, match=rf"'model._target_'.*refused target '{bad}'"):
            check_targets({"model": {"_target_": bad}})
    with pytest.raises(TargetNotAllowedError, match=r"'a.0.b._target_'"):
        check_targets({"a": [{"b": {"_target_": "os.remove"}}]})
    with pytest.raises(TargetNotAllowedError, match="expected a dotted import path"):
        check_targets({"model": {"_target_": 3}})
    with allow_packages("tests.runner.toy"):
        check_targets({"model": {"_target_": "tests.runner.toy.ToyMLP"}})
        assert "tests.runner.toy" in allowed_prefixes()
    assert "tests.runner.toy" not in allowed_prefixes()
    with pytest.raises(TargetNotAllowedError):
        check_targets({"model": {"_target_": "tests.runner.toy.ToyMLP"}})
