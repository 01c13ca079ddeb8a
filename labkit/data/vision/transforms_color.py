"""Colour transforms and the array stage: ``ColorJitter``, ``Grayscale``, ``ToArray``, ``Normalize``.

Part of ``labkit.data.vision.transforms`` (import them from there); see its docstring
for the conventions shared by every transform.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from labkit.data.vision.transforms import GeneratorLike, Transform, _like, _rng, to_hwc, to_pil, uniform

# ---- colour ---------------------------------------------------------------------------


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma (Pillow's ``convert("L")`` weights) of a float ``(H, W, 3)`` array."""
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


class ColorJitter(Transform):
    """Random brightness, contrast, saturation (factors uniform in ``[max(0, 1 - v), 1 + v]``) and hue shift.

    Applied in that fixed order on the float image, clipped to [0, 255] after each step:
    brightness ``x * f``; contrast ``(x - mean(luma)) * f + mean(luma)``; saturation
    ``(x - luma) * f + luma``; hue adds ``h`` in ``[-hue, hue]`` (fraction of a turn, ``hue <= 0.5``)
    to Pillow's HSV hue. Saturation and hue leave greyscale images unchanged. An alpha channel is kept.
    """

    def __init__(
        self,
        brightness: float = 0.0,
        contrast: float = 0.0,
        saturation: float = 0.0,
        hue: float = 0.0,
        generator: GeneratorLike = None,
    ) -> None:
        for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if value < 0:
                raise ValueError(f"ColorJitter: {name} expected a non-negative number, got {value!r}")
        if not 0 <= hue <= 0.5:
            raise ValueError(f"ColorJitter: hue expected a number in [0, 0.5], got {hue!r}")
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue
        self.generator = generator

    def _factor(self, rng: np.random.Generator, amount: float) -> float:
        return uniform(rng, max(0.0, 1.0 - amount), 1.0 + amount) if amount else 1.0

    def __call__(self, image: Any) -> Any:
        rng = _rng(self.generator)
        b, c, s = (self._factor(rng, v) for v in (self.brightness, self.contrast, self.saturation))
        h = uniform(rng, -self.hue, self.hue) if self.hue else 0.0
        array = to_hwc(image, "ColorJitter")
        n_colour = 3 if array.shape[2] >= 3 else 1  # RGB(A) or L(A)
        alpha = array[:, :, n_colour:] if array.shape[2] in (2, 4) else None
        colour = array[:, :, :n_colour].astype(np.float32)
        is_rgb = colour.shape[2] == 3
        if b != 1.0:
            colour = np.clip(colour * b, 0, 255)
        if c != 1.0:
            mean = float((_luma(colour) if is_rgb else colour[..., 0]).mean())
            colour = np.clip((colour - mean) * c + mean, 0, 255)
        if s != 1.0 and is_rgb:
            grey = _luma(colour)[..., None]
            colour = np.clip((colour - grey) * s + grey, 0, 255)
        out = np.rint(colour).astype(np.uint8)
        if h and is_rgb:
            hsv = np.array(Image.fromarray(out).convert("HSV"))
            hsv[..., 0] = (hsv[..., 0].astype(np.int16) + round(h * 255)) % 256
            out = np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))
        if alpha is not None:
            out = np.concatenate([out, alpha], axis=2)
        return _like(out, image)


class Grayscale(Transform):
    """Pillow's luma ``L = 0.299 R + 0.587 G + 0.114 B``, as 1 channel or repeated to 3."""

    deterministic = True

    def __init__(self, num_output_channels: int = 1) -> None:
        if num_output_channels not in (1, 3):
            raise ValueError(f"Grayscale: num_output_channels expected 1 or 3, got {num_output_channels!r}")
        self.num_output_channels = num_output_channels

    def __call__(self, image: Any) -> Any:
        pil = to_pil(image, "Grayscale")
        grey = pil.convert("L") if pil.mode != "RGBA" else pil.convert("RGB").convert("L")
        if self.num_output_channels == 3:
            grey = grey.convert("RGB")
        return _like(grey, image)


# ---- to arrays ------------------------------------------------------------------------


class ToArray(Transform):
    """A PIL Image or HWC ``uint8`` array -> a ``(C, H, W)`` ``float32`` array in [0, 1]."""

    def __call__(self, image: Any) -> np.ndarray:
        array = to_hwc(image, "ToArray")
        return np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32) / np.float32(255)


class Normalize(Transform):
    """``(x - mean[c]) / std[c]`` per channel of a ``(C, H, W)`` float array (the output of ToArray)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        if len(self.mean) != len(self.std):
            raise ValueError(
                f"Normalize: expected mean and std of equal length, got {len(self.mean)} and {len(self.std)}"
            )
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std expected non-zero values, got {self.std}")
        self._mean = np.asarray(self.mean, np.float32)[:, None, None]
        self._inv_std = (1 / np.asarray(self.std, np.float32))[:, None, None]

    def __call__(self, array: Any) -> np.ndarray:
        if not isinstance(array, np.ndarray) or array.ndim != 3 or array.dtype.kind != "f":
            got = f"{type(array).__name__} {getattr(array, 'dtype', '')} {getattr(array, 'shape', '')}"
            raise TypeError(f"Normalize: expected a (C, H, W) float array (apply ToArray first), got {got.strip()}")
        if array.shape[0] != len(self.mean):
            raise ValueError(f"Normalize: expected {len(self.mean)} channels (len(mean)), got {array.shape[0]}")
        return ((array - self._mean) * self._inv_std).astype(array.dtype, copy=False)
