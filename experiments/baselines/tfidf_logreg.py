"""TF-IDF + logistic regression on labkit's own text-classification split, logged as its own MLflow run.

The split is labkit's: ``experiment=textcls_bow data=<DATA>`` is composed with Hydra and
``TextClassification.split_texts()`` gives the train/val/test texts exactly as ``labkit train``
splits them (fortunes: the 5 largest categories, stratified 80/10/10 with seed 0; bbc_news: its
own train/valid/test files). The vectorizer is fitted on the training texts only, C is chosen
on the validation split, and the test split is scored once. Tokens (``--tokenizer``):

- ``labkit`` (default): the text task's own tokenizer, as the data config sets it (fortunes: words,
  single symbols and line breaks; bbc_news: words and single symbols), i.e. the tokens the labkit
  models see;
- ``labkit-plain``: ``WordTokenizer()`` with its default pattern (words and single symbols, no line
  breaks), the tokens of the first baseline run (78.1% test on fortunes);
- ``sklearn``: scikit-learn's default pattern (words of 2+ letters/digits).

    python experiments/baselines/tfidf_logreg.py --data fortunes --tracking-uri sqlite:////tmp/exp/mlflow.db
    python experiments/baselines/tfidf_logreg.py --data bbc_news --tracking-uri sqlite:////tmp/exp/mlflow.db
    python experiments/baselines/tfidf_logreg.py --data fortunes --cv-folds 5 --tracking-uri ...

``--cv-folds K`` scores the baseline by K-fold cross-validation over train + val instead, on the
folds that ``labkit train ... data.cv_folds=K data.cv_fold=i`` uses, for every C of the grid, and logs
``cv/accuracy`` (the best C's mean), ``cv/accuracy/C_<C>`` and ``cv/fold_<i>/accuracy`` as the run
``tfidf_logreg_<DATA>_cv<K>``; the test split is not read.

The run is named ``tfidf_logreg_<DATA>``; it logs ``data.name``, ``tokenizer``, ``C`` and the split sizes as
params, ``val/*`` and ``test/*`` (accuracy, macro_f1, errors) as metrics, and the tag
``labkit.model`` (so ``labkit runs --columns tags.labkit.model,data.name,test/accuracy`` lists it
beside the labkit runs).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger("tfidf_logreg")

DATASETS = ("fortunes", "bbc_news")
C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)
TOKENIZERS = ("labkit", "labkit-plain", "sklearn")
MODEL = "TfidfVectorizer(ngram_range=(1, 2), sublinear_tf) + LogisticRegression"


def labkit_task(data: str, experiment: str = "textcls_bow", overrides: Sequence[str] = ()) -> Any:
    """labkit's ``TextClassification`` for ``experiment=EXPERIMENT data=DATA [OVERRIDES]`` (not set up: no
    vocabulary yet)."""
    from labkit.runner import compose
    from labkit.tasks.text_classification import TextClassification

    return TextClassification(compose([f"experiment={experiment}", f"data={data}", *overrides]).data)


def tokenizer_options(name: str, task: Any) -> dict[str, Any]:
    """``TfidfVectorizer`` keyword arguments for the ``--tokenizer`` choice ``name``."""
    from labkit.data.text.tokenizers import WordTokenizer

    if name == "labkit":  # exactly the task's tokens (its tokenizer lower-cases when data.lower says so)
        return {"tokenizer": task.tokenizer, "lowercase": False, "token_pattern": None}
    if name == "labkit-plain":
        return {"tokenizer": WordTokenizer(lower=True), "lowercase": False, "token_pattern": None}
    if name == "sklearn":
        return {"lowercase": True}
    raise ValueError(f"--tokenizer: expected one of {list(TOKENIZERS)}, got {name!r}")


def scores(model: Any, x: Any, y: np.ndarray) -> dict[str, float]:
    """``accuracy``, ``macro_f1`` and ``errors`` of ``model`` on features ``x`` with labels ``y (N,)``."""
    from sklearn.metrics import f1_score

    predicted = model.predict(x)
    return {
        "accuracy": float(np.mean(predicted == y)),
        "macro_f1": float(f1_score(y, predicted, average="macro")),
        "errors": float(np.sum(predicted != y)),
    }


def make_vectorizer(tokens: dict[str, Any]) -> Any:
    """The baseline's ``TfidfVectorizer`` (word 1-2-grams, sublinear tf) with the tokenizer options ``tokens``."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, **tokens)


