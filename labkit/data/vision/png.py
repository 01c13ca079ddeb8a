"""A short path through Pillow for the PNGs datasets are made of.

``Image.open`` on a small PNG spends most of its time in Python: format detection, a chunk
parser that builds an ``ImageFile`` with its ``info`` dictionary, then a tile loader. For a
28x28 grey image that is about 100 us, against 10-15 us for the zlib inflate and filter
reversal. ``decode_png`` walks the chunk list itself (``struct``), checks each CRC, joins the
``IDAT`` payloads and hands them to Pillow's own C ``zip`` decoder (``Image.frombytes(...,
"zip", rawmode)``), the decoder ``PngImagePlugin`` uses, so the pixels are Pillow's.

It takes only the plain case: 8-bit, non-interlaced, grey / grey+alpha / RGB / RGBA, no
palette and no ``tRNS`` transparency, at most ``Image.MAX_IMAGE_PIXELS`` pixels. Anything else
(palette, 1/2/4/16-bit, Adam7, a colour key, an empty or a decompression-bomb-sized header)
returns ``None`` and the caller uses ``Image.open``, with Pillow's own checks. Ancillary chunks (``gAMA``,
``iCCP``, ``tEXt`` ...) are skipped: Pillow does not apply them to pixel values either. A file
that is cut short or has a wrong checksum raises ``ValueError`` saying which chunk.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image

__all__ = ["PNG_SIGNATURE", "PlainPNG", "decode_png", "inflate", "inflate_stack", "parse_png"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# (bit depth, colour type) -> Pillow mode, which is also the decoder's raw mode
_PLAIN_MODES = {(8, 0): "L", (8, 2): "RGB", (8, 4): "LA", (8, 6): "RGBA"}
_HEADER = struct.Struct(">I4s")  # chunk length, chunk type
_IHDR = struct.Struct(">IIBBBBB")  # width, height, bit depth, colour type, compression, filter, interlace
_CRC = struct.Struct(">I")
_FALLBACK_CHUNKS = (b"PLTE", b"tRNS")  # palette and colour-key transparency: Pillow's full reader


class PlainPNG(NamedTuple):
    """A plain PNG's header and its joined, still compressed ``IDAT`` payload."""

    mode: str  # "L", "LA", "RGB" or "RGBA"
    size: tuple[int, int]  # (width, height), Pillow's order
    data: bytes


def parse_png(data: bytes) -> PlainPNG | None:
    """The chunks of the PNG file bytes ``data`` checked and read, or None when ``Image.open`` should decode it.

    None for any PNG other than 8-bit, non-interlaced grey / grey+alpha / RGB / RGBA without
    palette or ``tRNS``, and for bytes that are not a PNG. ``ValueError`` for a truncated file,
    a chunk whose CRC does not match, or no ``IHDR`` / ``IDAT``.
    """
    if not data.startswith(PNG_SIGNATURE):
        return None
    mode: str | None = None
    size = (0, 0)
    idat: list[bytes] = []
    pos, end = len(PNG_SIGNATURE), len(data)
    while True:
        if pos + 12 > end:
            raise ValueError(f"truncated PNG: the chunk at byte {pos} is cut short (file has {end} bytes)")
        length, kind = _HEADER.unpack_from(data, pos)
        body_end = pos + 8 + length
        if body_end + 4 > end:
            raise ValueError(f"truncated PNG: chunk {kind!r} at byte {pos} needs {length} bytes, the file ends first")
        body = data[pos + 8 : body_end]
        if zlib.crc32(body, zlib.crc32(kind)) != _CRC.unpack_from(data, body_end)[0]:
            raise ValueError(f"broken PNG: CRC mismatch in chunk {kind!r} at byte {pos}")
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = _IHDR.unpack(body)
            mode = _PLAIN_MODES.get((depth, colour))
            limit = Image.MAX_IMAGE_PIXELS
            if mode is None or interlace or not width or not height or (limit and width * height > limit):
                return None  # Image.open applies its own checks (empty image, decompression bomb)
            size = (width, height)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        elif kind in _FALLBACK_CHUNKS or (kind[0] & 0x20) == 0:  # an unknown critical chunk: Pillow decides
            return None
        pos = body_end + 4
    if mode is None or not idat:
        raise ValueError("broken PNG: no IHDR or no IDAT chunk before IEND")
    return PlainPNG(mode, size, b"".join(idat))


def inflate(png: PlainPNG) -> Image.Image:
    """The pixels of a parsed PNG, through Pillow's ``zip`` decoder (``ValueError`` if they do not inflate)."""
    return Image.frombytes(png.mode, png.size, png.data, "zip", png.mode)


def decode_png(data: bytes) -> Image.Image | None:
    """Decode the PNG file bytes ``data`` to a Pillow image, or None when ``Image.open`` should.

    Returns an image of mode ``L``, ``LA``, ``RGB`` or ``RGBA`` with pixels identical to
    ``Image.open(...)`` for 8-bit non-interlaced files without palette or ``tRNS`` (see
    ``parse_png``); raises ``ValueError`` for a broken file.
    """
    png = parse_png(data)
    return None if png is None else inflate(png)


def inflate_stack(pngs: Sequence[PlainPNG]) -> np.ndarray:
    """``N`` parsed PNGs of one mode and size decoded into one ``(N, H, W, C)`` ``uint8`` array.

    Each image is pasted into one tall Pillow image, so the conversion to numpy happens once
    per batch instead of once per image. ``ValueError`` if modes or sizes differ (or an image
    does not inflate; ``pngs[i]`` is named).
    """
    if not pngs:
        raise ValueError("inflate_stack: expected at least one PNG, got none")
    mode, (width, height) = pngs[0].mode, pngs[0].size
    tall = Image.new(mode, (width, height * len(pngs)))
    for i, png in enumerate(pngs):
        if png.mode != mode or png.size != (width, height):
            raise ValueError(
                f"inflate_stack: expected every PNG to be {mode} {width}x{height}, "
                f"got pngs[{i}] {png.mode} {png.size[0]}x{png.size[1]}"
            )
        tall.paste(inflate(png), (0, height * i))
    return np.asarray(tall).reshape(len(pngs), height, width, -1)
