"""Text classification datasets: a folder per class, a CSV/TSV file, fortune files.

Each is map-style: ``dataset[i] -> (text, label)`` with ``text`` a ``str`` (or what
``transform`` makes of it) and ``label`` an ``int`` index into ``dataset.classes``.
Files are read and checked when the dataset is built, so a bad file fails at once,
named. ``split_indices`` and ``SplitView`` give deterministic stratified splits.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def read_text_file(path: PathLike, what: str = "text file", fallback_encoding: str | None = None) -> str:
    """The UTF-8 text of ``path`` (a leading BOM dropped, ``\\r\\n`` made ``\\n``).

    An unreadable file raises ``OSError`` and a file that is not UTF-8 ``ValueError``,
    each naming the file (and, for bad bytes, the line) — unless ``fallback_encoding``
    (e.g. ``"latin-1"``) is given: such a file is then decoded with it and a warning logged.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise type(e)(e.errno, f"cannot read {what} {path}: {e.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        message = f"{path}:{line}: expected UTF-8 text, got byte 0x{raw[e.start]:02x} at offset {e.start} ({e.reason})"
        if fallback_encoding is None:
            raise ValueError(message) from None
        log.warning("%s; decoded as %s instead", message, fallback_encoding)
        text = raw.decode(fallback_encoding)
    return text.replace("\r\n", "\n")


def _sorted_labels(labels: Iterable[str]) -> list[str]:
    """Class names in a stable order: numerically when all are integers ("2" before "10"), else by text."""
    unique = set(labels)
    if unique and all(re.fullmatch(r"[+-]?\d+", s) for s in unique):
        return sorted(unique, key=lambda s: (int(s), s))
    return sorted(unique)


class _LabelledTexts:
    """Shared part: ``texts``, ``targets`` (int64), ``classes`` and the optional transforms."""

    texts: list[str]
    targets: np.ndarray
    classes: list[str]

    def _init_common(
        self, transform: Callable[[str], Any] | None, target_transform: Callable[[int], Any] | None
    ) -> None:
        self.transform = transform
        self.target_transform = target_transform
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        text, label = self.texts[index], int(self.targets[index])
        if self.transform is not None:
            text = self.transform(text)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return text, label

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.targets, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self)}, classes={len(self.classes)})"


class TextFolder(_LabelledTexts):
    """``root/<class>/**/*.txt``: one sub-folder per class (sorted by name), each file one sample.

    Hidden files and folders are skipped. A root without class folders, a class folder
    without matching files, an unreadable or non-UTF-8 file each raise an error naming it
    (``fallback_encoding="latin-1"`` reads non-UTF-8 files with that encoding instead, with a warning).
    """

    def __init__(
        self,
        root: PathLike,
        extensions: Sequence[str] = (".txt",),
        transform: Callable[[str], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        fallback_encoding: str | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"TextFolder: root {self.root} is not a directory")
        exts = tuple(e.lower() for e in extensions)
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not self.classes:
            raise ValueError(f"TextFolder: expected one sub-folder per class in {self.root}, got none")
        self.files: list[Path] = []
        labels: list[int] = []
        for label, name in enumerate(self.classes):
            folder = self.root / name
            found = sorted(
                p
                for p in folder.rglob("*")
                if p.suffix.lower() in exts
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(folder).parts)
            )
            if not found:
                raise ValueError(f"TextFolder: class folder {folder} holds no {'/'.join(exts)} files")
            self.files += found
            labels += [label] * len(found)
        self.texts = [read_text_file(p, fallback_encoding=fallback_encoding) for p in self.files]
        self.targets = np.asarray(labels, dtype=np.int64)
        self._init_common(transform, target_transform)


