"""Fetch a public dataset file over HTTP(S): streamed, checksummed, renamed into place only when whole.

``download(url, dest_dir, filename, sha256)`` streams into ``<filename>.part``, hashes while
it writes, checks the byte count and the SHA-256, and only then renames the file to
``<filename>``: a file with the final name is always complete and verified; a ``.part``
left by an interrupted run is ignored and overwritten next time. ``.tar.gz``/``.tgz``/
``.tar``/``.zip`` archives can be unpacked after the checksum matched; members that would
land outside ``dest_dir`` (``../x``, absolute paths, links pointing out) refuse the whole archive.

Nothing here runs at import or training time: only ``labkit data get`` or an explicit call.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from labkit.data.catalog import Download

__all__ = ["DownloadError", "download", "extract_archive", "fetch", "is_present", "sha256_file"]

_CHUNK = 1 << 16
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ARCHIVES = (".tar.gz", ".tgz", ".tar", ".zip")


class DownloadError(OSError):
    """A fetch failed (HTTP error, timeout, short transfer, checksum mismatch, unsafe archive)."""


def sha256_file(path: str | Path) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_present(dest_dir: str | Path, filename: str, sha256: str | None = None) -> bool:
    """Whether ``dest_dir/filename`` exists (and, given ``sha256``, has that hash). ``.part`` files never count."""
    path = Path(dest_dir) / filename
    if not path.is_file():
        return False
    return sha256 is None or sha256_file(path) == sha256.lower()


def download(
    url: str,
    dest_dir: str | Path,
    filename: str,
    sha256: str,
    size: int | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    extract: bool = False,
) -> Path:
    """Fetch ``url`` into ``dest_dir/filename`` and verify its SHA-256; return the file's path.

    ``size`` (bytes) sizes the progress bar when the server sends no Content-Length and is
    checked against what arrived. A file already present with the right hash is not fetched
    again. ``timeout`` (seconds) bounds each connect and each read. With ``extract=True`` a
    ``.tar.gz``/``.tgz``/``.tar``/``.zip`` is unpacked into ``dest_dir`` after verification.
    Raises ``DownloadError`` naming the URL on any failure; nothing with the final name is
    left behind by a failed fetch.
    """
    sha256 = _check_args(url, filename, sha256, size)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / filename
    if is_present(dest, filename, sha256):
        if extract:
            extract_archive(final, dest)
        return final
    part = dest / (filename + ".part")
    try:
        received, expected, actual = _stream(url, part, size, progress, timeout, filename)
        if expected is not None and received != expected:
            raise DownloadError(
                f"download {url}: transfer ended early: expected {expected} bytes, got {received} "
                "(connection closed); run the command again to retry"
            )
        if actual != sha256:
            raise DownloadError(
                f"download {url}: checksum mismatch: expected sha256 {sha256}, got {actual} "
                f"({received} bytes); the file was deleted"
            )
        os.replace(part, final)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if extract:
        extract_archive(final, dest)
    return final


def fetch(spec: Download, dest_dir: str | Path, progress: bool = True, timeout: float = 30.0) -> Path:
    """``download`` one catalog ``Download`` entry into ``dest_dir``."""
    return download(
        spec.url,
        dest_dir,
        spec.filename,
        spec.sha256,
        size=spec.size,
        progress=progress,
        timeout=timeout,
        extract=spec.extract,
    )


def _check_args(url: Any, filename: Any, sha256: Any, size: Any) -> str:
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise ValueError(f"download: url: expected an http:// or https:// URL, got {url!r}")
    if not isinstance(filename, str) or not filename or filename in (".", "..") or re.search(r"[/\\]", filename):
        raise ValueError(f"download: filename: expected a plain file name (no directories), got {filename!r}")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256.lower()):
        raise ValueError(f"download: sha256: expected 64 hex digits, got {sha256!r}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ValueError(f"download: size: expected a non-negative int or None, got {size!r}")
    return sha256.lower()


def _stream(
    url: str, part: Path, size: int | None, progress: bool, timeout: float, label: str
) -> tuple[int, int | None, str]:
    """Stream ``url`` into ``part``: (bytes received, bytes announced or ``size``, hex sha256)."""
    request = urllib.request.Request(url, headers={"User-Agent": "labkit-data/0.1"})
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else size
            with open(part, "wb") as out, _progress_bar(expected, label, progress) as bar:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar(len(chunk))
                out.flush()
                os.fsync(out.fileno())
    except urllib.error.HTTPError as e:
        raise DownloadError(f"download {url}: HTTP error {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError):
            raise DownloadError(f"download {url}: timed out after {timeout:g} s while connecting") from None
        raise DownloadError(f"download {url}: cannot connect: {e.reason}") from None
    except TimeoutError:
        raise DownloadError(
            f"download {url}: timed out after {timeout:g} s with no data ({received} bytes so far)"
        ) from None
    except (http.client.HTTPException, ConnectionError) as e:
        raise DownloadError(f"download {url}: connection failed after {received} bytes: {e!r}") from None
    return received, expected, digest.hexdigest()


@contextmanager
def _progress_bar(total: int | None, label: str, enabled: bool) -> Iterator[Any]:
    """A callable ``bar(n_bytes)``: tqdm on a terminal, silent otherwise (or without tqdm)."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda n: None
        return
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: a download still works, just without a bar
        yield lambda n: None
        return
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, leave=True) as bar:
        yield bar.update


