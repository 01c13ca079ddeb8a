"""``labkit plugins new``: the generated package is valid and passes the conformance kit as it is."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from labkit.plugins import check_plugin
from labkit.plugins.scaffold import scaffold


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_scaffold_is_a_conforming_plugin(plugin_env, tmp_path):
    root = scaffold("scaffy", tmp_path)
    assert root == tmp_path / "labkit-scaffy"
    project = tomllib.loads((root / "pyproject.toml").read_text())
    entry = project["project"]["entry-points"]["labkit.plugins"]
    assert entry == {"scaffy": "labkit_scaffy.plugin"}
    assert project["tool"]["setuptools"]["package-data"] == {"labkit_scaffy": ["conf/*/*.yaml"]}

    plugin_env.add(root, "labkit-scaffy", entry)
    report = check_plugin("scaffy", run_experiments=False)
    assert report.ok, report.table()
    names = {item.name for item in report.items}
    assert {
        "op scaffy.softclip [cpu] spec 'softclip'",
        "op scaffy.softclip [cpu] spec 'softclip_saturated'",
        "module scaffy.SoftClipLinear [cpu]",
        "module scaffy.SoftClipNet [cpu]",
        "import function scaffy.softclip",
        "config model/scaffy",
        "config experiment/scaffy_digits",
    } <= names

    tests = _load(root / "tests" / "test_scaffy_plugin.py", "scaffy_generated_tests")
    tests.test_softclip_closed_form()
    tests.test_softclip_rejects_a_bad_limit()


def test_the_scaffold_is_ruff_clean(tmp_path):
    root = scaffold("lintme", tmp_path)
    ruff = [sys.executable, "-m", "ruff"]  # ruff comes with the test extra
    lint = [*ruff, "check", "--isolated", "--line-length", "120", "--select", "E,F,W,I,B,UP", "."]
    fmt = [*ruff, "format", "--isolated", "--line-length", "120", "--check", "."]
    for command in (lint, fmt):
        done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_wrong_op_in_the_scaffold_is_caught(plugin_env, tmp_path):
    root = scaffold("broken", tmp_path)
    ops = root / "labkit_broken" / "ops.py"
    ops.write_text(ops.read_text().replace("return gy * (1.0 - u * u)", "return gy * (1.0 - u)"))
    plugin_env.add(root, "labkit-broken", {"broken": "labkit_broken.plugin"})
    report = check_plugin("broken", run_experiments=False)
    failed = {item.name for item in report.failed}
    assert "op broken.softclip [cpu] spec 'softclip'" in failed
    assert "module broken.SoftClipLinear [cpu]" in failed


@pytest.mark.parametrize("name", ["", "Caps", "has-dash", "1st", "labkit"])
def test_bad_names_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match="expected a plugin name"):
        scaffold(name, tmp_path)
