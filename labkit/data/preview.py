"""Look at a dataset: a PNG of a few samples with their labels, and a one-line summary of a sample.

Vision samples become a labelled grid drawn with Pillow; text samples a PNG of wrapped
snippets under their labels; sequences a matplotlib figure (imported lazily, Agg only) of
a few series. Samples are read as a dataset gives them: ``(x, label)`` tuples (or ``x``
alone) with ``x`` an HWC/CHW/HW image array, a string or token ids, or a (T,)/(T, C) series.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from labkit.core.random import Generator, resolve
from labkit.data.catalog import get_spec, require

__all__ = [
    "classes_of",
    "guess_domain",
    "label_phrase",
    "load_splits",
    "pick_indices",
    "preview",
    "preview_dataset",
    "render_value",
    "to_image",
]

_BG, _INK, _MUTED = (255, 255, 255), (20, 20, 20), (110, 110, 110)


# ----------------------------------------------------------------------------- reading samples


def load_splits(name: str, data_dir: str | Path | None = None) -> tuple[dict[str, Any], Any]:
    """``({split: dataset}, spec)`` for a named dataset.

    A loader may give a dict of splits, an object with ``as_dict()`` (e.g. ``ForecastSplits``),
    or one dataset, which becomes ``{"all": dataset}``.
    """
    spec = get_spec(name)
    loaded = spec.load(require(name, data_dir))
    if not isinstance(loaded, dict) and callable(getattr(loaded, "as_dict", None)):
        loaded = loaded.as_dict()
    splits = dict(loaded) if isinstance(loaded, dict) else {"all": loaded}
    if not splits:
        raise ValueError(f"dataset {name!r}: its loader returned no splits")
    return splits, spec


def split_sample(sample: Any) -> tuple[Any, Any]:
    """``(x, label)`` of a sample: a 2-tuple/list is ``(x, label)``, a dict uses x/input and y/label/target."""
    if isinstance(sample, tuple | list) and len(sample) == 2:
        return sample[0], sample[1]
    if isinstance(sample, dict):
        x = next((sample[k] for k in ("x", "input", "image", "text", "inputs") if k in sample), None)
        y = next((sample[k] for k in ("y", "label", "target", "targets") if k in sample), None)
        return x, y
    return sample, None


def classes_of(dataset: Any, spec: Any = None) -> list[str] | None:
    """Class names from ``dataset.classes`` (looking through ``.dataset`` wrappers) or ``spec.info["classes"]``."""
    seen = 0
    while dataset is not None and seen < 5:
        classes = getattr(dataset, "classes", None)
        if classes is not None and not callable(classes):
            return [str(c) for c in classes]
        dataset, seen = getattr(dataset, "dataset", None), seen + 1
    classes = (spec.info or {}).get("classes") if spec is not None else None
    return [str(c) for c in classes] if isinstance(classes, list | tuple) else None


def label_text(label: Any, classes: Sequence[str] | None) -> str:
    """``"3 (dress)"`` for a class index with names, the value itself otherwise."""
    if label is None:
        return ""
    if isinstance(label, np.ndarray) and label.ndim == 0:
        label = label.item()
    if isinstance(label, int | np.integer) and not isinstance(label, bool):
        if classes is not None and 0 <= int(label) < len(classes) and classes[int(label)] != str(int(label)):
            return f"{int(label)} ({classes[int(label)]})"
        return str(int(label))
    if isinstance(label, float | np.floating):
        return f"{float(label):.4g}"
    if isinstance(label, np.ndarray):
        return f"array {tuple(label.shape)} {label.dtype}"
    return str(label)


def label_phrase(label: Any, classes: Sequence[str] | None) -> str:
    """``"label 3 (dress)"`` for a class, ``"target 0.734"`` for a regression value."""
    value = label.item() if isinstance(label, np.ndarray) and label.ndim == 0 else label
    kind = "target" if isinstance(value, float | np.floating) else "label"
    return f"{kind} {label_text(value, classes)}"


def _decoder(dataset: Any) -> Callable[[Any], str] | None:
    """A ``decode(ids) -> str`` found on the dataset, its tokenizer or its vocab."""
    for owner in (dataset, getattr(dataset, "tokenizer", None), getattr(dataset, "vocab", None)):
        decode = getattr(owner, "decode", None)
        if callable(decode):
            return decode
    return None


def render_value(x: Any, dataset: Any = None) -> str:
    """Text for a text sample: the string itself, or token ids decoded when the dataset can."""
    if isinstance(x, str):
        return x
    if isinstance(x, bytes):
        return x.decode("utf-8", errors="replace")
    decode = _decoder(dataset)
    if decode is not None:
        try:
            return str(decode(np.asarray(x).tolist()))
        except Exception:  # a decoder with another signature: show the ids instead
            pass
    return f"ids {np.asarray(x).tolist()[:40]}"


def pick_indices(n_total: int, n: int, generator: Generator | np.random.Generator | None = None) -> list[int]:
    """``n`` distinct indices in sorted order, drawn from ``generator`` (all of them when ``n >= n_total``)."""
    if n_total <= n:
        return list(range(n_total))
    return sorted(int(i) for i in resolve(generator).choice(n_total, size=n, replace=False))


# ----------------------------------------------------------------------------- rendering


def preview(
    name: str,
    out: str | Path,
    n: int = 16,
    data_dir: str | Path | None = None,
    split: str | None = None,
    seed: int = 0,
) -> Path:
    """Write a PNG of ``n`` samples of the named dataset (its ``train`` split unless ``split`` says) to ``out``."""
    splits, spec = load_splits(name, data_dir)
    if split is None:
        split = "train" if "train" in splits else next(iter(splits))
    if split not in splits:
        raise ValueError(f"dataset {name!r}: split: expected one of {sorted(splits)}, got {split!r}")
    dataset = splits[split]
    title = f"{name} [{split}]  {len(dataset):,} samples"
    return preview_dataset(dataset, out, spec.domain, n=n, classes=classes_of(dataset, spec), title=title, seed=seed)


def preview_dataset(
    dataset: Any,
    out: str | Path,
    domain: str,
    n: int = 16,
    classes: Sequence[str] | None = None,
    title: str = "",
    seed: int = 0,
) -> Path:
    """Write a PNG of ``n`` random samples (drawn with ``seed``) of a map-style dataset.

    ``domain`` picks the rendering: ``vision`` (an image grid), ``text`` (snippets) or
    ``sequence`` (line plots); any other domain is guessed from the first sample.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"preview: n: expected a positive int, got {n!r}")
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"preview: out: expected a path ending in .png, got {str(out)!r}")
    if len(dataset) == 0:
        raise ValueError(f"preview: the dataset is empty ({title or type(dataset).__name__})")
    if domain not in ("vision", "text", "sequence"):
        domain = guess_domain(dataset[0])
    if domain == "text":
        n = min(n, 8)  # more snippets than this do not fit a readable page
    indices = pick_indices(len(dataset), n, Generator(seed))
    samples = [split_sample(dataset[i]) for i in indices]
    out.parent.mkdir(parents=True, exist_ok=True)
    if domain == "vision":
        _image_grid(samples, indices, classes, title).save(out)
    elif domain == "text":
        _text_page(samples, indices, classes, title, dataset).save(out)
    else:
        _sequence_plot(samples, indices, classes, title, out)
    return out


