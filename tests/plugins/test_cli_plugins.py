"""``labkit plugins list | check | new``: tables, statuses, exit codes, one-line errors."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from labkit.cli.plugins import main
from tests.plugins.fakes import BADGRAD_FILES, BOOM_FILES, GOOD_FILES, kernel_files


def _run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(args), out=out), out.getvalue()


def test_list_shows_versions_what_each_registers_configs_and_failures(plugin_env):
    plugin_env.install("labkit-goodfake", {"goodfake": "fake_good.plugin"}, GOOD_FILES)
    plugin_env.install("labkit-boom", {"boom": "fake_boom.plugin"}, BOOM_FILES)
    plugin_env.install("labkit-dupa", {"dup": "fake_dupa.plugin"}, kernel_files("fake_dupa"))
    plugin_env.install("labkit-dupb", {"dup": "fake_dupb.plugin"}, kernel_files("fake_dupb"))
    status, text = _run("list", "--verbose")
    assert status == 0
    rows: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip():
            rows.setdefault(line.split()[0], line)  # the table row comes before the error lines
    good = rows["goodfake"]
    assert "labkit-goodfake 0.1" in good and " ok " in good
    assert "function 1, module 2, op 1, task 1" in good
    assert "data/fake_toy, experiment/fake_toy, model/cubenet, task/fake_toy" in good
    assert "FAILED" in rows["boom"] and "model/boom_model" in rows["boom"]
    assert "boom failed to load (fake_boom.plugin): RuntimeError: fake_boom exploded at import" in text
    assert "dup (labkit-dupb 0.1) failed to load" in text and "already taken by labkit-dupa 0.1" in text
    assert "  op        goodfake.cube" in text  # --verbose lists every name


def test_list_in_a_fresh_process_survives_a_broken_plugin(plugin_env):
    plugin_env.install("labkit-boom", {"boom": "fake_boom.plugin"}, BOOM_FILES)
    env = {**os.environ, "PYTHONPATH": plugin_env.pythonpath}
    done = subprocess.run(
        [sys.executable, "-m", "labkit", "plugins", "list"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "boom failed to load" in done.stdout and "fake_boom exploded at import" in done.stdout


def test_check_prints_the_report_and_exits_1_on_a_failure(plugin_env, capsys):
    plugin_env.install("labkit-badgrad", {"badgrad": "fake_badgrad.plugin"}, BADGRAD_FILES)
    plugin_env.install("labkit-kerna", {"kerna": "fake_kerna.plugin"}, kernel_files("fake_kerna"))
    status, text = _run("check", "badgrad", "--no-experiments", "--device", "cpu")
    assert status == 1
    assert "plugin 'badgrad' (labkit-badgrad 0.1): FAILED" in text and "FAIL    " in text
    assert "GradcheckError" in text
    status, text = _run("check", "kerna", "--no-experiments")
    assert status == 0 and "PASS" in text and "0 failed" in text
    status, _ = _run("check", "nope")
    assert status == 2
    assert "no installed plugin named 'nope'" in capsys.readouterr().err


def test_new_writes_a_package_and_refuses_bad_names_and_existing_folders(tmp_path, capsys):
    status, text = _run("new", "myops", "--dir", str(tmp_path))
    assert status == 0 and f"wrote {tmp_path / 'labkit-myops'}" in text
    assert (tmp_path / "labkit-myops" / "labkit_myops" / "plugin.py").is_file()
    assert _run("new", "myops", "--dir", str(tmp_path))[0] == 2
    assert "exists already" in capsys.readouterr().err
    assert _run("new", "My-Ops", "--dir", str(tmp_path))[0] == 2
    assert "expected a plugin name of lowercase letters" in capsys.readouterr().err
