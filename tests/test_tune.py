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


SPACE = ["optimizer.learning_rate=0.01:0.5:log", "training.label_smoothing=0.0,0.1"]
KEYS = ["optimizer.learning_rate", "training.label_smoothing"]


@pytest.fixture
def fits(monkeypatch):
    """Every ``model.fit`` call of the test, recorded as its history (a list that the test can clear)."""
    import keras

    calls = []
    original = keras.Model.fit

    def fit(self, *args, **kwargs):
        history = original(self, *args, **kwargs)
        calls.append(history.history)
        return history

    monkeypatch.setattr(keras.Model, "fit", fit)
    return calls


@pytest.mark.slow
def test_tiny_random_search_writes_results_and_a_loadable_best_config(tmp_path, fits):
    config = tiny_config(tmp_path / "unused", epochs=1)
    quiet = lambda *_: None  # noqa: E731
    result = tune(config, SPACE, max_trials=2, directory=tmp_path / "search", datasets=make_datasets(), log=quiet)
    assert len(result.trials) == 2 == len(fits)  # one training per trial
    # each trial is scored by its own validation accuracy (the best epoch's)
    assert [t["score"] for t in result.trials] == pytest.approx([max(h["val_accuracy"]) for h in fits])
    assert len({t["optimizer.learning_rate"] for t in result.trials}) == 2  # values are sampled per trial
    # the best is the maximum over the trials, with that trial's values
    best = max(result.trials, key=lambda t: t["score"])
    assert result.best_score == max(t["score"] for t in result.trials) == best["score"]
    assert result.best_values == {key: best[key] for key in KEYS}
    rows = list(csv.DictReader((tmp_path / "search" / "tune_results.csv").open()))
    assert [row["trial"] for row in rows] == [t["trial"] for t in result.trials]
    assert [float(row["score"]) for row in rows] == pytest.approx([t["score"] for t in result.trials])
    saved = load_config(tmp_path / "search" / "best_config.yaml")
    assert saved.optimizer.learning_rate == pytest.approx(best["optimizer.learning_rate"])
    assert saved.training.label_smoothing == best["training.label_smoothing"]
    assert saved.run_dir is None and saved.model.width_multiplier == 0.25  # the base config, best values applied

    # The same directory again resumes: the finished trials are reloaded and nothing is trained.
    fits.clear()
    again = tune(config, SPACE, max_trials=2, directory=tmp_path / "search", datasets=make_datasets(), log=quiet)
    assert fits == [] and again.trials == result.trials and again.best_values == result.best_values
    # A larger budget in the same directory trains only the new trial.
    more = tune(config, SPACE, max_trials=3, directory=tmp_path / "search", datasets=make_datasets(), log=quiet)
    assert len(fits) == 1 and len(more.trials) == 3 and more.trials[:2] == result.trials


class _StubTrial:
    def __init__(self, trial_id, score, values):
        import types

        self.trial_id, self.score, self.hyperparameters = trial_id, score, types.SimpleNamespace(values=values)


def test_best_trial_is_the_highest_score_whatever_its_position(tmp_path, monkeypatch):
    """The selection itself, on a stub tuner whose trials have known scores (one failed, score None)."""
    import types

    import keras_resnet.tune as tune_module

    scores = {"00": 0.40, "01": 0.90, "02": None, "03": 0.55}
    trials = {tid: _StubTrial(tid, score, {"optimizer.learning_rate": 0.1 * (i + 1), "training.label_smoothing": 0.0})
              for i, (tid, score) in enumerate(scores.items())}
    stub = types.SimpleNamespace(oracle=types.SimpleNamespace(trials=trials), search=lambda **kwargs: None)
    monkeypatch.setattr(tune_module, "make_tuner", lambda *args, **kwargs: stub)
    result = tune(tiny_config(tmp_path / "unused", epochs=1), SPACE, max_trials=4, directory=tmp_path / "search",
                  datasets=make_datasets(), log=lambda *_: None)
    assert [t["trial"] for t in result.trials] == ["00", "01", "03"]  # the failed trial is left out
    assert result.best_score == 0.90 and result.best_values["optimizer.learning_rate"] == pytest.approx(0.2)
    assert load_config(tmp_path / "search" / "best_config.yaml").optimizer.learning_rate == pytest.approx(0.2)


