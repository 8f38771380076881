"""Callbacks: history rows on resume, atomic checkpoints when a save fails midway."""

import keras
import numpy as np
import pytest

from keras_resnet import runs
from keras_resnet.train.callbacks import HistoryCSV, ModelCheckpoints, history_seconds, read_history


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


def test_history_records_each_epochs_seconds_and_sums_them_across_a_resume(tmp_path, monkeypatch):
    clock = iter([10.0, 12.5, 12.5, 16.0, 100.0, 101.25])
    monkeypatch.setattr("keras_resnet.train.callbacks.time.perf_counter", lambda: next(clock))
    first = HistoryCSV(tmp_path / "history.csv")
    for epoch in (0, 1):
        first.on_epoch_begin(epoch)
        first.on_epoch_end(epoch, {"loss": 1.0})
    resumed = HistoryCSV(tmp_path / "history.csv")  # a new process: epoch 2 re-run, its earlier row replaced
    resumed.on_epoch_begin(1)
    resumed.on_epoch_end(1, {"loss": 0.5})
    rows = read_history(tmp_path / "history.csv")
    assert [(r["epoch"], r["epoch_seconds"]) for r in rows] == [("1", "2.5"), ("2", "1.25")]
    assert history_seconds(rows) == 3.75
    assert history_seconds([]) is None
    assert history_seconds([{"epoch": "1", "loss": "1.0"}]) is None  # written before the column existed
    assert history_seconds(rows + [{"epoch": "3", "epoch_seconds": ""}]) is None


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


@pytest.mark.parametrize("staged", [False, True])
def test_a_best_epoch_serializes_the_model_once_and_best_keras_is_its_copy(tmp_path, monkeypatch, staged):
    files = runs.StagedFiles() if staged else None
    callback = ModelCheckpoints(tmp_path, monitor="val_accuracy", staged=files)
    callback.set_model(tiny_model(3.0))
    callback.on_train_begin()
    saves = []
    real_save = keras.Model.save
    monkeypatch.setattr(keras.Model, "save", lambda self, path, *a, **k: (saves.append(path), real_save(self, path, *a, **k)))
    callback.on_epoch_end(0, {"val_accuracy": 0.5})
    assert len(saves) == 1
    if staged:
        assert not (tmp_path / runs.BEST_MODEL_FILE).exists()  # nothing replaced before the commit
        files.commit()
    assert (tmp_path / runs.BEST_MODEL_FILE).read_bytes() == (tmp_path / runs.MODEL_FILE).read_bytes()
    kernel = keras.models.load_model(tmp_path / runs.BEST_MODEL_FILE).get_layer("predictions").kernel
    np.testing.assert_array_equal(np.asarray(kernel), np.full((2, 2), 3.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras", "model.keras"]


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


class _Stream:
    def __init__(self, tty):
        self.tty = tty

    def isatty(self):
        return self.tty


def test_progress_bar_becomes_one_line_per_epoch_when_stdout_is_not_a_terminal(monkeypatch):
    import io
    import sys

    from keras_resnet.train.callbacks import fit_verbosity

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert fit_verbosity("bar", _Stream(True)) == 1
    assert fit_verbosity("bar", _Stream(False)) == 2
    assert fit_verbosity("bar", io.StringIO()) == 2
    assert fit_verbosity("epoch", _Stream(True)) == 2 and fit_verbosity("none", _Stream(True)) == 0
    monkeypatch.setitem(sys.modules, "ipykernel", object())  # a notebook renders the bar
    assert fit_verbosity("bar", io.StringIO()) == 1


def test_redirected_one_epoch_log_is_one_line(tmp_path):
    """Keras' bar, redirected, writes a redraw per step; verbose 2 writes one line per epoch."""
    import subprocess
    import sys

    code = (
        "import numpy as np, keras\n"
        "from keras_resnet.train.callbacks import fit_verbosity\n"
        "m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]); m.compile('sgd', 'mse')\n"
        "m.fit(np.zeros((64, 2)), np.zeros((64, 1)), batch_size=1, epochs=1, verbose=fit_verbosity('bar'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300).stdout
    assert out.count("\n") == 1 and "\b" not in out and "\r" not in out, repr(out[:300])


class _EpochRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_backup_resumes_fit_and_the_next_fit_starts_at_its_own_initial_epoch(tmp_path):
    """Two phases on one model: phase 1 resumed from its backup must not shift where phase 2 starts."""
    from keras_resnet.train.callbacks import AtomicBackupAndRestore

    x, y = np.zeros((4, 2), "float32"), np.zeros((4, 2), "float32")
    model = tiny_model(1.0)
    model.compile("sgd", "mse")
    first = AtomicBackupAndRestore(tmp_path / "head", delete_checkpoint=False)
    model.fit(x, y, epochs=1, callbacks=[first], verbose=0)  # phase 1 interrupted after its first epoch
    assert first.restored_epoch == 1 and sorted(p.name for p in (tmp_path / "head").iterdir()) == [
        "epoch-1.weights.h5", "training_metadata.json"]

    resumed, recorder = AtomicBackupAndRestore(tmp_path / "head", delete_checkpoint=False), _EpochRecorder()
    model.fit(x, y, epochs=2, callbacks=[resumed, recorder], verbose=0)
    assert recorder.epochs == [1] and resumed.restored_epoch == 2
    assert sorted(p.name for p in (tmp_path / "head").iterdir()) == ["epoch-2.weights.h5", "training_metadata.json"]

    phase2, recorder = AtomicBackupAndRestore(tmp_path / "finetune"), _EpochRecorder()
    model.fit(x, y, initial_epoch=2, epochs=4, callbacks=[phase2, recorder], verbose=0)
    assert recorder.epochs == [2, 3]  # Keras' BackupAndRestore left epoch 1 behind: [1, 2, 3]
    assert not (tmp_path / "finetune").exists()  # delete_checkpoint=True
