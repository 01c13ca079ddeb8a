"""AudioClassification on a tiny generated tones set: splits, features, loss, metrics and figures."""

from __future__ import annotations

import numpy as np
import pytest
from labkit_audio.features import log_mel_spectrogram
from labkit_audio.models import AudioCNN
from labkit_audio.synth import CLASSES
from labkit_audio.task import AudioClassification, clips_and_labels
from labkit_audio.wav import read_wav

import labkit
import labkit.functional as F
from labkit.tracking import MemoryTracker

TINY = {"n_per_class": 4, "n_test_per_class": 2, "seed": 3}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("audio-data")


def make(data_dir, **data) -> AudioClassification:
    options = {"name": "audio.tones", "data_dir": str(data_dir), "batch_size": 8, "dataset_kwargs": TINY, **data}
    return AudioClassification(options, labkit.Generator(0))


@pytest.fixture(scope="module")
def task(data_dir):
    t = make(data_dir)
    t.setup()
    return t


def test_splits_sizes_and_model_kwargs(task):
    info = task.loaders.info
    assert info["sizes"] == {"train": 36, "val": 4, "test": 20}
    assert info["classes"] == list(CLASSES) and info["sample_rate"] == 8000
    assert info["input_shape"] == [1, 32, 1 + 8000 // 192]
    assert task.model_kwargs() == {"in_channels": 1, "num_classes": 10, "n_mels": 32, "n_frames": 42}


def test_features_are_standardised_log_mels_of_the_files(task, data_dir):
    train = np.concatenate([x.numpy() for x, _ in task.loaders.train])
    assert train.shape == (36, 1, 32, 42) and train.dtype == np.float32
    assert abs(train.mean()) < 1e-4 and train.std() == pytest.approx(1.0, rel=1e-3)
    from labkit.data.catalog import load_dataset

    test_set = load_dataset("audio.tones", data_dir, split="test", **TINY)
    clip, _ = read_wav(test_set.samples[0][0])
    expected = (log_mel_spectrogram(clip, 8000, 512, 192, 32) - task.mean) / task.std
    x, y = next(iter(task.loaders.test))  # not shuffled: the first test file first
    np.testing.assert_allclose(x.numpy()[0, 0], expected, rtol=1e-4, atol=1e-4)
    assert int(y.numpy()[0]) == 0


def test_training_loss_is_the_batch_cross_entropy(task):
    model = AudioCNN(**task.model_kwargs(), generator=labkit.Generator(0))
    x, y = next(iter(task.loaders.train))
    loss, count = task.training_loss(model, (x, y))
    assert count == 8
    assert loss.item() == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-6)


def test_evaluate_and_artifacts_agree_with_metrics_computed_by_hand(task):
    model = AudioCNN(**task.model_kwargs(), channels=[4, 4], hidden=8, generator=labkit.Generator(1))
    model.eval()
    with labkit.no_grad():
        pairs = [(model(x).numpy().astype(np.float64), y.numpy()) for x, y in task.loaders.test]
    model.train()
    logits = np.concatenate([p[0] for p in pairs])
    labels = np.concatenate([p[1] for p in pairs])
    predicted = logits.argmax(axis=1)
    shifted = logits - logits.max(axis=1, keepdims=True)
    nll = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(labels)), labels]
    f1 = []
    for c in range(10):
        tp = np.sum((predicted == c) & (labels == c))
        denominator = np.sum(predicted == c) + np.sum(labels == c)
        f1.append(2 * tp / denominator if denominator else 0.0)

    metrics = task.evaluate(model, task.loaders.test)
    assert model.training  # evaluation restored the mode
    assert metrics["accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert metrics["loss"] == pytest.approx(nll.mean(), rel=1e-5)
    assert metrics["macro_f1"] == pytest.approx(np.mean(f1))
    assert metrics["f1/chirp_up"] == pytest.approx(f1[CLASSES.index("chirp_up")])

    tracker = MemoryTracker()
    extra = task.artifacts(model, task.loaders, tracker, split="test")
    assert extra == {"errors": float(np.sum(predicted != labels))}
    figures = {k: v for k, v in tracker.artifacts.items() if k.startswith("figures/")}
    assert set(figures) == {
        "figures/confusion_matrix_test.png",
        "figures/examples_test.png",
        "figures/misclassified_test.png",
    }
    examples = figures["figures/examples_test.png"]
    assert len(examples.axes) == 10  # one spectrogram per class
    titles = [ax.get_title() for ax in examples.axes]
    assert titles[0] == f"true: {CLASSES[0]}\npred: {CLASSES[predicted[labels == 0][0]]}"
    errors = int(np.sum(predicted != labels))
    assert len(figures["figures/misclassified_test.png"].axes) == max(1, min(10, errors))  # 1: "nothing to show"


def test_clips_are_cut_or_zero_padded():
    items = [(np.ones(5, np.float32), 1), (np.ones(12, np.float32), 0)]
    clips, labels = clips_and_labels(items, 8)
    np.testing.assert_array_equal(clips, [[1, 1, 1, 1, 1, 0, 0, 0], [1] * 8])
    np.testing.assert_array_equal(labels, [1, 0])
    with pytest.raises(ValueError, match=r"expected mono clips \(n,\), got item 0 of shape \(3, 2\)"):
        clips_and_labels([(np.zeros((3, 2)), 0)], 4)


def test_bad_data_config_is_refused_by_key(data_dir):
    with pytest.raises(ValueError, match=r"unknown data key\(s\) \['n_mel'\]"):
        make(data_dir, n_mel=40)
    with pytest.raises(ValueError, match=r"data\.hop_length as an int >= 1, got 0"):
        make(data_dir, hop_length=0)
    with pytest.raises(ValueError, match=r"data\.clip_seconds > 0"):
        make(data_dir, clip_seconds=-1)
    with pytest.raises(ValueError, match="n_fft // 2"):
        make(data_dir, clip_seconds=0.01).setup()
    with pytest.raises(ValueError, match="dataset 'nope' is unknown"):
        AudioClassification({"name": "nope"}).setup()
