"""Reader for the UEA/UCR time-series classification archive's ``.ts`` files (the sktime/aeon format).

Layout: ``#`` (or ``%``) comment lines, header tags (``@problemName``, ``@univariate``,
``@dimensions``, ``@equalLength``, ``@seriesLength``, ``@missing``, ``@timeStamps``,
``@classLabel true <labels...>`` or ``@targetLabel true``) up to ``@data``, then one
case per line: channels separated by ``:``, values within a channel by ``,``, ``?``
for a missing value (NaN), and the label (or regression target) last.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

_COMMENT = ("#", "%")  # "#" in .ts files; "%" (the ARFF comment) appears in some too
_BOOL_TAGS = {"timestamps", "missing", "univariate", "equallength"}
_INT_TAGS = {"dimensions", "serieslength"}
_KEYS = {
    "problemname": "problem_name",
    "timestamps": "timestamps",
    "missing": "missing",
    "univariate": "univariate",
    "dimensions": "dimensions",
    "equallength": "equal_length",
    "serieslength": "series_length",
}


class TSData(NamedTuple):
    """What ``read_ts`` returns; unpacks as ``series, labels, classes, metadata``.

    ``series``: one float32 array ``(T_i, C)`` per case (NaN where the file has ``?``).
    ``labels``: int64 indices into ``classes`` (classification), float32 targets
    (regression, ``classes == []``), or ``None`` (unlabelled).
    """

    series: list[np.ndarray]
    labels: np.ndarray | None
    classes: list[str]
    metadata: dict[str, Any]


def _parse_bool(path: Path, lineno: int, tag: str, value: str) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise ValueError(f"{path}:{lineno}: @{tag}: expected true or false, got {value.strip()!r}")
    return v == "true"


def _parse_header(path: Path, lineno: int, line: str, meta: dict[str, Any]) -> None:
    tag, _, rest = line[1:].partition(" ")
    key = tag.lower()
    if key in _BOOL_TAGS:
        meta[_KEYS[key]] = _parse_bool(path, lineno, tag, rest)
    elif key in _INT_TAGS:
        try:
            meta[_KEYS[key]] = int(rest.strip())
        except ValueError:
            raise ValueError(f"{path}:{lineno}: @{tag}: expected an integer, got {rest.strip()!r}") from None
    elif key == "problemname":
        meta["problem_name"] = rest.strip()
    elif key == "classlabel":
        flag, _, labels = rest.strip().partition(" ")
        meta["class_label"] = _parse_bool(path, lineno, tag, flag)
        meta["class_labels"] = labels.split() if meta["class_label"] else []
        if meta["class_label"] and not meta["class_labels"]:
            raise ValueError(f"{path}:{lineno}: @{tag} true: expected the class labels after 'true', got none")
    elif key == "targetlabel":
        meta["target_label"] = _parse_bool(path, lineno, tag, rest.strip().split(" ")[0] if rest.strip() else "")
    else:
        meta.setdefault("other_tags", {})[tag] = rest.strip()


def _parse_channel(path: Path, lineno: int, channel: int, text: str) -> np.ndarray:
    fields = text.split(",")
    try:
        return np.asarray(fields, dtype=np.float64)
    except ValueError:
        pass
    values = np.empty(len(fields))
    for i, field in enumerate(fields):
        f = field.strip()
        if f == "?":
            values[i] = np.nan
            continue
        try:
            values[i] = float(f)
        except ValueError:
            raise ValueError(
                f"{path}:{lineno}: channel {channel}, value {i}: expected a number or '?', got {field!r}"
            ) from None
    return values


def read_ts(path: str | os.PathLike[str]) -> TSData:
    """Read a ``.ts`` file (variable lengths, missing values, several channels).

    A malformed file raises ``ValueError`` naming the file and line: an unknown
    label, a non-number value, a channel count that differs from ``@dimensions`` or
    the first case, channels of one case with different lengths, a header tag after
    ``@data``, or no ``@data`` at all. ``@timeStamps true`` files are not supported.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path}: expected UTF-8 text, got undecodable bytes ({e.reason} at offset {e.start})"
        ) from None
    meta: dict[str, Any] = {}
    series: list[np.ndarray] = []
    raw_labels: list[str] = []
    in_data = labelled = False
    n_channels: int | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(_COMMENT):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise ValueError(
                    f"{path}:{lineno}: expected a header tag (@...) or @data before the cases, got {line[:40]!r}"
                )
            if line.lower() == "@data":
                in_data = True
                if meta.get("timestamps"):
                    raise ValueError(f"{path}: @timeStamps true: expected a file without time stamps (not supported)")
                labelled = meta.get("class_label", False) or meta.get("target_label", False)
                n_channels = meta.get("dimensions")
            else:
                _parse_header(path, lineno, line, meta)
            continue
        if line.startswith("@"):
            raise ValueError(f"{path}:{lineno}: expected a case after @data, got the header tag {line.split()[0]!r}")
        parts = line.split(":")
        if labelled:
            if len(parts) < 2:
                raise ValueError(f"{path}:{lineno}: expected channels and a label separated by ':', got no ':'")
            raw_labels.append(parts.pop().strip())
        if n_channels is None:
            n_channels = len(parts)
        if len(parts) != n_channels:
            raise ValueError(f"{path}:{lineno}: expected {n_channels} channels separated by ':', got {len(parts)}")
        channels = [_parse_channel(path, lineno, c, p) for c, p in enumerate(parts)]
        lengths = {len(c) for c in channels}
        if len(lengths) != 1:
            raise ValueError(
                f"{path}:{lineno}: expected the channels of one case to have equal lengths, got {[len(c) for c in channels]}"
            )
        if meta.get("equal_length") and "series_length" in meta and meta["series_length"] != len(channels[0]):
            raise ValueError(
                f"{path}:{lineno}: expected @seriesLength {meta['series_length']} values per channel, got {len(channels[0])}"
            )
        series.append(np.stack(channels, axis=1).astype(np.float32))  # (T_i, C)
    if not in_data:
        raise ValueError(f"{path}: expected an @data line after the header, got none")
    meta["n_cases"] = len(series)
    meta["n_channels"] = n_channels if n_channels is not None else 0
    labels, classes = _convert_labels(path, text, meta, raw_labels)
    return TSData(series, labels, classes, meta)


def _convert_labels(path: Path, text: str, meta: dict[str, Any], raw: list[str]) -> tuple[np.ndarray | None, list[str]]:
    if meta.get("class_label"):
        classes = list(meta["class_labels"])
        index = {c: i for i, c in enumerate(classes)}
        bad = next((i for i, r in enumerate(raw) if r not in index), None)
        if bad is not None:
            lineno = _data_line_number(text, bad)
            raise ValueError(f"{path}:{lineno}: expected a label in @classLabel {classes}, got {raw[bad]!r}")
        return np.array([index[r] for r in raw], dtype=np.int64), classes
    if meta.get("target_label"):
        try:
            return np.array([float(r) for r in raw], dtype=np.float32), []
        except ValueError:
            bad = next(i for i, r in enumerate(raw) if not _is_float(r))
            lineno = _data_line_number(text, bad)
            raise ValueError(
                f"{path}:{lineno}: expected a numeric target (@targetLabel true), got {raw[bad]!r}"
            ) from None
    return None, []


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _data_line_number(text: str, case: int) -> int:
    """The line number of case ``case`` (0-based) after ``@data`` (only computed for an error message)."""
    in_data, seen = False, -1
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(_COMMENT):
            continue
        if not in_data:
            in_data = line.lower() == "@data"
            continue
        seen += 1
        if seen == case:
            return lineno
    return 0
