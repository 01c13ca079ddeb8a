"""STFT, power, mel filterbank and log-mel features against closed forms (and scipy where present)."""

from __future__ import annotations

import numpy as np
import pytest
from labkit_audio.features import (
    frame,
    hann_window,
    hz_to_mel,
    log_mel_spectrogram,
    mel_filterbank,
    mel_to_hz,
    num_frames,
    power_spectrogram,
    stft,
)


def test_frame_is_a_strided_view_of_the_signal():
    x = np.arange(20.0)
    frames = frame(x, 6, 4)
    assert frames.shape == (4, 6) and np.shares_memory(frames, x)
    for t in range(4):
        np.testing.assert_array_equal(frames[t], x[4 * t : 4 * t + 6])
    batch = frame(np.stack([x, -x]), 6, 4)  # (2, 4, 6): leading axes are kept
    np.testing.assert_array_equal(batch[1], -frames)
    with pytest.raises(ValueError, match="at least frame_length=30"):
        frame(x, 30, 4)


def test_hann_window_closed_forms():
    n = 16
    k = np.arange(n)
    np.testing.assert_allclose(hann_window(n), np.sin(np.pi * k / n) ** 2, atol=1e-15)  # periodic
    np.testing.assert_allclose(hann_window(n, periodic=False), np.hanning(n), atol=1e-15)
    assert hann_window(n).sum() == pytest.approx(n / 2)  # sum w = N / 2
    assert (hann_window(n) ** 2).sum() == pytest.approx(3 * n / 8)  # sum w^2 = 3N / 8


