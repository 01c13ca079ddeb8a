"""read_wav / write_wav: round trips (8/16-bit, mono/stereo), exact sample values, and bad files."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest
from labkit_audio.wav import WavFormatError, read_wav, wav_info, write_wav


def _raw_wav(path: Path, frames: bytes, channels: int, width: int, rate: int = 8000) -> Path:
    """A WAV file written by the standard library alone (not by write_wav)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


def _float_wav(path: Path, samples: np.ndarray, rate: int = 8000) -> Path:
    """An IEEE-float (format tag 3) WAV file, which is not PCM."""
    data = samples.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


@pytest.mark.parametrize("width, step", [(2, 1 / 32768), (1, 1 / 128)])
def test_mono_round_trip_within_half_a_step(tmp_path, width, step):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1 - step, 1000)
    path = write_wav(tmp_path / "a.wav", x, 16000, sample_width=width)
    y, rate = read_wav(path)
    assert rate == 16000 and y.dtype == np.float32 and y.shape == (1000,)
    assert np.abs(y - x).max() <= step / 2 + 1e-7
    assert wav_info(path) == (16000, 1, width, 1000)


def test_stereo_round_trip_and_mono_mix(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.uniform(-0.9, 0.9, (500, 2))
    path = write_wav(tmp_path / "s.wav", x, 8000)
    y, rate = read_wav(path)
    assert y.shape == (500, 2) and rate == 8000
    np.testing.assert_allclose(y, x, atol=0.5 / 32768 + 1e-7)
    mono, _ = read_wav(path, mono=True)
    np.testing.assert_allclose(mono, y.mean(axis=1), atol=1e-7)


def test_exact_values_of_files_written_by_the_wave_module(tmp_path):
    # 16-bit signed little-endian: s / 32768
    pcm16 = np.array([-32768, 0, 16384, 32767, -1], dtype="<i2").tobytes()
    y, _ = read_wav(_raw_wav(tmp_path / "16.wav", pcm16, 1, 2))
    np.testing.assert_array_equal(y, np.array([-1.0, 0.0, 0.5, 32767 / 32768, -1 / 32768], np.float32))
    # 8-bit unsigned: (u - 128) / 128
    y8, _ = read_wav(_raw_wav(tmp_path / "8.wav", bytes([0, 128, 255, 64]), 1, 1))
    np.testing.assert_array_equal(y8, np.array([-1.0, 0.0, 127 / 128, -0.5], np.float32))
    # stereo frames are interleaved left, right
    lr = np.array([100, -100, 200, -200], dtype="<i2").tobytes()
    ys, _ = read_wav(_raw_wav(tmp_path / "lr.wav", lr, 2, 2))
    np.testing.assert_array_equal(ys * 32768, [[100, -100], [200, -200]])


def test_write_clips_out_of_range_values(tmp_path):
    y, _ = read_wav(write_wav(tmp_path / "c.wav", np.array([-3.0, 3.0, 1.0]), 8000))
    np.testing.assert_array_equal(y, np.array([-1.0, 32767 / 32768, 32767 / 32768], np.float32))


def test_non_pcm_file_names_the_file_and_the_encoding(tmp_path):
    path = _float_wav(tmp_path / "float.wav", np.zeros(10))
    with pytest.raises(WavFormatError, match=r"float\.wav.*expected an uncompressed PCM WAV file, got IEEE float"):
        read_wav(path)
    assert issubclass(WavFormatError, ValueError)


def test_unsupported_width_channels_and_garbage_are_refused_by_name(tmp_path):
    path24 = _raw_wav(tmp_path / "w24.wav", bytes(30), 1, 3)
    with pytest.raises(ValueError, match=r"w24\.wav.*expected 8- or 16-bit PCM samples, got 24-bit"):
        read_wav(path24)
    path3 = _raw_wav(tmp_path / "three.wav", bytes(36), 3, 2)
    with pytest.raises(ValueError, match=r"three\.wav.*expected mono or stereo \(1 or 2 channels\), got 3"):
        read_wav(path3)
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    with pytest.raises(ValueError, match=r"notes\.wav.*expected an uncompressed PCM WAV file"):
        read_wav(text)
    with pytest.raises(FileNotFoundError, match=r"missing\.wav"):
        read_wav(tmp_path / "missing.wav")


def test_truncated_file_is_refused(tmp_path):
    path = write_wav(tmp_path / "t.wav", np.zeros(1000), 8000)
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(ValueError, match=r"t\.wav.*truncated"):
        read_wav(path)


def test_write_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="sample_width 1 or 2"):
        write_wav(tmp_path / "x.wav", np.zeros(4), 8000, sample_width=3)
    with pytest.raises(ValueError, match=r"shape \(4, 3\)"):
        write_wav(tmp_path / "x.wav", np.zeros((4, 3)), 8000)
    with pytest.raises(ValueError, match="sample_rate"):
        write_wav(tmp_path / "x.wav", np.zeros(4), 0)
