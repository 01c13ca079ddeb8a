"""The named sequence datasets: sunspots, aeon's UEA sets, and the generated tasks."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.data import catalog
from labkit.data.catalog import DatasetNotFoundError, load_dataset, require
from labkit.data.sequence import ForecastSplits, SequenceDataset
from labkit.data.sequence import builtin as seq_builtin

NOWHERE = "/nonexistent-labkit-data"

SUNSPOTS_SAMPLE = """                          MONTHLY MEAN SUNSPOT NUMBERS
===============================================================================
Year    Jan   Feb   Mar   Apr   May   Jun   Jul   Aug   Sep   Oct   Nov   Dec
-------------------------------------------------------------------------------
1749    58.0  62.6  70.0  55.7  85.0  83.5  94.8  66.3  75.9  75.5 158.6  85.2
1750    73.3  75.9  89.2  88.3  90.0 100.0  85.4 103.0  91.2  65.7  63.3  75.4

1751    70.0  43.5  45.3
-------------------------------------------------------------------------------
Note:  Data are preliminary after Dec 08.
"""


def _skip_unless_found(name: str) -> None:
    found = catalog.locate(name, NOWHERE)
    if not found.found:
        pytest.skip(f"{name} is not installed here (looked in {found.looked})")


def test_registered():
    names = set(catalog.dataset_names())
    assert {"sunspots", "japanese_vowels", "adding", "copy", "parity"} <= names
    assert catalog.get_spec("japanese_vowels").domain == "sequence"


def test_sunspots_format(tmp_path):
    path = tmp_path / "sunspots_monthly.dat"
    path.write_text(SUNSPOTS_SAMPLE)
    series, start = seq_builtin.read_sunspots_monthly(path)
    assert start == (1749, 1) and len(series) == 27
    assert series[:2].tolist() == [58.0, 62.599998474121094] and series[-1] == np.float32(45.3)
    path.write_text(SUNSPOTS_SAMPLE.replace("1750 ", "1760 "))
    with pytest.raises(ValueError, match=rf"{path}:6: expected year 1750 after 1749, got 1760"):
        seq_builtin.read_sunspots_monthly(path)
    path.write_text(SUNSPOTS_SAMPLE.replace("75.5 158.6  85.2", "75.5 158.6"))
    with pytest.raises(ValueError, match=rf"{path}:5: expected 12 monthly values"):
        seq_builtin.read_sunspots_monthly(path)


def test_sunspots_from_data_dir_and_not_found(tmp_path, monkeypatch):
    (tmp_path / "sunspots").mkdir()
    (tmp_path / "sunspots" / "sunspots_monthly.dat").write_text(SUNSPOTS_SAMPLE)
    assert require("sunspots", tmp_path) == tmp_path / "sunspots" / "sunspots_monthly.dat"
    monkeypatch.setattr(seq_builtin, "package_dir", lambda name: None)
    with pytest.raises(DatasetNotFoundError, match="pip install statsmodels"):
        require("sunspots", tmp_path / "elsewhere")
    with pytest.raises(DatasetNotFoundError, match="pip install --no-deps aeon"):
        require("japanese_vowels", tmp_path / "elsewhere")


def test_real_sunspots():
    _skip_unless_found("sunspots")
    series, start = seq_builtin.read_sunspots_monthly(require("sunspots", NOWHERE))
    assert start == (1749, 1) and len(series) == 260 * 12 + 6
    assert series[0] == np.float32(58.0) and series[-1] == np.float32(2.6)
    splits = load_dataset("sunspots", NOWHERE, input_len=24, horizon=3)
    assert isinstance(splits, ForecastSplits) and splits.boundaries[1] < len(series)
    x, y = splits.train[0]
    assert x.shape == (24, 1) and y.shape == (3,)
    assert np.allclose(splits.inverse_transform(x[:3, 0]), series[:3], atol=1e-3)
    assert len(load_dataset("sunspots", NOWHERE, split="test", input_len=24)) == len(splits.test) + 2


def test_real_japanese_vowels_splits():
    _skip_unless_found("japanese_vowels")
    splits = load_dataset("japanese_vowels", NOWHERE)
    assert set(splits) == {"train", "test"} and len(splits["train"]) == 270 and len(splits["test"]) == 370
    x, y = splits["train"][0]
    assert x.shape[1] == 12 and x.dtype == np.float32 and splits["train"].classes[y] == "1"
    carved = load_dataset("japanese_vowels", NOWHERE, val_frac=0.2)
    assert len(carved["train"]) + len(carved["valid"]) == 270 and len(carved["test"]) == 370
    assert np.bincount(carved["valid"].targets).tolist() == [6] * 9


def test_generated_tasks_are_deterministic_and_sized():
    adding = load_dataset("adding", T=30, n_train=200, n_valid=50, n_test=50)
    again = load_dataset("adding", T=30, n_train=100, n_valid=50, n_test=50)
    assert {k: len(v) for k, v in adding.items()} == {"train": 200, "valid": 50, "test": 50}
    assert all(isinstance(v, SequenceDataset) for v in adding.values())
    assert np.array_equal(adding["test"].inputs, again["test"].inputs)  # a split does not depend on the others' sizes
    other = load_dataset("adding", T=30, n_train=200, n_valid=50, n_test=50, seed=1)
    assert not np.array_equal(adding["test"].inputs, other["test"].inputs)
    x, y = adding["train"][0]
    assert x.shape == (30, 2) and y.dtype == np.float32
    copy = load_dataset("copy", split="valid", n_valid=20)
    assert copy.inputs.shape == (20, 40)
    parity = load_dataset("parity", split="train", n_train=100, min_len=4, max_len=6)
    assert set(parity.lengths.tolist()) == {4, 5, 6}
    assert catalog.locate("adding").found
    with pytest.raises(ValueError, match="split: expected one of"):
        load_dataset("parity", split="dev")
