"""End-to-end training on tiny synthetic data: run directory, resume, kill -9, NaN."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from synthetic import interrupt_at, make_datasets, tiny_config, write_image_folder

from keras_resnet import runs
from keras_resnet.train.callbacks import TrainingDivergedError, history_seconds, read_history
from keras_resnet.train.config import load_config
from keras_resnet.train.trainer import RunFinishedError, train

REPO = Path(__file__).resolve().parents[2]
HELPERS = REPO / "tests" / "helpers"  # the `synthetic` module, for subprocess scripts


def weights_of(path):
    return [np.asarray(w) for w in keras.models.load_model(path, compile=False).get_weights()]


def test_two_epoch_run_leaves_complete_run_dir(tmp_path):
    run = train(tiny_config(tmp_path / "run", epochs=2, tensorboard=True), datasets=make_datasets(), log=lambda *_: None)
    for name in ["model.keras", "best.keras", "config.yaml", "labels.txt", "preprocessing.json", "history.csv",
                 "metrics.json", "versions.json", "dataset.json", "training_curves.png", "confusion_matrix.png"]:
        assert (run / name).is_file(), name
    assert (run / "logs").is_dir() and not (run / "backup").exists()
    history = read_history(run / "history.csv")
    assert [int(r["epoch"]) for r in history] == [1, 2]
    assert list(history[0])[0] == "epoch" and {"loss", "val_accuracy", "learning_rate"} <= set(history[0])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_examples"] == 9
    assert all(float(r["epoch_seconds"]) > 0 for r in history)
    assert metrics["train_seconds"] == round(history_seconds(history), 1)
    # metrics.json scores the saved model.keras on the test split: recompute it here, independently
    batches = list(make_datasets().test.as_numpy_iterator())
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches]).argmax(1)
    probs = keras.models.load_model(run / "model.keras", compile=False).predict(images, verbose=0).astype("float64")
    assert metrics["top1"] == pytest.approx(float((probs.argmax(1) == labels).mean()), abs=1e-9)
    assert metrics["loss"] == pytest.approx(float(-np.log(probs[np.arange(9), labels]).mean()), rel=1e-4)
    assert np.array(metrics["confusion_matrix"]).sum(1).tolist() == np.bincount(labels).tolist() == [3, 3, 3]
    assert runs.read_labels(run) == ["a", "b", "c"]
    assert json.loads((run / "dataset.json").read_text())["split_sizes"]["train"] == 24
    assert json.loads((run / "versions.json").read_text())["tensorflow"]
    # The saved config reproduces the run (in a new directory).
    again = load_config(run / "config.yaml")
    assert again.run_dir is None and again.model.width_multiplier == 0.25 and again.training.epochs == 2
    with pytest.raises(RunFinishedError, match="finished run"):
        train(tiny_config(run, epochs=2), datasets=make_datasets(), log=lambda *_: None)


@pytest.mark.slow
def test_interrupted_run_resumes_to_identical_weights(tmp_path):
    quiet = lambda *_: None  # noqa: E731
    full = train(tiny_config(tmp_path / "full", epochs=3, deterministic=True), datasets=make_datasets(), log=quiet)
    config = tiny_config(tmp_path / "resumed", epochs=3, deterministic=True)
    with pytest.raises(KeyboardInterrupt):
        train(config, datasets=make_datasets(), callbacks=[interrupt_at(1)], log=quiet)
    before = read_history(tmp_path / "resumed" / "history.csv")
    assert [int(r["epoch"]) for r in before] == [1]
    lines = []
    resumed = train(config, datasets=make_datasets(), log=lines.append)
    assert any("resuming after epoch 1" in line for line in lines)
    history = read_history(resumed / "history.csv")
    assert [int(r["epoch"]) for r in history] == [1, 2, 3]
    # the training time counts the interrupted session's epoch too
    assert history[0]["epoch_seconds"] == before[0]["epoch_seconds"]
    assert json.loads((resumed / "metrics.json").read_text())["train_seconds"] == round(history_seconds(history), 1)
    for a, b in zip(weights_of(full / "model.keras"), weights_of(resumed / "model.keras")):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_interrupted_run_resumes_to_identical_weights_through_the_real_pipeline(tmp_path):
    """Shuffling and augmentation on: the resumed epoch 2 must see the batches of the uninterrupted epoch 2."""
    import dataclasses
    import warnings

    root = write_image_folder(tmp_path / "images")
    quiet = lambda *_: None  # noqa: E731

    def config(run):
        base = tiny_config(tmp_path / run, epochs=2, deterministic=True, seed=7, evaluate_split="none")
        data = dataclasses.replace(base.data, dataset=None, data_dir=str(root), validation_fraction=0.25,
                                   deterministic=True, augment=dataclasses.replace(base.data.augment, erasing=0.5))
        return dataclasses.replace(base, data=data)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        full = train(config("full"), log=quiet)
    ran_out = [(w.filename, w.lineno) for w in caught if "ran out of data" in str(w.message)]
    assert not ran_out, ran_out
    with pytest.raises(KeyboardInterrupt):
        train(config("resumed"), callbacks=[interrupt_at(1)], log=quiet)
    lines = []
    resumed = train(config("resumed"), log=lines.append)
    assert any("resuming after epoch 1" in line for line in lines)
    assert any("5 steps/epoch" in line for line in lines)  # 18 train images (6 held out), batch 4
    assert [int(r["epoch"]) for r in read_history(resumed / "history.csv")] == [1, 2]
    for a, b in zip(weights_of(full / "model.keras"), weights_of(resumed / "model.keras")):
        np.testing.assert_array_equal(a, b)


class PoisonWeightsAt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            kernel = self.model.get_layer("predictions").kernel
            kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(tmp_path):
    config = tiny_config(tmp_path / "run", epochs=3)
    with pytest.raises(TrainingDivergedError, match=r"loss=nan at epoch 2.*last good checkpoint.*model.keras"):
        train(config, datasets=make_datasets(), callbacks=[PoisonWeightsAt()], log=lambda *_: None)
    run = tmp_path / "run"
    assert all(np.isfinite(w).all() for w in weights_of(run / "model.keras"))
    assert all(np.isfinite(w).all() for w in weights_of(run / "best.keras"))
    assert [int(r["epoch"]) for r in read_history(run / "history.csv")] == [1]
    assert json.loads((run / "backup" / "train" / "training_metadata.json").read_text())["epoch"] == 1


KILL_SCRIPT = """
import sys
sys.path.insert(0, {helpers!r})
from synthetic import make_datasets, tiny_config
from keras_resnet.train.trainer import train
train(tiny_config({run!r}, epochs={epochs}, evaluate_split="none"), datasets=make_datasets(n_train=48, batch=4),
      log=lambda m: print(m, flush=True))
