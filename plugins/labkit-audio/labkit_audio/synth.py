"""The ``tones`` synthesiser: labelled clips of ten kinds of sound, in noise, written as WAV files.

Every clip is ``duration`` seconds at ``sample_rate``: silence except for one event (a random
35-85% of the clip at a random onset, with 10-30 ms raised-cosine fades) of random amplitude,
pitch and phase, plus white noise at a random signal-to-noise ratio (``snr_db``, measured over
the event). Each clip draws from its own ``numpy`` generator seeded by ``(seed, class, index)``,
so a clip does not depend on how many others are made, and the same seed gives the same files
on every machine.

Classes (frequencies in Hz, ``U``: uniform, ``logU``: log-uniform):

- ``tone_low``: a sine, ``logU(150, 400)``; ``tone_high``: a sine, ``logU(800, 2400)``
- ``chirp_up`` / ``chirp_down``: an exponential sweep between ``logU(200, 500)`` and 2.5-5x that
- ``square`` / ``sawtooth``: band-limited (additive) waves, fundamental ``logU(150, 500)``
- ``am_tone``: a sine ``logU(500, 1500)`` amplitude-modulated at ``U(4, 12)`` Hz, depth ``U(0.6, 1)``
- ``fm_tone``: a sine ``logU(500, 1500)`` with vibrato at ``U(3, 8)`` Hz, deviation ``U(100, 250)`` Hz
- ``noise_bursts``: 3-6 bursts of white noise, 30-100 ms each
- ``chord``: two equal sines, ``logU(200, 800)`` and that times 5/4, 4/3 or 3/2
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from labkit_audio.wav import write_wav

__all__ = ["CLASSES", "make_tones", "synthesize"]

log = logging.getLogger(__name__)

CLASSES = (
    "tone_low", "tone_high", "chirp_up", "chirp_down", "square", "sawtooth", "am_tone", "fm_tone", "noise_bursts",
    "chord",
)  # fmt: skip

Rng = np.random.Generator


def _log_uniform(rng: Rng, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _additive(t: np.ndarray, f0: float, nyquist: float, harmonics: Callable[[int], float], phase: float) -> np.ndarray:
    """``sum_k harmonics(k) sin(2 pi k f0 t + k phase)`` over the harmonics below 0.9 Nyquist (no aliasing)."""
    out = np.zeros_like(t)
    k = 1
    while k * f0 < 0.9 * nyquist:
        amplitude = harmonics(k)
        if amplitude:
            out += amplitude * np.sin(2 * np.pi * k * f0 * t + k * phase)
        k += 1
    return out


def _event(kind: str, t: np.ndarray, rng: Rng, sample_rate: int) -> np.ndarray:
    """One event of class ``kind`` over times ``t (n,)`` (seconds from the event's start), peak about 1."""
    nyquist = sample_rate / 2.0
    phase = rng.uniform(0, 2 * np.pi)
    if kind == "tone_low":
        return np.sin(2 * np.pi * _log_uniform(rng, 150, 400) * t + phase)
    if kind == "tone_high":
        return np.sin(2 * np.pi * _log_uniform(rng, 800, 2400) * t + phase)
    if kind in ("chirp_up", "chirp_down"):
        low = _log_uniform(rng, 200, 500)
        high = low * rng.uniform(2.5, 5.0)
        f0, f1 = (low, high) if kind == "chirp_up" else (high, low)
        length = t[-1] if t[-1] > 0 else 1.0
        rate = np.log(f1 / f0)  # f(t) = f0 (f1 / f0) ** (t / length)
        return np.sin(2 * np.pi * f0 * length / rate * np.expm1(rate * t / length) + phase)
    if kind == "square":
        f0 = _log_uniform(rng, 150, 500)
        return _additive(t, f0, nyquist, lambda k: 4 / (np.pi * k) if k % 2 else 0.0, phase)
    if kind == "sawtooth":
        f0 = _log_uniform(rng, 150, 500)
        return _additive(t, f0, nyquist, lambda k: 2 / (np.pi * k) * (-1) ** (k + 1), phase)
    if kind == "am_tone":
        carrier, rate, depth = _log_uniform(rng, 500, 1500), rng.uniform(4, 12), rng.uniform(0.6, 1.0)
        envelope = (1 + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))) / (1 + depth)
        return envelope * np.sin(2 * np.pi * carrier * t + phase)
    if kind == "fm_tone":
        carrier, rate, deviation = _log_uniform(rng, 500, 1500), rng.uniform(3, 8), rng.uniform(100, 250)
        vibrato = deviation / rate * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
        return np.sin(2 * np.pi * carrier * t + vibrato + phase)
    if kind == "noise_bursts":
        out = np.zeros_like(t)
        for _ in range(int(rng.integers(3, 7))):
            length = int(rng.uniform(0.03, 0.10) * sample_rate)
            start = int(rng.integers(0, max(len(t) - length, 1)))
            out[start : start + length] = rng.standard_normal(len(out[start : start + length])) / 3.0
        return out
    if kind == "chord":
        low = _log_uniform(rng, 200, 800)
        ratio = float(rng.choice([5 / 4, 4 / 3, 3 / 2]))
        second = np.sin(2 * np.pi * low * ratio * t + rng.uniform(0, 2 * np.pi))
        return 0.5 * (np.sin(2 * np.pi * low * t + phase) + second)
    raise ValueError(f"synthesize: expected a class in {list(CLASSES)}, got {kind!r}")


