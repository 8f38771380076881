"""The command line's promises about runs, end to end on a tiny image folder written here:
exit status 3 on a NaN loss and 130 on Ctrl-C, resuming with the same --run-dir (also after a real
SIGINT/SIGTERM), `kresnet train --config RUN/config.yaml` repeating a run, and `kresnet evaluate`
with no run named, --split val and another dataset."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from synthetic import interrupt_at, write_image_folder

from keras_resnet.cli import main
from keras_resnet.train.callbacks import read_history

REPO = Path(__file__).resolve().parents[2]
TINY = ["--model", "resnet20", "--batch-size", "4", "--set", "model.width_multiplier=0.25",
        "--set", "training.progress=none", "--set", "training.tensorboard=false",
        "--set", "data.validation_fraction=0.25", "--set", "schedule.warmup_epochs=0"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Classes a, b, c: 8 train (2 held out for validation) and 2 test images each, 32x32."""
    return write_image_folder(tmp_path_factory.mktemp("cli_runs") / "images")


def train_args(folder, run, epochs, *extra):
    return ["train", "--data-dir", str(folder), "--epochs", str(epochs), "--run-dir", str(run), *TINY, *extra]


def weights_of(path):
    return keras.models.load_model(path, compile=False).get_weights()


def with_callback(monkeypatch, callback):
    """Make the next `kresnet train` in this process run with an extra Keras callback."""
    import keras_resnet.train.trainer as trainer

    real = trainer.train
    monkeypatch.setattr(trainer, "train", lambda config, log=print, **kw: real(config, callbacks=[callback], log=log))


def assert_resume_hint(output, run):
    """The interrupted command says how to resume: the same command with this --run-dir."""
    import re

    assert re.search(rf"Interrupted\. Run the same command.* --run-dir {re.escape(str(run))} to resume", output), output[-2000:]


class PoisonWeightsAt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            kernel = self.model.get_layer("predictions").kernel
            kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))


@pytest.mark.slow  # a 3-epoch CLI run; tests/train/test_trainer.py checks the same stop through train()
def test_nan_loss_exits_with_status_3_and_keeps_the_last_good_checkpoint(tmp_path, folder, monkeypatch):
    run = tmp_path / "run"
    with_callback(monkeypatch, PoisonWeightsAt())
    result = CliRunner().invoke(main, train_args(folder, run, 3))
    assert result.exit_code == 3, result.output
    assert "loss=nan at epoch 2" in result.output and "Traceback" not in result.output
    assert [int(r["epoch"]) for r in read_history(run / "history.csv")] == [1]
    assert all(np.isfinite(w).all() for w in weights_of(run / "model.keras"))


@pytest.mark.slow  # three CLI training commands; test_error_boundary checks the 130 and the resume hint
def test_ctrl_c_exits_with_status_130_and_the_same_command_resumes(tmp_path, folder, monkeypatch):
    run = tmp_path / "run"
    args = train_args(folder, run, 2)
    with monkeypatch.context() as patch:
        with_callback(patch, interrupt_at(1))
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 130, result.output
    assert_resume_hint(result.output, run)
    assert [int(r["epoch"]) for r in read_history(run / "history.csv")] == [1]
    assert not (run / "metrics.json").exists()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "resuming after epoch 1 of 2" in result.output and f"Run saved to {run}" in result.output
    assert [int(r["epoch"]) for r in read_history(run / "history.csv")] == [1, 2]
    assert (run / "metrics.json").is_file() and not (run / "backup").exists()
    # and a finished run is not trained again
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "already holds a finished run" in again.output