class TextCSV(_LabelledTexts):
    """A delimited file with a header row: one sample per row, text and label taken from named columns.

    ``delimiter=None`` uses ``,`` for ``.csv``, tab for ``.tsv``/``.tab``, else sniffs it.
    ``classes`` fixes the label order (pass the train file's ``classes`` to its test file);
    by default the sorted labels found (numerically when all are integers).
    """

    def __init__(
        self,
        path: PathLike,
        text_column: str | int,
        label_column: str | int,
        delimiter: str | None = None,
        classes: Sequence[str] | None = None,
        transform: Callable[[str], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
    ) -> None:
        self.path = Path(path)
        content = read_text_file(self.path, "CSV file")
        self.delimiter = delimiter if delimiter is not None else _guess_delimiter(self.path, content)
        reader = csv.reader(io.StringIO(content, newline=""), delimiter=self.delimiter)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{self.path}: expected a header row naming the columns, got an empty file")
        self.columns = header
        text_i = _column_index(self.path, header, text_column, "text_column")
        label_i = _column_index(self.path, header, label_column, "label_column")
        texts: list[str] = []
        raw_labels: list[str] = []
        lines: list[int] = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(
                    f"{self.path}:{reader.line_num}: expected {len(header)} fields separated by "
                    f"{self.delimiter!r}, got {len(row)}"
                )
            texts.append(row[text_i])
            raw_labels.append(row[label_i])
            lines.append(reader.line_num)
        self.classes = list(classes) if classes is not None else _sorted_labels(raw_labels)
        index = {c: i for i, c in enumerate(self.classes)}
        targets = []
        for label, line in zip(raw_labels, lines):
            if label not in index:
                raise ValueError(
                    f"{self.path}:{line}: column {header[label_i]!r}: expected one of the classes "
                    f"{self.classes}, got {label!r}"
                )
            targets.append(index[label])
        self.texts = texts
        self.targets = np.asarray(targets, dtype=np.int64)
        self._init_common(transform, target_transform)


def _guess_delimiter(path: Path, content: str) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return ","
    if suffix in (".tsv", ".tab"):
        return "\t"
    try:
        return csv.Sniffer().sniff(content[:65536], delimiters=",\t;|").delimiter
    except csv.Error:
        raise ValueError(
            f"{path}: cannot tell the delimiter from the name or the content; expected .csv/.tsv or delimiter=..."
        ) from None


def _column_index(path: Path, header: list[str], column: str | int, key: str) -> int:
    if isinstance(column, int) and not isinstance(column, bool):
        if not 0 <= column < len(header):
            raise ValueError(f"{path}: {key}: expected a column index in [0, {len(header)}), got {column}")
        return column
    if column not in header:
        raise ValueError(f"{path}: {key}: no column {column!r}; the columns are {header}")
    return header.index(column)


# ---------------------------------------------------------------------------- fortunes

_OVERSTRIKE = re.compile(r".\x08")  # "_\bA" (underline) or "A\bA" (bold) from old terminals


def parse_fortunes(path: PathLike, strip_overstrike: bool = True) -> list[str]:
    """The entries of one fortune file: blocks separated by lines holding only ``%`` (empty blocks dropped)."""
    text = read_text_file(path, "fortune file")
    entries, block = [], []
    for line in text.split("\n"):
        if line.rstrip("\r") == "%":
            entries.append("\n".join(block))
            block = []
        else:
            block.append(line)
    entries.append("\n".join(block))
    if strip_overstrike:
        entries = [_OVERSTRIKE.sub("", e) for e in entries]
    return [e.strip("\n") for e in entries if e.strip()]


def fortune_files(directory: Path) -> list[Path]:
    """The fortune files of a directory: regular files, not hidden, not ``strfile`` indexes (``.dat``) or ``.u8`` links."""
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and not p.is_symlink() and not p.name.startswith(".") and p.suffix not in (".dat", ".u8")
    )


