"""Text classification datasets on files the tests write: folders, CSV/TSV, fortune files; splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labkit.data.text import (
    FortuneFile,
    SplitView,
    TextCSV,
    TextFolder,
    make_splits,
    parse_fortunes,
    read_text_file,
    split_indices,
)


def _write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- TextFolder


def test_text_folder_reads_classes_in_order(tmp_path):
    _write(tmp_path / "sport" / "b.txt", "goal!")
    _write(tmp_path / "sport" / "a.txt", "match\r\nday")
    _write(tmp_path / "sport" / "deep" / "c.txt", "nested")
    _write(tmp_path / "news" / "x.TXT", "\ufeffheadline")  # BOM dropped, extension case-insensitive
    _write(tmp_path / "news" / ".hidden.txt", "skip me")
    _write(tmp_path / "news" / "notes.md", "skip me too")
    ds = TextFolder(tmp_path, transform=str.upper)
    assert ds.classes == ["news", "sport"] and ds.class_to_idx == {"news": 0, "sport": 1}
    assert [p.name for p in ds.files] == ["x.TXT", "a.txt", "b.txt", "c.txt"]
    assert ds.texts == ["headline", "match\nday", "goal!", "nested"]
    assert ds.targets.tolist() == [0, 1, 1, 1] and ds.targets.dtype == np.int64
    assert ds[1] == ("MATCH\nDAY", 1)
    assert ds.class_counts() == {"news": 1, "sport": 3}


def test_text_folder_errors_name_the_folder_or_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        TextFolder(tmp_path / "missing")
    with pytest.raises(ValueError, match="one sub-folder per class"):
        TextFolder(tmp_path)
    _write(tmp_path / "good" / "a.txt", "fine")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=f"class folder {tmp_path / 'empty'} holds no .txt files"):
        TextFolder(tmp_path)
    (tmp_path / "empty").rmdir()
    bad = _write(tmp_path / "good" / "latin.txt", "line one\nprice \xa315\n".encode("latin-1"))
    with pytest.raises(ValueError, match=rf"{bad}:2: expected UTF-8 text, got byte 0xa3"):
        TextFolder(tmp_path)
    ds = TextFolder(tmp_path, fallback_encoding="latin-1")
    assert "price £15" in ds.texts[1]


def test_read_text_file_names_an_unreadable_path(tmp_path):
    with pytest.raises(OSError, match=f"cannot read text file {tmp_path}"):
        read_text_file(tmp_path)  # a directory


# ---------------------------------------------------------------------------- TextCSV


def test_csv_with_quotes_and_embedded_newlines(tmp_path):
    path = _write(tmp_path / "d.csv", 'id,text,label\n1,"hello, world",pos\n2,"two\nlines",neg\n\n3,plain,pos\n')
    ds = TextCSV(path, "text", "label")
    assert ds.delimiter == ","
    assert ds.texts == ["hello, world", "two\nlines", "plain"]
    assert ds.classes == ["neg", "pos"] and ds.targets.tolist() == [1, 0, 1]


def test_tsv_sniffed_delimiter_and_numeric_labels(tmp_path):
    tsv = _write(tmp_path / "d.tsv", "label\ttext\n10\tten\n2\ttwo\n1\tone\n")
    ds = TextCSV(tsv, "text", "label")
    assert ds.classes == ["1", "2", "10"]  # numeric order, not "1", "10", "2"
    assert ds[0] == ("ten", 2)
    semi = _write(tmp_path / "d.txt", "text;label\nabc;x\ndef;y\nghi;x\n")
    assert TextCSV(semi, "text", "label").delimiter == ";"
    assert TextCSV(semi, 0, 1).texts == ["abc", "def", "ghi"]


def test_csv_errors(tmp_path):
    path = _write(tmp_path / "d.csv", "body,label\nhi,a\n")
    with pytest.raises(ValueError, match=r"text_column: no column 'text'; the columns are \['body', 'label'\]") as info:
        TextCSV(path, "text", "label")
    assert str(path) in str(info.value)
    ragged = _write(tmp_path / "r.csv", "text,label\nok,a\nbad,a,extra\n")
    with pytest.raises(ValueError, match=rf"{ragged}:3: expected 2 fields separated by ',', got 3"):
        TextCSV(ragged, "text", "label")
    with pytest.raises(ValueError, match=rf"{path}:2: column 'label': expected one of the classes \['b'\], got 'a'"):
        TextCSV(path, "body", "label", classes=["b"])
    with pytest.raises(ValueError, match="expected a header row"):
        TextCSV(_write(tmp_path / "e.csv", ""), "text", "label")
    with pytest.raises(ValueError, match="label_column: expected a column index in"):
        TextCSV(path, "body", 5)


# ---------------------------------------------------------------------------- fortunes


def _fortune_dir(root: Path) -> Path:
    _write(root / "wisdom", "Know thyself.\n%\nTwo\nlines.\n%\n%\nThird.\n")
    _write(root / "food", "Eat.\n%\n_\bB_\bo_\bl_\bd bread.\n%\n")
    _write(root / "tiny", "Only one.\n")
    _write(root / "wisdom.dat", b"\x00\x01\xff binary index")
    (root / "wisdom.u8").symlink_to(root / "wisdom")
    return root


def test_parse_fortunes_blocks_and_overstrike(tmp_path):
    root = _fortune_dir(tmp_path)
    assert parse_fortunes(root / "wisdom") == ["Know thyself.", "Two\nlines.", "Third."]
    assert parse_fortunes(root / "food") == ["Eat.", "Bold bread."]
    assert parse_fortunes(root / "food", strip_overstrike=False)[1].startswith("_\bB")


def test_fortune_file_directory_categories_and_top_k(tmp_path):
    root = _fortune_dir(tmp_path)
    ds = FortuneFile(root)
    assert ds.classes == ["food", "tiny", "wisdom"]  # .dat and .u8 are skipped
    assert len(ds) == 6 and ds.class_counts() == {"food": 2, "tiny": 1, "wisdom": 3}
    assert ds[5] == ("Third.", 2)
    top = FortuneFile(root, top_k=2)
    assert top.classes == ["food", "wisdom"]
    chosen = FortuneFile(root, categories=["tiny", "food"])
    assert chosen.classes == ["food", "tiny"]
    single = FortuneFile(root / "tiny")
    assert single.classes == ["tiny"] and single.texts == ["Only one."]
    listed = FortuneFile([root / "wisdom", root / "food"])
    assert listed.classes == ["food", "wisdom"]


def test_fortune_file_errors(tmp_path):
    root = _fortune_dir(tmp_path)
    with pytest.raises(ValueError, match=r"categories \['nope'\] not found; available: \['food', 'tiny', 'wisdom'\]"):
        FortuneFile(root, categories=["nope"])
    with pytest.raises(ValueError, match=r"top_k: expected an int in \[1, 3\], got 4"):
        FortuneFile(root, top_k=4)
    bad = _write(tmp_path / "other" / "bad", b"fine\n%\n\xff\xfe\n")
    with pytest.raises(ValueError, match=rf"{bad}:3: expected UTF-8"):
        FortuneFile(bad)
    _write(tmp_path / "blank" / "empty", "%\n%\n")
    with pytest.raises(ValueError, match=r"categories \['empty'\] hold no entries"):
        FortuneFile(tmp_path / "blank")
    with pytest.raises(FileNotFoundError, match="neither a file nor a directory"):
        FortuneFile(tmp_path / "missing")


# ---------------------------------------------------------------------------- splits


def test_split_indices_stratified_deterministic_and_disjoint():
    targets = np.repeat([0, 1, 2], [100, 50, 10])
    a = split_indices(targets, val_frac=0.1, test_frac=0.2, seed=3)
    b = split_indices(targets, val_frac=0.1, test_frac=0.2, seed=3)
    c = split_indices(targets, val_frac=0.1, test_frac=0.2, seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])
    joined = np.concatenate(list(a.values()))
    assert sorted(joined.tolist()) == list(range(len(targets)))
    for k, n in (("test", [20, 10, 2]), ("valid", [10, 5, 1])):
        assert np.bincount(targets[a[k]], minlength=3).tolist() == n
    assert len(split_indices(10, 0.2, 0.2)["train"]) == 6
    with pytest.raises(ValueError, match="val_frac \\+ test_frac < 1"):
        split_indices(targets, 0.5, 0.5)
    with pytest.raises(ValueError, match=r"test_frac: expected a fraction in \[0, 1\)"):
        split_indices(targets, 0.1, -0.1)


def test_make_splits_views(tmp_path):
    for c in "ab":
        for i in range(10):
            _write(tmp_path / c / f"{i}.txt", f"{c}{i}")
    ds = TextFolder(tmp_path)
    views = make_splits(ds, 0.2, 0.2, seed=0)
    assert {k: len(v) for k, v in views.items()} == {"train": 12, "valid": 4, "test": 4}
    test = views["test"]
    assert isinstance(test, SplitView) and test.classes == ["a", "b"]
    assert [test[i] for i in range(len(test))] == list(zip(test.texts, test.targets.tolist()))
    assert make_splits(ds, 0.2, 0.2, seed=0, split="test").indices.tolist() == test.indices.tolist()
    with pytest.raises(ValueError, match="split: expected 'train', 'valid', 'test' or None, got 'dev'"):
        make_splits(ds, split="dev")
