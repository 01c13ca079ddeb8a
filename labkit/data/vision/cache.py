"""``ImageCache``: decoded images in a memory-mapped file, so only the first epoch decodes.

The cache holds every image after the transform's deterministic prefix (Resize,
CenterCrop, Grayscale: ``Compose.split_deterministic``) as one ``(N, H, W, C)`` ``uint8``
array in an ``.npy`` file (``np.lib.format.open_memmap``) plus a JSON index. The random
rest of the transform runs on every read.

Files in the cache directory, for a key ``K`` (a hash of the file list with sizes and
mtimes, the prefix's settings, the mode and the background colour)::

    images-K.npy             the array, complete
    images-K.json            the index; written last, so its presence marks a complete cache
    images-K.tmp-PID-T.npy     the array being filled by process PID (never opened by a new dataset)
    images-K.filled-PID-T.npy  which rows of the temp array hold an image

The first epoch fills rows as items are read (threads or forked loader workers share the
mapping); when every row is filled the temp array is renamed into place and the index is
written (temp then rename). On open, the index must match the key, the row count, the
shape and the file's size, otherwise the cache is rebuilt; a temp file is never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from labkit.data.progress import threaded_map

log = logging.getLogger(__name__)

VERSION = 1


class CachedDataset(Protocol):
    """What the cache needs from a dataset (``ImageFolder`` provides it)."""

    samples: list[tuple[str, int]]
    mode: str
    background: Any
    _prefix: Any

    def decode_prefix(self, index: int) -> np.ndarray: ...


def _mapped(path: Path, **kwargs: Any) -> np.ndarray:
    """A plain ndarray view of an ``.npy`` memmap (indexing a plain view is several times cheaper)."""
    return np.asarray(np.lib.format.open_memmap(path, **kwargs))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ImageCache:
    """A directory of decoded-image caches; ``ImageFolder(..., cache=ImageCache(path))`` uses one.

    ``complete`` says whether every image is in the memmap; ``hits`` and ``fills`` count reads
    served from it and images decoded into it by this process.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.key: str | None = None
        self.complete = False
        self.hits = 0
        self.fills = 0
        self._dataset: CachedDataset | None = None
        self._data: np.ndarray | None = None
        self._filled: np.ndarray | None = None
        self._lock = threading.Lock()

    # ---- naming and keys -------------------------------------------------------------

    @staticmethod
    def make_key(dataset: CachedDataset) -> str:
        """A hash of the files (path, size, mtime) and of every setting the cached pixels depend on."""
        files = []
        for path, label in dataset.samples:
            stat = os.stat(path)
            files.append([path, label, stat.st_size, stat.st_mtime_ns])
        settings = {"prefix": repr(dataset._prefix), "mode": dataset.mode, "background": dataset.background}
        blob = json.dumps({"version": VERSION, "files": files, "settings": settings}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def _file(self, suffix: str) -> Path:
        return self.path / f"images-{self.key}{suffix}"

    @property
    def array_path(self) -> Path:
        return self._file(".npy")

    @property
    def index_path(self) -> Path:
        return self._file(".json")

    # ---- open or start -----------------------------------------------------------------

    def attach(self, dataset: CachedDataset) -> None:
        """Use the complete cache for ``dataset`` if a valid one exists, else start filling a new one."""
        if self._dataset is not None and self._dataset is not dataset:
            raise ValueError(
                f"ImageCache('{self.path}'): expected one dataset per ImageCache, got a second one; "
                "pass each dataset its own ImageCache or just the directory"
            )
        self._dataset = dataset
        self.key = self.make_key(dataset)
        self.path.mkdir(parents=True, exist_ok=True)
        self._remove_orphans()
        if self._open_complete():
            log.info("ImageCache: using %s (%d images)", self.array_path, len(dataset.samples))
            return
        first = dataset.decode_prefix(0)
        shape = (len(dataset.samples), *first.shape)
        tag = f"{os.getpid()}-{secrets.token_hex(4)}"  # one fill per dataset, even within a process
        self._tmp, self._tmp_filled = self._file(f".tmp-{tag}.npy"), self._file(f".filled-{tag}.npy")
        self._data = _mapped(self._tmp, mode="w+", dtype=np.uint8, shape=shape)
        self._filled = _mapped(self._tmp_filled, mode="w+", dtype=np.bool_, shape=(shape[0],))
        self._store(0, first)
        log.info("ImageCache: filling %s with %d images of shape %s", self.array_path, shape[0], shape[1:])

    def _remove_orphans(self) -> None:
        """Delete temp files of this key left by processes that no longer run (a crash mid-fill)."""
        pattern = re.compile(rf"images-{self.key}\.(tmp|filled)-(\d+)-[0-9a-f]+\.npy$")
        for entry in os.scandir(self.path):
            match = pattern.match(entry.name)
            if match and not _pid_alive(int(match.group(2))):
                Path(entry.path).unlink(missing_ok=True)

    def _open_complete(self) -> bool:
        """Open ``images-K.npy`` read-only if its index exists and agrees with it and the dataset."""
        if not self.index_path.exists():
            return False
        try:
            index = json.loads(self.index_path.read_text())
            data = _mapped(self.array_path, mode="r")
            problems = []
            if index.get("version") != VERSION or index.get("key") != self.key:
                problems.append(f"key {index.get('key')!r} (version {index.get('version')})")
            if index.get("count") != len(self._dataset.samples) or data.shape[0] != index.get("count"):
                problems.append(
                    f"count {index.get('count')} for {len(self._dataset.samples)} files, array {data.shape}"
                )
            if list(data.shape[1:]) != index.get("shape") or data.dtype != np.uint8:
                problems.append(f"shape {data.shape[1:]} {data.dtype} vs index {index.get('shape')} uint8")
            if self.array_path.stat().st_size != index.get("nbytes"):
                problems.append(f"size {self.array_path.stat().st_size} bytes vs index {index.get('nbytes')}")
        except (OSError, ValueError, TypeError, AttributeError) as error:
            problems = [f"{type(error).__name__}: {error}"]
        if problems:
            log.warning("ImageCache: ignoring invalid cache %s (%s); rebuilding", self.array_path, "; ".join(problems))
            return False
        self._data, self._filled, self.complete = data, None, True
        return True

    # ---- reads and fills ---------------------------------------------------------------

    def get(self, index: int) -> np.ndarray:
        """Image ``index`` after the deterministic prefix, ``(H, W, C)`` ``uint8`` (a private copy)."""
        if self._data is None:
            self._reopen()
        if self.complete or self._filled[index]:
            self.hits += 1
            return np.array(self._data[index])
        image = self._dataset.decode_prefix(index)
        self._store(index, image)
        return image

    def _store(self, index: int, image: np.ndarray) -> None:
        expected = self._data.shape[1:]
        if image.shape != expected or image.dtype != np.uint8:
            path = self._dataset.samples[index][0]
            raise ValueError(
                f"ImageCache: '{path}' after the transform's deterministic part has shape {image.shape} "
                f"{image.dtype}; expected {expected} uint8 like the first image (add Resize/CenterCrop before caching)"
            )
        self._data[index] = image
        self._filled[index] = True
        self.fills += 1
        if self._filled.all():
            self._finalize()

    def fill(self, num_threads: int = 8) -> None:
        """Decode every image not yet cached (in ``num_threads`` threads) and complete the cache."""
        if self._data is None:
            self._reopen()
        if self.complete:
            return
        missing = np.flatnonzero(~np.asarray(self._filled))
        threaded_map(self.get, missing.tolist(), num_threads, f"caching {self.path.name}")

    def _finalize(self) -> None:
        with self._lock:
            if self.complete:
                return
            self._data.base.flush()
            try:
                self.index_path.unlink(missing_ok=True)  # an index must never describe an array being replaced
                os.replace(self._tmp, self.array_path)
            except FileNotFoundError:  # another worker process finished the same fill first
                self.complete = True
                return
            index = {
                "version": VERSION,
                "key": self.key,
                "count": int(self._data.shape[0]),
                "shape": list(self._data.shape[1:]),
                "dtype": "uint8",
                "nbytes": self.array_path.stat().st_size,
                "files": [path for path, _ in self._dataset.samples],
                "settings": {"prefix": repr(self._dataset._prefix), "mode": self._dataset.mode},
            }
            tmp_index = self._file(f".json.tmp-{os.getpid()}")
            tmp_index.write_text(json.dumps(index))
            os.replace(tmp_index, self.index_path)
            self._tmp_filled.unlink(missing_ok=True)
            self.complete = True  # keep reading the same mapping: it is the renamed file
            log.info("ImageCache: wrote %s", self.array_path)

    # ---- pickling (spawned loader workers) ----------------------------------------------

    def _reopen(self) -> None:
        """Map the files again in an unpickled copy: the complete cache, else the temp one being filled."""
        for _ in range(50):
            if self._open_complete():
                return
            try:
                self._data = _mapped(self._tmp, mode="r+")
                self._filled = _mapped(self._tmp_filled, mode="r+")
                return
            except FileNotFoundError:  # renamed by another worker a moment ago; its index follows
                time.sleep(0.02)
        raise FileNotFoundError(f"ImageCache: neither {self.array_path} nor {self._tmp} can be opened")

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_data=None, _filled=None, _lock=None, complete=False)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ImageCache('{self.path}', key={self.key}, complete={self.complete})"
