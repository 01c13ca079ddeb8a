"""The plugin's configs: ``backend=cpu_fast`` and ``experiment=digits_cnn_fast`` through labkit's runner."""

from __future__ import annotations

from omegaconf import OmegaConf

from labkit.ops.conv import ConvGradInput
from labkit.ops.pool import MaxPool2d
from labkit.runner import run
from labkit.runner.hydra_app import compose
from labkit.tracking.base import MemoryTracker


def _plain(overrides):
    return OmegaConf.to_container(compose(overrides), resolve=True)


def test_cpu_fast_is_labkits_cpu_backend_plus_the_kernels():
    fast, cpu = _plain(["backend=cpu_fast"])["backend"], _plain(["backend=cpu"])["backend"]
    assert fast.pop("kernels") == ["fastkernels"]
    assert cpu.pop("kernels") == []
    assert fast == cpu


def test_digits_cnn_fast_is_digits_cnn_with_the_fast_backend():
    fast, base = _plain(["experiment=digits_cnn_fast"]), _plain(["experiment=digits_cnn"])
    assert fast["backend"]["kernels"] == ["fastkernels"]
    fast["backend"]["kernels"] = base["backend"]["kernels"]
    assert fast == base  # same model, data, optimiser, schedule and trainer: the same accuracy


def test_digits_cnn_fast_trains_three_steps_with_the_kernels_selected(tmp_path):
    cfg = compose(
        [
            "experiment=digits_cnn_fast",
            "trainer.max_steps=3",
            "trainer.progress_bar=false",
            "tracking=memory",
            f"work_dir={tmp_path}",
        ]
    )
    tracker = MemoryTracker()
    result = run(cfg, tracker)
    assert result["step"] == 3 and tracker.status == "FINISHED"
    assert sorted(tracker.tags["labkit.kernels"].split(",")) == [
        "fastkernels.convgradinput@numpy",
        "fastkernels.maxpool2d@numpy",
    ]
    assert 0.0 <= result["test/accuracy"] <= 1.0 and result["test/loss"] > 0
    # the run selected the kernels for its duration only
    assert "numpy" not in ConvGradInput._kernels and "numpy" not in MaxPool2d._kernels
