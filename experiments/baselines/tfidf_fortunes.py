"""TF-IDF + logistic regression on labkit's fortunes split, logged as its own MLflow run.

The split is labkit's own: the data config of ``experiment=textcls_bow`` is composed with Hydra
and ``TextClassification`` builds the train/val/test texts exactly as ``labkit train`` does
(the 5 largest fortune categories, stratified 80/10/10 with seed 0). The vectorizer is fitted on
the training texts only; C is chosen on the validation split, the test split is scored once.
By default the texts are cut into tokens by labkit's ``WordTokenizer`` (the tokens the neural
models see, punctuation included); ``--tokenizer sklearn`` uses scikit-learn's default pattern
(words of 2+ letters/digits, no punctuation), which scores about 11 points lower on this data.

    python experiments/baselines/tfidf_fortunes.py --tracking-uri sqlite:////tmp/exp/mlflow.db
"""

from __future__ import annotations

import argparse
import logging
import time

import mlflow
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from labkit.data.text.tokenizers import WordTokenizer
from labkit.runner import compose
from labkit.tasks.text_classification import TextClassification

log = logging.getLogger("tfidf_fortunes")

C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)


def labkit_splits(experiment: str = "textcls_bow") -> tuple[dict[str, tuple[list[str], np.ndarray]], list[str]]:
    """``({"train"|"val"|"test": (texts, labels (N,) int64)}, classes)`` exactly as labkit's text task splits them."""
    cfg = compose([f"experiment={experiment}"])
    task = TextClassification(cfg.data)
    data = task._splits()  # the same method TextClassification.setup() uses (no public accessor yet)
    return data, task.classes


def scores(model: LogisticRegression, x: object, y: np.ndarray) -> dict[str, float]:
    predicted = model.predict(x)
    return {"accuracy": float(accuracy_score(y, predicted)), "macro_f1": float(f1_score(y, predicted, average="macro"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="MLflow store (default: ./mlflow.db)")
    parser.add_argument("--experiment", default="labkit", help="MLflow experiment name (labkit's default: labkit)")
    parser.add_argument("--tokenizer", choices=("labkit", "sklearn"), default="labkit", help="how texts become tokens")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    start = time.perf_counter()
    data, classes = labkit_splits()
    sizes = {k: len(v[0]) for k, v in data.items()}
    log.info("fortunes splits %s, classes %s", sizes, classes)
    if args.tokenizer == "labkit":  # the same word tokens (lower-cased, punctuation kept) as labkit's text task
        tokens = {"tokenizer": WordTokenizer(lower=True), "lowercase": False, "token_pattern": None}
    else:
        tokens = {"lowercase": True}
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, **tokens)
    x_train = vectorizer.fit_transform(data["train"][0])
    x_val, x_test = vectorizer.transform(data["val"][0]), vectorizer.transform(data["test"][0])
    y_train, y_val, y_test = data["train"][1], data["val"][1], data["test"][1]

    best_c, best_val, best_model = None, -1.0, None
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=2000).fit(x_train, y_train)
        val_accuracy = scores(model, x_val, y_val)["accuracy"]
        log.info("C=%g: val accuracy %.4f", c, val_accuracy)
        if val_accuracy > best_val:
            best_c, best_val, best_model = c, val_accuracy, model
    val, test = scores(best_model, x_val, y_val), scores(best_model, x_test, y_test)
    seconds = time.perf_counter() - start

    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_experiment(args.experiment)
    with mlflow.start_run(run_name="tfidf_logreg_baseline"):
        mlflow.set_tags({"labkit.baseline": "sklearn", "labkit.split_from": "experiment=textcls_bow"})
        mlflow.log_params(
            {
                "data.name": "fortunes",
                "model": "TfidfVectorizer(ngram_range=(1, 2), sublinear_tf) + LogisticRegression",
                "tokenizer": args.tokenizer,
                "C": best_c,
                "C_grid": list(C_GRID),
                "vocabulary": len(vectorizer.vocabulary_),
                **{f"size/{k}": n for k, n in sizes.items()},
            }
        )
        mlflow.log_metrics({**{f"val/{k}": v for k, v in val.items()}, **{f"test/{k}": v for k, v in test.items()}})
        mlflow.log_metric("time/total_s", seconds)
    log.info("C=%g  val %s  test %s  (%.1f s)", best_c, val, test, seconds)


if __name__ == "__main__":
    main()
