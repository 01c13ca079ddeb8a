"""The conformance kit on fake plugins: a conforming one passes every item; each defect is one failed item."""

from __future__ import annotations

import pytest

from labkit.core.function import Function
from labkit.plugins import check_plugin, registry
from tests.plugins.fakes import (
    BADCONF_FILES,
    BADEXP_FILES,
    BADGRAD_FILES,
    BADHESS_FILES,
    BOOM_FILES,
    GOOD_FILES,
    kernel_files,
)


def _items(report):
    return {item.name: item for item in report.items}


def test_a_conforming_plugin_passes_every_item(plugin_env):
    plugin_env.install("labkit-goodfake", {"goodfake": "fake_good.plugin"}, GOOD_FILES)
    report = check_plugin("goodfake", run_experiments=False)
    assert report.ok, report.table()
    items = _items(report)
    expected = [
        "op goodfake.cube specs",
        "op goodfake.cube [cpu] spec 'cube'",
        "op goodfake.cube [cpu] spec 'cube_3d'",
        "module goodfake.CubeLayer [cpu]",
        "module goodfake.ScaledCube [cpu]",
        "import function goodfake.cube",
        "import task goodfake.Toy",
        "config model/cubenet",
        "config experiment/fake_toy",
    ]
    assert all(name in items for name in expected), sorted(items)
    assert not any(name.startswith("experiment ") for name in items)
    assert "Hessian-vector" in items["module goodfake.ScaledCube [cpu]"].message  # no differentiable input
    assert report.source == "labkit-goodfake 0.1" and "ok: " in report.summary()


@pytest.mark.slow
def test_experiments_train_3_steps_against_a_temporary_mlflow_store(plugin_env, tmp_path):
    plugin_env.install("labkit-goodfake", {"goodfake": "fake_good.plugin"}, GOOD_FILES)
    plugin_env.install("labkit-badexp", {"badexp": "fake_badexp.plugin"}, BADEXP_FILES)
    report = check_plugin("goodfake", work_dir=tmp_path)
    assert report.ok, report.table()
    finished = _items(report)["experiment fake_toy (3 steps)"]
    assert finished.message.startswith("FINISHED after 3 steps (") and "val/accuracy" in finished.message
    assert (tmp_path / "mlflow.db").is_file()
    failed = _items(check_plugin("badexp", work_dir=tmp_path))["experiment fake_toy_broken (3 steps)"]
    assert not failed.ok and failed.message.startswith("ValueError: Linear: expected")


def test_a_wrong_backward_and_an_op_without_specs_are_failed_items(plugin_env):
    plugin_env.install("labkit-badgrad", {"badgrad": "fake_badgrad.plugin"}, BADGRAD_FILES)
    report = check_plugin("badgrad", run_experiments=False)
    items = _items(report)
    assert not report.ok
    wrong = items["op badgrad.cube [cpu] spec 'cube'"]
    assert not wrong.ok and wrong.message.startswith("GradcheckError: gradcheck[cube]")
    assert "analytic gradient" in wrong.message
    missing = items["op badgrad.nospecs specs"]
    assert not missing.ok and "no specs registered" in missing.message and "specs=" in missing.message
    table = report.table()
    assert "FAIL" in table and "2 failed" in table


def test_a_wrong_second_derivative_and_a_module_without_example_fail(plugin_env):
    plugin_env.install("labkit-badhess", {"badhess": "fake_badhess.plugin"}, BADHESS_FILES)
    report = check_plugin("badhess", run_experiments=False)
    items = _items(report)
    hess = items["module badhess.ScaledCube [cpu]"]
    assert not hess.ok and "GradcheckError: double backward of badhess.ScaledCube" in hess.message
    assert "Hessian-vector product" in hess.message
    no_example = items["module badhess.NoExample [cpu]"]
    assert not no_example.ok and "no example registered" in no_example.message


def test_kernels_are_compared_with_the_builtin_function(plugin_env):
    tanh = registry.get("function", "tanh")
    plugin_env.install("labkit-kerna", {"kerna": "fake_kerna.plugin"}, kernel_files("fake_kerna"))
    plugin_env.install("labkit-kernb", {"kernb": "fake_kernb.plugin"}, kernel_files("fake_kernb", scale="1.001"))
    plugin_env.install("labkit-kernc", {"kernc": "fake_kernc.plugin"}, kernel_files("fake_kernc", spec_fn="F.sigmoid"))

    good = check_plugin("kerna", run_experiments=False)
    assert good.ok, good.table()
    item = _items(good)["kernel kerna.tanh@numpy spec 'tanh' [cpu]"]
    assert "float64 and float32" in item.message
    import fake_kerna.plugin

    assert fake_kerna.plugin.CALLS[0] >= 2  # the kernel really ran (once per dtype at least)

    wrong = _items(check_plugin("kernb", run_experiments=False))["kernel kernb.tanh@numpy spec 'tanh' [cpu]"]
    assert not wrong.ok and "output 0 (float64): kernel" in wrong.message and "vs built-in" in wrong.message

    unused = _items(check_plugin("kernc", run_experiments=False))["kernel kernc.tanh@numpy spec 'tanh' [cpu]"]
    assert not unused.ok and "never called Tanh" in unused.message
    assert "numpy" not in tanh._kernels  # every check put the built-in back
    assert issubclass(tanh, Function)


def test_a_config_with_a_missing_or_refused_target_names_it_and_the_plugin(plugin_env):
    plugin_env.install("labkit-badconf", {"badconf": "fake_badconf.plugin"}, BADCONF_FILES)
    report = check_plugin("badconf", run_experiments=False)
    items = _items(report)
    broken = items["config model/broken"]
    assert not broken.ok
    assert "plugin 'badconf'" in broken.message and "'fake_badconf.layers.Missing'" in broken.message
    outside = items["config model/outside"]
    assert not outside.ok and "refused target 'os.system'" in outside.message


def test_a_plugin_that_fails_to_import_is_one_failed_item(plugin_env):
    plugin_env.install("labkit-boom", {"boom": "fake_boom.plugin"}, BOOM_FILES)
    report = check_plugin("boom")
    assert [i.name for i in report.items] == ["load plugin boom"]
    assert not report.ok and "RuntimeError: fake_boom exploded at import" in report.items[0].message


def test_unknown_plugin_and_device_are_user_errors(plugin_env):
    with pytest.raises(ValueError, match="no installed plugin named 'nope'"):
        check_plugin("nope")
    plugin_env.install("labkit-kerna", {"kerna": "fake_kerna.plugin"}, kernel_files("fake_kerna"))
    with pytest.raises(ValueError, match="expected 'cpu' or 'cuda', got 'tpu'"):
        check_plugin("kerna", devices=["tpu"])
