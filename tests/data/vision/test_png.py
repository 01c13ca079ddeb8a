"""``decode_png``: Pillow's pixels for plain PNGs, None for the rest, clear errors for broken files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from labkit.data.vision import load_image
from labkit.data.vision.folder import ImageReadError
from labkit.data.vision.png import PNG_SIGNATURE, decode_png


def png_bytes(image: Image.Image, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **save)
    return buffer.getvalue()


def pillow_pixels(data: bytes) -> tuple[str, np.ndarray]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.mode, np.asarray(image)


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """``(type, body)`` of every chunk (the tests build files from these)."""
    out, pos = [], len(PNG_SIGNATURE)
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        out.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def assemble(parts: list[tuple[bytes, bytes]]) -> bytes:
    """A PNG file from ``(type, body)`` chunks, with correct lengths and CRCs."""
    out = [PNG_SIGNATURE]
    for kind, body in parts:
        out.append(struct.pack(">I4s", len(body), kind) + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind))))
    return b"".join(out)


def random_image(mode: str, size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    # smooth gradients plus noise: Pillow's adaptive filtering then uses None, Sub, Up, Average and Paeth rows
    h, w = size[1], size[0]
    ramp = (np.add.outer(np.arange(h), np.arange(w)) * 3)[:, :, None] + rng.integers(0, 40, (h, w, channels))
    array = (ramp % 256).astype(np.uint8)
    return Image.fromarray(array[:, :, 0] if channels == 1 else array, mode)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("size", [(1, 1), (28, 28), (37, 5)])
def test_plain_pngs_decode_to_pillows_pixels(mode: str, size: tuple[int, int]) -> None:
    data = png_bytes(random_image(mode, size, seed=size[0]))
    image = decode_png(data)
    assert image is not None
    expected_mode, expected = pillow_pixels(data)
    assert image.mode == expected_mode == mode
    np.testing.assert_array_equal(np.asarray(image), expected)


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def filtered_rows(pixels: np.ndarray) -> bytes:
    """The PNG scanlines of ``pixels (H, W, C)`` uint8, row ``r`` filtered with type ``r % 5`` (spec, section 9)."""
    h, w, bpp = pixels.shape
    flat = pixels.reshape(h, w * bpp).astype(int)
    out = bytearray()
    for r in range(h):
        kind, row = r % 5, flat[r]
        up = flat[r - 1] if r else np.zeros_like(row)
        line = []
        for i in range(w * bpp):
            a = row[i - bpp] if i >= bpp else 0
            b, c = up[i], (up[i - bpp] if i >= bpp else 0)
            predictor = (0, a, b, (a + b) // 2, paeth(a, b, c))[kind]
            line.append((row[i] - predictor) % 256)
        out += bytes([kind, *line])
    return bytes(out)


def test_every_filter_type_against_the_pixels_written() -> None:
    pixels = np.asarray(random_image("RGB", (13, 11), seed=5))
    scanlines = filtered_rows(pixels)
    compressed = zlib.compress(scanlines)
    idat = [(b"IDAT", compressed[i : i + 40]) for i in range(0, len(compressed), 40)]  # several IDAT chunks
    header = struct.pack(">IIBBBBB", 13, 11, 8, 2, 0, 0, 0)
    data = assemble([(b"IHDR", header), *idat, (b"IEND", b"")])
    image = decode_png(data)
    assert image is not None and len(idat) > 1
    np.testing.assert_array_equal(np.asarray(image), pixels)
    np.testing.assert_array_equal(pillow_pixels(data)[1], pixels)


def test_large_files_written_by_pillow() -> None:
    data = png_bytes(random_image("RGB", (300, 260), seed=3), compress_level=1)  # > 64 KiB: several IDATs
    assert sum(kind == b"IDAT" for kind, _ in chunks(data)) > 1
    image = decode_png(data)
    assert image is not None
    np.testing.assert_array_equal(np.asarray(image), pillow_pixels(data)[1])


def test_ancillary_chunks_are_skipped() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "written by a test")
    data = png_bytes(random_image("RGB", (20, 10)), pnginfo=info, dpi=(300, 300))
    assert {b"tEXt", b"pHYs"} <= {kind for kind, _ in chunks(data)}
    image = decode_png(data)
    assert image is not None
    np.testing.assert_array_equal(np.asarray(image), pillow_pixels(data)[1])


@pytest.mark.parametrize(
    "image",
    [
        Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).convert("P"),  # palette
        Image.fromarray((np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)),  # 16-bit grey
        Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) > 30),  # 1-bit
    ],
    ids=["palette", "16-bit", "1-bit"],
)
def test_other_pngs_are_left_to_image_open(image: Image.Image) -> None:
    assert decode_png(png_bytes(image)) is None


def test_colour_key_interlacing_and_unknown_critical_chunks_fall_back() -> None:
    keyed = png_bytes(random_image("L", (8, 8)), transparency=5)
    assert b"tRNS" in {kind for kind, _ in chunks(keyed)}
    assert decode_png(keyed) is None
    parts = chunks(png_bytes(random_image("L", (8, 8))))
    ihdr = bytearray(parts[0][1])
    ihdr[12] = 1  # Adam7 (Pillow cannot write it; the header alone decides)
    assert decode_png(assemble([(b"IHDR", bytes(ihdr)), *parts[1:]])) is None
    assert decode_png(assemble([parts[0], (b"ZZZZ", b"x"), *parts[1:]])) is None


def test_not_a_png_is_none() -> None:
    buffer = io.BytesIO()
    random_image("RGB", (8, 8)).save(buffer, format="JPEG")
    assert decode_png(buffer.getvalue()) is None
    assert decode_png(b"") is None


def test_truncated_files_raise_at_every_cut() -> None:
    data = png_bytes(random_image("RGB", (16, 16)))
    for cut in range(len(PNG_SIGNATURE), len(data) - 1, 7):
        with pytest.raises(ValueError, match="truncated PNG"):
            decode_png(data[:cut])


def test_checksum_and_inflate_errors() -> None:
    data = bytearray(png_bytes(random_image("RGB", (16, 16))))
    parts = chunks(bytes(data))
    idat_at = bytes(data).index(b"IDAT")
    data[idat_at + 10] ^= 0xFF  # a flipped byte inside IDAT: the CRC no longer matches
    with pytest.raises(ValueError, match=r"CRC mismatch in chunk b'IDAT'"):
        decode_png(bytes(data))
    header = parts[0]
    short = zlib.compress(b"\x00" * 20)  # valid zlib, valid CRC, far fewer rows than the header says
    with pytest.raises(ValueError, match="not enough image data"):
        decode_png(assemble([header, (b"IDAT", short), (b"IEND", b"")]))
    with pytest.raises(ValueError, match="no IHDR or no IDAT"):
        decode_png(assemble([header, (b"IEND", b"")]))


@pytest.mark.parametrize("source_mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_load_image_fast_path_equals_image_open(tmp_path: Path, source_mode: str, mode: str) -> None:
    path = tmp_path / "x.png"
    random_image(source_mode, (12, 9), seed=7).save(path)
    assert decode_png(path.read_bytes()) is not None
    with Image.open(path) as reference:
        from labkit.data.vision import convert_mode

        expected = np.asarray(convert_mode(reference, mode))
    np.testing.assert_array_equal(np.asarray(load_image(path, mode)), expected)


def test_load_image_names_a_broken_png(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    path.write_bytes(png_bytes(random_image("L", (28, 28)))[:60])
    with pytest.raises(ImageReadError, match=r"cannot read image file '.*cut\.png'.*truncated PNG"):
        load_image(path, "L")


def test_huge_or_empty_headers_are_left_to_image_open(monkeypatch: pytest.MonkeyPatch) -> None:
    parts = chunks(png_bytes(random_image("L", (8, 8))))
    bomb = struct.pack(">IIBBBBB", 200_000, 200_000, 8, 0, 0, 0, 0)  # 4e10 pixels declared, a few bytes of data
    assert decode_png(assemble([(b"IHDR", bomb), *parts[1:]])) is None
    empty = struct.pack(">IIBBBBB", 0, 8, 8, 0, 0, 0, 0)
    assert decode_png(assemble([(b"IHDR", empty), *parts[1:]])) is None
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 63)
    assert decode_png(assemble(parts)) is None  # 64 pixels: over this limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64)
    assert decode_png(assemble(parts)) is not None
