"""The plugin as labkit sees it: registration, selection with ``use_kernels``, the conformance kit."""

from __future__ import annotations

import subprocess
import sys

import pytest
from labkit_fastkernels.kernels import conv_grad_input_forward, max_pool2d_forward

import labkit.functional  # noqa: F401  (registers the built-in Functions the kernels replace)
from labkit.ops.conv import ConvGradInput
from labkit.ops.pool import MaxPool2d
from labkit.plugins import check_plugin, load_plugins, registry, use_kernels

KERNELS = {"fastkernels.convgradinput@numpy": ConvGradInput, "fastkernels.maxpool2d@numpy": MaxPool2d}


def test_the_plugin_registers_its_kernels_inactive():
    info = load_plugins()["fastkernels"]
    assert info.ok, info.error
    entries = {e.name: e for e in registry.entries("kernel", owner="fastkernels")}
    assert sorted(entries) == sorted(KERNELS)
    for name, cls in KERNELS.items():
        meta = entries[name].meta
        assert meta["backend"] == "numpy" and meta["selectable"] is True
        assert registry.get("function", meta["function"]) is cls
        assert "numpy" not in cls._kernels  # registered, not selected


def test_discovery_imports_nothing_heavy():
    """plugin.py names the kernels by string: importing it loads neither the kernels nor labkit."""
    code = (
        "import sys, labkit_fastkernels.plugin as p; "
        "print(sorted(m for m in sys.modules if m.startswith(('labkit', 'numpy'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['labkit_fastkernels', 'labkit_fastkernels.plugin']"


def test_use_kernels_selects_them_and_restores_the_builtin():
    assert "numpy" not in ConvGradInput._kernels and "numpy" not in MaxPool2d._kernels
    with use_kernels(["fastkernels"]) as active:
        assert sorted(active) == sorted(KERNELS)
        assert ConvGradInput._kernels["numpy"] is conv_grad_input_forward
        assert MaxPool2d._kernels["numpy"] is max_pool2d_forward
    assert "numpy" not in ConvGradInput._kernels and "numpy" not in MaxPool2d._kernels


def test_a_single_kernel_can_be_selected_and_an_earlier_one_comes_back():
    def earlier(fn, x):  # stands for whatever was active before the block
        return MaxPool2d.forward(fn, x)

    MaxPool2d.register_kernel("numpy", earlier)
    try:
        with use_kernels(["fastkernels.maxpool2d@numpy"]) as active:
            assert active == ["fastkernels.maxpool2d@numpy"]
            assert MaxPool2d._kernels["numpy"] is max_pool2d_forward
            assert "numpy" not in ConvGradInput._kernels
        assert MaxPool2d._kernels["numpy"] is earlier
    finally:
        MaxPool2d._kernels.pop("numpy", None)


def test_an_unknown_selection_names_the_available_kernels():
    with pytest.raises(ValueError, match="fastkernels"):
        with use_kernels(["fastkernel"]):
            pass


def test_check_plugin_passes(tmp_path):
    """The conformance kit: every spec row with and without the kernels, both configs compose, and
    ``experiment=digits_cnn_fast`` trains 3 steps through the runner into a temporary MLflow store."""
    report = check_plugin("fastkernels", work_dir=tmp_path)
    failed = [f"{item.name}: {item.message}" for item in report.items if not item.ok]
    assert report.ok, failed
    names = [item.name for item in report.items]
    assert sum(name.startswith("kernel fastkernels.convgradinput@numpy spec ") for name in names) >= 7
    assert sum(name.startswith("kernel fastkernels.maxpool2d@numpy spec ") for name in names) >= 6
    assert "config backend/cpu_fast" in names and "config experiment/digits_cnn_fast" in names
    assert any(name.startswith("experiment digits_cnn_fast") for name in names)
