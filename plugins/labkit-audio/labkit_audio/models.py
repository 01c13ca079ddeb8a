"""``AudioCNN``: a small CNN over log-mel spectrograms, built from labkit.nn layers."""

from __future__ import annotations

from typing import Any

import labkit.functional as F
import labkit.nn as nn
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.models.vision import conv_pool_blocks, pooled_size

__all__ = ["AudioCNN"]


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"AudioCNN: expected {name} as an int >= 1, got {value!r}")
    return int(value)


class AudioCNN(nn.Module):
    """``[Conv3x3 -> (BatchNorm) -> ReLU -> MaxPool2]`` per entry of ``channels``, the mean over time,
    then ``Linear -> ReLU -> Dropout -> Linear``.

    Shapes: ``x (B, in_channels, n_mels, n_frames)`` float32 -> logits ``(B, num_classes)``. The
    frequency axis is kept (flattened into the head: pitch matters), the time axis is averaged
    (an event may start anywhere). ``n_mels`` and ``n_frames`` must allow ``len(channels)`` halvings.
    """

    def __init__(
        self,
        num_classes: int,
        n_mels: int,
        n_frames: int,
        in_channels: int = 1,
        channels: Any = (8, 16, 32),
        hidden: int = 64,
        dropout: float = 0.0,
        batch_norm: bool = True,
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = _positive_int("num_classes", num_classes)
        height, width = _positive_int("n_mels", n_mels), _positive_int("n_frames", n_frames)
        in_channels = _positive_int("in_channels", in_channels)
        if isinstance(channels, int) or not hasattr(channels, "__iter__"):
            raise ValueError(f"AudioCNN: expected channels as a list of ints, got {channels!r}")
        self.channels = tuple(_positive_int("channels", c) for c in channels)
        if not self.channels:
            raise ValueError("AudioCNN: expected at least one entry in channels, got an empty list")
        hidden = _positive_int("hidden", hidden)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"AudioCNN: expected dropout in [0, 1), got {dropout!r}")
        pooled = pooled_size(height, width, len(self.channels))
        if pooled is None:
            raise ValueError(
                f"AudioCNN: expected n_mels and n_frames to allow {len(self.channels)} halvings (one per "
                f"entry of channels={list(self.channels)}), got n_mels={n_mels}, n_frames={n_frames}"
            )
        self.features = conv_pool_blocks(in_channels, self.channels, batch_norm, generator)
        self.head = nn.Sequential(
            nn.Linear(self.channels[-1] * pooled[0], hidden, generator=generator),
            nn.ReLU(),
            nn.Dropout(float(dropout), generator=generator),
            nn.Linear(hidden, self.num_classes, generator=generator),
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.features(x)  # (B, C, M', T')
        h = F.mean(h, axis=3)  # (B, C, M'): the time axis averaged
        return self.head(F.reshape(h, (h.shape[0], -1)))  # (B, C * M') -> (B, num_classes)
