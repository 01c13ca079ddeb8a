"""The named sequence datasets: UEA/UCR sets shipped by aeon, monthly sunspots, and generated tasks.

``japanese_vowels`` (and ``basic_motions``, ``gun_point``, ``italy_power_demand``,
``pickup_gesture_wiimote_z``) read the ``.ts`` files of the ``aeon`` package;
``sunspots`` reads statsmodels' ``sunspots_monthly.dat``; ``adding``, ``copy`` and
``parity`` are generated from a seed (nothing to find, so they are always available).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import numpy as np

from labkit.data.catalog import DatasetSpec, Located, register_dataset
from labkit.data.sequence.forecasting import ForecastSplits, forecasting_splits
from labkit.data.sequence.synthetic import SequenceDataset, adding_problem, copy_task, parity
from labkit.data.sequence.ts_format import read_ts
from labkit.data.text.builtin import package_dir
from labkit.data.text.datasets import split_indices

_SPLITS = ("train", "valid", "test")


def _pick(splits: dict[str, Any], split: str | None) -> Any:
    if split is None:
        return splits
    if split not in splits:
        raise ValueError(f"split: expected one of {list(splits)} or None, got {split!r}")
    return splits[split]


# ---------------------------------------------------------------------------- UEA/UCR (.ts via aeon)


def load_ts_splits(folder: Path, problem: str, split: str | None = None, val_frac: float = 0.0, seed: int = 0) -> Any:
    """``{"train", "test"}`` ``SequenceDataset``s of ``<folder>/<problem>_{TRAIN,TEST}.ts``.

    ``val_frac > 0`` also carves a stratified ``valid`` split out of the official train
    split (deterministic for ``seed``); the official test split is never touched.
    Items are ``(x (T_i, C) float32, label int64)``.
    """
    parts = {}
    for name, suffix in (("train", "TRAIN"), ("test", "TEST")):
        data = read_ts(folder / f"{problem}_{suffix}.ts")
        parts[name] = SequenceDataset(data.series, data.labels, data.classes)
    if val_frac > 0:
        train = parts["train"]
        idx = split_indices(train.targets, val_frac=val_frac, test_frac=0.0, seed=seed)
        parts["valid"] = SequenceDataset(
            [train.inputs[i] for i in idx["valid"]], train.targets[idx["valid"]], train.classes
        )
        parts["train"] = SequenceDataset(
            [train.inputs[i] for i in idx["train"]], train.targets[idx["train"]], train.classes
        )
    return _pick(parts, split)


def _register_aeon(name: str, problem: str, description: str, info: dict[str, Any]) -> None:
    def locate(data_dir: Path) -> Located:
        places = [data_dir / name]
        pkg = package_dir("aeon")
        places.append(pkg / "datasets" / "data" / problem if pkg is not None else Path("<aeon not installed>"))
        for place in places:
            if all((place / f"{problem}_{s}.ts").is_file() for s in ("TRAIN", "TEST")):
                return Located(place, tuple(map(str, places)))
        return Located(None, tuple(map(str, places)))

    def load(path: Path, split: str | None = None, val_frac: float = 0.0, seed: int = 0) -> Any:
        return load_ts_splits(path, problem, split, val_frac, seed)

    register_dataset(
        DatasetSpec(
            name=name,
            domain="sequence",
            description=description,
            locate=locate,
            load=load,
            how_to_get=f"pip install --no-deps aeon, or put {problem}_TRAIN.ts and {problem}_TEST.ts in <data_dir>/{name}",
            info={"licence": "UEA/UCR archive (see the .ts header)", "task": "sequence classification", **info},
        )
    )


_register_aeon(
    "japanese_vowels",
    "JapaneseVowels",
    "Nine speakers saying 'ae': 12 LPC cepstrum channels, variable length 7-29, 9 classes",
    {"train": 270, "test": 370, "channels": 12, "classes": 9},
)
_register_aeon(
    "basic_motions",
    "BasicMotions",
    "Smart-watch motion: 6 channels, length 100, 4 activities",
    {"train": 40, "test": 40, "channels": 6, "classes": 4},
)
_register_aeon(
    "gun_point",
    "GunPoint",
    "Hand position drawing a gun or pointing: 1 channel, length 150, 2 classes",
    {"train": 50, "test": 150, "channels": 1, "classes": 2},
)
_register_aeon(
    "italy_power_demand",
    "ItalyPowerDemand",
    "Daily electricity demand: 1 channel, length 24, 2 seasons",
    {"train": 67, "test": 1029, "channels": 1, "classes": 2},
)
_register_aeon(
    "pickup_gesture_wiimote_z",
    "PickupGestureWiimoteZ",
    "Wii remote z-acceleration of pick-up gestures: 1 channel, variable length 29-361, 10 classes",
    {"train": 50, "test": 50, "channels": 1, "classes": 10},
)


# ---------------------------------------------------------------------------- sunspots

_YEAR_ROW = re.compile(r"^(\d{4})((?:\s+-?\d+(?:\.\d*)?)+)\s*$")


def read_sunspots_monthly(path: str | Path) -> tuple[np.ndarray, tuple[int, int]]:
    """Monthly mean sunspot numbers from the SIDC table shipped by statsmodels.

    The file is a header, then one row per year (``YYYY`` and up to 12 monthly values;
    the last year may be partial), blank lines between 5-year blocks, and notes at the
    end. Returns the values float32 ``(N,)`` in time order and ``(first_year, first_month)``.
    A year row with more than 12 values, a missing year, or a short row other than the
    last raises ``ValueError`` naming the file and line.
    """
    path = Path(path)
    rows: list[tuple[int, int, list[float]]] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        m = _YEAR_ROW.match(line)
        if m is None:
            continue
        values = [float(v) for v in m.group(2).split()]
        if len(values) > 12:
            raise ValueError(f"{path}:{lineno}: expected at most 12 monthly values, got {len(values)}")
        rows.append((lineno, int(m.group(1)), values))
    if not rows:
        raise ValueError(f"{path}: expected rows of a year and its monthly values, got none")
    for (line_a, year_a, vals_a), (line_b, year_b, _) in itertools.pairwise(rows):
        if year_b != year_a + 1:
            raise ValueError(f"{path}:{line_b}: expected year {year_a + 1} after {year_a}, got {year_b}")
        if len(vals_a) != 12:
            raise ValueError(
                f"{path}:{line_a}: expected 12 monthly values (only the last year may be partial), got {len(vals_a)}"
            )
    series = np.array([v for _, _, vals in rows for v in vals], dtype=np.float32)
    return series, (rows[0][1], 1)


def _locate_sunspots(data_dir: Path) -> Located:
    places = [data_dir / "sunspots" / "sunspots_monthly.dat"]
    pkg = package_dir("statsmodels")
    places.append(
        pkg / "datasets" / "sunspots" / "src" / "sunspots_monthly.dat"
        if pkg is not None
        else Path("<statsmodels not installed>")
    )
    for place in places:
        if place.is_file():
            return Located(place, tuple(map(str, places)))
    return Located(None, tuple(map(str, places)))


def _load_sunspots(
    path: Path,
    split: str | None = None,
    input_len: int = 48,
    horizon: int = 1,
    val_frac: float = 0.15,
    test_frac: float = 0.15,
    normalize: bool = True,
    stride: int = 1,
) -> ForecastSplits | Any:
    """Time-ordered forecasting splits of the monthly series (normalised on the train years)."""
    series, _ = read_sunspots_monthly(path)
    splits = forecasting_splits(series, input_len, horizon, val_frac, test_frac, normalize=normalize, stride=stride)
    return splits if split is None else _pick(splits.as_dict(), split)


register_dataset(
    DatasetSpec(
        name="sunspots",
        domain="sequence",
        description="Monthly mean sunspot numbers 1749-2009 (3,126 steps), forecasting split by time",
        locate=_locate_sunspots,
        load=_load_sunspots,
        how_to_get="pip install statsmodels, or put sunspots_monthly.dat (SIDC monthly table) in <data_dir>/sunspots",
        info={"steps": 3126, "licence": "public domain", "task": "forecasting"},
    )
)


# ---------------------------------------------------------------------------- generated tasks

_GENERATED = Path("<generated>")


def _locate_generated(data_dir: Path) -> Located:
    return Located(_GENERATED, ("generated from a seed in memory (nothing to download)",))


def _generated_splits(make: Any, sizes: tuple[int, int, int], seed: int, split: str | None) -> Any:
    """One seeded stream per split (``(seed, k)``), so each split does not depend on the others' sizes."""
    out = {}
    for k, (name, n) in enumerate(zip(_SPLITS, sizes)):
        rng = np.random.default_rng((seed, k))
        x, y = make(n, rng)
        out[name] = SequenceDataset(x, y)
    return _pick(out, split)