def synthesize(
    kind: str,
    rng: Rng,
    sample_rate: int = 8000,
    duration: float = 1.0,
    snr_db: tuple[float, float] = (0.0, 20.0),
) -> np.ndarray:
    """One clip of class ``kind``: float32 ``(round(duration * sample_rate),)`` with peak <= 0.99.

    The event's amplitude is ``U(0.1, 0.8)``; white noise is added at an SNR drawn from
    ``U(*snr_db)`` decibels relative to the event's mean power.
    """
    if kind not in CLASSES:
        raise ValueError(f"synthesize: expected a class in {list(CLASSES)}, got {kind!r}")
    n = round(duration * sample_rate)
    if n < 16:
        raise ValueError(f"synthesize: expected duration * sample_rate >= 16 samples, got {n}")
    length = int(n * rng.uniform(0.35, 0.85))
    onset = int(rng.integers(0, n - length + 1))
    t = np.arange(length) / sample_rate
    event = _event(kind, t, rng, sample_rate)
    fade = min(int(rng.uniform(0.010, 0.030) * sample_rate), length // 2)
    if fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
        event[:fade] *= ramp
        event[length - fade :] *= ramp[::-1]
    event *= rng.uniform(0.1, 0.8) / max(float(np.abs(event).max()), 1e-12)
    clip = np.zeros(n)
    clip[onset : onset + length] = event
    power = float(np.mean(event**2))
    snr = rng.uniform(*snr_db)
    clip += rng.standard_normal(n) * np.sqrt(power / 10 ** (snr / 10))
    peak = float(np.abs(clip).max())
    if peak > 0.99:
        clip *= 0.99 / peak
    return clip.astype(np.float32)


def make_tones(
    root: str | Path,
    n_per_class: int,
    seed: int = 0,
    sample_rate: int = 8000,
    duration: float = 1.0,
    classes: Sequence[str] = CLASSES,
    snr_db: tuple[float, float] = (0.0, 20.0),
    sample_width: int = 2,
) -> Path:
    """Write ``n_per_class`` clips of every class as ``root/<class>/<class>_<i:05d>.wav`` (16-bit mono PCM).

    Clip ``i`` of class ``c`` is drawn from ``numpy.random.default_rng([seed, CLASSES.index(c), i])``.
    """
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, int) or n_per_class < 1:
        raise ValueError(f"make_tones: expected n_per_class as an int >= 1, got {n_per_class!r}")
    unknown = [c for c in classes if c not in CLASSES]
    if unknown or not classes or len(set(classes)) != len(classes):
        raise ValueError(f"make_tones: expected distinct classes among {list(CLASSES)}, got {list(classes)}")
    low, high = (float(v) for v in snr_db)
    if low > high:
        raise ValueError(f"make_tones: expected snr_db as (low, high) with low <= high, got {tuple(snr_db)}")
    root = Path(root)
    for name in classes:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            rng = np.random.default_rng([int(seed), CLASSES.index(name), i])
            clip = synthesize(name, rng, sample_rate, duration, (low, high))
            write_wav(folder / f"{name}_{i:05d}.wav", clip, sample_rate, sample_width)
    log.info("make_tones: wrote %d clips x %d classes to %s", n_per_class, len(classes), root)
    return root
