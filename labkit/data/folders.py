"""Class-folder datasets on disk: ``root/<class>/<file>``, one class per sub-folder.

The pieces ``ImageFolder`` and a plugin's folder dataset (e.g. ``labkit_audio.AudioFolder``) share,
so a new ``<Domain>Folder`` only adds how one file is read:

- ``find_classes(root, classes, name=...)``: the sorted sub-folder names, or ``classes`` checked;
- ``normalize_extensions(extensions)``: ``{"WAV", ".png"}`` -> ``frozenset({".wav", ".png"})``;
- ``class_files(root, classes, extensions, name=...)``: ``(path, label)`` pairs sorted by class, then file;
- ``drop_unreadable(samples, check, root, name=...)``: ``on_error="skip"``: check every file once,
  keep the readable ones, log one warning that lists the others;
- ``generate_once(folder, make)``: a generated dataset folder, written to a temporary folder
  and renamed when complete, so concurrent runs never see half of it.

``name=`` is the dataset class's name; every error and warning starts with it (``"ImageFolder: ..."``).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from labkit.data.progress import threaded_map

__all__ = ["ON_ERROR", "class_files", "drop_unreadable", "find_classes", "generate_once", "normalize_extensions"]

log = logging.getLogger(__name__)

#: what a folder dataset's ``on_error`` accepts: raise when an item is read, or skip unreadable files up front
ON_ERROR = ("raise", "skip")

_SHOWN_EXTENSIONS = 12  # an "is empty" error lists at most this many extensions
_SHOWN_REASONS = 5  # the skip warning lists at most this many files


def find_classes(root: Path, classes: Sequence[str] | None = None, *, name: str) -> list[str]:
    """Sub-folder names of ``root`` (sorted, hidden ones ignored), or ``classes`` in the given order after
    checking they are distinct and exist. ``FileNotFoundError`` when ``root`` is not a directory."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{name}: root '{root}' is not a directory")
    found = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if classes is None:
        if not found:
            raise ValueError(f"{name}: expected one sub-folder per class in '{root}', got no sub-folders")
        return found
    if len(set(classes)) != len(classes):
        raise ValueError(f"{name}: classes expected distinct folder names, got {list(classes)}")
    missing = [c for c in classes if c not in found]
    if missing:
        raise ValueError(f"{name}: classes {missing} have no folder in '{root}'; folders there: {found}")
    return list(classes)


def normalize_extensions(extensions: Iterable[str]) -> frozenset[str]:
    """Lower-case extensions with their leading dot: ``["WAV", ".Png"]`` -> ``{".wav", ".png"}``."""
    return frozenset(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)


def class_files(root: Path, classes: Sequence[str], extensions: frozenset[str], *, name: str) -> list[tuple[str, int]]:
    """``(path, label)`` of the files in ``root/<class>/`` whose extension is in ``extensions``.

    Labels are the classes' positions in ``classes``; pairs are sorted by class, then path. Hidden
    files and other extensions are ignored; a class folder without any file is a ``ValueError``
    naming the folder and the extensions looked for.
    """
    samples: list[tuple[str, int]] = []
    for label, folder_name in enumerate(classes):
        folder = Path(root) / folder_name
        files = sorted(
            e.path
            for e in os.scandir(folder)
            if e.is_file() and not e.name.startswith(".") and Path(e.name).suffix.lower() in extensions
        )
        if not files:
            shown = sorted(extensions)[:_SHOWN_EXTENSIONS]
            more = " ..." if len(extensions) > _SHOWN_EXTENSIONS else ""
            raise ValueError(
                f"{name}: class folder '{folder}' is empty: expected files with extensions {shown}{more}, got none"
            )
        samples.extend((f, label) for f in files)
    return samples


def drop_unreadable(
    samples: Sequence[tuple[str, int]],
    check: Callable[[str], Any],
    root: Path,
    *,
    name: str,
    errors: tuple[type[BaseException], ...] = (ValueError, OSError),
    num_threads: int = 8,
    logger: logging.Logger | None = None,
) -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
    """``(kept, skipped)``: ``samples`` whose file ``check(path)`` reads without raising one of ``errors``,
    and ``(path, reason)`` for the others (reason: the error's message). Order is kept.

    Runs ``check`` on ``num_threads`` threads (decoders release the GIL). Logs one warning on
    ``logger`` (default: this module's) naming up to five skipped files; raises ``ValueError``
    when nothing is left.
    """

    def reason(path: str) -> str | None:
        try:
            check(path)
        except errors as error:
            return str(error)
        return None

    reasons = threaded_map(reason, [path for path, _ in samples], num_threads, f"{name}: checking files")
    skipped = [(path, r) for (path, _), r in zip(samples, reasons) if r is not None]
    kept = [s for s, r in zip(samples, reasons) if r is None]
    if skipped:
        shown = "\n  ".join(r for _, r in skipped[:_SHOWN_REASONS])
        more = f"\n  ... and {len(skipped) - _SHOWN_REASONS} more" if len(skipped) > _SHOWN_REASONS else ""
        (logger or log).warning(
            "%s '%s': skipped %d unreadable file(s):\n  %s%s", name, root, len(skipped), shown, more
        )
    if not kept:
        raise ValueError(f"{name}: every file under '{root}' was unreadable ({len(skipped)} skipped)")
    return kept, skipped


def generate_once(folder: Path, make: Callable[[Path], Any]) -> Path:
    """``folder`` holding what ``make(tmp)`` writes into the (new) folder ``tmp``.

    Made once: a ``.complete`` marker says the folder is whole. ``make`` writes into
    ``<folder>.tmp-<pid>``, which is renamed to ``folder`` when complete, so a concurrent run
    never sees half a dataset; when two runs race, the first rename wins and the other's copy is removed.
    """
    folder = Path(folder)
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
