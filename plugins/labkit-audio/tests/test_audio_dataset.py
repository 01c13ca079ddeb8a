"""The tones synthesiser (determinism, what each class sounds like), AudioFolder and the catalog entry."""

from __future__ import annotations

import os

import numpy as np
import pytest
from labkit_audio.dataset import AudioFolder
from labkit_audio.features import power_spectrogram
from labkit_audio.synth import CLASSES, make_tones, synthesize
from labkit_audio.wav import read_wav, write_wav

from labkit.data.catalog import get_spec, load_dataset

RATE = 8000


def _dominant_frequency(clip: np.ndarray, n_fft: int = 512) -> np.ndarray:
    """The peak frequency (Hz) of every frame within 20 dB of the loudest frame."""
    power = power_spectrogram(clip, n_fft, 128)  # (F, T)
    energy = power.sum(axis=0)
    loud = energy > 0.01 * energy.max()
    return power[:, loud].argmax(axis=0) * RATE / n_fft


def test_make_tones_is_deterministic_and_prefix_stable(tmp_path):
    a = make_tones(tmp_path / "a", 2, seed=5, classes=["chirp_up", "chord"])
    b = make_tones(tmp_path / "b", 3, seed=5, classes=["chirp_up", "chord"])
    c = make_tones(tmp_path / "c", 2, seed=6, classes=["chirp_up", "chord"])
    for name in ("chirp_up", "chord"):
        files = sorted(os.listdir(a / name))
        assert files == [f"{name}_00000.wav", f"{name}_00001.wav"]
        for f in files:
            assert (a / name / f).read_bytes() == (b / name / f).read_bytes()  # same seed: same bytes
            assert (a / name / f).read_bytes() != (c / name / f).read_bytes()  # another seed: other clips
    clip, rate = read_wav(a / "chord" / "chord_00000.wav")
    assert rate == RATE and clip.shape == (RATE,) and np.abs(clip).max() <= 0.99 + 1 / 32768