def test_bin_centred_tone_has_three_bins_of_closed_form_magnitude():
    """Periodic Hann's DFT is N/2 at 0 and -N/4 at +-1, so A cos(2 pi k0 n / N + phi) gives
    |X[k0]| = A N / 4, |X[k0 +- 1]| = A N / 8 and exactly 0 in every other bin, in every frame."""
    n_fft, hop, rate, k0, amplitude = 256, 64, 8000, 20, 0.7
    t = np.arange(4000) / rate
    x = amplitude * np.cos(2 * np.pi * (k0 * rate / n_fft) * t + 0.3)
    magnitude = np.abs(stft(x, n_fft, hop, center=False))  # (F, T)
    assert magnitude.shape == (n_fft // 2 + 1, num_frames(4000, n_fft, hop, center=False))
    np.testing.assert_allclose(magnitude[k0], amplitude * n_fft / 4, rtol=1e-9)
    np.testing.assert_allclose(magnitude[[k0 - 1, k0 + 1]], amplitude * n_fft / 8, rtol=1e-9)
    others = np.delete(magnitude, [k0 - 1, k0, k0 + 1], axis=0)
    assert others.max() < 1e-9 * amplitude * n_fft
    assert (magnitude.argmax(axis=0) == k0).all()


def test_off_bin_tone_peaks_at_the_nearest_bin():
    rate, n_fft = 8000, 512
    frequency = 1234.5
    x = np.sin(2 * np.pi * frequency * np.arange(rate) / rate)
    power = power_spectrogram(x, n_fft, 128)
    expected_bin = round(frequency * n_fft / rate)
    assert (power[:, 2:-2].argmax(axis=0) == expected_bin).all()  # frames away from the padded edges


def test_parseval_per_frame():
    """sum_n |w_n x_n|^2 = (|X_0|^2 + 2 sum_{0<k<N/2} |X_k|^2 + |X_{N/2}|^2) / N for the one-sided rfft."""
    rng = np.random.default_rng(0)
    n_fft, hop = 128, 32
    x = rng.standard_normal(1000)
    power = power_spectrogram(x, n_fft, hop, center=False)  # (F, T)
    weights = np.full(n_fft // 2 + 1, 2.0)
    weights[[0, -1]] = 1.0
    spectral = (weights[:, None] * power).sum(axis=0) / n_fft  # (T,)
    windowed = (frame(x, n_fft, hop) * hann_window(n_fft)) ** 2
    np.testing.assert_allclose(spectral, windowed.sum(axis=1), rtol=1e-12)


def test_centred_frames_reflect_pad_and_power_options():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(300)
    centred = stft(x, 64, 16)  # center=True, reflect
    assert centred.shape == (33, num_frames(300, 64, 16)) == (33, 1 + 300 // 16)
    np.testing.assert_allclose(centred, stft(np.pad(x, 32, mode="reflect"), 64, 16, center=False), atol=1e-12)
    zero_padded = stft(x, 64, 16, pad_mode="constant")
    np.testing.assert_allclose(zero_padded, stft(np.pad(x, 32), 64, 16, center=False), atol=1e-12)
    np.testing.assert_allclose(power_spectrogram(x, 64, 16, power=1.0), np.abs(centred), rtol=1e-12)
    batch = stft(np.stack([x, 2 * x]), 64, 16)  # (2, F, T)
    np.testing.assert_allclose(batch[1], 2 * centred, atol=1e-12)
    assert stft(x.astype(np.float32), 64, 16).dtype == np.complex128


def test_stft_matches_scipy_signal_stft():
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(2)
    x = rng.standard_normal(2048)
    n_fft, hop = 256, 64
    _, _, reference = signal.stft(
        x, window="hann", nperseg=n_fft, noverlap=n_fft - hop, boundary=None, padded=False, detrend=False
    )  # scaled by 1 / sum(window)
    ours = stft(x, n_fft, hop, center=False)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours / hann_window(n_fft).sum(), reference, atol=1e-12)


def test_mel_scale_round_trip_and_reference_points():
    assert hz_to_mel(0.0) == 0.0
    assert hz_to_mel(700.0) == pytest.approx(2595 * np.log10(2))
    frequencies = np.array([0.0, 100.0, 1000.0, 3999.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(frequencies)), frequencies, atol=1e-9)


def test_mel_filterbank_triangles_partition_of_unity_and_slaney_area():
    n_mels, n_fft, rate = 24, 1024, 8000
    fb = mel_filterbank(n_mels, n_fft, rate, f_min=50.0, f_max=3800.0)
    assert fb.shape == (n_mels, n_fft // 2 + 1) and fb.min() >= 0.0 and fb.max() <= 1.0
    bins = np.fft.rfftfreq(n_fft, 1 / rate)
    edges = mel_to_hz(np.linspace(hz_to_mel(50.0), hz_to_mel(3800.0), n_mels + 2))
    np.testing.assert_allclose(np.diff(hz_to_mel(edges)), np.diff(hz_to_mel(edges))[0])  # equal mel steps
    for m in range(n_mels):
        outside = (bins <= edges[m]) | (bins >= edges[m + 2])
        assert not fb[m, outside].any()  # zero outside its two neighbours' centres
        assert abs(bins[fb[m].argmax()] - edges[m + 1]) <= rate / n_fft  # peak at its centre (within a bin)
    inner = (bins >= edges[1]) & (bins <= edges[-2])
    np.testing.assert_allclose(fb[:, inner].sum(axis=0), 1.0, atol=1e-12)  # adjacent triangles sum to 1
    slaney = mel_filterbank(n_mels, n_fft, rate, f_min=50.0, f_max=3800.0, norm="slaney")
    np.testing.assert_allclose(slaney, fb * (2 / (edges[2:] - edges[:-2]))[:, None], rtol=1e-12)
    area = slaney.sum(axis=1) * rate / n_fft  # Riemann sum of each triangle's area in Hz
    np.testing.assert_allclose(area[4:], 1.0, rtol=0.05)  # the narrow low filters span only a few bins
    with pytest.raises(ValueError, match="f_max <= sample_rate / 2"):
        mel_filterbank(10, 256, 8000, f_max=5000.0)


def test_log_mel_is_the_composite_of_power_and_filterbank():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4000))
    fb = mel_filterbank(20, 256, 8000)
    expected = 10 * np.log10(np.maximum(np.matmul(fb, power_spectrogram(x, 256, 100)), 1e-10))
    ours = log_mel_spectrogram(x, 8000, 256, 100, 20, top_db=None)
    assert ours.shape == (3, 20, 1 + 4000 // 100)
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-9)
    floored = log_mel_spectrogram(x, 8000, 256, 100, 20, top_db=20.0)
    np.testing.assert_allclose(floored, np.maximum(expected, expected.max(axis=(1, 2), keepdims=True) - 20))
    assert (log_mel_spectrogram(np.zeros(800), 8000, 256, 100, 20) == -100.0).all()  # 10 log10(amin)


def test_log_mel_of_a_tone_peaks_in_the_band_centred_nearest_it():
    rate, frequency = 8000, 900.0
    x = np.sin(2 * np.pi * frequency * np.arange(rate) / rate)
    spectrogram = log_mel_spectrogram(x, rate, 512, 128, 32)
    centres = mel_to_hz(np.linspace(0.0, hz_to_mel(rate / 2), 34))[1:-1]
    assert (spectrogram[:, 2:-2].argmax(axis=0) == np.abs(centres - frequency).argmin()).all()


def test_bad_arguments_name_the_function_and_the_argument():
    with pytest.raises(ValueError, match="stft: expected n_fft as an int >= 1, got 0"):
        stft(np.zeros(100), 0)
    with pytest.raises(ValueError, match=r"stft: expected a window of shape \(64,\)"):
        stft(np.zeros(100), 64, window=np.ones(10))
    with pytest.raises(ValueError, match="reflect padding"):
        stft(np.zeros(20), 64)
    with pytest.raises(ValueError, match="power > 0"):
        power_spectrogram(np.zeros(100), 32, power=0)
    with pytest.raises(ValueError, match="real signal"):
        stft(np.zeros(100, complex), 32)
