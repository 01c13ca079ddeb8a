"""The TF-IDF + logistic-regression baseline script (experiments/baselines/tfidf_logreg.py) on tiny texts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from labkit.tasks.text_classification import TextClassification

pytest.importorskip("sklearn")
SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "baselines" / "tfidf_logreg.py"


@pytest.fixture(scope="module")
def baseline():
    spec = importlib.util.spec_from_file_location("tfidf_logreg", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def splits(texts_by_class: dict[int, list[str]]) -> dict[str, tuple[list[str], np.ndarray]]:
    """Every text in train, val and test alike (a separable toy problem)."""
    texts = [t for c in sorted(texts_by_class) for t in texts_by_class[c]]
    labels = np.array([c for c in sorted(texts_by_class) for _ in texts_by_class[c]], dtype=np.int64)
    return {key: (texts, labels) for key in ("train", "val", "test")}


def test_fit_picks_c_on_validation_and_scores_both_splits(baseline):
    data = splits({0: ["roses are red", "violets are blue"] * 3, 1: ["segfault in the kernel", "null pointer"] * 3})
    result = baseline.fit(data, {"lowercase": True}, c_grid=(0.01, 10.0))
    assert set(result["val_by_C"]) == {0.01, 10.0}
    assert result["C"] == max(result["val_by_C"], key=lambda c: (result["val_by_C"][c], -c))  # first best
    assert result["test"] == {"accuracy": 1.0, "macro_f1": 1.0, "errors": 0.0} == result["val"]
    assert result["vocabulary"] > 0


def test_labkit_tokens_are_the_tasks_own(baseline):
    task = TextClassification({"name": "fortunes", "token_pattern": r"\w+|[^\w\s]|\n", "lower": True})
    options = baseline.tokenizer_options("labkit", task)
    assert options["tokenizer"] is task.tokenizer and options["lowercase"] is False
    assert options["tokenizer"]("A b\nc.") == ["a", "b", "\n", "c", "."]
    plain = baseline.tokenizer_options("labkit-plain", task)["tokenizer"]
    assert plain("A b\nc.") == ["a", "b", "c", "."]
    # the line-break token is a feature the vectorizer sees (two texts that differ only in layout)
    data = splits({0: ["one two\nthree four"] * 4, 1: ["one two three four"] * 4})
    assert baseline.fit(data, options, c_grid=(10.0,))["test"]["accuracy"] == 1.0
    assert (
        baseline.fit(data, baseline.tokenizer_options("labkit-plain", task), c_grid=(10.0,))["test"]["accuracy"] == 0.5
    )
    with pytest.raises(ValueError, match=r"--tokenizer: expected one of \['labkit', 'labkit-plain', 'sklearn'\]"):
        baseline.tokenizer_options("spacy", task)


def test_cross_validate_scores_every_fold_and_c(baseline, monkeypatch, register):
    from labkit.data.text.datasets import make_splits

    texts = {0: ["roses are red", "violets are blue", "sugar is sweet"], 1: ["segfault in the kernel", "null pointer"]}
    items = [(f"{texts[c][i % len(texts[c])]} n{i}", c) for c in texts for i in range(12)]

    class Toy:
        classes = ("poems", "bugs")
        texts = tuple(t for t, _ in items)
        targets = tuple(c for _, c in items)

        def __len__(self):
            return len(items)

        def __getitem__(self, i):
            return items[i]

    name = register("baseline_cv_toy", lambda **kw: make_splits(Toy(), 0.2, 0.2, 0))
    seen = []

    def task(data, experiment="textcls_bow", overrides=()):
        options = dict(o.removeprefix("data.").split("=") for o in overrides)
        seen.append(options)
        return TextClassification(
            {"name": name, "cv_folds": int(options["cv_folds"]), "cv_fold": int(options["cv_fold"])}
        )

    monkeypatch.setattr(baseline, "labkit_task", task)
    by_c = baseline.cross_validate("toy", "sklearn", 3, c_grid=(0.1, 10.0))
    assert [s["cv_fold"] for s in seen] == ["0", "1", "2"]
    assert set(by_c) == {0.1, 10.0} and all(len(v) == 3 for v in by_c.values())
    assert by_c[10.0] == [1.0, 1.0, 1.0]  # separable by words: every fold right


def test_c_grid_option_parses_and_refuses_bad_values(baseline):
    import argparse

    assert baseline.c_values("30") == (30.0,) and baseline.c_values("0.3,10") == (0.3, 10.0)
    for bad in ("", "x", "0", "-1,3"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected comma-separated numbers > 0"):
            baseline.c_values(bad)
