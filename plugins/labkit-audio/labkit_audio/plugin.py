"""The ``audio`` plugin's entry point (``labkit.plugins`` entry point ``audio = "labkit_audio.plugin"``).

Registers (names namespaced as ``audio.*``): the ``tones`` dataset, the ``AudioClassification``
task and the ``AudioCNN`` module with a float64 example for the conformance kit. Only light
modules are imported here; the rest are ``"module:attr"`` strings imported on first use.
"""

from __future__ import annotations

from typing import Any

from labkit_audio.catalog import TONES


def register(registry: Any) -> None:
    """Add this plugin's objects to ``registry`` (a ``labkit.plugins.PluginRegistry`` bound to ``audio``)."""
    registry.dataset("tones", TONES)
    registry.task("AudioClassification", "labkit_audio.task:AudioClassification")
    registry.module("AudioCNN", "labkit_audio.models:AudioCNN", example="labkit_audio.checks:audio_cnn_example")