def guess_domain(sample: Any) -> str:
    """``text`` for strings, ``vision`` for 2-D (at least 8x8) and 3-D arrays, ``sequence`` otherwise."""
    x, _ = split_sample(sample)
    if isinstance(x, str | bytes):
        return "text"
    if isinstance(x, Image.Image):
        return "vision"
    arr = np.asarray(x)
    return "vision" if arr.ndim == 3 or (arr.ndim == 2 and min(arr.shape) >= 8) else "sequence"


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """DejaVu Sans where the system has it (wide coverage: accents, currency signs), else Pillow's default."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        pass
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def to_image(x: Any) -> Image.Image:
    """An RGB PIL image from an HW/HWC/CHW array (any dtype: uint8 as is, [0, 1] floats scaled, else min-max)."""
    if isinstance(x, Image.Image):
        return x.convert("RGB")
    arr = np.asarray(x)
    if arr.ndim == 1 and math.isqrt(arr.size) ** 2 == arr.size:  # flat pixels (CSV rows)
        side = math.isqrt(arr.size)
        arr = arr.reshape(side, side)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)  # CHW -> HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ValueError(f"preview: expected an image of shape (H, W), (H, W, C) or (C, H, W), got {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.nan_to_num(arr.astype(np.float64))
        lo, hi = float(arr.min()), float(arr.max())
        if lo >= 0.0 and hi <= 1.0:
            lo, hi = 0.0, 1.0
        else:
            lo = min(lo, 0.0)
        arr = np.clip((arr - lo) / max(hi - lo, 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(arr).convert("RGB")


def _fit(text: str, font: Any, width: int) -> str:
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text + "..."


def _image_grid(
    samples: list[tuple[Any, Any]], indices: list[int], classes: Sequence[str] | None, title: str
) -> Image.Image:
    images = [to_image(x) for x, _ in samples]
    native = max(max(im.size) for im in images)
    cell = 112 if native <= 112 else min(native, 160)
    cols = min(len(images), math.ceil(math.sqrt(len(images))))
    rows = math.ceil(len(images) / cols)
    font, small = _font(12), _font(10)
    pad, label_h, title_h = 8, 34, 30
    width = max(cols * (cell + pad) + pad, 320)
    sheet = Image.new("RGB", (width, title_h + rows * (cell + label_h + pad) + pad), _BG)
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 8), _fit(title, font, width - 2 * pad), fill=_INK, font=font)
    for k, (image, (_, label), index) in enumerate(zip(images, samples, indices)):
        r, c = divmod(k, cols)
        x0, y0 = pad + c * (cell + pad), title_h + r * (cell + label_h + pad)
        scale = cell / max(image.size)
        size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
        # pixel art stays crisp when enlarged; photographs are resampled smoothly
        resample = Image.Resampling.NEAREST if native <= 64 else Image.Resampling.LANCZOS
        shown = image.resize(size, resample)
        sheet.paste(shown, (x0 + (cell - size[0]) // 2, y0 + (cell - size[1]) // 2))
        draw.rectangle((x0 - 1, y0 - 1, x0 + cell, y0 + cell), outline=(200, 200, 200))
        draw.text((x0, y0 + cell + 3), _fit(label_text(label, classes), font, cell), fill=_INK, font=font)
        draw.text((x0, y0 + cell + 19), f"#{index}  {image.size[0]}x{image.size[1]}", fill=_MUTED, font=small)
    return sheet


def _mono_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """DejaVu Sans Mono where the system has it (code and verse keep their columns), else the default font."""
    try:
        return ImageFont.truetype("DejaVuSansMono.ttf", size)
    except OSError:
        return _font(size)


def _text_lines(text: str, wrap: int, max_lines: int) -> list[str]:
    """Lines of ``text`` wrapped at ``wrap`` characters, line breaks and indents kept, blank runs folded."""
    lines: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        if not raw.strip():
            if lines and lines[-1]:
                lines.append("")
            continue
        lines += textwrap.wrap(raw.rstrip(), wrap, tabsize=4) or [""]
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1][: wrap - 3] + "..."]
    return lines or ["(empty)"]


def _text_page(
    samples: list[tuple[Any, Any]], indices: list[int], classes: Sequence[str] | None, title: str, dataset: Any
) -> Image.Image:
    # language-model windows (the target is a token array) are shown as written, in a monospace font
    windows = not _is_label(samples[0][1]) and samples[0][1] is not None
    font, head = (_mono_font(12) if windows else _font(12)), _font(13)
    width, pad, line_h, max_lines = 900, 14, 17, 10
    alphabet = "etaoin shrdlu cmfwyp vbgkqjxz ETAOIN, "  # a typical mix of letter widths
    wrap = int((width - 2 * pad - 24) / (font.getlength(alphabet) / len(alphabet)))
    blocks = []
    for (x, label), index in zip(samples, indices):
        lines = _text_lines(render_value(x, dataset), wrap, max_lines)
        heading = f"#{index}" + (f"  {label_phrase(label, classes)}" if _is_label(label) else "")
        blocks.append((heading, lines))
    height = pad + 26 + sum(line_h * (len(lines) + 1) + 12 for _, lines in blocks) + pad
    page = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(page)
    draw.text((pad, pad), _fit(title, head, width - 2 * pad), fill=_INK, font=head)
    y = pad + 26
    for heading, lines in blocks:
        draw.text((pad, y), heading, fill=(30, 70, 160), font=head)
        y += line_h
        for line in lines:
            draw.text((pad + 12, y), line, fill=_INK, font=font)
            y += line_h
        y += 6
        draw.line((pad, y, width - pad, y), fill=(225, 225, 225))
        y += 6
    return page


def _is_label(label: Any) -> bool:
    """Whether a sample's second item reads as a label (not a target token window of a language model)."""
    return label is not None and not (isinstance(label, np.ndarray) and label.ndim > 0)


