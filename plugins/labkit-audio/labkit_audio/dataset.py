"""``AudioFolder`` (one class per sub-folder of WAV files) and the ``tones`` loader.

    root/chirp_up/a.wav, root/chirp_up/b.wav, root/tone_low/x.wav ...  ->  classes ["chirp_up", "tone_low"]

Items are ``(samples, label)`` with ``samples`` a float32 ``(N,)`` array in ``[-1, 1)`` (stereo
files are averaged to mono), or the ``transform``'s output. Every file must have the folder's
sample rate (``sample_rate``, or that of the first file).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from labkit.data import folders
from labkit.data.dataset import Dataset
from labkit.data.folders import ON_ERROR, class_files, drop_unreadable, generate_once, normalize_extensions
from labkit_audio.synth import CLASSES, make_tones
from labkit_audio.wav import read_wav, wav_info

__all__ = ["AudioFolder", "find_classes", "load_tones", "tones_folder"]

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
EXTENSIONS = (".wav",)


def find_classes(root: Path, classes: Sequence[str] | None = None) -> list[str]:
    """Sub-folder names of ``root`` (sorted), or ``classes`` in the given order after checking they exist."""
    return folders.find_classes(root, None if classes is None else [str(c) for c in classes], name="AudioFolder")


class AudioFolder(Dataset):
    """A map-style dataset of ``(samples, label)`` from ``root/<class>/<file>.wav``.

    ``classes`` (sorted folder names unless given), ``class_to_idx``, ``samples`` (``(path, label)``
    pairs sorted by class then file name) and ``targets`` describe it. Hidden files and files
    whose extension is not in ``extensions`` are ignored; a class folder without audio files is
    an error naming the folder. ``sample_rate``: the rate every file must have (``None``: the
    first file's). Files are read when an item is read (``read_wav``: a non-PCM or damaged file
    raises ``ValueError`` naming it). ``on_error="skip"`` reads every file once up front instead,
    drops those ``read_wav`` cannot read, lists them in ``skipped`` (``(path, reason)``) and logs a
    warning (a readable file at another sample rate still raises when its item is read).
    """

    def __init__(
        self,
        root: str | Path,
        transform: Callable[[np.ndarray], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        classes: Sequence[str] | None = None,
        sample_rate: int | None = None,
        extensions: Sequence[str] = EXTENSIONS,
        on_error: str = "raise",
    ) -> None:
        self.root = Path(root)
        self.transform, self.target_transform = transform, target_transform
        if on_error not in ON_ERROR:
            raise ValueError(f"AudioFolder: on_error expected one of {ON_ERROR}, got {on_error!r}")
        self.extensions = normalize_extensions(extensions)
        self.classes = find_classes(self.root, classes)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples: list[tuple[str, int]] = class_files(self.root, self.classes, self.extensions, name="AudioFolder")
        self.skipped: list[tuple[str, str]] = []
        if on_error == "skip":
            self.samples, self.skipped = drop_unreadable(
                self.samples, partial(read_wav, mono=True), self.root, name="AudioFolder", logger=log
            )
        self.targets = [label for _, label in self.samples]
        self.sample_rate = int(sample_rate) if sample_rate is not None else wav_info(self.samples[0][0])[0]

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, index: int) -> tuple[np.ndarray, int]:
        """``(samples float32 (N,), label)`` of item ``index`` without the transforms."""
        path, label = self.samples[index]
        samples, rate = read_wav(path, mono=True)
        if rate != self.sample_rate:
            raise ValueError(f"AudioFolder: expected {self.sample_rate} Hz in '{path}' (the folder's rate), got {rate}")
        return samples, label

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        samples, label = self.read(index)
        x = self.transform(samples) if self.transform is not None else samples
        y = self.target_transform(label) if self.target_transform is not None else label
        return x, y


# ---- the generated "tones" dataset -----------------------------------------------------------


def tones_folder(
    path: Path, n: int, split: str, seed: int, sample_rate: int, duration: float, classes: Sequence[str], snr_db: Any
) -> Path:
    """Where one generated split lives: ``path/<rate>hz-<duration>s-seed<seed>-<digest>/<split>-n<n>``.

    The digest covers every setting (classes and SNR range too), so two settings never share files.
    """
    setting = repr((sample_rate, float(duration), list(classes), [float(v) for v in snr_db], seed))
    digest = hashlib.sha1(setting.encode()).hexdigest()[:8]
    return Path(path) / f"{sample_rate}hz-{float(duration):g}s-seed{seed}-{digest}" / f"{split}-n{n}"


def load_tones(
    path: Path,
    split: str | None = None,
    n_per_class: int = 200,
    n_test_per_class: int = 50,
    seed: int = 0,
    sample_rate: int = 8000,
    duration: float = 1.0,
    classes: Sequence[str] = CLASSES,
    snr_db: Sequence[float] = (0.0, 20.0),
    transform: Callable[[np.ndarray], Any] | None = None,
    target_transform: Callable[[int], Any] | None = None,
) -> Any:
    """The synthetic ``tones`` clips as ``{"train", "test"}`` AudioFolders (or one with ``split=``).

    Generated on first use under ``path`` (``tones_folder``) with ``make_tones``: train from seed
    ``2 * seed``, test from ``2 * seed + 1``, so the splits never share a clip. Labels follow the
    order of ``classes``.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS} or None (all), got {split!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"tones: expected seed as an int >= 0, got {seed!r}")
    if len(snr_db) != 2:
        raise ValueError(f"tones: expected snr_db as [low, high] in dB, got {list(snr_db)}")
    counts = {"train": n_per_class, "test": n_test_per_class}
    splits = {}
    for name in [split] if split is not None else SPLITS:
        stream = 2 * seed + SPLITS.index(name)
        folder = tones_folder(path, counts[name], name, seed, sample_rate, duration, classes, snr_db)
        make = partial(make_tones, n_per_class=counts[name], seed=stream, sample_rate=sample_rate, duration=duration,
                       classes=classes, snr_db=(snr_db[0], snr_db[1]))  # fmt: skip
        root = generate_once(folder, make)
        splits[name] = AudioFolder(root, transform, target_transform, classes=classes, sample_rate=sample_rate)
    return splits if split is None else splits[split]