@pytest.mark.slow
def test_train_config_of_a_run_repeats_the_run(tmp_path, folder):
    """`kresnet train --config RUN/config.yaml` (deterministic): the same config and bit-identical weights."""
    first, second = tmp_path / "first", tmp_path / "second"
    deterministic = ["--set", "training.deterministic=true", "--set", "data.deterministic=true", "--seed", "5"]
    result = CliRunner().invoke(main, train_args(folder, first, 2, *deterministic, "--set", "optimizer.name=adamw",
                                                 "--set", "optimizer.learning_rate=0.01"))
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["train", "--config", str(first / "config.yaml"), "--run-dir", str(second)])
    assert result.exit_code == 0, result.output
    assert (first / "config.yaml").read_text() == (second / "config.yaml").read_text()  # run_dir is not recorded
    assert "name: adamw" in (second / "config.yaml").read_text()
    for a, b in zip(weights_of(first / "model.keras"), weights_of(second / "model.keras")):
        np.testing.assert_array_equal(a, b)
    history = [read_history(run / "history.csv") for run in (first, second)]
    assert [r["loss"] for r in history[0]] == [r["loss"] for r in history[1]]


# --- kresnet evaluate ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(folder, tmp_path_factory):
    """One tiny finished run (trained on `folder`), copied by the tests that change it."""
    run = tmp_path_factory.mktemp("evaluate") / "run"
    result = CliRunner().invoke(main, train_args(folder, run, 1, "--set", "training.evaluate_split=none"))
    assert result.exit_code == 0, result.output
    return run


def copy_run(trained, target):
    shutil.copytree(trained, target)
    (target / "metrics.json").unlink(missing_ok=True)
    return target


