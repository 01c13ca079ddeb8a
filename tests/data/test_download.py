"""``labkit.data.download`` against a local HTTP server on 127.0.0.1 (no network needed)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from labkit.data.catalog import Download
from labkit.data.download import DownloadError, download, extract_archive, fetch, is_present, sha256_file

PAYLOAD = bytes(range(256)) * 300  # 76,800 bytes: several read chunks
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


GOOD_TAR = _tar_gz({"pack/a.txt": b"alpha", "pack/sub/b.txt": b"beta"})
EVIL_TAR = _tar_gz({"ok.txt": b"fine", "../escaped.txt": b"gotcha"})
EVIL_ZIP = _zip({"ok.txt": b"fine", "../escaped.txt": b"gotcha"})


class _Handler(BaseHTTPRequestHandler):
    hits: dict[str, int]

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass

    def _send(self, body: bytes, length: int | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path == "/good.bin":
            self._send(PAYLOAD)
        elif self.path == "/short.bin":  # announces the whole file, sends half, hangs up
            self._send(PAYLOAD[: len(PAYLOAD) // 2], length=len(PAYLOAD))
            self.close_connection = True
        elif self.path == "/nolength.bin":  # no Content-Length: the body ends when the connection closes
            self.send_response(200)
            self.end_headers()
            self.wfile.write(PAYLOAD[:1000])
            self.close_connection = True
        elif self.path == "/slow.bin":  # headers, then silence past the client's timeout
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            time.sleep(1.5)
        elif self.path == "/good.tar.gz":
            self._send(GOOD_TAR)
        elif self.path == "/evil.tar.gz":
            self._send(EVIL_TAR)
        elif self.path == "/evil.zip":
            self._send(EVIL_ZIP)
        else:
            self.send_error(404, "Not Found")


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, int]]]:
    """``(base_url, hits per path)`` of a server on an ephemeral port; its thread stops by itself within 30 s."""
    hits: dict[str, int] = {}
    handler = type("Handler", (_Handler,), {"hits": hits})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.timeout = 0.1
    stop = threading.Event()
    deadline = time.monotonic() + 30.0

    def serve() -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            httpd.handle_request()
        httpd.server_close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_good_file_is_present_with_matching_hash(server, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    base, hits = server
    path = download(f"{base}/good.bin", tmp_path / "d", "good.bin", SHA)  # progress on, but stderr is no TTY
    assert path == tmp_path / "d" / "good.bin"
    assert path.read_bytes() == PAYLOAD
    assert sha256_file(path) == SHA and is_present(tmp_path / "d", "good.bin", SHA)
    assert not (tmp_path / "d" / "good.bin.part").exists()
    assert capfd.readouterr().err == ""  # no progress bar where nobody watches
    # present and verified: not fetched again
    download(f"{base}/good.bin", tmp_path / "d", "good.bin", SHA.upper(), progress=True)
    assert hits["/good.bin"] == 1


def test_bad_checksum_leaves_nothing(server, tmp_path: Path) -> None:
    base, _ = server
    wrong = "0" * 64
    with pytest.raises(DownloadError) as err:
        download(f"{base}/good.bin", tmp_path, "good.bin", wrong, progress=False)
    msg = str(err.value)
    assert f"{base}/good.bin" in msg and wrong in msg and SHA in msg
    assert list(tmp_path.iterdir()) == []


def test_interrupted_transfer_counts_as_absent(server, tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(DownloadError, match=r"expected 76800 bytes, got 38400"):
        download(f"{base}/short.bin", tmp_path, "data.bin", SHA, progress=False)
    assert not is_present(tmp_path, "data.bin")
    assert list(tmp_path.iterdir()) == []


def test_leftover_part_is_overwritten(server, tmp_path: Path) -> None:
    base, _ = server
    (tmp_path / "good.bin.part").write_bytes(b"stale bytes from a killed run" * 5000)
    assert not is_present(tmp_path, "good.bin")
    path = download(f"{base}/good.bin", tmp_path, "good.bin", SHA, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.bin"]


def test_corrupt_final_file_is_fetched_again(server, tmp_path: Path) -> None:
    base, hits = server
    (tmp_path / "good.bin").write_bytes(b"corrupt")
    download(f"{base}/good.bin", tmp_path, "good.bin", SHA, progress=False)
    assert hits["/good.bin"] == 1 and sha256_file(tmp_path / "good.bin") == SHA


def test_http_404_names_the_url(server, tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(DownloadError, match=r"/missing\.bin: HTTP error 404"):
        download(f"{base}/missing.bin", tmp_path, "missing.bin", SHA, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_read_timeout_names_the_url(server, tmp_path: Path) -> None:
    base, _ = server
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"slow\.bin: timed out after 0\.3 s"):
        download(f"{base}/slow.bin", tmp_path, "slow.bin", SHA, progress=False, timeout=0.3)
    assert time.monotonic() - start < 1.4
    assert list(tmp_path.iterdir()) == []


def test_connection_refused_names_the_url(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match=rf"127\.0\.0\.1:{port}/x: cannot connect"):
        download(f"http://127.0.0.1:{port}/x", tmp_path, "x", SHA, progress=False, timeout=2)


def test_size_checked_when_server_sends_no_length(server, tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(DownloadError, match=r"expected 76800 bytes, got 1000"):
        download(f"{base}/nolength.bin", tmp_path, "n.bin", SHA, size=len(PAYLOAD), progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"url": "ftp://host/x"}, "url: expected an http"),
        ({"filename": "../x"}, "filename: expected a plain file name"),
        ({"filename": "a/b"}, "filename: expected a plain file name"),
        ({"sha256": "abc"}, "sha256: expected 64 hex digits, got 'abc'"),
        ({"size": -1}, "size: expected a non-negative int or None, got -1"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    args = {"url": "http://127.0.0.1:1/x", "dest_dir": tmp_path, "filename": "x", "sha256": SHA} | kwargs
    with pytest.raises(ValueError, match=match):
        download(**args)


def test_fetch_extracts_a_verified_tar(server, tmp_path: Path) -> None:
    base, _ = server
    spec = Download(f"{base}/good.tar.gz", "good.tar.gz", hashlib.sha256(GOOD_TAR).hexdigest(), extract=True)
    fetch(spec, tmp_path, progress=False)
    assert (tmp_path / "pack" / "a.txt").read_bytes() == b"alpha"
    assert (tmp_path / "pack" / "sub" / "b.txt").read_bytes() == b"beta"
    assert not any(p.name.endswith(".extracting") for p in tmp_path.iterdir())


def test_tar_with_parent_member_is_refused(server, tmp_path: Path) -> None:
    base, _ = server
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"refusing member '\.\./escaped\.txt'"):
        download(f"{base}/evil.tar.gz", dest, "evil.tar.gz", hashlib.sha256(EVIL_TAR).hexdigest(), extract=True)
    assert not (tmp_path / "escaped.txt").exists()
    assert not (dest / "ok.txt").exists()  # nothing unpacked from a refused archive


def test_zip_with_parent_member_is_refused(server, tmp_path: Path) -> None:
    base, _ = server
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"refusing member '\.\./escaped\.txt'"):
        download(f"{base}/evil.zip", dest, "evil.zip", hashlib.sha256(EVIL_ZIP).hexdigest(), extract=True)
    assert not (tmp_path / "escaped.txt").exists() and not (dest / "ok.txt").exists()


def test_tar_symlink_pointing_outside_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("inner/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../etc/passwd"
        tar.addfile(info)
    with pytest.raises(DownloadError, match="refusing symlink 'inner/link'"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "inner").exists()


def test_absolute_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "abs.zip"
    archive.write_bytes(_zip({"/tmp/abs.txt": b"x"}))
    with zipfile.ZipFile(archive) as zf:  # zipfile keeps the leading slash as written
        assert zf.namelist() == ["/tmp/abs.txt"]
    with pytest.raises(DownloadError, match=r"refusing member '/tmp/abs\.txt'"):
        extract_archive(archive, tmp_path / "out")


def test_extract_replaces_an_older_tree(tmp_path: Path) -> None:
    archive = tmp_path / "good.tar.gz"
    archive.write_bytes(GOOD_TAR)
    (tmp_path / "out" / "pack").mkdir(parents=True)
    (tmp_path / "out" / "pack" / "stale.txt").write_text("old")
    made = extract_archive(archive, tmp_path / "out")
    assert made == [tmp_path / "out" / "pack"]
    assert sorted(p.name for p in (tmp_path / "out" / "pack").iterdir()) == ["a.txt", "sub"]