# ----------------------------------------------------------------------------- archives


def extract_archive(archive: str | Path, dest_dir: str | Path) -> list[Path]:
    """Unpack a ``.tar.gz``/``.tgz``/``.tar``/``.zip`` into ``dest_dir``; return the top-level paths made.

    Every member is checked before anything is written: absolute names, ``..`` components,
    links (symbolic or hard) that resolve outside ``dest_dir``, and device files refuse the
    archive with ``DownloadError``. Members are unpacked into a scratch folder inside
    ``dest_dir`` and moved into place, so a failure leaves no half-unpacked tree.
    """
    archive, dest = Path(archive), Path(dest_dir)
    name = archive.name.lower()
    if not name.endswith(_ARCHIVES):
        raise ValueError(f"extract_archive: expected a file ending in one of {list(_ARCHIVES)}, got {archive.name!r}")
    dest.mkdir(parents=True, exist_ok=True)
    scratch = dest / f".{archive.name}.extracting"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        if name.endswith(".zip"):
            _extract_zip(archive, scratch)
        else:
            _extract_tar(archive, scratch)
        made = []
        for entry in sorted(scratch.iterdir()):
            target = dest / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(entry, target)
            made.append(target)
        return made
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _inside(root: Path, member: str) -> bool:
    """Whether ``root/member`` stays within ``root`` once ``..`` and absolute parts are resolved."""
    if member.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", member):
        return False
    resolved = os.path.normpath(os.path.join(root, member))
    return resolved == str(root) or resolved.startswith(str(root) + os.sep)


def _extract_tar(archive: Path, scratch: Path) -> None:
    root = scratch.resolve()
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                if not _inside(root, m.name):
                    raise DownloadError(
                        f"extract {archive}: refusing member {m.name!r}: it would land outside {scratch.parent}"
                    )
                if m.issym() and not _inside(root, os.path.join(os.path.dirname(m.name), m.linkname)):
                    raise DownloadError(
                        f"extract {archive}: refusing symlink {m.name!r} -> {m.linkname!r}: it points outside"
                    )
                if m.islnk() and not _inside(root, m.linkname):
                    raise DownloadError(
                        f"extract {archive}: refusing hard link {m.name!r} -> {m.linkname!r}: it points outside"
                    )
                if m.isdev():
                    raise DownloadError(f"extract {archive}: refusing device file {m.name!r}")
            # the "data" filter repeats these checks in the standard library and drops unsafe modes
            tar.extractall(scratch, members=members, filter="data")
    except (tarfile.TarError, EOFError) as e:
        raise DownloadError(f"extract {archive}: not a readable tar archive: {e}") from None


def _extract_zip(archive: Path, scratch: Path) -> None:
    root = scratch.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not _inside(root, info.filename):
                    raise DownloadError(
                        f"extract {archive}: refusing member {info.filename!r}: it would land outside {scratch.parent}"
                    )
            zf.extractall(scratch)
    except zipfile.BadZipFile as e:
        raise DownloadError(f"extract {archive}: not a readable zip archive: {e}") from None
