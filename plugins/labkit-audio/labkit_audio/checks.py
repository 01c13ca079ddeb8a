"""Examples for the conformance kit (``labkit plugins check audio``): small float64 modules and inputs."""

from __future__ import annotations

from typing import Any

import labkit
from labkit.core.random import Generator
from labkit_audio.models import AudioCNN

__all__ = ["audio_cnn_example"]


def audio_cnn_example(generator: Generator) -> tuple[Any, tuple[Any, ...]]:
    """``(AudioCNN in float64, (x (2, 1, 8, 8) float64 requiring grad,))`` for gradcheck and double backward.

    Batch norm is off: in training mode it mixes the batch, which the kit's per-example checks
    need not see; max pooling has no ties on random inputs.
    """
    model = AudioCNN(num_classes=3, n_mels=8, n_frames=8, channels=(2, 3), hidden=4, batch_norm=False,
                     generator=generator).double()  # fmt: skip
    x = labkit.randn(2, 1, 8, 8, generator=generator, dtype="float64", requires_grad=True)
    return model, (x,)