print("DONE", flush=True)
"""


@pytest.mark.slow
def test_kill_9_then_rerun_resumes_to_exactly_the_asked_epochs(tmp_path):
    run, epochs = tmp_path / "run", 25
    script = tmp_path / "train_script.py"
    script.write_text(KILL_SCRIPT.format(helpers=str(HELPERS), run=str(run), epochs=epochs))
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while len(read_history(run / "history.csv")) < 3:
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        assert time.time() < deadline, "first run did not reach epoch 3"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = len(read_history(run / "history.csv"))
    assert killed_at < epochs, "the run finished before it could be killed"
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "DONE" in result.stdout and "resuming after epoch" in result.stdout
    assert [int(r["epoch"]) for r in read_history(run / "history.csv")] == list(range(1, epochs + 1))
    assert (run / "model.keras").is_file() and not (run / "backup").exists()


def test_validation_fraction_zero_trains_on_every_image_and_says_what_it_monitors(tmp_path):
    """``data.validation_fraction: 0`` end to end: all images train, no val pass, best.keras follows train accuracy."""
    import dataclasses

    from keras_resnet.train.callbacks import effective_monitor

    root = write_image_folder(tmp_path / "images")  # 8 train images per class, 3 classes

    base = tiny_config(tmp_path / "run", epochs=2, early_stopping_patience=5)
    data = dataclasses.replace(base.data, dataset=None, data_dir=str(root), validation_fraction=0.0)
    lines = []
    run = train(dataclasses.replace(base, data=data), log=lines.append)
    assert any("6 steps/epoch" in line for line in lines)  # all 24 images at batch 4
    message = [line for line in lines if "No validation split" in line]
    assert message and "'accuracy' instead of 'val_accuracy'" in message[0] and "all 24 training images" in message[0]
    history = read_history(run / "history.csv")
    assert [int(r["epoch"]) for r in history] == [1, 2]
    assert not any(key.startswith("val_") for key in history[0])
    record = json.loads((run / "dataset.json").read_text())["fingerprint"]
    assert record["validation"] == "none" and record["split_sizes"] == {"train": 24, "test": 6}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_examples"] == 6
    # best.keras is the epoch with the higher training accuracy (ties keep the earlier one):
    # it equals the final model exactly when that is epoch 2
    best_epoch = int(max(history, key=lambda r: float(r["accuracy"]))["epoch"])
    same = all(np.array_equal(a, b) for a, b in zip(weights_of(run / "best.keras"), weights_of(run / "model.keras")))
    assert same == (best_epoch == 2), (best_epoch, [r["accuracy"] for r in history])
    assert effective_monitor("val_accuracy", has_validation=True) == "val_accuracy"
    assert effective_monitor("val_loss", has_validation=False) == "loss"


def test_a_validation_split_of_unknown_size_trains_every_epoch_without_an_interruption_warning(tmp_path):
    """cache: none with on_bad_image: skip leaves the val split's size uncounted; Keras warned at each of its ends."""
    import dataclasses
    import warnings

    from keras_resnet.data.pipeline import build_datasets

    root = write_image_folder(tmp_path / "images")
    base = tiny_config(tmp_path / "run", epochs=2, evaluate_split="none")
    data = dataclasses.replace(base.data, dataset=None, data_dir=str(root), validation_fraction=0.25, cache="none")
    assert int(build_datasets(data).val.cardinality()) < 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = train(dataclasses.replace(base, data=data), log=lambda *_: None)
    assert not [str(w.message) for w in caught if "ran out of data" in str(w.message)]
    history = read_history(run / "history.csv")
    assert [int(r["epoch"]) for r in history] == [1, 2] and all(r["val_accuracy"] for r in history)


