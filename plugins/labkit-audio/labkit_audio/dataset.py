"""``AudioFolder`` (one class per sub-folder of WAV files) and the ``tones`` loader.

    root/chirp_up/a.wav, root/chirp_up/b.wav, root/tone_low/x.wav ...  ->  classes ["chirp_up", "tone_low"]

Items are ``(samples, label)`` with ``samples`` a float32 ``(N,)`` array in ``[-1, 1)`` (stereo
files are averaged to mono), or the ``transform``'s output. Every file must have the folder's
sample rate (``sample_rate``, or that of the first file).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labkit.data.dataset import Dataset
from labkit_audio.synth import CLASSES, make_tones
from labkit_audio.wav import read_wav, wav_info

__all__ = ["AudioFolder", "find_classes", "load_tones", "tones_folder"]

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
EXTENSIONS = (".wav",)


def find_classes(root: Path, classes: Sequence[str] | None = None) -> list[str]:
    """Sub-folder names of ``root`` (sorted), or ``classes`` in the given order after checking they exist."""
    if not root.is_dir():
        raise FileNotFoundError(f"AudioFolder: root '{root}' is not a directory")
    found = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if classes is None:
        if not found:
            raise ValueError(f"AudioFolder: expected one sub-folder per class in '{root}', got no sub-folders")
        return found
    classes = [str(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise ValueError(f"AudioFolder: classes expected distinct folder names, got {classes}")
    missing = [c for c in classes if c not in found]
    if missing:
        raise ValueError(f"AudioFolder: classes {missing} have no folder in '{root}'; folders there: {found}")
    return classes


class AudioFolder(Dataset):
    """A map-style dataset of ``(samples, label)`` from ``root/<class>/<file>.wav``.

    ``classes`` (sorted folder names unless given), ``class_to_idx``, ``samples`` (``(path, label)``
    pairs sorted by class then file name) and ``targets`` describe it. Hidden files and files
    whose extension is not in ``extensions`` are ignored; a class folder without audio files is
    an error naming the folder. ``sample_rate``: the rate every file must have (``None``: the
    first file's). Files are read when an item is read (``read_wav``: a non-PCM or damaged file
    raises ``ValueError`` naming it).
    """

    def __init__(
        self,
        root: str | Path,
        transform: Callable[[np.ndarray], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        classes: Sequence[str] | None = None,
        sample_rate: int | None = None,
        extensions: Sequence[str] = EXTENSIONS,
    ) -> None:
        self.root = Path(root)
        self.transform, self.target_transform = transform, target_transform
        self.extensions = frozenset(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
        self.classes = find_classes(self.root, classes)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples: list[tuple[str, int]] = []
        for label, name in enumerate(self.classes):
            folder = self.root / name
            files = sorted(
                e.path
                for e in os.scandir(folder)
                if e.is_file() and not e.name.startswith(".") and Path(e.name).suffix.lower() in self.extensions
            )
            if not files:
                raise ValueError(
                    f"AudioFolder: class folder '{folder}' is empty: expected files with extensions "
                    f"{sorted(self.extensions)}, got none"
                )
            self.samples.extend((f, label) for f in files)
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


def _generate_once(folder: Path, make: Callable[[Path], Any]) -> Path:
    """``folder`` holding what ``make(tmp)`` writes, made in a temporary folder and renamed when complete
    (concurrent runs never see half a dataset)."""
    if (folder / ".complete").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    make(tmp)
    (tmp / ".complete").write_text("ok\n")
    try:
        os.replace(tmp, folder)
    except OSError:  # another process finished first, or an old incomplete folder is in the way
        if not (folder / ".complete").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


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

        def make(tmp: Path, n: int = counts[name], stream: int = stream) -> None:
            make_tones(tmp, n, stream, sample_rate, duration, classes, (snr_db[0], snr_db[1]))

        root = _generate_once(folder, make)
        splits[name] = AudioFolder(root, transform, target_transform, classes=classes, sample_rate=sample_rate)
    return splits if split is None else splits[split]
