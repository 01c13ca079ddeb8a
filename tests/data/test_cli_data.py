"""``labkit data list | info | preview | get`` on datasets registered by the test (and a local HTTP server)."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labkit.__main__ import main as labkit_main
from labkit.cli.data import describe_sample
from labkit.cli.data import main as data_main
from labkit.data import catalog
from labkit.data.catalog import DatasetSpec, Download, Located
from labkit.data.preview import preview_dataset, to_image
from labkit.plugins.registry import registry

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220)}


class _PNGFolder:
    """A tiny ImageFolder: ``root/<class>/*.png`` as (HWC uint8 array, label)."""

    def __init__(self, root: Path) -> None:
        self.classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.files = [(f, k) for k, c in enumerate(self.classes) for f in sorted((root / c).glob("*.png"))]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        path, label = self.files[i]
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB")), label


def _write_pngs(root: Path) -> None:
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(3):
            arr = np.full((8, 8, 3), colour, np.uint8)
            arr[k, :] = 255  # a white stripe: images differ within a class
            Image.fromarray(arr).save(root / name / f"{k}.png")


def _folder_locator(subdir: str):
    def locate(data_dir: Path) -> Located:
        root = data_dir / subdir
        return Located(root if root.is_dir() else None, (str(root),))

    return locate


def _tar_of_pngs(tmp: Path) -> bytes:
    _write_pngs(tmp / "tiles")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(tmp / "tiles", arcname="tiles")
    return buf.getvalue()


class _Texts:
    classes = ("fact", "joke")

    def __len__(self) -> int:
        return 5

    def __getitem__(self, i: int) -> tuple[str, int]:
        return f"sample number {i}: " + "the quick brown fox jumps over the lazy dog " * (3 * i + 1), i % 2


class _Series:
    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        t = np.linspace(0, 6, 20 + 3 * i)
        return np.stack([np.sin(t + i), np.cos(t)], axis=1).astype(np.float32), i % 3


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """``(url of tiles.tar.gz, its bytes)`` on 127.0.0.1; the server thread stops by itself within 30 s."""
    payload = _tar_of_pngs(tmp_path / "src")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path != "/tiles.tar.gz":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads, httpd.timeout = True, 0.1
    stop, deadline = threading.Event(), time.monotonic() + 30.0

    def serve() -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            httpd.handle_request()
        httpd.server_close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/tiles.tar.gz", payload
    stop.set()
    thread.join(timeout=5)


@pytest.fixture
def fakes(tmp_path: Path, server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Register fake datasets (only these: the built-ins are not loaded); yield the data dir."""
    url, payload = server
    data_dir = tmp_path / "data"
    _write_pngs(data_dir / "squares")
    monkeypatch.setattr(catalog, "_loaded", True)
    monkeypatch.setattr(catalog, "default_data_dir", lambda: tmp_path / "default")
    for name in registry.names("dataset"):  # hide any registered by other tests or plugins
        monkeypatch.setitem(registry._entries["dataset"], name, registry._entries["dataset"][name])
        registry.unregister("dataset", name)

    def always(path: Path):
        return lambda data_dir: Located(path, (str(path),))

    specs = [
        DatasetSpec("fake_squares", "vision", "Red and blue squares\nwith stripes", _folder_locator("squares"),
                    lambda p: {"train": _PNGFolder(p), "test": _PNGFolder(p)}, "it is made by the test",
                    info={"size": 6, "licence": "CC0"}),
        DatasetSpec("fake_missing", "vision", "Never present", _folder_locator("nowhere"), _PNGFolder,
                    "ask the lab manager for the USB stick"),
        DatasetSpec("fake_tiles", "vision", "Downloaded tiles", _folder_locator("tiles"), _PNGFolder,
                    "labkit data get fake_tiles",
                    downloads=(Download(url, "tiles.tar.gz", hashlib.sha256(payload).hexdigest(), extract=True),)),
        DatasetSpec("fake_tiles_bad", "vision", "Wrong checksum", _folder_locator("tiles_bad"), _PNGFolder,
                    "labkit data get fake_tiles_bad", downloads=(Download(url, "bad.tar.gz", "0" * 64),)),
        DatasetSpec("fake_text", "text", "Short texts", always(tmp_path), lambda p: {"train": _Texts()}, "-"),
        DatasetSpec("fake_series", "sequence", "Sine waves", always(tmp_path), lambda p: _Series(), "-"),
    ]  # fmt: skip
    for spec in specs:
        catalog.register_dataset(spec, owner="tests")
    yield data_dir
    for spec in specs:
        registry.unregister("dataset", spec.name)


def run(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    status = data_main(args)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_list_shows_every_dataset_with_availability_and_location(fakes: Path, capsys) -> None:
    status, out, err = run(["list", "--data-dir", str(fakes)], capsys)
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "DOMAIN", "AVAILABLE", "DESCRIPTION", "LOCATION"]
    row = {line.split()[0]: line for line in lines[2:8]}
    assert sorted(row) == ["fake_missing", "fake_series", "fake_squares", "fake_text", "fake_tiles", "fake_tiles_bad"]
    assert row["fake_squares"].split()[1:3] == ["vision", "yes"]
    assert "Red and blue squares with stripes" in row["fake_squares"]  # one line, even for a multi-line text
    assert str(fakes / "squares") in row["fake_squares"]
    assert row["fake_missing"].split()[2] == "no" and f"looked: {fakes / 'nowhere'}" in row["fake_missing"]
    assert "3 of 6 available" in out


def test_info_shows_sizes_classes_and_a_sample(fakes: Path, capsys) -> None:
    status, out, err = run(["info", "fake_squares", "--data-dir", str(fakes)], capsys)
    assert status == 0, err
    assert "licence: CC0" in out and f"path: {fakes / 'squares'}" in out
    assert "splits: train 6, test 6" in out
    assert "classes (2): blue, red" in out
    assert "sample train[0]: image (8, 8, 3) uint8, values 30..255; label 0 (blue)" in out


def test_info_of_text_and_sequence(fakes: Path, capsys) -> None:
    status, out, _ = run(["info", "fake_text"], capsys)
    assert status == 0 and "sample train[0]: text 'sample number 0: the quick" in out and "label 0 (fact)" in out
    status, out, _ = run(["info", "fake_series"], capsys)
    assert status == 0 and "splits: all 6" in out
    assert "sample all[0]: sequence of length 20, 2 channel(s), float32 (20, 2); label 0" in out


def test_missing_dataset_says_where_it_looked_and_how_to_get_it(fakes: Path, capsys) -> None:
    for command in (["info", "fake_missing"], ["preview", "fake_missing", "--out", str(fakes / "x.png")]):
        status, _, err = run([*command, "--data-dir", str(fakes)], capsys)
        assert status == 1
        assert str(fakes / "nowhere") in err and "ask the lab manager for the USB stick" in err
        assert "Traceback" not in err


def test_unknown_name_lists_the_valid_ones(fakes: Path, capsys) -> None:
    for command in ("info", "get", "preview"):
        extra = ["--out", "x.png"] if command == "preview" else []
        status, out, err = run([command, "fake_nope", *extra], capsys)
        assert status == 2 and out == ""
        assert "'fake_nope' is unknown" in err and "fake_squares" in err and "fake_text" in err


def test_preview_vision_grid_shows_the_images(fakes: Path, tmp_path: Path, capsys) -> None:
    out_png = tmp_path / "previews" / "squares.png"
    status, out, err = run(
        ["preview", "fake_squares", "--out", str(out_png), "--n", "4", "--data-dir", str(fakes)], capsys
    )
    assert status == 0, err
    assert f"wrote {out_png}" in out
    with Image.open(out_png) as im:
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
    colours = {tuple(p) for p in pixels}
    assert COLOURS["red"] in colours and COLOURS["blue"] in colours  # uint8 images kept their colours
    assert sum((pixels == COLOURS["red"]).all(1)) > 4 * 56 * 56  # enlarged well beyond 8x8


def test_preview_text_and_sequence_write_pngs(fakes: Path, tmp_path: Path, capsys) -> None:
    for name in ("fake_text", "fake_series"):
        path = tmp_path / f"{name}.png"
        status, _, err = run(["preview", name, "--out", str(path), "--n", "3"], capsys)
        assert status == 0, err
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L"))
        assert im.width >= 300 and im.height >= 150
        assert (arr < 128).mean() > 0.005  # something was drawn on the white page


def test_preview_rejects_bad_options(fakes: Path, tmp_path: Path, capsys) -> None:
    status, _, err = run(["preview", "fake_squares", "--out", str(tmp_path / "x.jpg")], capsys)
    assert status == 2 and "--out: expected a file ending in .png, got" in err
    status, _, err = run(["preview", "fake_squares", "--out", str(tmp_path / "x.png"), "--n", "0"], capsys)
    assert status == 2 and "--n: expected a positive number of samples, got 0" in err
    status, _, err = run(["preview", "fake_squares", "--out", str(tmp_path / "x.png"), "--split", "valid",
                          "--data-dir", str(fakes)], capsys)  # fmt: skip
    assert status == 1 and "split: expected one of ['test', 'train'], got 'valid'" in err
    assert not (tmp_path / "x.png").exists()


def test_get_downloads_verifies_unpacks_and_then_finds(fakes: Path, capsys) -> None:
    status, out, err = run(["get", "fake_tiles", "--data-dir", str(fakes)], capsys)
    assert status == 0, err
    assert "sha256 verified, unpacked" in out and f"fake_tiles is available at {fakes / 'tiles'}" in out
    assert len(list((fakes / "tiles").glob("*/*.png"))) == 6
    status, out, _ = run(["get", "fake_tiles", "--data-dir", str(fakes)], capsys)
    assert status == 0 and "already available" in out
    status, out, _ = run(["info", "fake_tiles", "--data-dir", str(fakes)], capsys)
    assert status == 0 and "splits: all 6" in out


