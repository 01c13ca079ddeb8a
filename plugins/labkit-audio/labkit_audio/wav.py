"""Reading and writing PCM WAV files with the standard library's ``wave`` module.

``read_wav(path) -> (samples, sample_rate)`` gives float32 samples in ``[-1, 1)``: shape ``(N,)``
for a mono file, ``(N, channels)`` for stereo (``mono=True`` averages the channels). Only
uncompressed integer PCM with 8-bit (unsigned) or 16-bit (signed, little-endian) samples and
one or two channels is read; anything else raises ``ValueError`` naming the file and saying
what it holds. ``write_wav`` writes the same formats.
"""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np

__all__ = ["WavFormatError", "read_wav", "wav_info", "write_wav"]

SAMPLE_WIDTHS = (1, 2)  # bytes per sample: 8-bit unsigned, 16-bit signed
MAX_CHANNELS = 2
_FORMAT_NAMES = {
    0x0001: "PCM",
    0x0002: "Microsoft ADPCM",
    0x0003: "IEEE float",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0055: "MPEG layer 3",
    0xFFFE: "WAVE_FORMAT_EXTENSIBLE",
}


class WavFormatError(ValueError):
    """A file that is not an 8/16-bit mono or stereo PCM WAV (the message names the file)."""


def _format_tag(path: Path) -> int | None:
    """The ``fmt `` chunk's format tag of a RIFF/WAVE file (``None`` when there is no such chunk)."""
    try:
        with open(path, "rb") as f:
            header = f.read(12)
            if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
                return None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if chunk_id == b"fmt ":
                    body = f.read(2)
                    return struct.unpack("<H", body)[0] if len(body) == 2 else None
                f.seek(size + (size & 1), 1)  # chunks are padded to an even size
    except OSError:
        return None


def _describe_failure(path: Path, exc: Exception) -> str:
    tag = _format_tag(path)
    if tag is not None and tag != 0x0001:
        got = f"{_FORMAT_NAMES.get(tag, 'an unknown encoding')} (format tag {tag:#06x})"
    else:
        got = f"{type(exc).__name__}: {exc}"
    return f"read_wav: cannot read '{path}': expected an uncompressed PCM WAV file, got {got}"


def wav_info(path: str | Path) -> tuple[int, int, int, int]:
    """``(sample_rate, channels, sample_width_bytes, frames)`` of a PCM WAV file, read from its header."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_wav: no file '{path}'")
    try:
        with wave.open(str(path), "rb") as w:
            return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
    except (wave.Error, EOFError, struct.error) as exc:
        raise WavFormatError(_describe_failure(path, exc)) from None


def read_wav(path: str | Path, mono: bool = False) -> tuple[np.ndarray, int]:
    """Samples of a PCM WAV file as float32 in ``[-1, 1)`` and its sample rate.

    Returns ``(samples, sample_rate)``: ``samples`` is ``(N,)`` for a mono file and
    ``(N, channels)`` for a stereo one, unless ``mono=True`` (the channels' mean, ``(N,)``).
    8-bit files are unsigned (``(u - 128) / 128``), 16-bit signed (``s / 32768``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        WavFormatError (a ValueError): not a RIFF/WAVE file, not PCM (e.g. IEEE float), a sample
            width other than 8/16 bits, more than two channels, or truncated sample data.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_wav: no file '{path}'")
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width, frames = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
            if width not in SAMPLE_WIDTHS:
                raise WavFormatError(
                    f"read_wav: cannot read '{path}': expected 8- or 16-bit PCM samples, got {8 * width}-bit"
                )
            if not 1 <= channels <= MAX_CHANNELS:
                raise WavFormatError(
                    f"read_wav: cannot read '{path}': expected mono or stereo (1 or 2 channels), got {channels}"
                )
            raw = w.readframes(frames)
    except (wave.Error, EOFError, struct.error) as exc:
        raise WavFormatError(_describe_failure(path, exc)) from None
    expected = frames * channels * width
    if len(raw) != expected:
        raise WavFormatError(
            f"read_wav: cannot read '{path}': expected {frames} frames ({expected} bytes) of sample data, "
            f"got {len(raw)} bytes (truncated file)"
        )
    if width == 1:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    else:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    samples = samples.reshape(frames, channels)  # (N, C), frames interleaved
    if mono or channels == 1:
        samples = samples.mean(axis=1, dtype=np.float32) if channels > 1 else samples[:, 0]
    return np.ascontiguousarray(samples, dtype=np.float32), int(rate)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int, sample_width: int = 2) -> Path:
    """Write ``samples`` (``(N,)`` mono or ``(N, channels)``, floats in ``[-1, 1]``) as a PCM WAV file.

    Values are clipped to ``[-1, 1]`` and quantised to the nearest level (16-bit: ``round(x * 32768)``
    clipped to ``[-32768, 32767]``; 8-bit: ``round(x * 128) + 128`` clipped to ``[0, 255]``), so
    ``read_wav`` gives back each sample within half a quantisation step.
    """
    samples = np.asarray(samples)
    if samples.dtype.kind not in "fiu":
        raise TypeError(f"write_wav: expected numeric samples for '{path}', got dtype {samples.dtype}")
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2 or not 1 <= samples.shape[1] <= MAX_CHANNELS:
        raise ValueError(f"write_wav: expected samples (N,) or (N, 1 or 2) for '{path}', got shape {samples.shape}")
    if sample_width not in SAMPLE_WIDTHS:
        raise ValueError(f"write_wav: expected sample_width 1 or 2 (bytes) for '{path}', got {sample_width!r}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate < 1:
        raise ValueError(f"write_wav: expected a positive int sample_rate for '{path}', got {sample_rate!r}")
    x = np.clip(samples.astype(np.float64), -1.0, 1.0)
    if sample_width == 2:
        data = np.clip(np.rint(x * 32768.0), -32768, 32767).astype("<i2").tobytes()
    else:
        data = np.clip(np.rint(x * 128.0) + 128.0, 0, 255).astype(np.uint8).tobytes()
    path = Path(path)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(samples.shape[1])
        w.setsampwidth(sample_width)
        w.setframerate(int(sample_rate))
        w.writeframes(data)
    return path