@pytest.mark.parametrize("zero_init", [True, False])
def test_zero_init_residual_starts_the_branch_ends_at_zero_and_they_train(tmp_path, zero_init):
    import dataclasses

    class FirstGamma(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.gamma = np.asarray(self.model.get_layer("conv2_block1_2_bn").gamma)

    base = tiny_config(tmp_path / "run", epochs=1)
    config = dataclasses.replace(base, model=dataclasses.replace(base.model, zero_init_residual=zero_init))
    lines, first = [], FirstGamma()
    run = train(config, datasets=make_datasets(), callbacks=[first], log=lines.append)
    said = [line for line in lines if "Residual branches: 9 end layers (conv2_block1_2_bn ...) start at zero" in line]
    assert len(said) == int(zero_init)
    assert (not np.any(first.gamma)) == zero_init
    trained = keras.models.load_model(run / "model.keras", compile=False).get_layer("conv2_block1_2_bn").get_weights()[0]
    assert np.abs(trained).max() > 0  # a starting value, not a frozen one


@pytest.mark.parametrize("stem_init", ["whitening_frozen", "whitening"])
def test_whitening_stem_starts_from_the_training_patches_and_stays_fixed_when_frozen(tmp_path, stem_init):
    import dataclasses

    from keras_resnet.models.whitening import image_patches, whitening_kernel

    datasets = make_datasets()
    base = tiny_config(tmp_path / "run", epochs=2)
    config = dataclasses.replace(base, model=dataclasses.replace(base.model, stem_init=stem_init))
    lines = []
    run = train(config, datasets=datasets, log=lines.append)
    images = np.concatenate([x for x, _ in datasets.train.as_numpy_iterator()])  # all 24 (identity preprocessing)
    expected, _ = whitening_kernel(image_patches(images, (3, 3)), (3, 3, 3), filters=4)  # width 0.25: 4 filters
    kernel = keras.models.load_model(run / "model.keras", compile=False).get_layer("conv1_conv").get_weights()[0]
    said = [line for line in lines if "PCA whitening of 21,600 patches from 24 training images, 2 directions" in line]
    assert len(said) == 1 and ("frozen" in said[0]) == (stem_init == "whitening_frozen")
    if stem_init == "whitening_frozen":
        np.testing.assert_allclose(kernel, expected, atol=1e-6)
    else:  # it started there (the line above) and trained on
        assert np.abs(kernel - expected).max() > 1e-3


@pytest.mark.parametrize("fused", [True, False])
def test_training_fused_batchnorm_puts_the_models_batchnorm_on_the_fused_kernel(tmp_path, fused):
    import dataclasses

    import tensorflow as tf

    class GraphOps(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            fn = tf.function(lambda x: self.model(x, training=True))
            spec = tf.TensorSpec((2, *self.model.input_shape[1:]), tf.float32)
            self.ops = {op.type for op in fn.get_concrete_function(spec).graph.get_operations()}

    base = tiny_config(tmp_path / "run", epochs=1)
    config = dataclasses.replace(base, training=dataclasses.replace(base.training, fused_batchnorm=fused))
    ops, lines = GraphOps(), []
    run = train(config, datasets=make_datasets(), callbacks=[ops], log=lines.append)
    assert ("FusedBatchNormV3" in ops.ops) == fused
    assert sum("19 layers run on TensorFlow's fused kernel" in line for line in lines) == int(fused)
    assert type(keras.models.load_model(run / "model.keras").get_layer("conv1_bn")) is keras.layers.BatchNormalization
