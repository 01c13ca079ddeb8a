"""``make_shapes``: a synthetic, labelled image dataset of geometric shapes drawn with Pillow.

Each image shows one filled shape (its class) at a random position, size and rotation,
in a random colour on a random background colour (kept at least ``MIN_CONTRAST`` apart),
drawn at 4x and downsampled for anti-aliased edges. Image ``i`` of class ``c`` depends
only on ``(seed, the shape's index in SHAPES, i)``, so the same seed writes byte-identical PNGs, and a
larger ``n_per_class`` extends a smaller one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from labkit.data.progress import threaded_map

SHAPES = ("circle", "square", "triangle", "star", "pentagon", "hexagon", "cross", "diamond")
DEFAULT_CLASSES = ("circle", "square", "triangle", "star")
SUPERSAMPLE = 4
MIN_CONTRAST = 120.0  # Euclidean RGB distance between shape and background


def _polygon(name: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]] | None:
    """Vertices of shape ``name`` centred at ``(cx, cy)`` with outer radius ``r``; ``None`` for the circle."""
    if name == "circle":
        return None
    if name == "star":
        radii = [r if k % 2 == 0 else 0.45 * r for k in range(10)]
        angles = [angle + k * math.pi / 5 for k in range(10)]
    elif name == "cross":
        arm = 0.35 * r
        corners = [(arm, r), (arm, arm), (r, arm), (r, -arm), (arm, -arm), (arm, -r)]
        corners += [(-x, -y) for x, y in corners]
        cos, sin = math.cos(angle), math.sin(angle)
        return [(cx + x * cos - y * sin, cy + x * sin + y * cos) for x, y in corners]
    else:
        sides = {"square": 4, "triangle": 3, "pentagon": 5, "hexagon": 6, "diamond": 4}[name]
        radii = [r * (0.6 if name == "diamond" and k % 2 else 1.0) for k in range(sides)]
        angles = [angle + 2 * math.pi * k / sides for k in range(sides)]
    return [(cx + rr * math.cos(a), cy + rr * math.sin(a)) for rr, a in zip(radii, angles)]


def _colours(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    background = rng.integers(0, 256, 3)
    for _ in range(100):
        colour = rng.integers(0, 256, 3)
        if np.linalg.norm(colour - background) >= MIN_CONTRAST:
            break
    else:  # practically unreachable; fall back to the complement
        colour = 255 - background
    return tuple(int(v) for v in colour), tuple(int(v) for v in background)


def draw_shape(name: str, size: int, rng: np.random.Generator, mode: str = "RGB") -> Image.Image:
    """One ``size x size`` image of shape ``name`` with position, radius, rotation and colours from ``rng``."""
    if name not in SHAPES:
        raise ValueError(f"draw_shape: shape expected one of {SHAPES}, got {name!r}")
    big = size * SUPERSAMPLE
    colour, background = _colours(rng)
    r = rng.uniform(0.22, 0.42) * big
    cx, cy = rng.uniform(r, big - r, size=2)
    angle = rng.uniform(0, 2 * math.pi)
    canvas = Image.new("RGB", (big, big), background)
    draw = ImageDraw.Draw(canvas)
    points = _polygon(name, cx, cy, r, angle)
    if points is None:
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    else:
        draw.polygon(points, fill=colour)
    image = canvas.resize((size, size), Image.Resampling.BOX)
    return image if mode == "RGB" else image.convert(mode)


def make_shapes(
    root: str | Path,
    n_per_class: int,
    size: int = 32,
    classes: Sequence[str] = DEFAULT_CLASSES,
    seed: int = 0,
    mode: str = "RGB",
    num_threads: int = 8,
) -> Path:
    """Write ``n_per_class`` PNGs per class as ``root/<class>/<i:05d>.png`` (an ImageFolder layout); returns ``root``.

    ``classes``: names from ``SHAPES``; ``size``: edge in pixels (>= 8); ``mode``: ``"RGB"`` or ``"L"``.
    """
    if not isinstance(n_per_class, int) or n_per_class <= 0:
        raise ValueError(f"make_shapes: n_per_class expected a positive int, got {n_per_class!r}")
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"make_shapes: size expected an int >= 8, got {size!r}")
    unknown = [c for c in classes if c not in SHAPES]
    if unknown or not classes or len(set(classes)) != len(classes):
        raise ValueError(f"make_shapes: classes expected distinct names from {SHAPES}, got {list(classes)}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"make_shapes: seed expected a non-negative int, got {seed!r}")
    if mode not in ("RGB", "L"):
        raise ValueError(f"make_shapes: mode expected 'RGB' or 'L', got {mode!r}")
    root = Path(root)
    jobs = []
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        jobs.extend((name, i) for i in range(n_per_class))

    def write(job: tuple[str, int]) -> None:
        name, i = job
        rng = np.random.default_rng([seed, SHAPES.index(name), i])
        draw_shape(name, size, rng, mode).save(root / name / f"{i:05d}.png", optimize=False)

    threaded_map(write, jobs, num_threads, f"make_shapes {root.name}")
    return root
