"""Spectral features with numpy only: framing, Hann window, STFT, power, mel filterbank, log-mel.

Conventions (those of ``torch.stft`` and librosa): a signal ``x (..., N)`` gives an STFT
``(..., n_fft // 2 + 1, n_frames)``; with ``center=True`` the signal is padded by ``n_fft // 2``
on both sides so frame ``t`` is centred on sample ``t * hop_length`` and
``n_frames = 1 + N // hop_length``; with ``center=False`` frame ``t`` starts at sample
``t * hop_length`` and ``n_frames = 1 + (N - n_fft) // hop_length``. The STFT is unnormalised
(``X[k, t] = sum_n w[n] x[t hop + n] exp(-2 pi i k n / n_fft)``). Mel scale: HTK,
``mel = 2595 log10(1 + f / 700)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "frame",
    "hann_window",
    "hz_to_mel",
    "log_mel_spectrogram",
    "mel_filterbank",
    "mel_to_hz",
    "num_frames",
    "power_spectrogram",
    "stft",
]

PAD_MODES = ("reflect", "constant")
MEL_NORMS = (None, "slaney")


def _positive_int(op: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{op}: expected {name} as an int >= 1, got {value!r}")
    return int(value)


def _signal(op: str, x: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "fiu" or x.ndim == 0:
        raise ValueError(f"{op}: expected a real signal array (..., N), got dtype {x.dtype} and shape {x.shape}")
    return x if x.dtype.kind == "f" else x.astype(np.float64)


def hann_window(n: int, periodic: bool = True, dtype: Any = np.float64) -> np.ndarray:
    """The Hann window ``(n,)``: ``0.5 - 0.5 cos(2 pi k / M)`` with ``M = n`` (periodic, for spectral
    analysis; ``scipy.signal.get_window("hann", n)``) or ``M = n - 1`` (symmetric, ``np.hanning``)."""
    n = _positive_int("hann_window", "n", n)
    if n == 1:
        return np.ones(1, dtype=dtype)
    m = n if periodic else n - 1
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / m)).astype(dtype)


def frame(x: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """Overlapping frames of ``x (..., N)`` as a read-only view ``(..., n_frames, frame_length)``.

    Frame ``t`` is ``x[..., t * hop_length : t * hop_length + frame_length]``;
    ``n_frames = 1 + (N - frame_length) // hop_length``. No data is copied (stride tricks).
    """
    x = np.asarray(x)
    frame_length = _positive_int("frame", "frame_length", frame_length)
    hop_length = _positive_int("frame", "hop_length", hop_length)
    if x.ndim == 0 or x.shape[-1] < frame_length:
        raise ValueError(
            f"frame: expected a signal of at least frame_length={frame_length} samples, got shape {x.shape}"
        )
    windows = np.lib.stride_tricks.sliding_window_view(x, frame_length, axis=-1)  # (..., N - L + 1, L)
    return windows[..., ::hop_length, :]


def num_frames(n_samples: int, n_fft: int, hop_length: int, center: bool = True) -> int:
    """How many STFT frames a signal of ``n_samples`` gives."""
    if center:
        return 1 + n_samples // hop_length
    return 1 + (n_samples - n_fft) // hop_length


def _frames_spectrum(
    x: Any, n_fft: int, hop_length: int | None, window: str | np.ndarray, center: bool, pad_mode: str
) -> np.ndarray:
    """The STFT in frame-major layout ``(..., n_frames, n_fft // 2 + 1)`` complex128 (see :func:`stft`)."""
    x = _signal("stft", x).astype(np.float64, copy=False)  # numpy's float32 rfft is several times slower
    n_fft = _positive_int("stft", "n_fft", n_fft)
    hop_length = _positive_int("stft", "hop_length", hop_length if hop_length is not None else max(n_fft // 4, 1))
    if isinstance(window, str):
        if window != "hann":
            raise ValueError(f"stft: expected window 'hann' or an array of n_fft={n_fft} values, got {window!r}")
        w = hann_window(n_fft)
    else:
        w = np.asarray(window, dtype=np.float64)
        if w.shape != (n_fft,):
            raise ValueError(f"stft: expected a window of shape ({n_fft},), got {w.shape}")
    if center:
        if pad_mode not in PAD_MODES:
            raise ValueError(f"stft: expected pad_mode in {PAD_MODES}, got {pad_mode!r}")
        pad = [(0, 0)] * (x.ndim - 1) + [(n_fft // 2, n_fft // 2)]
        if pad_mode == "reflect" and x.shape[-1] <= n_fft // 2:
            raise ValueError(
                f"stft: reflect padding needs more than n_fft // 2 = {n_fft // 2} samples, got {x.shape[-1]}; "
                "use pad_mode='constant' or a smaller n_fft"
            )
        x = np.pad(x, pad, mode=pad_mode)
    frames = frame(x, n_fft, hop_length)  # (..., T, n_fft), a view
    return np.fft.rfft(frames * w, n=n_fft, axis=-1)  # (..., T, F)


def stft(
    x: Any,
    n_fft: int,
    hop_length: int | None = None,
    window: str | np.ndarray = "hann",
    center: bool = True,
    pad_mode: str = "reflect",
) -> np.ndarray:
    """The short-time Fourier transform of ``x (..., N)``: complex128 ``(..., n_fft // 2 + 1, n_frames)``.

    ``hop_length`` defaults to ``n_fft // 4``; ``window`` is ``"hann"`` (periodic) or an array
    ``(n_fft,)``. ``center`` pads ``n_fft // 2`` samples on both sides (``pad_mode`` ``"reflect"``
    or ``"constant"`` zeros). Computed in float64 whatever the input's float type.
    """
    return np.swapaxes(_frames_spectrum(x, n_fft, hop_length, window, center, pad_mode), -1, -2)


def _power(spectrum: np.ndarray, power: float) -> np.ndarray:
    """``|spectrum| ** power`` (float64)."""
    magnitude_squared = spectrum.real**2 + spectrum.imag**2
    return magnitude_squared if power == 2.0 else magnitude_squared ** (power / 2.0)


def power_spectrogram(
    x: Any,
    n_fft: int,
    hop_length: int | None = None,
    power: float = 2.0,
    center: bool = True,
    pad_mode: str = "reflect",
) -> np.ndarray:
    """``|stft(x)| ** power``: float64 ``(..., n_fft // 2 + 1, n_frames)`` (``power=1``: magnitude)."""
    if isinstance(power, bool) or not isinstance(power, (int, float)) or power <= 0:
        raise ValueError(f"power_spectrogram: expected power > 0, got {power!r}")
    spectrum = _frames_spectrum(x, n_fft, hop_length, "hann", center, pad_mode)
    return np.swapaxes(_power(spectrum, power), -1, -2)


def hz_to_mel(frequency: Any) -> np.ndarray:
    """HTK mel scale: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(frequency, dtype=np.float64) / 700.0)


def mel_to_hz(mel: Any) -> np.ndarray:
    """The inverse of :func:`hz_to_mel`: ``700 (10 ** (mel / 2595) - 1)``."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    n_mels: int,
    n_fft: int,
    sample_rate: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    norm: str | None = None,
) -> np.ndarray:
    """Triangular mel filters ``(n_mels, n_fft // 2 + 1)`` (float64) over the rfft bins.

    ``n_mels + 2`` edge frequencies are equally spaced in mel between ``f_min`` and ``f_max``
    (default ``sample_rate / 2``); filter ``m`` rises linearly (in Hz) from edge ``m`` to 1 at
    edge ``m + 1`` and falls to 0 at edge ``m + 2``. Between the first and the last centre the
    filters sum to 1. ``norm="slaney"`` scales filter ``m`` by ``2 / (edge[m + 2] - edge[m])``
    (unit area in Hz).
    """
    op = "mel_filterbank"
    n_mels = _positive_int(op, "n_mels", n_mels)
    n_fft = _positive_int(op, "n_fft", n_fft)
    sample_rate = _positive_int(op, "sample_rate", sample_rate)
    nyquist = sample_rate / 2.0
    f_max = nyquist if f_max is None else float(f_max)
    if not 0.0 <= float(f_min) < f_max <= nyquist:
        raise ValueError(f"{op}: expected 0 <= f_min < f_max <= sample_rate / 2 = {nyquist}, got {f_min}, {f_max}")
    if norm not in MEL_NORMS:
        raise ValueError(f"{op}: expected norm in {MEL_NORMS}, got {norm!r}")
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))  # (n_mels + 2,)
    bins = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)  # (F,) bin centre frequencies in Hz
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (n_mels, 1) each
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))  # (n_mels, F)
    if norm == "slaney":
        weights *= 2.0 / (upper - lower)
    return weights