def run_name(args: argparse.Namespace) -> str:
    """``tfidf_logreg_<data>[_<tokenizer>]``, then ``_cv<K>`` for cross-validation, else ``_C<c>...`` for
    another C grid."""
    name = f"tfidf_logreg_{args.data}" + ("" if args.tokenizer == "labkit" else f"_{args.tokenizer}")
    if args.cv_folds is not None:
        return f"{name}_cv{args.cv_folds}"
    if tuple(args.c_grid) != C_GRID:  # a run with another grid (e.g. one C chosen elsewhere) is named apart
        name += "_C" + "_".join(f"{c:g}" for c in args.c_grid)
    return name


def fit(
    splits: dict[str, tuple[list[str], np.ndarray]], tokens: dict[str, Any], c_grid: Sequence[float] = C_GRID
) -> dict[str, Any]:
    """Fit TF-IDF (``tokens``: the vectorizer's tokenizer options) on train, pick C on val (first best),
    score val and test once.

    Returns ``{"C", "val": scores, "test": scores, "val_by_C": {C: accuracy}, "vocabulary": int}``.
    """
    from sklearn.linear_model import LogisticRegression

    vectorizer = make_vectorizer(tokens)
    x_train = vectorizer.fit_transform(splits["train"][0])
    x_val, x_test = vectorizer.transform(splits["val"][0]), vectorizer.transform(splits["test"][0])
    y_train, y_val, y_test = splits["train"][1], splits["val"][1], splits["test"][1]
    best_c, best_val, best_model, val_by_c = None, -1.0, None, {}
    for c in c_grid:
        model = LogisticRegression(C=c, max_iter=2000).fit(x_train, y_train)
        val_by_c[c] = scores(model, x_val, y_val)["accuracy"]
        log.info("C=%g: val accuracy %.4f", c, val_by_c[c])
        if val_by_c[c] > best_val:
            best_c, best_val, best_model = c, val_by_c[c], model
    return {
        "C": best_c,
        "val": scores(best_model, x_val, y_val),
        "test": scores(best_model, x_test, y_test),
        "val_by_C": val_by_c,
        "vocabulary": len(vectorizer.vocabulary_),
    }


def cross_validate(data: str, tokenizer: str, folds: int, c_grid: Sequence[float] = C_GRID) -> dict[float, list[float]]:
    """``{C: [validation accuracy of each fold]}`` over labkit's ``data.cv_folds=FOLDS`` folds of train + val
    (the folds ``labkit train ... data.cv_folds=FOLDS data.cv_fold=i`` trains on); test is never read."""
    from sklearn.linear_model import LogisticRegression

    out: dict[float, list[float]] = {c: [] for c in c_grid}
    for fold in range(folds):
        task = labkit_task(data, overrides=[f"data.cv_folds={folds}", f"data.cv_fold={fold}"])
        splits = task.split_texts()
        vectorizer = make_vectorizer(tokenizer_options(tokenizer, task))
        x_train, x_val = vectorizer.fit_transform(splits["train"][0]), vectorizer.transform(splits["val"][0])
        for c in c_grid:
            model = LogisticRegression(C=c, max_iter=2000).fit(x_train, splits["train"][1])
            out[c].append(scores(model, x_val, splits["val"][1])["accuracy"])
            log.info("fold %d, C=%g: val accuracy %.4f", fold, c, out[c][-1])
    return out