def _load_adding(
    path: Path,
    split: str | None = None,
    T: int = 100,  # noqa: N803
    n_train: int = 10_000,
    n_valid: int = 1_000,
    n_test: int = 1_000,
    seed: int = 0,
) -> Any:
    """Adding-problem splits: items ``(x (T, 2) float32, y float32)``; the predict-1 baseline MSE is about 0.167."""
    return _generated_splits(lambda n, rng: adding_problem(n, T, rng), (n_train, n_valid, n_test), seed, split)


def _load_copy(
    path: Path,
    split: str | None = None,
    T: int = 10,  # noqa: N803
    n_symbols: int = 8,
    delay: int = 20,
    n_train: int = 10_000,
    n_valid: int = 1_000,
    n_test: int = 1_000,
    seed: int = 0,
) -> Any:
    """Copy-task splits: items ``(x (2T + delay,) int64, y (2T + delay,) int64)`` over ``n_symbols + 2`` ids."""
    return _generated_splits(
        lambda n, rng: copy_task(n, T, n_symbols, delay, rng), (n_train, n_valid, n_test), seed, split
    )


def _load_parity(
    path: Path,
    split: str | None = None,
    min_len: int = 2,
    max_len: int = 24,
    n_train: int = 10_000,
    n_valid: int = 1_000,
    n_test: int = 1_000,
    seed: int = 0,
) -> Any:
    """Variable-length parity splits: items ``(x (T_i, 1) float32, y int64 in {0, 1})``."""
    return _generated_splits(lambda n, rng: parity(n, min_len, max_len, rng), (n_train, n_valid, n_test), seed, split)


for _name, _load, _description in (
    ("adding", _load_adding, "Adding problem (T=100): regress the sum of the two marked values; baseline MSE 0.167"),
    ("copy", _load_copy, "Copy-memory task: repeat 10 symbols after a delay of 20 blanks"),
    ("parity", _load_parity, "Parity of variable-length bit strings (lengths 2-24)"),
):
    register_dataset(
        DatasetSpec(
            name=_name,
            domain="sequence",
            description=_description,
            locate=_locate_generated,
            load=_load,
            how_to_get="nothing to get: generated from a seed",
            info={"generated": True, "splits": {"train": 10_000, "valid": 1_000, "test": 1_000}},
        )
    )