def log_mel_spectrogram(
    x: Any,
    sample_rate: int,
    n_fft: int = 512,
    hop_length: int | None = None,
    n_mels: int = 40,
    f_min: float = 0.0,
    f_max: float | None = None,
    amin: float = 1e-10,
    top_db: float | None = 80.0,
    filterbank: np.ndarray | None = None,
) -> np.ndarray:
    """``10 log10(max(mel power, amin))`` of ``x (..., N)``: ``(..., n_mels, n_frames)``.

    The mel power is ``mel_filterbank(...) @ power_spectrogram(x)`` (centred frames, reflect
    padding). ``top_db`` floors each signal's values at its maximum minus ``top_db`` decibels
    (``None``: no floor). Pass a precomputed ``filterbank (n_mels, n_fft // 2 + 1)`` to reuse one.
    """
    power = _power(_frames_spectrum(x, n_fft, hop_length, "hann", True, "reflect"), 2.0)  # (..., T, F)
    fb = mel_filterbank(n_mels, n_fft, sample_rate, f_min, f_max) if filterbank is None else np.asarray(filterbank)
    if fb.ndim != 2 or fb.shape[1] != power.shape[-1]:
        raise ValueError(f"log_mel_spectrogram: expected a filterbank (n_mels, {power.shape[-1]}), got {fb.shape}")
    # one GEMM over every frame: numpy's stacked matmul (fb @ (..., F, T)) is far slower
    mel = (power.reshape(-1, power.shape[-1]) @ fb.T).reshape(*power.shape[:-1], fb.shape[0])  # (..., T, n_mels)
    mel = np.swapaxes(mel, -1, -2)  # (..., n_mels, T)
    log_mel = 10.0 * np.log10(np.maximum(mel, amin))
    if top_db is not None:
        if top_db < 0:
            raise ValueError(f"log_mel_spectrogram: expected top_db >= 0 or None, got {top_db!r}")
        peak = log_mel.max(axis=(-2, -1), keepdims=True)
        log_mel = np.maximum(log_mel, peak - top_db)
    return log_mel
