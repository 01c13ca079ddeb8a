"""Bad input: clashing plugin names, clashing kernels, a plugin that raises at import (labkit keeps working)."""

from __future__ import annotations

import pytest

import labkit
import labkit.functional as F
from labkit.plugins import registry, selected_kernels, use_kernels
from tests.plugins.fakes import BOOM_FILES, GOOD_FILES, kernel_files


def test_the_same_plugin_name_in_two_distributions_names_both(plugin_env):
    plugin_env.install("labkit-dupa", {"dup": "fake_dupa.plugin"}, kernel_files("fake_dupa"))
    plugin_env.install("labkit-dupb", {"dup": "fake_dupb.plugin"}, kernel_files("fake_dupb"))
    plugins = registry.load_plugins()
    assert plugins["dup"].ok and plugins["dup"].dist == "labkit-dupa"
    second = plugins["dup (labkit-dupb 0.1)"]
    assert not second.ok
    assert "'dup' is already taken by labkit-dupa 0.1 (fake_dupa.plugin)" in second.error
    assert "labkit-dupb 0.1 (fake_dupb.plugin) cannot register under it" in second.error
    assert [e.name for e in registry.entries(owner="dup")] == ["dup.tanh@numpy"]  # only the first one's


def test_two_plugins_kernels_for_the_same_op_cannot_both_be_selected(plugin_env):
    plugin_env.install("labkit-kerna", {"kerna": "fake_kerna.plugin"}, kernel_files("fake_kerna"))
    plugin_env.install("labkit-kernd", {"kernd": "fake_kernd.plugin"}, kernel_files("fake_kernd"))
    with pytest.raises(ValueError) as err:
        selected_kernels(["kerna", "kernd"])
    message = str(err.value)
    assert "'tanh' on 'numpy' is provided by both 'kerna.tanh@numpy' (plugin 'kerna')" in message
    assert "'kernd.tanh@numpy' (plugin 'kernd')" in message
    with use_kernels(["kernd"]) as active:  # one of them is fine
        assert active == ["kernd.tanh@numpy"]
        F.tanh(labkit.randn(3))
    import fake_kernd.plugin

    assert fake_kernd.plugin.CALLS[0] == 1
    assert "numpy" not in registry.get("function", "tanh")._kernels


def test_a_plugin_raising_at_import_is_reported_and_the_others_keep_working(plugin_env):
    plugin_env.install("labkit-boom", {"boom": "fake_boom.plugin"}, BOOM_FILES)
    plugin_env.install("labkit-goodfake", {"goodfake": "fake_good.plugin"}, GOOD_FILES)
    plugins = registry.load_plugins()
    assert plugins["boom"].error == "RuntimeError: fake_boom exploded at import"
    assert "Traceback" in plugins["boom"].details
    assert not list(registry.entries(owner="boom"))
    assert plugins["goodfake"].ok and ("op", "goodfake.cube") in plugins["goodfake"].registered
    cube = registry.get("op", "goodfake.cube")
    assert float(cube(labkit.tensor(2.0)).item()) == 8.0
    with pytest.raises(KeyError, match=r"no op named 'boom\.x'"):
        registry.get("op", "boom.x")
