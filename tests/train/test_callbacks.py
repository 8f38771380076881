"""Callbacks: history rows on resume, atomic checkpoints when a save fails midway."""

import keras
import numpy as np
import pytest

from keras_resnet import runs
from keras_resnet.train.callbacks import HistoryCSV, ModelCheckpoints, read_history


def tiny_model(value):
    inputs = keras.Input((2,))
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions",
                                 kernel_initializer=keras.initializers.Constant(value))(inputs)
    return keras.Model(inputs, outputs)


def test_history_rows_replaced_when_an_epoch_is_rerun(tmp_path):
    history = HistoryCSV(tmp_path / "history.csv")
    for epoch in (0, 1, 2):
        history.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})
    history.on_epoch_end(2, {"loss": 9.0, "val_loss": 1.0})  # epoch 3 re-run after a resume
    rows = read_history(tmp_path / "history.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert rows[2]["loss"] == "9.0" and rows[2]["val_loss"] == "1.0" and rows[0]["val_loss"] == ""
    assert (tmp_path / "history.csv").read_text().splitlines()[0].startswith("epoch,")


def test_best_checkpoint_tracks_monitor_and_recovers_best_from_history(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,val_accuracy\n1,0.5\n2,0.7\n")
    callback = ModelCheckpoints(tmp_path, monitor="val_accuracy")
    callback.set_model(tiny_model(1.0))
    callback.on_train_begin()
    assert callback.best == 0.7
    callback.on_epoch_end(2, {"val_accuracy": 0.6})
    assert (tmp_path / "model.keras").is_file() and not (tmp_path / "best.keras").exists()
    callback.on_epoch_end(3, {"val_accuracy": 0.8})
    assert (tmp_path / "best.keras").is_file() and callback.best == 0.8


def test_save_failing_midway_leaves_old_checkpoint_loadable(tmp_path, monkeypatch):
    callback = ModelCheckpoints(tmp_path)
    callback.set_model(tiny_model(1.0))
    callback.on_train_begin()
    callback.on_epoch_end(0, {"val_accuracy": 0.5})
    before = (tmp_path / runs.MODEL_FILE).read_bytes()

    def broken_save(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full")

    callback.set_model(tiny_model(2.0))
    monkeypatch.setattr(keras.Model, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        callback.on_epoch_end(1, {"val_accuracy": 0.9})
    monkeypatch.undo()
    assert (tmp_path / runs.MODEL_FILE).read_bytes() == before
    kernel = keras.models.load_model(tmp_path / runs.MODEL_FILE).get_layer("predictions").kernel
    np.testing.assert_array_equal(np.asarray(kernel), np.ones((2, 2)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras", "model.keras"]  # no temp files left