def test_get_with_a_bad_checksum_fails_cleanly(fakes: Path, capsys) -> None:
    status, _, err = run(["get", "fake_tiles_bad", "--data-dir", str(fakes)], capsys)
    assert status == 1 and "checksum mismatch" in err and "Traceback" not in err
    assert not any(p.name.startswith("bad.tar.gz") for p in fakes.iterdir())


def test_list_survives_a_broken_locate(fakes: Path, capsys) -> None:
    def broken(data_dir: Path) -> Located:
        raise RuntimeError("plugin bug")

    catalog.register_dataset(DatasetSpec("fake_broken", "vision", "Broken", broken, _PNGFolder, "-"), owner="tests")
    try:
        status, out, _ = run(["list", "--data-dir", str(fakes)], capsys)
    finally:
        registry.unregister("dataset", "fake_broken")
    assert status == 0
    row = next(line for line in out.splitlines() if line.startswith("fake_broken"))
    assert row.split()[2] == "error" and "locate failed: RuntimeError: plugin bug" in row


def test_get_without_a_download_says_how_to_get_it(fakes: Path, capsys) -> None:
    status, _, err = run(["get", "fake_missing", "--data-dir", str(fakes)], capsys)
    assert status == 1 and "has no public download" in err and "ask the lab manager" in err


