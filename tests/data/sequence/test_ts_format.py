"""The UEA/UCR ``.ts`` reader on files the tests write (and on aeon's JapaneseVowels where installed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from labkit.data.sequence import read_ts

MULTI = """# a comment
% an ARFF-style comment
@problemName Toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
1,2,3:4,5,6:up
0.5,?,1.5,2.5:1e-1,-2,3,4:down

7:8:up
"""


def _write(tmp_path: Path, text: str, name: str = "toy.ts") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_multivariate_variable_length_with_missing_values(tmp_path):
    series, labels, classes, meta = read_ts(_write(tmp_path, MULTI))
    assert classes == ["up", "down"] and labels.tolist() == [0, 1, 0] and labels.dtype == np.int64
    assert [s.shape for s in series] == [(3, 2), (4, 2), (1, 2)]
    assert series[0].dtype == np.float32
    assert series[0][:, 1].tolist() == [4, 5, 6]
    assert np.isnan(series[1][1, 0]) and np.isclose(series[1][0, 1], 0.1)
    assert meta["problem_name"] == "Toy" and meta["dimensions"] == 2 and meta["equal_length"] is False
    assert meta["n_cases"] == 3 and meta["n_channels"] == 2


def test_univariate_regression_and_unlabelled(tmp_path):
    reg = "@problemName R\n@univariate true\n@targetlabel true\n@DATA\n1,2,3:0.25\n4,5,6:-1.5\n"
    series, labels, classes, _ = read_ts(_write(tmp_path, reg))
    assert classes == [] and labels.dtype == np.float32 and labels.tolist() == [0.25, -1.5]
    assert series[1][:, 0].tolist() == [4, 5, 6]
    plain = "@problemName U\n@classLabel false\n@data\n1,2\n3,4,5\n"
    series, labels, classes, _ = read_ts(_write(tmp_path, plain, "u.ts"))
    assert labels is None and [len(s) for s in series] == [2, 3]


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        (MULTI.replace("0.5,?,1.5", "0.5,abc,1.5"), 12, r"channel 0, value 1: expected a number or '\?', got 'abc'"),
        (MULTI.replace("7:8:up", "7:up"), 14, "expected 2 channels separated by ':', got 1"),
        (
            MULTI.replace("7:8:up", "7:8:sideways"),
            14,
            r"expected a label in @classLabel \['up', 'down'\], got 'sideways'",
        ),
        (MULTI.replace("1,2,3:4,5,6:up", "1,2,3:4,5:up"), 11, r"equal lengths, got \[3, 2\]"),
        (MULTI.replace("7:8:up", "@extra tag"), 14, "expected a case after @data"),
        (MULTI.replace("@dimensions 2", "@dimensions two"), 7, "@dimensions: expected an integer, got 'two'"),
        (MULTI.replace("@missing true", "@missing maybe"), 5, "@missing: expected true or false, got 'maybe'"),
        (MULTI.replace("1,2,3:4,5,6:up", "1,2,3"), 11, "expected channels and a label separated by ':'"),
        ("@problemName X\n1,2,3\n", 2, "expected a header tag"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, text, line, match):
    path = _write(tmp_path, text)
    with pytest.raises(ValueError, match=match) as info:
        read_ts(path)
    assert f"{path}:{line}:" in str(info.value)


def test_whole_file_errors(tmp_path):
    with pytest.raises(ValueError, match="expected an @data line"):
        read_ts(_write(tmp_path, "@problemName X\n@univariate true\n"))
    with pytest.raises(ValueError, match="@timeStamps true"):
        read_ts(_write(tmp_path, "@timeStamps true\n@classLabel true 1\n@data\n(0,1):1\n"))
    eq = "@equalLength true\n@seriesLength 3\n@classLabel true a\n@data\n1,2,3:a\n1,2:a\n"
    with pytest.raises(ValueError, match="expected @seriesLength 3 values per channel, got 2"):
        read_ts(_write(tmp_path, eq))
    bad_target = "@targetLabel true\n@data\n1,2:0.5\n1,2:high\n"
    with pytest.raises(ValueError, match=r":4: expected a numeric target"):
        read_ts(_write(tmp_path, bad_target))


def test_real_japanese_vowels():
    spec = importlib.util.find_spec("aeon")
    if spec is None:
        pytest.skip("aeon is not installed (pip install --no-deps aeon)")
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "JapaneseVowels"
    train = read_ts(folder / "JapaneseVowels_TRAIN.ts")
    test = read_ts(folder / "JapaneseVowels_TEST.ts")
    assert len(train.series) == 270 and len(test.series) == 370
    assert train.classes == [str(i) for i in range(1, 10)]
    assert np.bincount(train.labels).tolist() == [30] * 9
    lengths = [len(s) for s in train.series + test.series]
    assert min(lengths) == 7 and max(lengths) == 29
    assert all(s.shape[1] == 12 and np.isfinite(s).all() for s in train.series)