def c_values(text: str) -> tuple[float, ...]:
    """``--c-grid``: comma-separated positive numbers."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers > 0, got {text!r}")
    return values


def main_cv(args: argparse.Namespace) -> dict[str, Any]:
    """``--cv-folds K``: the baseline's cross-validated accuracy for every C, logged as one run."""
    start = time.perf_counter()
    by_c = cross_validate(args.data, args.tokenizer, args.cv_folds, args.c_grid)
    means = {c: float(np.mean(v)) for c, v in by_c.items()}
    best = max(means, key=lambda c: (means[c], -c))
    seconds = time.perf_counter() - start
    for c, values in by_c.items():
        log.info("C=%g: %d-fold accuracy %.4f (%s)", c, args.cv_folds, means[c], " ".join(f"{v:.4f}" for v in values))

    import mlflow

    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_experiment(args.experiment)
    with mlflow.start_run(run_name=run_name(args)):
        mlflow.set_tags({"labkit.baseline": "sklearn", "labkit.model": MODEL})
        mlflow.log_params(
            {"data.name": args.data, "model": MODEL, "tokenizer": args.tokenizer, "data.cv_folds": args.cv_folds,
             "C": best, "C_grid": list(args.c_grid)}
        )  # fmt: skip
        metrics = {f"cv/accuracy/C_{c:g}": m for c, m in means.items()}
        for fold, value in enumerate(by_c[best]):
            metrics[f"cv/fold_{fold}/accuracy"] = value
        mlflow.log_metrics({**metrics, "cv/accuracy": means[best], "time/total_s": seconds})
    return {"C": best, "cv_accuracy": means[best], "by_C": by_c}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=DATASETS, default="fortunes", help="labkit data config (default fortunes)")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="MLflow store (default: ./mlflow.db)")
    parser.add_argument("--experiment", default="labkit", help="MLflow experiment name (labkit's default: labkit)")
    parser.add_argument("--tokenizer", choices=TOKENIZERS, default="labkit", help="how texts become tokens")
    parser.add_argument(
        "--cv-folds", type=int, default=None, metavar="K",
        help="instead: K-fold cross-validation over train + val (labkit's data.cv_folds folds); test is not read",
    )  # fmt: skip
    parser.add_argument(
        "--c-grid", type=c_values, default=C_GRID, metavar="C,C,...",
        help="the inverse regularization strengths to choose from (default: %(default)s)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if args.cv_folds is not None:
        if args.cv_folds < 2:
            parser.error(f"--cv-folds: expected an int >= 2, got {args.cv_folds}")
        return main_cv(args)

    start = time.perf_counter()
    task = labkit_task(args.data)
    splits = task.split_texts()
    sizes = {k: len(v[0]) for k, v in splits.items()}
    log.info("%s splits %s, classes %s, tokens %s", args.data, sizes, task.classes, args.tokenizer)
    result = fit(splits, tokenizer_options(args.tokenizer, task), args.c_grid)
    seconds = time.perf_counter() - start

    import mlflow

    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_experiment(args.experiment)
    with mlflow.start_run(run_name=run_name(args)):
        mlflow.set_tags(
            {
                "labkit.baseline": "sklearn",
                "labkit.model": MODEL,
                "labkit.split_from": f"experiment=textcls_bow data={args.data}",
            }
        )
        mlflow.log_params(
            {
                "data.name": args.data,
                "model": MODEL,
                "tokenizer": args.tokenizer,
                "token_pattern": getattr(task.tokenizer, "pattern", "-") if args.tokenizer == "labkit" else "-",
                "C": result["C"],
                "C_grid": list(args.c_grid),
                "vocabulary": result["vocabulary"],
                **{f"size/{k}": n for k, n in sizes.items()},
            }
        )
        metrics = {f"{split}/{k}": v for split in ("val", "test") for k, v in result[split].items()}
        mlflow.log_metrics({**metrics, "time/total_s": seconds})
    log.info("C=%g  val %s  test %s  (%.1f s)", result["C"], result["val"], result["test"], seconds)
    return result


if __name__ == "__main__":
    main()
