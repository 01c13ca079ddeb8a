"""labkit.data.folders: class-folder scanning, skipping unreadable files, generating a folder once."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from labkit.data.folders import (
    ON_ERROR,
    class_files,
    drop_unreadable,
    find_classes,
    generate_once,
    normalize_extensions,
)


def tree(root: Path, files: list[str]) -> Path:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
    return root


def test_find_classes_sorts_skips_hidden_and_checks_given_classes(tmp_path: Path) -> None:
    root = tree(tmp_path / "r", ["dog/a.x", "cat/b.x", ".hidden/c.x", "bird/d.x"])
    (root / "loose.x").write_text("not a folder")
    assert find_classes(root, name="ThingFolder") == ["bird", "cat", "dog"]
    assert find_classes(root, ["dog", "cat"], name="ThingFolder") == ["dog", "cat"]
    with pytest.raises(ValueError, match=r"^ThingFolder: classes \['fish'\] have no folder in .*folders there: "):
        find_classes(root, ["cat", "fish"], name="ThingFolder")
    with pytest.raises(ValueError, match=r"^ThingFolder: classes expected distinct folder names, got \['cat', 'cat'\]"):
        find_classes(root, ["cat", "cat"], name="ThingFolder")
    with pytest.raises(FileNotFoundError, match=r"^ThingFolder: root '.*nowhere' is not a directory"):
        find_classes(tmp_path / "nowhere", name="ThingFolder")
    flat = tree(tmp_path / "flat", ["a.x"])
    with pytest.raises(ValueError, match=r"^ThingFolder: expected one sub-folder per class in '.*flat', got no sub"):
        find_classes(flat, name="ThingFolder")


def test_normalize_extensions_lowercases_and_adds_the_dot() -> None:
    assert normalize_extensions(["WAV", ".Png", "jpg"]) == frozenset({".wav", ".png", ".jpg"})
    assert normalize_extensions([]) == frozenset()


def test_class_files_labels_by_class_order_and_filters(tmp_path: Path) -> None:
    root = tree(tmp_path, ["b/2.wav", "b/1.WAV", "b/.3.wav", "b/notes.txt", "a/z.wav"])
    samples = class_files(root, ["b", "a"], normalize_extensions(["wav"]), name="AudioFolder")
    assert [(Path(p).relative_to(root).as_posix(), y) for p, y in samples] == [
        ("b/1.WAV", 0),
        ("b/2.wav", 0),
        ("a/z.wav", 1),
    ]
    tree(root, ["c/only.txt"])
    with pytest.raises(ValueError, match=r"^AudioFolder: class folder '.*c' is empty: expected files with "
                                         r"extensions \['\.wav'\], got none$"):  # fmt: skip
        class_files(root, ["a", "c"], frozenset({".wav"}), name="AudioFolder")
    many = frozenset(f".e{i:02d}" for i in range(13))  # more than 12: the list is cut and ends with " ..."
    with pytest.raises(ValueError, match=r"\['\.e00', .*'\.e11'\] \.\.\., got none$"):
        class_files(root, ["c"], many, name="ImageFolder")


def test_drop_unreadable_keeps_order_reports_and_raises_when_nothing_is_left(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    samples = [(f"f{i}", i % 3) for i in range(9)]
    bad = {"f1", "f4", "f5", "f6", "f7", "f8"}

    def check(path: str) -> None:
        if path in bad:
            raise ValueError(f"cannot read '{path}'")

    logger = logging.getLogger("tests.folders")
    with caplog.at_level(logging.WARNING, logger="tests.folders"):
        kept, skipped = drop_unreadable(samples, check, tmp_path, name="ThingFolder", num_threads=3, logger=logger)
    assert kept == [("f0", 0), ("f2", 2), ("f3", 0)]
    assert skipped == [(p, f"cannot read '{p}'") for p in ("f1", "f4", "f5", "f6", "f7", "f8")]
    [record] = [r for r in caplog.records if r.name == "tests.folders"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert message.startswith(f"ThingFolder '{tmp_path}': skipped 6 unreadable file(s):")
    assert "cannot read 'f7'" in message and "cannot read 'f8'" not in message and "... and 1 more" in message

    caplog.clear()
    kept, skipped = drop_unreadable(samples[:1], check, tmp_path, name="ThingFolder", num_threads=1)
    assert kept == samples[:1] and skipped == [] and not caplog.records  # nothing skipped: no warning

    with pytest.raises(ValueError, match=r"^ThingFolder: every file under '.*' was unreadable \(2 skipped\)$"):
        drop_unreadable([("f1", 0), ("f4", 1)], check, tmp_path, name="ThingFolder")

    def broken_check(path: str) -> None:
        raise TypeError("a bug, not an unreadable file")

    with pytest.raises(TypeError, match="a bug"):  # only the listed error types mean "unreadable"
        drop_unreadable(samples, broken_check, tmp_path, name="ThingFolder", errors=(ValueError,))
    assert ON_ERROR == ("raise", "skip")


def test_generate_once_makes_the_folder_once_and_replaces_leftovers(tmp_path: Path) -> None:
    calls: list[Path] = []

    def make(tmp: Path) -> None:
        calls.append(tmp)
        (tmp / "a").mkdir(parents=True)
        (tmp / "a" / "x.txt").write_text(str(len(calls)))

    folder = tmp_path / "deep" / "er" / "data"  # parents are created
    stale = folder.with_name(f"data.tmp-{os.getpid()}")
    stale.mkdir(parents=True)
    (stale / "junk").write_text("left by a crashed run")
    assert generate_once(folder, make) == folder
    assert (folder / ".complete").read_text() == "ok\n" and (folder / "a" / "x.txt").read_text() == "1"
    assert not stale.exists() and calls == [stale]  # made in the temporary folder, then renamed
    assert generate_once(folder, make) == folder and len(calls) == 1  # complete: not made again

    incomplete = tmp_path / "incomplete"
    (incomplete / "half").mkdir(parents=True)  # an earlier run died before writing the marker
    generate_once(incomplete, make)
    assert len(calls) == 2 and not (incomplete / "half").exists() and (incomplete / "a" / "x.txt").read_text() == "2"
