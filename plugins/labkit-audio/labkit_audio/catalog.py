"""The ``tones`` dataset's catalog entry (light: the loader imports the audio modules when called).

Registered by the plugin as ``audio.tones``: ``load_dataset("audio.tones", split="train")``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from labkit.data.catalog import DatasetSpec, Located

__all__ = ["TONES", "locate_tones", "load_tones"]


def locate_tones(data_dir: Path) -> Located:
    """Always available: the clips are generated under ``data_dir/tones`` on first load."""
    return Located(Path(data_dir) / "tones", (str(Path(data_dir) / "tones"),))


def load_tones(path: Path, **kwargs: Any) -> Any:
    """``labkit_audio.dataset.load_tones`` (imported on first use); see it for the keyword arguments."""
    from labkit_audio.dataset import load_tones as load

    known = [name for name in inspect.signature(load).parameters if name != "path"]
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise ValueError(
            f"dataset 'audio.tones': unknown option(s) {unknown} (data.dataset_kwargs); expected among {known}"
        )
    return load(path, **kwargs)


TONES = DatasetSpec(
    name="audio.tones",
    domain="audio",
    description=(
        "Generated 1 s clips at 8 kHz (16-bit mono WAV) of 10 sound classes (tones in two pitch bands, rising and "
        "falling chirps, square and sawtooth waves, AM and FM tones, noise bursts, two-note chords) in noise"
    ),
    locate=locate_tones,
    load=load_tones,
    how_to_get="nothing to get: generated (seeded) with numpy on first load",
    info={
        "clips": "n_per_class (200) train + n_test_per_class (50) test per class",
        "sample_rate": 8000,
        "duration_s": 1.0,
        "classes": 10,
        "licence": "generated",
    },
)
