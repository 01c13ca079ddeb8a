"""ImageClassification on a tiny registered dataset (and the real digits): splits, loaders, loss, metrics, figures."""

from __future__ import annotations

import numpy as np
import pytest

import labkit
import labkit.functional as F
from labkit import nn
from labkit.data.vision.formats import ArrayImageDataset
from labkit.models import SmallCNN
from labkit.tasks.image_classification import ImageClassification, _shift_and_flip
from labkit.tasks.metrics import accuracy, confusion_matrix, f1_per_class, macro_f1
from labkit.tasks.plots import figure_png
from labkit.tracking import MemoryTracker

CLASSES = ["zero", "one", "two", "three", "four", "five", "six"]


class PixelScores(nn.Module):
    """Scores = the first 7 pixels of each image: a deterministic 'model' whose metrics we can compute by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(np.zeros(1, np.float32))

    def forward(self, x: labkit.Tensor) -> labkit.Tensor:
        return F.reshape(x, (x.shape[0], -1))[:, :7] + self.unused


@pytest.fixture
def tiny(register, rng):
    images = rng.integers(0, 256, (120, 6, 6, 1), dtype=np.uint8)
    labels = rng.integers(0, 7, 120)
    splits = {
        "train": ArrayImageDataset(images[:90], labels[:90], CLASSES),
        "test": ArrayImageDataset(images[90:], labels[90:], CLASSES),
    }
    return register("r3_tiny_images", lambda **kw: splits), images, labels


def make(name: str, **data) -> ImageClassification:
    return ImageClassification({"name": name, "batch_size": 16, **data}, labkit.Generator(0))


def test_splits_sizes_info_and_normalisation(tiny):
    name, images, _ = tiny
    task = make(name, val_fraction=0.2)
    loaders = task.setup()
    info = loaders.info
    assert info["sizes"] == {"train": 72, "val": 18, "test": 30}
    assert task.model_kwargs() == {"in_channels": 1, "num_classes": 7, "image_size": [6, 6]}
    assert info["classes"] == CLASSES
    train = np.concatenate([x.numpy() for x, _ in loaders.train])
    assert train.shape == (72, 1, 6, 6) and train.dtype == np.float32
    assert abs(train.mean()) < 1e-4 and train.std() == pytest.approx(1.0, rel=1e-3)  # train statistics
    assert task.mean[0] != pytest.approx(images.astype(np.float32).mean(), abs=1e-6)  # fitted on train only


def test_split_is_deterministic_and_independent_of_the_run_seed(tiny):
    name, _, _ = tiny
    a = ImageClassification({"name": name}, labkit.Generator(1)).setup()
    b = ImageClassification({"name": name}, labkit.Generator(2)).setup()
    va = np.concatenate([y.numpy() for _, y in a.val])
    vb = np.concatenate([y.numpy() for _, y in b.val])
    np.testing.assert_array_equal(va, vb)
    first_a = next(iter(a.train))[1].numpy()
    first_b = next(iter(b.train))[1].numpy()
    assert not np.array_equal(first_a, first_b)  # the shuffle follows the run seed


def test_training_loss_is_cross_entropy_of_the_batch(tiny):
    name, _, _ = tiny
    task = make(name)
    loaders = task.setup()
    model = SmallCNN(**task.model_kwargs(), channels=[4], hidden=8, generator=labkit.Generator(0))
    x, y = next(iter(loaders.train))
    loss, count = task.training_loss(model, (x, y))
    assert count == 16
    assert loss.item() == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-6)
    loss.backward()
    assert model.head[-1].weight.grad is not None


def test_evaluate_matches_hand_computed_metrics(tiny):
    name, _, _ = tiny
    task = make(name, val_fraction=0.2)
    loaders = task.setup()
    model = PixelScores()
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in loaders.test])
    scores = np.concatenate(xs).reshape(30, -1)[:, :7]
    y = np.concatenate(ys)
    out = task.evaluate(model, loaders.test)
    cm = confusion_matrix(y, scores.argmax(1), 7)
    shifted = scores - scores.max(axis=1, keepdims=True)
    nll = -(shifted[np.arange(30), y] - np.log(np.exp(shifted).sum(axis=1)))
    assert out["accuracy"] == pytest.approx(accuracy(y, scores))
    assert out["macro_f1"] == pytest.approx(macro_f1(cm))
    assert out["f1/three"] == pytest.approx(f1_per_class(cm)[3])
    assert out["loss"] == pytest.approx(nll.mean(), rel=1e-5)
    top5 = np.mean([t in np.argsort(-s)[:5] for s, t in zip(scores, y)])
    assert out["top5_accuracy"] == pytest.approx(top5)  # 7 classes > 5: top-5 reported
    assert model.training  # evaluate restores the mode


def test_artifacts_log_two_figures(tiny):
    name, _, _ = tiny
    task = make(name)
    loaders = task.setup()
    tracker = MemoryTracker()
    extra = task.artifacts(PixelScores(), loaders, tracker, split="test")
    assert set(tracker.artifacts) == {"figures/confusion_matrix_test.png", "figures/misclassified_test.png"}
    assert all(figure_png(f).startswith(b"\x89PNG") for f in tracker.artifacts.values())
    assert 0 < extra["errors"] <= 30


def test_augmentation_shifts_deterministically():
    x = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)
    a = _shift_and_flip(x, 1, True, np.array([-1.0], np.float32), np.random.default_rng(3))
    b = _shift_and_flip(x, 1, True, np.array([-1.0], np.float32), np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    zero = _shift_and_flip(x, 0, False, np.array([-1.0], np.float32), np.random.default_rng(3))
    np.testing.assert_array_equal(zero, x)
    rng = np.random.default_rng(0)
    moved = _shift_and_flip(x[:1], 1, False, np.array([-1.0], np.float32), rng)
    assert (moved == -1.0).sum() in (0, 4, 7)  # a row and/or column filled, or no move


def test_augmented_loader_batches_repeat_with_the_seed(tiny):
    name, _, _ = tiny
    first = [x.numpy() for x, _ in make(name, augment=True).setup().train]
    second = [x.numpy() for x, _ in make(name, augment=True).setup().train]
    plain = [x.numpy() for x, _ in make(name).setup().train]
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not all(np.array_equal(a, b) for a, b in zip(first, plain))


def test_unknown_data_key_and_missing_name_are_named():
    with pytest.raises(ValueError, match=r"unknown data key\(s\) \['batchsize'\]"):
        ImageClassification({"name": "digits", "batchsize": 3})
    with pytest.raises(ValueError, match=r"expected data\.name"):
        ImageClassification({})
    with pytest.raises(ValueError, match=r"expected data.val_fraction in \[0, 1\), got 1.5"):
        ImageClassification({"name": "digits", "val_fraction": 1.5})


def test_real_digits_setup():
    task = ImageClassification({"name": "digits", "limit": 100}, labkit.Generator(0))
    loaders = task.setup()
    assert task.model_kwargs() == {"in_channels": 1, "num_classes": 10, "image_size": [8, 8]}
    assert loaders.info["sizes"]["train"] == 100
    assert loaders.info["sizes"]["test"] == 359


def test_data_cfg_may_be_an_omegaconf_node_and_predict_spec(tiny):
    omegaconf = pytest.importorskip("omegaconf")
    name, _, _ = tiny
    node = omegaconf.OmegaConf.create({"name": name, "batch_size": 8, "augment": True, "augment_shift": 2})
    task = ImageClassification(node, labkit.Generator(0))
    assert task.options["augment_shift"] == 2 and isinstance(task.options, dict)
    task.setup()
    assert task.predict_spec() == {"output": "class_ids", "input_shape": [1, 6, 6], "input_dtype": "float32"}
