"""Resuming checks the config against the run's config.yaml; the NaN message names only files that exist;
model.allow_partial_weights is the config's way to load a partly matching weights file."""

import dataclasses

import keras
import numpy as np
import pytest
import yaml
from synthetic import interrupt_at, make_datasets, tiny_config
from tiny_run import tiny_run_fixture

from keras_resnet import runs
from keras_resnet.config import save_config
from keras_resnet.train.callbacks import TrainingDivergedError, read_history
from keras_resnet.train.config import load_config
from keras_resnet.train.resume import HARMLESS_KEYS, ResumeConfigError, check_resume_config, config_changes
from keras_resnet.train.trainer import build_model, train, with_model_image_size

QUIET = lambda *_: None  # noqa: E731


def with_changes(config, **sections):
    """``config`` with ``section={field: value}`` replaced."""
    for section, fields in sections.items():
        config = dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **fields)})
    return config


def run_with_progress(tmp_path, config):
    """A run directory as an interrupted run leaves it: config.yaml and one history row."""
    run = tmp_path / "run"
    run.mkdir()
    save_config(dataclasses.replace(with_model_image_size(config), run_dir=None), run / runs.CONFIG_FILE)
    (run / runs.HISTORY_FILE).write_text("epoch,loss\n1,1.0\n")
    return run


@pytest.mark.parametrize(
    "changes, keys",
    [
        ({"model": {"name": "resnet32"}}, ["model.name"]),
        ({"data": {"batch_size": 8}}, ["data.batch_size"]),
        ({"optimizer": {"learning_rate": 0.05}}, ["optimizer.learning_rate"]),
        ({"training": {"epochs": 3, "seed": 1}}, ["training.epochs", "training.seed"]),
        ({"schedule": {"name": "cosine"}}, ["schedule.name"]),
        ({"data": {"data_dir": "/elsewhere"}}, ["data.data_dir"]),
    ],
)
def test_a_change_that_breaks_the_resume_is_refused_naming_the_keys(tmp_path, changes, keys):
    config = tiny_config(tmp_path / "run")
    run = run_with_progress(tmp_path, config)
    before = (run / runs.CONFIG_FILE).read_text()
    new = with_model_image_size(with_changes(config, **changes))
    with pytest.raises(ResumeConfigError, match="Cannot resume") as caught:
        check_resume_config(run, new, QUIET)
    message = str(caught.value)
    for key in keys:
        assert key in message
    assert "new --run-dir" in message and len(message) < 600
    assert (run / runs.CONFIG_FILE).read_text() == before


def test_harmless_changes_are_allowed_and_said(tmp_path):
    config = tiny_config(tmp_path / "run")
    run = run_with_progress(tmp_path, config)
    new = with_model_image_size(with_changes(config, training={"progress": "bar", "tensorboard": True}))
    lines = []
    changes = check_resume_config(run, new, lines.append)
    assert set(changes) == {"training.progress", "training.tensorboard"} <= set(HARMLESS_KEYS)
    assert len(lines) == 1 and "harmless" in lines[0] and "training.progress ('none' -> 'bar')" in lines[0]


def test_nothing_to_compare_without_progress_or_with_the_same_config(tmp_path):
    config = tiny_config(tmp_path / "run")
    run = run_with_progress(tmp_path, config)
    assert check_resume_config(run, with_model_image_size(config), QUIET) == {}
    assert config_changes(config, dataclasses.replace(config, run_dir="elsewhere")) == {}
    (run / runs.HISTORY_FILE).unlink()  # a run that stopped before its first epoch starts again as asked
    assert check_resume_config(run, with_changes(config, model={"name": "resnet32"}), QUIET) == {}


def test_resuming_an_interrupted_run_with_another_model_or_batch_size_is_refused(tmp_path):
    """The issue's case: --model resnet32 on an interrupted resnet20 run printed a dump of weight arrays."""
    config = tiny_config(tmp_path / "run", epochs=2)
    with pytest.raises(KeyboardInterrupt):
        train(config, datasets=make_datasets(), callbacks=[interrupt_at(1)], log=QUIET)
    run = tmp_path / "run"
    saved = (run / runs.CONFIG_FILE).read_text()
    for changes in ({"model": {"name": "resnet32"}}, {"data": {"batch_size": 8}}):
        with pytest.raises(ResumeConfigError, match=next(iter(changes)) + r"\.") as caught:
            train(with_changes(config, **changes), datasets=make_datasets(), log=QUIET)
        assert "array" not in str(caught.value)
    assert (run / runs.CONFIG_FILE).read_text() == saved
    lines = []
    train(with_changes(config, training={"progress": "epoch"}), datasets=make_datasets(), log=lines.append)
    assert any("harmless config changes: training.progress" in line for line in lines), lines
    assert any("resuming after epoch 1 of 2" in line for line in lines), lines
    assert [int(r["epoch"]) for r in read_history(run / runs.HISTORY_FILE)] == [1, 2]
    assert yaml.safe_load((run / runs.CONFIG_FILE).read_text())["training"]["progress"] == "epoch"


class PoisonWeightsAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            kernel = self.model.get_layer("predictions").kernel
            kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))


def test_divergence_in_the_first_epoch_names_no_checkpoint(tmp_path):
    with pytest.raises(TrainingDivergedError) as caught:
        train(tiny_config(tmp_path / "run", epochs=2), datasets=make_datasets(), callbacks=[PoisonWeightsAt(0)],
              log=QUIET)
    message = str(caught.value)
    assert "loss=nan at epoch 1" in message and "no checkpoint was written" in message
    assert "end of epoch 0" not in message and "model.keras" not in message
    assert not (tmp_path / "run" / runs.MODEL_FILE).exists()


# ------------------------------------------------------------------ model.allow_partial_weights


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return tiny_run_fixture(tmp_path_factory)


def test_allow_partial_weights_is_a_config_key_and_the_hint_names_it(tiny_run):
    """resnet20 weights into a resnet32: the blocks resnet32 adds are missing from the file."""
    config = load_config(overrides={"model.name": "resnet32", "model.width_multiplier": 0.25,
                                    "model.weights": str(tiny_run.run_dir / runs.MODEL_FILE)})
    with pytest.raises(ValueError, match="cannot be loaded") as caught:
        build_model(config.model, 3, (32, 32))
    assert "model.allow_partial_weights" in str(caught.value) and "allow_partial=True" in str(caught.value)
    partial = load_config(overrides={"model.name": "resnet32", "model.width_multiplier": 0.25,
                                     "model.weights": str(tiny_run.run_dir / runs.MODEL_FILE)},
                          set_values=["model.allow_partial_weights=true"])
    assert partial.model.allow_partial_weights is True
    model = build_model(partial.model, 3, (32, 32))
    source = keras.saving.load_model(tiny_run.run_dir / runs.MODEL_FILE, compile=False)
    np.testing.assert_array_equal(model.get_layer("conv1_conv").kernel.numpy(),
                                  source.get_layer("conv1_conv").kernel.numpy())