class FortuneFile(_LabelledTexts):
    """Fortune-cookie files (``/usr/share/games/fortunes/<category>``): label = the file (category) name.

    ``source`` is a directory (every fortune file in it), one file, or a list of files.
    ``categories`` keeps only those names; ``top_k`` then keeps the ``k`` categories with
    the most entries (ties by name). Classes are sorted by name.
    """

    def __init__(
        self,
        source: PathLike | Sequence[PathLike],
        categories: Sequence[str] | None = None,
        top_k: int | None = None,
        strip_overstrike: bool = True,
        transform: Callable[[str], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
    ) -> None:
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if path.is_dir():
                files = fortune_files(path)
                if not files:
                    raise ValueError(f"FortuneFile: directory {path} holds no fortune files")
            elif path.is_file():
                files = [path]
            else:
                raise FileNotFoundError(f"FortuneFile: {path} is neither a file nor a directory")
        else:
            files = [Path(p) for p in source]
            if not files:
                raise ValueError("FortuneFile: expected at least one fortune file, got an empty list")
        by_name: dict[str, Path] = {}
        for f in files:
            if f.name in by_name:
                raise ValueError(f"FortuneFile: two files give category {f.name!r}: {by_name[f.name]} and {f}")
            by_name[f.name] = f
        if categories is not None:
            unknown = [c for c in categories if c not in by_name]
            if unknown:
                raise ValueError(f"FortuneFile: categories {unknown} not found; available: {sorted(by_name)}")
            by_name = {c: by_name[c] for c in categories}
        entries = {name: parse_fortunes(p, strip_overstrike) for name, p in by_name.items()}
        if top_k is not None:
            if not isinstance(top_k, int) or not 1 <= top_k <= len(entries):
                raise ValueError(f"FortuneFile: top_k: expected an int in [1, {len(entries)}], got {top_k!r}")
            largest = sorted(entries, key=lambda c: (-len(entries[c]), c))[:top_k]
            entries = {c: entries[c] for c in largest}
        empty = [c for c, e in entries.items() if not e]
        if empty:
            raise ValueError(f"FortuneFile: categories {empty} hold no entries ({[str(by_name[c]) for c in empty]})")
        self.classes = sorted(entries)
        self.files = [by_name[c] for c in self.classes]
        self.texts = [t for c in self.classes for t in entries[c]]
        self.targets = np.repeat(np.arange(len(self.classes), dtype=np.int64), [len(entries[c]) for c in self.classes])
        self._init_common(transform, target_transform)


# ---------------------------------------------------------------------------- splits


def split_indices(
    targets: Sequence[int] | np.ndarray | int,
    val_frac: float = 0.1,
    test_frac: float = 0.1,
    seed: int = 0,
    stratify: bool = True,
) -> dict[str, np.ndarray]:
    """Deterministic ``{"train", "valid", "test"}`` index arrays (each sorted).

    ``targets`` is the label array (stratified: each class is split in the same
    proportions) or a length (no labels: one shuffled split). The same arguments give
    the same split on every machine with the same numpy: the shuffle is
    ``np.random.default_rng(seed).permutation``, which numpy keeps stable in practice but
    does not promise across versions (unlike ``DataLoader`` shuffling, which draws raw bits).
    """
    for key, frac in (("val_frac", val_frac), ("test_frac", test_frac)):
        if not 0.0 <= frac < 1.0:
            raise ValueError(f"split_indices: {key}: expected a fraction in [0, 1), got {frac!r}")
    if val_frac + test_frac >= 1.0:
        raise ValueError(f"split_indices: expected val_frac + test_frac < 1, got {val_frac} + {test_frac}")
    if isinstance(targets, int):
        groups = [np.arange(targets)]
    else:
        labels = np.asarray(targets)
        groups = [np.flatnonzero(labels == c) for c in np.unique(labels)] if stratify else [np.arange(len(labels))]
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "valid": [], "test": []}
    for group in groups:
        order = group[rng.permutation(len(group))]
        n_test = round(len(group) * test_frac)
        n_val = round(len(group) * val_frac)
        parts["test"].append(order[:n_test])
        parts["valid"].append(order[n_test : n_test + n_val])
        parts["train"].append(order[n_test + n_val :])
    return {k: np.sort(np.concatenate(v)).astype(np.int64) for k, v in parts.items()}


class SplitView:
    """The items ``indices`` of a labelled dataset, keeping ``classes`` and ``targets`` at hand."""

    def __init__(self, dataset: Any, indices: Sequence[int] | np.ndarray, name: str = "") -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.name = name

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]

    @property
    def classes(self) -> list[str]:
        return self.dataset.classes

    @property
    def targets(self) -> np.ndarray:
        return np.asarray(self.dataset.targets)[self.indices]

    @property
    def texts(self) -> list[str]:
        return [self.dataset.texts[i] for i in self.indices]

    def __repr__(self) -> str:
        return f"SplitView({self.name or 'split'}, n={len(self)} of {type(self.dataset).__name__})"


def make_splits(
    dataset: Any, val_frac: float = 0.1, test_frac: float = 0.1, seed: int = 0, split: str | None = None
) -> dict[str, SplitView] | SplitView:
    """Stratified ``train``/``valid``/``test`` views of a labelled dataset (or the one named by ``split``)."""
    if split is not None and split not in ("train", "valid", "test"):
        raise ValueError(f"split: expected 'train', 'valid', 'test' or None, got {split!r}")
    idx = split_indices(dataset.targets, val_frac, test_frac, seed)
    views = {name: SplitView(dataset, i, name) for name, i in idx.items()}
    return views if split is None else views[split]
