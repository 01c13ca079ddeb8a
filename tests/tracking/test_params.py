"""Config flattening, key sanitising, limits (checked against the installed MLflow), system tags."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from labkit.tracking import params as P


def test_flatten_config_nested_values_written_as_overrides():
    cfg = {
        "optim": {"_target_": "labkit.optim.Adam", "lr": 1e-3, "betas": [0.9, 0.999]},
        "model": {"channels": [32, 64], "dropout": None, "bias": True},
        "callbacks": [{"_target_": "a.B", "k": 1}],
        "seed": np.int64(3),
        "empty": {},
    }
    flat = P.flatten_config(cfg)
    assert flat == {
        "optim._target_": "labkit.optim.Adam",
        "optim.lr": "0.001",
        "optim.betas": "[0.9, 0.999]",
        "model.channels": "[32, 64]",
        "model.dropout": "null",
        "model.bias": "true",
        "callbacks.0._target_": "a.B",
        "callbacks.0.k": "1",
        "seed": "3",
        "empty": "{}",
    }


def test_flatten_config_rejects_non_mapping():
    with pytest.raises(TypeError, match="expected a mapping"):
        P.flatten_config([1, 2])  # type: ignore[arg-type]


def test_long_values_truncated_and_long_keys_hashed_apart():
    flat = P.flatten_config({"text": "x" * 10_000})
    assert len(flat["text"]) == P.MAX_PARAM_VAL_LENGTH and flat["text"].endswith("[truncated]")
    a, b = P.sanitize_key("k" * 300 + "a"), P.sanitize_key("k" * 300 + "b")
    assert len(a) == len(b) == P.MAX_KEY_LENGTH and a != b


@pytest.mark.parametrize(
    "key, expected",
    [("train/loss", "train/loss"), ("a:b", "a_b"), ("a//b/", "a/b"), ("/x/../y", "x/_/y"), ("ü ß", "ü ß"), ("", "_")],
)
def test_sanitize_key(key, expected):
    assert P.sanitize_key(key) == expected


def test_sanitized_keys_pass_mlflow_validation():
    from mlflow.utils.validation import _validate_param_name

    for key in ["a:b", "a//b/", "/x/../y", "weird!@#key", "." * 3, "k" * 400]:
        _validate_param_name(P.sanitize_key(key))  # raises MlflowException on a bad key


def test_limits_match_installed_mlflow():
    from mlflow.utils import validation

    assert P.MAX_PARAM_VAL_LENGTH == validation.MAX_PARAM_VAL_LENGTH
    assert P.MAX_TAG_VAL_LENGTH == validation.MAX_TAG_VAL_LENGTH
    assert P.MAX_KEY_LENGTH == validation.MAX_ENTITY_KEY_LENGTH
    assert P.MAX_PARAMS_PER_BATCH == validation.MAX_PARAMS_TAGS_PER_BATCH
    assert P.MAX_METRICS_PER_BATCH == validation.MAX_METRICS_PER_BATCH


def test_batched():
    assert list(P.batched(range(5), 2)) == [[0, 1], [2, 3], [4]]
    assert list(P.batched([], 3)) == []
    with pytest.raises(ValueError, match="positive size"):
        list(P.batched([1], 0))


def test_git_info_commit_and_dirty_flag(tmp_path):
    assert shutil.which("git"), "git is needed to tag runs with their commit"
    assert P.git_info(tmp_path) == {}
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f.txt").write_text("a")
    subprocess.run([*git, "-C", str(tmp_path), "add", "f.txt"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "init"], check=True)
    clean = P.git_info(tmp_path)
    assert len(clean["commit"]) == 40 and clean["dirty"] == "false"
    (tmp_path / "f.txt").write_text("b")
    assert P.git_info(tmp_path)["dirty"] == "true"
    tags = P.system_tags(tmp_path)
    assert tags["mlflow.source.git.commit"] == clean["commit"] and tags["labkit.git.dirty"] == "true"
    assert {"labkit.version", "labkit.command", "labkit.host", "mlflow.source.name"} <= set(tags)


def test_default_run_names_differ():
    assert P.default_run_name() != P.default_run_name()


def test_long_run_names_are_shortened_distinctly_within_mlflows_limit():
    from labkit.tracking.params import MAX_RUN_NAME_LENGTH, shorten_name

    assert shorten_name("digits_cnn-20261126") == "digits_cnn-20261126"
    a = "model=mlp," + ",".join(f"trainer.option_{i}=value_{i}" for i in range(12)) + ",x=1"
    b = a[:-1] + "2"
    sa, sb = shorten_name(a), shorten_name(b)
    assert len(a) > MAX_RUN_NAME_LENGTH and len(sa) == len(sb) == MAX_RUN_NAME_LENGTH
    assert sa[:200] == a[:200] and sa != sb
