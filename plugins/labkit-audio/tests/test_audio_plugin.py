"""The plugin as installed: what it registers, the conformance kit, a light entry point, the model's gradients."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from labkit_audio.checks import audio_cnn_example
from labkit_audio.models import AudioCNN

import labkit
from labkit.plugins import registry
from labkit.testing import gradcheck, gradgradcheck


def test_registered_names_are_namespaced_and_owned_by_the_plugin():
    registry.load_plugins()
    for kind, name in [("dataset", "audio.tones"), ("task", "audio.AudioClassification"), ("module", "audio.AudioCNN")]:
        assert registry.owner(kind, name) == "audio"
    assert registry.get("dataset", "audio.tones").name == "audio.tones"
    assert registry.get("module", "audio.AudioCNN") is AudioCNN


def test_conformance_kit_passes():
    report = labkit.plugins.check_plugin("audio", run_experiments=False)  # the 3-step run: test_audio_run.py
    names = [item.name for item in report.items]
    assert report.ok, report.table()
    assert "module audio.AudioCNN [cpu]" in names and "config experiment/audio_cnn" in names
    assert "import dataset audio.tones" in names and "import task audio.AudioClassification" in names


def test_entry_point_module_imports_nothing_heavy():
    code = (
        "import sys, labkit_audio.plugin; "
        "heavy = [m for m in ('labkit_audio.task', 'labkit_audio.synth', 'labkit_audio.models', 'matplotlib', "
        "'scipy', 'mlflow', 'hydra') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_model_example_gradients_and_double_backward():
    model, (x,) = audio_cnn_example(labkit.Generator(0))
    params = list(model.parameters())
    assert x.dtype == np.float64 and all(p.dtype == np.float64 for p in params)

    def f(x, *weights):
        return model(x)

    assert gradcheck(f, [x, *params])
    assert gradgradcheck(lambda x: model(x), [x])


def test_model_shapes_time_averaging_and_errors():
    model = AudioCNN(num_classes=5, n_mels=16, n_frames=20, channels=[4, 8], hidden=6, generator=labkit.Generator(0))
    x = labkit.randn(3, 1, 16, 20, generator=labkit.Generator(1))
    assert model(x).shape == (3, 5)
    assert model.head[0].weight.shape == (6, 8 * 4)  # channels x mel bands after two halvings; time averaged
    with pytest.raises(ValueError, match="allow 3 halvings"):
        AudioCNN(num_classes=2, n_mels=4, n_frames=40, channels=[2, 2, 2])
    with pytest.raises(ValueError, match="dropout in \\[0, 1\\)"):
        AudioCNN(num_classes=2, n_mels=8, n_frames=8, dropout=1.5)
    with pytest.raises(ValueError, match="num_classes as an int >= 1"):
        AudioCNN(num_classes=0, n_mels=8, n_frames=8)