def test_cli_rejects_a_bad_space_before_training():
    result = CliRunner().invoke(main, ["tune", "--space", "optimizer.momentum=0.5:1.5"])
    assert result.exit_code != 0
    assert "optimizer.momentum" in result.output


@pytest.mark.slow
def tiny_tune_args(root, search, validation_fraction, *extra):
    """`kresnet tune` arguments for a width-0.25 ResNet-20 on ``root``, 1 epoch of 2 steps per trial."""
    return ["tune", "--data-dir", str(root), "--model", "resnet20", "--epochs", "1", "--batch-size", "4",
            "--set", "model.width_multiplier=0.25", "--set", "training.progress=none",
            "--set", "training.tensorboard=false", "--set", f"data.validation_fraction={validation_fraction}",
            "--set", "schedule.warmup_epochs=0", "--set", "training.steps_per_epoch=2",
            "--space", "optimizer.learning_rate=0.01:0.5:log", "--dir", str(search), *extra]


@pytest.mark.slow  # a 4-trial search through the CLI (about 45 s on 2 cores); the grid-search tests stay in the default set
def test_cli_bayesian_search_end_to_end(tmp_path):
    """`kresnet tune --algorithm bayesian` on an image folder: trials past the random start come from the
    Gaussian process; the results table and best_config.yaml come out, and `kresnet train --config` takes it."""
    import json

    from synthetic import write_image_folder

    root = write_image_folder(tmp_path / "images")
    search = tmp_path / "search"
    args = tiny_tune_args(root, search, 0.25, "--algorithm", "bayesian", "--max-trials", "4")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "(bayesian, up to 4 trials, objective val_accuracy)" in result.output
    rows = list(csv.DictReader((search / "tune_results.csv").open()))
    assert len(rows) == 4 and all(0.01 <= float(r["optimizer.learning_rate"]) <= 0.5 for r in rows)
    best = max(rows, key=lambda r: float(r["score"]))
    assert f"Best val_accuracy {float(best['score']):.4f} (trial {best['trial']})" in result.output
    # KerasTuner's BayesianOptimizationOracle state (a random search has no GP alpha/beta); with one
    # dimension it samples max(3 * 1, 3) random points first, so trial 4 is the process' proposal
    oracle = json.loads((search / "oracle.json").read_text())
    assert {"alpha", "beta", "num_initial_points"} <= set(oracle) and oracle["num_initial_points"] in (None, 3)
    printed = CliRunner().invoke(main, ["train", "--config", str(search / "best_config.yaml"), "--print-config"])
    assert printed.exit_code == 0, printed.output
    assert load_config(search / "best_config.yaml").optimizer.learning_rate == pytest.approx(float(best["optimizer.learning_rate"]))
    assert "width_multiplier: 0.25" in printed.output and "steps_per_epoch: 2" in printed.output


# ------------------------------------------------------------------------------ grid search


def test_grid_search_takes_lists_and_refuses_ranges_naming_them():
    from keras_resnet.tune import DEFAULT_GRID_SPACE, check_grid_space

    base = load_config()
    params = parse_search_space(["optimizer.learning_rate=0.05,0.1,0.2", "training.label_smoothing=0.0,0.1"], base, "grid")
    assert check_grid_space(params) == 6
    with pytest.raises(ValueError, match=r"these are ranges: optimizer.learning_rate in \[0.02, 0.8\] \(log\)"):
        parse_search_space(["optimizer.learning_rate=0.02:0.8:log"], base, "grid")
    assert [p.key for p in parse_search_space([], base, "grid")] == [item.split("=")[0] for item in DEFAULT_GRID_SPACE]


def test_grid_search_tries_every_combination_once(tmp_path, monkeypatch):
    """KerasTuner's GridSearch over the lists, on a stand-in hypermodel (no ResNet trained): all 3 x 2 points."""
    import keras
    import keras_tuner

    import keras_resnet.tune as tune_module

    seen = []

    def stand_in(base_config, space, datasets_for):
        class Quick(keras_tuner.HyperModel):
            def build(self, hp):
                values = {param.key: param.sample(hp) for param in space}
                seen.append(values)
                return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])

            def fit(self, hp, model, *args, **kwargs):
                lr, smoothing = (hp.values[key] for key in KEYS)
                return {"val_accuracy": lr - smoothing}  # best: the largest rate without smoothing

        return Quick()

    monkeypatch.setattr(tune_module, "_make_hypermodel", stand_in)
    space = ["optimizer.learning_rate=0.05,0.1,0.2", "training.label_smoothing=0.0,0.1"]
    result = tune(tiny_config(tmp_path / "unused", epochs=1), space, algorithm="grid", directory=tmp_path / "grid",
                  datasets=make_datasets(), log=lambda *_: None)
    points = {(t["optimizer.learning_rate"], t["training.label_smoothing"]) for t in result.trials}
    assert points == {(lr, ls) for lr in (0.05, 0.1, 0.2) for ls in (0.0, 0.1)} and len(result.trials) == 6
    assert result.best_values == {"optimizer.learning_rate": 0.2, "training.label_smoothing": 0.0}
    assert load_config(tmp_path / "grid" / "best_config.yaml").optimizer.learning_rate == pytest.approx(0.2)