def _sequence_plot(
    samples: list[tuple[Any, Any]], indices: list[int], classes: Sequence[str] | None, title: str, out: Path
) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazily: only previews need matplotlib
    from matplotlib.figure import Figure

    cols = min(len(samples), 4)
    rows = math.ceil(len(samples) / cols)
    fig = Figure(figsize=(3.6 * cols, 2.4 * rows + 0.5), dpi=100)
    FigureCanvasAgg(fig)
    fig.suptitle(title)
    for k, ((x, label), index) in enumerate(zip(samples, indices)):
        ax = fig.add_subplot(rows, cols, k + 1)
        series = np.asarray(x, dtype=np.float64)
        series = series.reshape(len(series), -1) if series.ndim != 2 else series  # (T, C)
        steps = np.arange(series.shape[0])
        discrete = bool(np.all(np.isnan(series) | (series == np.round(series))))  # bits, symbols: draw as steps
        ax.plot(steps, series[:, :12], linewidth=1.0, drawstyle="steps-mid" if discrete else "default")
        heading = f"#{index}  T={series.shape[0]}" + (f" C={series.shape[1]}" if series.shape[1] > 1 else "")
        target = None if label is None else np.asarray(label, dtype=np.float64) if _numeric(label) else None
        if target is not None and target.ndim > 0 and target.size >= 1:  # a forecast horizon: continue the line
            values = target.reshape(target.shape[0], -1)[:, 0]
            if len(values) == len(series):  # a target per step (copy task): drawn over the input
                ax.plot(steps, values, color="tab:red", linewidth=1.0, linestyle="--")
                heading += "  (red dashed: target per step)"
            else:  # a forecast horizon: continues the input
                ahead = np.arange(len(series), len(series) + len(values))
                ax.plot(ahead, values, color="tab:red", linewidth=1.2, marker="o" if len(values) < 4 else None,
                        markersize=3)  # fmt: skip
                heading += "  (red: target)"
        elif label is not None:
            heading += f"  {label_phrase(label, classes)}"
        ax.set_title(heading, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(out, format="png")


def _numeric(value: Any) -> bool:
    try:
        return np.asarray(value).dtype.kind in "biuf"
    except Exception:
        return False
