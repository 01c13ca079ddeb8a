"""Image classifiers: ``SmallCNN`` (conv blocks + an MLP head) and ``MLP`` (flattened pixels).

Both take the sizes an image task reports (``in_channels``, ``num_classes``, ``image_size``)
so a config can swap one for the other, and draw their initial weights from ``generator``.
``conv_pool_blocks`` and ``pooled_size`` build and size SmallCNN's feature extractor; other
CNNs (e.g. the audio plugin's ``AudioCNN`` over log-mel spectrograms) reuse them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import labkit.nn as nn
from labkit.core.random import Generator
from labkit.core.tensor import Tensor
from labkit.models._checks import choice, image_hw, int_tuple, positive_int, probability

__all__ = ["MLP", "SmallCNN", "conv_pool_blocks", "pooled_size"]

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


def pooled_size(height: int, width: int, halvings: int) -> tuple[int, int] | None:
    """``(H, W)`` of an ``(height, width)`` map after ``halvings`` 2x2 max-pools (floor), as ``conv_pool_blocks``
    with ``halvings`` entries leaves it; ``None`` when the map is below ``2 x 2`` before one of them."""
    for _ in range(halvings):
        if height < 2 or width < 2:
            return None
        height, width = height // 2, width // 2
    return height, width


def conv_pool_blocks(
    in_channels: int, channels: Sequence[int], batch_norm: bool = False, generator: Generator | None = None
) -> nn.Sequential:
    """``[Conv3x3 (padding 1) -> (BatchNorm2d) -> ReLU -> MaxPool2]`` per entry of ``channels``.

    Shapes: ``(B, in_channels, H, W)`` -> ``(B, channels[-1], H // 2**n, W // 2**n)`` with
    ``n = len(channels)`` (floor at each pool; check the sizes first with ``pooled_size``).
    With ``batch_norm`` the convolutions have no bias (the norm's shift replaces it).
    """
    blocks: list[nn.Module] = []
    previous = in_channels
    for width_out in channels:
        blocks.append(nn.Conv2d(previous, width_out, 3, padding=1, bias=not batch_norm, generator=generator))
        if batch_norm:
            blocks.append(nn.BatchNorm2d(width_out))
        blocks += [nn.ReLU(), nn.MaxPool2d(2)]
        previous = width_out
    return nn.Sequential(*blocks)


class SmallCNN(nn.Module):
    """``[Conv3x3 -> ReLU -> MaxPool2]`` per entry of ``channels``, then ``Linear -> ReLU -> Dropout -> Linear``.

    Shapes: ``x (B, in_channels, H, W)`` float32 -> logits ``(B, num_classes)``. Each block
    keeps the spatial size (padding 1) and halves it with the pool (floor), so ``image_size``
    must stay >= 1 after ``len(channels)`` halvings. ``batch_norm`` adds BatchNorm2d after
    each convolution.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int | tuple[int, int],
        channels: Any = (32, 64),
        hidden: int = 128,
        dropout: float = 0.0,
        batch_norm: bool = False,
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        name = "SmallCNN"
        self.in_channels = positive_int(name, "in_channels", in_channels)
        self.num_classes = positive_int(name, "num_classes", num_classes)
        height, width = image_hw(name, image_size)
        self.channels = int_tuple(name, "channels", channels)
        hidden = positive_int(name, "hidden", hidden)
        dropout = probability(name, "dropout", dropout)
        pooled = pooled_size(height, width, len(self.channels))
        if pooled is None:
            raise ValueError(
                f"SmallCNN: expected image_size to allow {len(self.channels)} halvings "
                f"(one per entry of channels={list(self.channels)}), got {image_size!r}"
            )
        self.features = conv_pool_blocks(self.in_channels, self.channels, batch_norm, generator)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(self.channels[-1] * pooled[0] * pooled[1], hidden, generator=generator),
            nn.ReLU(),
            nn.Dropout(dropout, generator=generator),
            nn.Linear(hidden, self.num_classes, generator=generator),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (B, C', H', W') -> (B, num_classes)


class MLP(nn.Module):
    """Flatten, then ``Linear -> activation -> Dropout`` per hidden size, then ``Linear``.

    Sizes: give ``input_size`` directly, or ``in_channels`` and ``image_size`` (what an
    image task reports); ``output_size`` or ``num_classes``. Shapes: ``x (B, ...)`` with
    ``input_size`` elements per row -> ``(B, output_size)``.
    """

    def __init__(
        self,
        input_size: int | None = None,
        output_size: int | None = None,
        hidden_sizes: Any = (256,),
        dropout: float = 0.0,
        activation: str = "relu",
        in_channels: int | None = None,
        image_size: int | tuple[int, int] | None = None,
        num_classes: int | None = None,
        generator: Generator | None = None,
    ) -> None:
        super().__init__()
        name = "MLP"
        if input_size is None:
            if in_channels is None or image_size is None:
                raise ValueError("MLP: expected input_size, or in_channels and image_size, got neither")
            height, width = image_hw(name, image_size)
            input_size = positive_int(name, "in_channels", in_channels) * height * width
        if output_size is None and num_classes is None:
            raise ValueError("MLP: expected output_size or num_classes, got neither")
        if output_size is not None and num_classes is not None and output_size != num_classes:
            raise ValueError(
                f"MLP: expected output_size == num_classes when both are given, got {output_size} and {num_classes}"
            )
        self.input_size = positive_int(name, "input_size", input_size)
        self.output_size = positive_int(name, "output_size", output_size if output_size is not None else num_classes)
        hidden = int_tuple(name, "hidden_sizes", hidden_sizes, allow_empty=True)
        dropout = probability(name, "dropout", dropout)
        act = _ACTIVATIONS[choice(name, "activation", activation, sorted(_ACTIVATIONS))]
        layers: list[nn.Module] = [nn.Flatten()]
        previous = self.input_size
        for size in hidden:
            layers += [nn.Linear(previous, size, generator=generator), act()]
            if dropout:
                layers.append(nn.Dropout(dropout, generator=generator))
            previous = size
        layers.append(nn.Linear(previous, self.output_size, generator=generator))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)  # (B, ...) -> (B, output_size)
