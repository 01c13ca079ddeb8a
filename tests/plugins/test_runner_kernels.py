"""``backend.kernels`` in a run: plugin kernels active for the run only, tagged, unknown names refused first."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from labkit.plugins import registry
from labkit.runner import allow_packages, run
from labkit.tracking.base import MemoryTracker
from tests.plugins.fakes import kernel_files
from tests.runner.helpers import toy_config


def test_a_run_uses_the_selected_kernels_and_tags_them(plugin_env, tmp_path):
    plugin_env.install("labkit-kerna", {"kerna": "fake_kerna.plugin"}, kernel_files("fake_kerna"))
    import fake_kerna.plugin

    tanh = registry.get("function", "tanh")
    with allow_packages("tests.runner.toy"):
        plain = MemoryTracker()
        run(toy_config(tmp_path / "a", "trainer.max_epochs=1"), tracker=plain)
        assert fake_kerna.plugin.CALLS[0] == 0 and plain.tags["labkit.kernels"] == "none"

        tracker = MemoryTracker()
        run(toy_config(tmp_path / "b", "trainer.max_epochs=1", "backend.kernels=[kerna]"), tracker=tracker)
    assert tracker.status == "FINISHED"
    assert tracker.tags["labkit.kernels"] == "kerna.tanh@numpy"
    assert fake_kerna.plugin.CALLS[0] > 4  # the toy MLP's tanh ran through the kernel every step
    assert "numpy" not in tanh._kernels  # and the built-in is back after the run
    assert tracker.params["backend.kernels"] == "[kerna]"


def test_unknown_kernels_fail_before_the_run_starts(plugin_env, tmp_path):
    plugin_env.install("labkit-kerna", {"kerna": "fake_kerna.plugin"}, kernel_files("fake_kerna"))
    tracker = MemoryTracker()
    with allow_packages("tests.runner.toy"), pytest.raises(ValueError) as err:
        run(toy_config(tmp_path, "backend.kernels=[kerna,nope]"), tracker=tracker)
    assert "backend.kernels: no plugin kernels named 'nope'" in str(err.value)
    assert "kerna" in str(err.value)  # the available ones are listed
    assert tracker.status is None and not tracker.tags  # nothing was started


def test_backend_kernels_must_be_a_list_of_names(tmp_path):
    plain = OmegaConf.to_container(toy_config(tmp_path))
    plain["backend"]["kernels"] = "kerna"  # a config from anywhere (run(dict), labkit rerun), not through Hydra
    with allow_packages("tests.runner.toy"), pytest.raises(TypeError, match=r"config key 'backend\.kernels'"):
        run(plain, tracker=MemoryTracker())