def test_labkit_main_dispatches_data(fakes: Path, capsys) -> None:
    assert labkit_main(["data", "list", "--data-dir", str(fakes)]) == 0
    assert "fake_squares" in capsys.readouterr().out
    assert labkit_main(["--help"]) == 0
    assert "data" in capsys.readouterr().out and labkit_main(["data"]) == 2


def test_help_does_not_import_matplotlib() -> None:
    code = (
        "import sys; from labkit.__main__ import main; main(['--help']); main(['data', '--help']);"
        " print('matplotlib' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip().endswith("False"), result.stderr


def test_to_image_reads_common_layouts() -> None:
    chw = np.zeros((3, 4, 5), np.float32)
    chw[0] = 1.0  # red in [0, 1]
    assert to_image(chw).size == (5, 4) and to_image(chw).getpixel((0, 0)) == (255, 0, 0)
    flat = np.arange(64, dtype=np.int64) % 17  # an 8x8 digit as a CSV row, values 0..16
    assert to_image(flat).size == (8, 8) and to_image(flat).getpixel((0, 2)) == (255, 255, 255)  # 16 at index 16
    with pytest.raises(ValueError, match=r"expected an image of shape .* got \(2, 3, 5, 7\)"):
        to_image(np.zeros((2, 3, 5, 7)))


def test_describe_sample_of_a_forecast_window() -> None:
    window = (np.zeros((24, 1), np.float32), np.zeros(6, np.float32))
    assert describe_sample(window, "sequence") == (
        "sequence of length 24, 1 channel(s), float32 (24, 1); target array (6,) float32"
    )


def test_preview_dataset_plots_a_forecast_target(tmp_path: Path) -> None:
    class Windows:
        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            return np.arange(10, dtype=np.float32) + i, np.arange(10, 14, dtype=np.float32)

    path = preview_dataset(Windows(), tmp_path / "w.png", "sequence", n=3, title="windows")
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB")).astype(int)
    red = (arr[..., 0] > 180) & (arr[..., 1] < 80) & (arr[..., 2] < 80)
    assert red.sum() > 20  # the target continues each series in red
    with pytest.raises(ValueError, match="n: expected a positive int, got 0"):
        preview_dataset(Windows(), tmp_path / "w.png", "sequence", n=0)


# ----------------------------------------------------------------------------- the real catalog


def test_real_catalog_lists_every_dataset_without_error(tmp_path: Path) -> None:
    code = "from labkit.data.catalog import dataset_names; print(' '.join(dataset_names()))"
    names = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    result = subprocess.run(
        [sys.executable, "-m", "labkit", "data", "list", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[2] for line in result.stdout.splitlines()[2:] if len(line.split()) > 3}
    assert set(names.stdout.split()) <= set(rows) and len(names.stdout.split()) >= 3
    assert {rows[name] for name in names.stdout.split()} <= {"yes", "no"}  # every spec's locate ran


def test_real_catalog_unknown_name_exits_2_without_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "labkit", "data", "info", "no_such_dataset"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "'no_such_dataset' is unknown; known datasets:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["digits", "fortunes", "japanese_vowels"])  # one per domain, from installed packages
def test_real_dataset_preview(name: str, tmp_path: Path, capsys) -> None:
    if not catalog.locate(name, tmp_path).found:
        pytest.skip(f"{name} is not installed here ({catalog.get_spec(name).how_to_get})")
    status, out, err = run(["preview", name, "--out", str(tmp_path / "p.png"), "--n", "4", "--data-dir", str(tmp_path)],
                           capsys)  # fmt: skip
    assert status == 0, err
    with Image.open(tmp_path / "p.png") as im:
        arr = np.asarray(im.convert("L"))
    assert arr.std() > 10  # not a blank page
    status, out, err = run(["info", name, "--data-dir", str(tmp_path)], capsys)
    assert status == 0 and "splits: train " in out and "sample train[0]: " in out, err
