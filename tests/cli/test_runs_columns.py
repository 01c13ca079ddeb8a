"""``labkit runs --columns/--sort`` with ``tags.NAME``, ``params.X`` and ``metrics.Y`` on a store the test builds."""

from __future__ import annotations

import pytest

from labkit.cli import runs as runs_cli

RUNS = (  # run name, model tag, seed param, val/accuracy; a param and a tag both named "note"
    ("bow", "labkit.models.BagOfEmbeddings", 0, 0.77),
    ("lstm", "labkit.models.TextLSTM", 1, 0.75),
    ("transformer", "labkit.models.TextTransformer", 2, 0.76),
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from labkit.tracking.mlflow_tracker import MLflowTracker

    uri = f"sqlite:///{tmp_path_factory.mktemp('runs_columns') / 'mlflow.db'}"
    for name, model, seed, accuracy in RUNS:
        tracker = MLflowTracker(uri=uri, experiment="text", run_name=name)
        tracker.set_tags({"labkit.model": model, "note": f"tag-{name}", "only_tag": name.upper()})
        tracker.log_params({"seed": seed, "note": f"param-{name}"})
        tracker.log_metrics({"val/accuracy": accuracy, "seed": 10.0 + seed}, 1)  # a metric also named "seed"
        tracker.finish()
    return uri


def table(capsys, store: str, *args: str) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of ``labkit runs`` (cells split on runs of 2+ spaces)."""
    assert runs_cli.main_runs(["--tracking-uri", store, *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    split = [[c.strip() for c in line.split("  ") if c.strip()] for line in lines]
    return split[0], split[2:]


def column(header: list[str], rows: list[list[str]], name: str) -> list[str]:
    return [row[header.index(name)] for row in rows]


def test_tag_param_and_metric_columns_by_prefix(store, capsys):
    header, rows = table(
        capsys,
        store,
        "--columns",
        "tags.labkit.model,tags.note,params.note,params.seed,metrics.seed",
        "--sort",
        "run_name:asc",
    )
    assert header[-5:] == ["tags.labkit.model", "tags.note", "note", "seed", "seed"]
    assert column(header, rows, "run") == ["bow", "lstm", "transformer"]
    cells = column(header, rows, "tags.labkit.model")  # long values are cut to 28 characters
    assert cells == ["labkit.models.BagOfEmbeddin…", "labkit.models.TextLSTM", "labkit.models.TextTransform…"]
    assert column(header, rows, "tags.note") == ["tag-bow", "tag-lstm", "tag-transformer"]
    assert column(header, rows, "note") == ["param-bow", "param-lstm", "param-transformer"]
    assert [row[-2:] for row in rows] == [["0", "10"], ["1", "11"], ["2", "12"]]  # params.seed, metrics.seed


def test_bare_names_prefer_metric_then_param_then_tag(store, capsys):
    header, rows = table(capsys, store, "--columns", "seed,note,only_tag,val/accuracy", "--sort", "run_name:asc")
    assert header[-4:] == ["seed", "note", "tags.only_tag", "val/accuracy"]
    assert [row[-4:] for row in rows] == [
        ["10", "param-bow", "BOW", "0.77"],
        ["11", "param-lstm", "LSTM", "0.75"],
        ["12", "param-transformer", "TRANSFORMER", "0.76"],
    ]


def test_sort_by_tag_param_and_metric(store, capsys):
    header, rows = table(capsys, store, "--sort", "tags.only_tag:desc", "--columns", "tags.only_tag")
    assert column(header, rows, "run") == ["transformer", "lstm", "bow"]
    _, rows = table(capsys, store, "--sort", "tags.labkit.model")  # tags ascend by default
    assert [row[1] for row in rows] == ["bow", "lstm", "transformer"]
    header, rows = table(capsys, store, "--sort", "params.note:desc")
    assert header[4] == "note" and column(header, rows, "run") == ["transformer", "lstm", "bow"]  # shown first
    _, rows = table(capsys, store, "--sort", "metrics.val/accuracy")
    assert [row[1] for row in rows] == ["bow", "transformer", "lstm"]  # accuracy descends


def test_sort_and_columns_by_tag_parse():
    assert runs_cli.parse_sort("tags.labkit.model")[1][0] == "tags.`labkit.model` ASC"
    assert runs_cli.parse_sort("tags.note:desc")[1][0] == "tags.`note` DESC"
    assert runs_cli.parse_sort("metrics.val/loss")[1][0] == "metrics.`val/loss` ASC"
    assert runs_cli.parse_column("tags.a.b", set(), set(), set()) == ("tag", "a.b")
    assert runs_cli.parse_column("x", {"x"}, {"x"}, {"x"}) == ("metric", "x")
    assert runs_cli.parse_column("x", set(), {"x"}, {"x"}) == ("param", "x")
    assert runs_cli.parse_column("x", set(), set(), {"x"}) == ("tag", "x")
    assert runs_cli.parse_column("x", set(), set(), set()) == ("metric", "x")
    with pytest.raises(ValueError, match=r"--columns: expected tags\.NAME with a name after the dot, got 'tags\.'"):
        runs_cli.parse_column("tags.", set(), set(), set())
    with pytest.raises(ValueError, match=r"--sort: expected params\.NAME"):
        runs_cli.parse_sort("params.")


def test_bad_prefix_fails_before_the_store_is_opened(tmp_path, capsys):
    absent = tmp_path / "absent.db"
    with pytest.raises(SystemExit) as info:
        runs_cli.main_runs(["--tracking-uri", f"sqlite:///{absent}", "--columns", "val/accuracy,tags."])
    assert info.value.code == 2 and "expected tags.NAME" in capsys.readouterr().err
    assert not absent.exists()