@pytest.mark.parametrize("kind", CLASSES)
def test_every_class_gives_a_clip_with_a_silent_part_and_noise(kind):
    clip = synthesize(kind, np.random.default_rng([0, 1]), RATE, 1.0, snr_db=(10.0, 10.0))
    assert clip.dtype == np.float32 and clip.shape == (RATE,) and np.abs(clip).max() <= 0.99
    frames = clip[: RATE // 80 * 80].reshape(80, -1)
    energy = (frames.astype(np.float64) ** 2).mean(axis=1)
    assert energy.min() > 0  # noise everywhere
    assert energy.max() > 3 * np.median(np.sort(energy)[:10])  # an event louder than the quiet part


def test_pitch_and_sweep_direction_of_the_tonal_classes():
    rng = np.random.default_rng
    quiet = (40.0, 40.0)
    for seed in range(3):
        low = _dominant_frequency(synthesize("tone_low", rng([seed]), snr_db=quiet))
        high = _dominant_frequency(synthesize("tone_high", rng([seed]), snr_db=quiet))
        assert 140 <= np.median(low) <= 410 and 790 <= np.median(high) <= 2410
        up = _dominant_frequency(synthesize("chirp_up", rng([seed]), snr_db=quiet))
        down = _dominant_frequency(synthesize("chirp_down", rng([seed]), snr_db=quiet))
        assert up[-3:].mean() > 2 * up[:3].mean() and down[:3].mean() > 2 * down[-3:].mean()
        square = power_spectrogram(synthesize("square", rng([seed]), snr_db=quiet), 1024, 256).mean(axis=1)
        f0_bin = int(np.argmax(square))
        assert square[3 * f0_bin - 3 : 3 * f0_bin + 4].max() > 100 * square[2 * f0_bin - 3 : 2 * f0_bin + 4].max()


def test_synthesize_refuses_unknown_classes():
    with pytest.raises(ValueError, match="expected a class in"):
        synthesize("violin", np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_per_class"):
        make_tones("/nonexistent", 0)


def test_tones_from_the_catalog_generated_once_into_the_data_dir(tmp_path):
    spec = get_spec("audio.tones")
    assert spec.domain == "audio" and spec.locate(tmp_path).found
    splits = load_dataset("audio.tones", tmp_path, n_per_class=2, n_test_per_class=1)
    train, test = splits["train"], splits["test"]
    assert isinstance(train, AudioFolder) and train.classes == list(CLASSES) and train.sample_rate == RATE
    assert (len(train), len(test)) == (2 * len(CLASSES), len(CLASSES))
    samples, label = train[3]
    assert samples.dtype == np.float32 and samples.shape == (RATE,) and label == 1
    first = train.samples[0][0]
    stamp = os.stat(first).st_mtime_ns
    again = load_dataset("audio.tones", tmp_path, split="train", n_per_class=2, n_test_per_class=1)
    assert os.stat(first).st_mtime_ns == stamp and [p for p, _ in again.samples] == [p for p, _ in train.samples]
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['n_per_klass'\] \(data.dataset_kwargs\)"):
        load_dataset("audio.tones", tmp_path, n_per_klass=2)
    train_clip = read_wav(train.samples[0][0])[0]
    test_clip = read_wav(test.samples[0][0])[0]
    assert not np.array_equal(train_clip, test_clip)  # train and test come from different seeds


def test_audio_folder_reads_classes_in_order_and_mixes_stereo(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    write_wav(tmp_path / "b" / "x.wav", np.stack([np.full(100, 0.75), np.full(100, -0.25)], axis=1), RATE)
    write_wav(tmp_path / "a" / "y.wav", np.full(50, -0.5), RATE)
    (tmp_path / "a" / "notes.txt").write_text("ignored")
    ds = AudioFolder(tmp_path, transform=lambda s: s * 2)
    assert ds.classes == ["a", "b"] and ds.targets == [0, 1] and len(ds) == 2
    x, y = ds[1]
    assert y == 1 and x.shape == (100,) and np.allclose(x, 2 * 0.25)  # the mean of 0.75 and -0.25, doubled
    reordered = AudioFolder(tmp_path, classes=["b", "a"])
    assert reordered.targets == [0, 1] and reordered.samples[0][0].endswith(os.path.join("b", "x.wav"))


def test_audio_folder_errors_name_the_folder_or_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"root '.*nowhere' is not a directory"):
        AudioFolder(tmp_path / "nowhere")
    (tmp_path / "dog").mkdir()
    write_wav(tmp_path / "dog" / "a.wav", np.zeros(10), RATE)
    (tmp_path / "cat").mkdir()
    with pytest.raises(ValueError, match=r"class folder '.*cat' is empty"):
        AudioFolder(tmp_path)
    with pytest.raises(ValueError, match=r"classes \['bird'\] have no folder"):
        AudioFolder(tmp_path, classes=["dog", "bird"])
    (tmp_path / "dog" / "b.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    ds = AudioFolder(tmp_path, classes=["dog"])
    with pytest.raises(ValueError, match=r"b\.wav.*expected an uncompressed PCM WAV file"):
        ds[1]
    write_wav(tmp_path / "dog" / "c.wav", np.zeros(10), 16000)
    with pytest.raises(ValueError, match=r"expected 8000 Hz in '.*c\.wav'.*got 16000"):
        AudioFolder(tmp_path, classes=["dog"])[2]


def test_audio_folder_skip_drops_unreadable_files_and_reports_them(tmp_path, caplog):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    write_wav(tmp_path / "a" / "good.wav", np.full(20, 0.5), RATE)
    write_wav(tmp_path / "b" / "good.wav", np.full(30, -0.5), RATE)
    (tmp_path / "a" / "junk.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    whole = (tmp_path / "b" / "good.wav").read_bytes()
    (tmp_path / "b" / "cut.wav").write_bytes(whole[: len(whole) - 10])  # header promises 30 frames
    with pytest.raises(ValueError, match=r"AudioFolder: on_error expected one of \('raise', 'skip'\), got 'ignore'"):
        AudioFolder(tmp_path, on_error="ignore")
    assert len(AudioFolder(tmp_path)) == 4  # "raise" (the default): bad files fail only when read
    with caplog.at_level("WARNING", logger="labkit_audio.dataset"):
        ds = AudioFolder(tmp_path, on_error="skip")
    assert [os.path.basename(p) for p, _ in ds.samples] == ["good.wav", "good.wav"] and ds.targets == [0, 1]
    assert sorted(os.path.basename(p) for p, _ in ds.skipped) == ["cut.wav", "junk.wav"]
    assert all("read_wav: cannot read" in reason for _, reason in ds.skipped)
    assert "AudioFolder '" in caplog.text and "skipped 2 unreadable file(s)" in caplog.text
    assert ds.sample_rate == RATE and np.allclose(ds[1][0], -0.5, atol=1e-4)
    (tmp_path / "a" / "good.wav").unlink()
    (tmp_path / "b" / "good.wav").unlink()
    with pytest.raises(ValueError, match=r"AudioFolder: every file under '.*' was unreadable \(2 skipped\)"):
        AudioFolder(tmp_path, on_error="skip")
