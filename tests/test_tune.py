"""Hyperparameter search: the search-space grammar, its validation, and a tiny real search."""

import csv

import pytest
from click.testing import CliRunner
from synthetic import make_datasets, tiny_config

from keras_resnet.cli import main
from keras_resnet.train.config import load_config  # noqa: E402
from keras_resnet.tune import SearchParam, parse_search_param, parse_search_space, tune  # noqa: E402


def test_search_param_grammar():
    assert parse_search_param("optimizer.learning_rate=0.01:1:log") == SearchParam(
        "optimizer.learning_rate", "float", low=0.01, high=1, log=True
    )
    assert parse_search_param("schedule.warmup_epochs=0:5").kind == "int"
    assert parse_search_param("model.dropout=0.0:0.5") == SearchParam("model.dropout", "float", low=0.0, high=0.5)
    assert parse_search_param("training.label_smoothing=0.0, 0.1").values == (0.0, 0.1)
    assert parse_search_param("optimizer.name=sgd,adamw").values == ("sgd", "adamw")


@pytest.mark.parametrize(
    "item, message",
    [
        ("optimizer.learning_rate", "KEY=LOW:HIGH"),
        ("optimizer.learning_rate=1:0.1", "LOW < HIGH"),
        ("optimizer.learning_rate=0:1:log", "LOW > 0"),
        ("optimizer.learning_rate=a:b", "must be a number"),
        ("optimizer.learning_rate=0.1:1:exp", "LOW:HIGH:log"),
        ("training.label_smoothing=0.1,", "at least two values"),
    ],
)
def test_malformed_entries_are_rejected(item, message):
    with pytest.raises(ValueError, match=message):
        parse_search_param(item)


def test_space_is_checked_against_the_config_before_training():
    base = load_config()
    with pytest.raises(ValueError, match="optimizer.learnin_rate"):
        parse_search_space(["optimizer.learnin_rate=0.1:1"], base)
    with pytest.raises(ValueError, match="training.label_smoothing"):
        parse_search_space(["training.label_smoothing=0.0:1.5"], base)  # 1.5 is out of range
    with pytest.raises(ValueError, match="twice"):
        parse_search_space(["model.dropout=0:0.5", "model.dropout=0.1,0.2"], base)
    assert len(parse_search_space([], base)) == 3  # the default space


def test_tiny_random_search_writes_results_and_a_loadable_best_config(tmp_path):
    config = tiny_config(tmp_path / "unused", epochs=1)
    result = tune(
        config,
        ["optimizer.learning_rate=0.01:0.5:log", "training.label_smoothing=0.0,0.1"],
        max_trials=2,
        directory=tmp_path / "search",
        datasets=make_datasets(),
        log=lambda *_: None,
    )
    assert len(result.trials) == 2
    assert 0.0 <= result.best_score <= 1.0
    assert 0.01 <= result.best_values["optimizer.learning_rate"] <= 0.5
    assert result.best_values["training.label_smoothing"] in (0.0, 0.1)
    rows = list(csv.DictReader((tmp_path / "search" / "tune_results.csv").open()))
    assert [row["trial"] for row in rows] == [t["trial"] for t in result.trials]
    best = load_config(tmp_path / "search" / "best_config.yaml")
    assert best.optimizer.learning_rate == pytest.approx(result.best_values["optimizer.learning_rate"])
    assert best.run_dir is None

    # The same directory again resumes: the finished trials are reloaded, none rerun.
    again = tune(config, ["optimizer.learning_rate=0.01:0.5:log", "training.label_smoothing=0.0,0.1"],
                 max_trials=2, directory=tmp_path / "search", datasets=make_datasets(), log=lambda *_: None)
    assert again.trials == result.trials


def test_cli_rejects_a_bad_space_before_training():
    result = CliRunner().invoke(main, ["tune", "--space", "optimizer.momentum=0.5:1.5"])
    assert result.exit_code != 0
    assert "optimizer.momentum" in result.output
