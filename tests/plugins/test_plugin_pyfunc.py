"""A plugin's model can be rebuilt by the MLflow pyfunc loader (its package is allowed without importing it)."""

from __future__ import annotations

from labkit.tracking.pyfunc import allowed_packages, build_from_config
from tests.plugins.fakes import GOOD_FILES


def test_plugin_model_targets_are_allowed_and_rebuilt(plugin_env):
    assert "fake_good" not in allowed_packages()
    plugin_env.install("fake-good", {"fake_good": "fake_good.plugin"}, GOOD_FILES)
    assert "fake_good" in allowed_packages()  # registered lazily: the allowlist comes from the plugin's package
    model = build_from_config({"_target_": "fake_good.models.CubeNet", "in_features": 3, "num_classes": 2})
    assert type(model).__module__ == "fake_good.models"