def test_evaluate_without_a_run_takes_the_latest(tmp_path, trained, monkeypatch):
    monkeypatch.chdir(tmp_path)
    older = copy_run(trained, tmp_path / "saved_models" / "older")
    newer = copy_run(trained, tmp_path / "saved_models" / "newer")
    now = time.time()
    os.utime(older / "model.keras", (now - 100, now - 100))
    os.utime(newer / "model.keras", (now, now))
    result = CliRunner().invoke(main, ["evaluate"])
    assert result.exit_code == 0, result.output
    assert (newer / "metrics.json").is_file() and not (older / "metrics.json").exists()
    assert str(Path("saved_models") / "newer" / "model.keras") in result.output
    metrics = json.loads((newer / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_examples"] == 6
    os.utime(older / "model.keras", (now + 100, now + 100))  # now "older" is the most recent
    assert CliRunner().invoke(main, ["evaluate", "--no-write"]).exit_code == 0
    assert CliRunner().invoke(main, ["evaluate"]).exit_code == 0
    assert (older / "metrics.json").is_file()
    shutil.rmtree(tmp_path / "saved_models")
    result = CliRunner().invoke(main, ["evaluate"])
    assert result.exit_code == 1 and "No trained run found under saved_models" in result.output


def test_evaluate_split_val(tmp_path, trained):
    run = copy_run(trained, tmp_path / "run")
    result = CliRunner().invoke(main, ["evaluate", str(run), "--split", "val"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    val_size = json.loads((run / "dataset.json").read_text())["split_sizes"]["val"]
    assert metrics["split"] == "val" and metrics["num_examples"] == val_size == 6
    assert np.array(metrics["confusion_matrix"]).sum(1).tolist() == [2, 2, 2]  # the stratified holdout
    assert "val split" in result.output


def test_evaluate_on_another_dataset_with_the_same_classes(tmp_path, trained):
    """--data-dir: the other folder's test split is evaluated (its own class counts show in the confusion matrix)."""
    from synthetic import CLASS_NAMES

    from keras_resnet.runs import read_labels

    run = copy_run(trained, tmp_path / "run")
    other = tmp_path / "other"
    counts = {"a": 1, "b": 2, "c": 4}
    from PIL import Image

    rng = np.random.default_rng(3)
    for k, (cls, count) in enumerate(counts.items()):
        for split in ("train", "test"):
            (other / split / cls).mkdir(parents=True)
        for i in range(count):
            image = rng.integers(0, 120, (32, 32, 3), dtype=np.uint8)
            image[:, k * 10 : k * 10 + 8] += 120
            Image.fromarray(image).save(other / "test" / cls / f"{i}.png")
            Image.fromarray(image).save(other / "train" / cls / f"{i}.png")
    assert read_labels(run) == CLASS_NAMES
    result = CliRunner().invoke(main, ["evaluate", str(run), "--data-dir", str(other)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_examples"] == 7
    assert np.array(metrics["confusion_matrix"]).sum(1).tolist() == [1, 2, 4]
    # a dataset with other classes is refused, naming both class lists
    (other / "test" / "c").rename(other / "test" / "zebra")
    (other / "train" / "c").rename(other / "train" / "zebra")
    result = CliRunner().invoke(main, ["evaluate", str(run), "--data-dir", str(other)])
    assert result.exit_code == 1 and "zebra" in result.output and "differ" in result.output


def test_evaluate_dataset_by_name(tmp_path, trained, monkeypatch):
    """--dataset NAME alone (found under $KRESNET_DATA_DIR) replaces the run's data folder."""
    run = copy_run(trained, tmp_path / "run")
    root = tmp_path / "datasets"
    write_image_folder(root / "named", train_per_class=1, test_per_class=3)
    monkeypatch.setenv("KRESNET_DATA_DIR", str(root))
    result = CliRunner().invoke(main, ["evaluate", str(run), "--dataset", "named"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_examples"] == 9 and metrics["dataset"] == "named"


# --- real signals, in a subprocess ---------------------------------------------------------------


def _start(args, env):
    # SIGINT back to its default in the child: a test run started in the background of a
    # non-interactive shell (`pytest ... &`) inherits SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler, so a Ctrl-C would never reach `kresnet train`.
    return subprocess.Popen([sys.executable, "-c", "from keras_resnet.cli import main; main()", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _interrupt_after(proc, history, epochs_done, sig, timeout=240):
    deadline = time.time() + timeout
    while not (history.is_file() and len(read_history(history)) >= epochs_done):
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() < deadline, f"the run did not reach epoch {epochs_done}"
        time.sleep(0.05)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out


def _resumed_after(out, epochs):
    """The epoch a run says it resumed after (the backup's, written last at an epoch end: history.csv
    may already hold the epoch a signal interrupted)."""
    import re

    found = re.findall(rf"resuming after epoch (\d+) of {epochs}", out)
    assert len(found) == 1, out[-3000:]
    return int(found[0])


@pytest.mark.slow
def test_sigint_and_sigterm_then_the_same_command_resumes(tmp_path, folder):
    """A real Ctrl-C exits 130; a SIGTERM kills; the same command line each time continues the run."""
    run, epochs = tmp_path / "run", 12
    args = train_args(folder, run, epochs, "--set", "training.evaluate_split=none")
    # unbuffered: a process killed by SIGTERM flushes nothing, and its log lines are checked
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    code, out = _interrupt_after(_start(args, env), run / "history.csv", 2, signal.SIGINT)
    assert code == 130, out[-3000:]
    assert_resume_hint(out, run)
    interrupted_at = len(read_history(run / "history.csv"))
    assert 2 <= interrupted_at < epochs
    code, out = _interrupt_after(_start(args, env), run / "history.csv", interrupted_at + 2, signal.SIGTERM)
    assert code == -signal.SIGTERM, out[-3000:]
    assert interrupted_at - 1 <= _resumed_after(out, epochs) <= interrupted_at
    killed_at = len(read_history(run / "history.csv"))
    assert killed_at < epochs, "the run finished before SIGTERM"
    result = subprocess.run([sys.executable, "-c", "from keras_resnet.cli import main; main()", *args], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert killed_at - 1 <= _resumed_after(result.stdout, epochs) <= killed_at
    assert [int(r["epoch"]) for r in read_history(run / "history.csv")] == list(range(1, epochs + 1))
    assert (run / "model.keras").is_file() and not (run / "backup").exists()