def test_cli_grid_refuses_a_range_before_training():
    result = CliRunner().invoke(main, ["tune", "--algorithm", "grid", "--space", "optimizer.learning_rate=0.1:0.5"])
    assert result.exit_code != 0
    assert "Grid search tries every combination of values given as lists" in result.output
    assert "--space optimizer.learning_rate=0.1,0.5" in result.output


def test_a_recipe_without_holdout_is_searched_on_a_holdout_and_keeps_none(tmp_path):
    """Base config with ``data.validation_fraction: 0`` (the default CIFAR-10 recipe): trials are scored on a
    10% holdout of train, and best_config.yaml keeps 0 so the final model trains on every image."""
    from synthetic import write_image_folder

    from keras_resnet.tune import TUNE_HOLDOUT

    root = write_image_folder(tmp_path / "images")
    search = tmp_path / "search"
    args = tiny_tune_args(root, search, 0, "--max-trials", "1")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"holds out {TUNE_HOLDOUT:.0%} of train" in result.output and TUNE_HOLDOUT == 0.1
    rows = list(csv.DictReader((search / "tune_results.csv").open()))
    assert len(rows) == 1 and 0.0 <= float(rows[0]["score"]) <= 1.0 and rows[0]["score"] != ""
    assert load_config(search / "best_config.yaml").data.validation_fraction == 0.0


def test_trials_on_a_validation_split_of_unknown_size_train_without_an_interruption_warning(tmp_path):
    """data.cache: none leaves the val split's size uncounted; Keras warned at each of its ends in every trial."""
    import warnings

    from synthetic import write_image_folder

    root = write_image_folder(tmp_path / "images")
    search = tmp_path / "search"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(main, tiny_tune_args(root, search, 0.25, "--max-trials", "1", "--set", "data.cache=none"))
    assert result.exit_code == 0, result.output
    assert not [str(w.message) for w in caught if "ran out of data" in str(w.message)]
    rows = list(csv.DictReader((search / "tune_results.csv").open()))
    assert len(rows) == 1 and 0.0 <= float(rows[0]["score"]) <= 1.0


def test_trials_build_their_model_as_the_trainer_does_stem_init_and_freezing(tmp_path):
    """A trial applies ``model.stem_init`` and ``finetune.freeze`` like `kresnet train` (not only the build)."""
    import dataclasses

    import keras_tuner
    import numpy as np

    from keras_resnet.models.whitening import image_patches, whitening_kernel
    from keras_resnet.tune import _make_hypermodel

    base = tiny_config(tmp_path / "unused", epochs=1)
    config = dataclasses.replace(base, finetune=dataclasses.replace(base.finetune, freeze="until_stage1"))
    params = parse_search_space(["model.stem_init=random,whitening_frozen"], config, "grid")
    datasets = make_datasets()
    hypermodel = _make_hypermodel(config, params, lambda _config: datasets)
    images = np.concatenate([x for x, _ in datasets.train.as_numpy_iterator()])
    expected, _ = whitening_kernel(image_patches(images, (3, 3)), (3, 3, 3), filters=4)
    for stem_init in ("random", "whitening_frozen"):
        hp = keras_tuner.HyperParameters()
        hp.Fixed("model.stem_init", stem_init)
        model = hypermodel.build(hp)
        stem = model.get_layer("conv1_conv")
        assert not stem.trainable and not model.get_layer("conv2_block1_1_conv").trainable  # until_stage1
        assert model.get_layer("conv3_block1_1_conv").trainable
        assert np.allclose(stem.get_weights()[0], expected, atol=1e-6) == (stem_init == "whitening_frozen")
