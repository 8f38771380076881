"""The CLI's one error boundary: ordinary errors are one line naming the path and what to do, exit 1.

Unit tests of `keras_resnet.cli.errors` and `KresnetGroup` (no TensorFlow), then the
real commands on broken inputs made here: a weights file that is not HDF5, a
safetensors file that is not one, a corrupt saved_model.pb, a .keras file whose
config names a function that does not exist, a truncated model.keras, a labels.txt
with the wrong number of lines, --run-dir naming a file, and non-finite numbers.
"""

import errno
import json
import os
import shutil
import signal
import zipfile

import click
import pytest
from click.testing import CliRunner
from synthetic import write_image_folder
from tiny_run import tiny_run_fixture

from keras_resnet.cli import EXIT_INTERRUPTED, KresnetGroup, ignore_file_size_signal, main
from keras_resnet.cli.errors import describe_error

TINY = ["--model", "resnet20", "--batch-size", "4", "--epochs", "1", "--set", "model.width_multiplier=0.25",
        "--set", "training.progress=none", "--set", "training.tensorboard=false", "--set", "schedule.warmup_epochs=0"]


def one_line_error(result, *expected):
    """The command failed with exit 1 and one 'Error:' line holding ``expected``, no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


# ------------------------------------------------------------------ the boundary itself


def group_raising(error, name="train"):
    group = KresnetGroup()

    @group.command(name)
    def command():
        raise error

    return group


@pytest.mark.parametrize(
    "error, command, expected",
    [
        (OSError(errno.ENOSPC, "No space left on device", "/data/run/model.keras"), "train",
         ["No space left on device writing /data/run/model.keras", "--run-dir", "same command resumes"]),
        (OSError(errno.EFBIG, "File too large", "/data/run/history.csv"), "train",
         ["File too large", "/data/run/history.csv", "ulimit -f"]),
        (OSError(errno.EROFS, "Read-only file system", "/ro/export/tflite_float32"), "export",
         ["Cannot write /ro/export/tflite_float32: read-only file system", "-o/--output"]),
        (PermissionError(errno.EACCES, "Permission denied", "/ro/run/metrics.json"), "evaluate",
         ["Cannot write /ro/run/metrics.json: permission denied", "--no-write"]),
        (FileNotFoundError("No trained run found under saved_models/ (a directory with model.keras)."), "export",
         ["No trained run found under saved_models/"]),
        (OSError("Cannot parse file b'm/saved_model.pb': Wire format was corrupt."), "predict",
         ["Cannot parse file m/saved_model.pb"]),
        (ValueError("data.batch_size must be >= 1. Received: data.batch_size=0"), "train", ["data.batch_size=0"]),
        (zipfile.BadZipFile("File is not a zip file"), "predict", ["truncated or corrupt", "not a zip file"]),
    ],
)
def test_ordinary_errors_become_one_line_and_exit_1(error, command, expected):
    result = CliRunner().invoke(group_raising(error, command), [command])
    one_line_error(result, *expected)


def test_a_bug_keeps_its_traceback():
    result = CliRunner().invoke(group_raising(TypeError("a bug")), ["train"])
    assert isinstance(result.exception, TypeError)
    assert describe_error(TypeError("a bug")) is None


def test_tracebacks_on_request(monkeypatch):
    monkeypatch.setenv("KRESNET_TRACEBACK", "1")
    result = CliRunner().invoke(group_raising(OSError(errno.ENOSPC, "No space left on device", "x")), ["train"])
    assert isinstance(result.exception, OSError)


def test_ctrl_c_in_any_command_exits_130():
    result = CliRunner().invoke(group_raising(KeyboardInterrupt(), "export"), ["export"])
    assert result.exit_code == EXIT_INTERRUPTED and "Interrupted." in result.output


def test_click_errors_pass_through():
    result = CliRunner().invoke(group_raising(click.UsageError("bad usage")), ["train"])
    assert result.exit_code == 2 and "bad usage" in result.output


def test_the_file_size_signal_is_ignored_so_writes_fail_with_an_error():
    previous = signal.getsignal(signal.SIGXFSZ)
    try:
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        ignore_file_size_signal()
        assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        CliRunner().invoke(main, ["--version"])  # the group's main() does it
        assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGXFSZ, previous)


# ------------------------------------------------------------------ real commands, broken inputs


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return tiny_run_fixture(tmp_path_factory)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("boundary") / "images", train_per_class=2, test_per_class=1)


def run_copy(tiny_run, folder):
    """A copy of the tiny run (model.keras, labels.txt, preprocessing.json) to break."""
    shutil.copytree(tiny_run.run_dir, folder, ignore=shutil.ignore_patterns("export", "calibrated", "*.png", "*.csv"))
    return folder


def test_weights_that_are_not_hdf5(tmp_path, folder):
    junk = tmp_path / "junk.weights.h5"
    junk.write_bytes(os.urandom(3000))
    result = CliRunner().invoke(main, ["train", "--data-dir", str(folder), "--run-dir", str(tmp_path / "run"),
                                       "--weights", str(junk), *TINY])
    one_line_error(result, str(junk), "not a valid HDF5 weights file")


def test_safetensors_that_are_not(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(os.urandom(3000))
    result = CliRunner().invoke(main, ["convert-weights", "resnet18", str(junk), "-o", str(tmp_path / "o.weights.h5")])
    one_line_error(result, str(junk), "not a valid safetensors file")
    assert not (tmp_path / "o.weights.h5").exists()


def test_corrupt_saved_model_pb(tmp_path, tiny_run):
    saved = tmp_path / "savedmodel"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(os.urandom(3000))
    shutil.copy(tiny_run.run_dir / "labels.txt", saved / "labels.txt")
    result = CliRunner().invoke(main, ["predict", str(saved), str(tiny_run.files[0])])
    one_line_error(result, str(saved / "saved_model.pb"))


def test_keras_file_naming_a_function_that_does_not_exist(tmp_path, tiny_run):
    source = zipfile.ZipFile(tiny_run.run_dir / "model.keras")
    config = source.read("config.json").decode()
    assert '"activation": "relu"' in config
    missing = {"module": "keras.activations", "class_name": "function", "config": "no_such_function",
               "registered_name": "no_such_function"}
    config = config.replace('"activation": "relu"', f'"activation": {json.dumps(missing)}', 1)
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(bad, "w") as out:
        for item in source.infolist():
            out.writestr(item, config.encode() if item.filename == "config.json" else source.read(item.filename))
    result = CliRunner().invoke(main, ["predict", str(bad), str(tiny_run.files[0])])
    one_line_error(result, str(bad), "no_such_function")


@pytest.mark.parametrize("command", ["predict", "evaluate", "export"])
def test_truncated_model_keras_is_not_a_missing_file(tmp_path, tiny_run, command):
    run = run_copy(tiny_run, tmp_path / "run")
    data = (run / "model.keras").read_bytes()
    (run / "model.keras").write_bytes(data[: len(data) // 3])
    args = {"predict": ["predict", str(run), str(tiny_run.files[0])],
            "evaluate": ["evaluate", str(run), "--data-dir", str(tiny_run.heldout)],
            "export": ["export", str(run), "--format", "keras", "--images", str(tiny_run.heldout)]}[command]
    line = one_line_error(CliRunner().invoke(main, args), str(run / "model.keras"), "not a valid .keras file")
    assert "not found" not in line.lower()


@pytest.mark.parametrize("command", ["predict", "evaluate", "export"])
def test_labels_txt_with_the_wrong_number_of_lines(tmp_path, tiny_run, command):
    run = run_copy(tiny_run, tmp_path / "run")
    (run / "labels.txt").write_text("red\ngreen\n")
    args = {"predict": ["predict", str(run), str(tiny_run.files[0])],
            "evaluate": ["evaluate", str(run), "--data-dir", str(tiny_run.heldout)],
            "export": ["export", str(run), "--format", "keras", "--images", str(tiny_run.heldout)]}[command]
    one_line_error(CliRunner().invoke(main, args), str(run / "labels.txt"), "lists 2 classes", "outputs 3")
    assert not (run / "export").exists()


def test_run_dir_that_is_a_file(tmp_path, folder):
    afile = tmp_path / "afile"
    afile.write_text("not a run\n")
    result = CliRunner().invoke(main, ["train", "--data-dir", str(folder), "--run-dir", str(afile), *TINY])
    one_line_error(result, str(afile), "is an existing file, not a directory")
    assert afile.read_text() == "not a run\n"


@pytest.mark.parametrize(
    "args, key",
    [
        (["--learning-rate", "inf"], "optimizer.learning_rate"),
        (["--learning-rate", "nan"], "optimizer.learning_rate"),
        (["--set", "optimizer.weight_decay=.nan"], "optimizer.weight_decay"),
        (["--set", "schedule.warmup_epochs=1e999"], "schedule.warmup_epochs"),
    ],
)
def test_non_finite_numbers_are_refused(tmp_path, args, key):
    result = CliRunner().invoke(main, ["train", "--run-dir", str(tmp_path / "run"), "--print-config", *args])
    one_line_error(result, key, "finite number")
    assert not (tmp_path / "run").exists()


def test_non_finite_numbers_in_a_yaml_file_are_refused(tmp_path):
    recipe = tmp_path / "inf.yaml"
    recipe.write_text("optimizer:\n  learning_rate: .inf\n")
    result = CliRunner().invoke(main, ["train", "--config", str(recipe), "--print-config"])
    one_line_error(result, str(recipe), "optimizer.learning_rate", "finite number")


def test_interrupted_train_says_how_to_resume_and_exits_130(tmp_path, folder, monkeypatch):
    import keras_resnet.train.trainer as trainer

    def interrupted(config, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "train", interrupted)
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--data-dir", str(folder), "--run-dir", str(run), *TINY])
    assert result.exit_code == EXIT_INTERRUPTED, result.output
    assert f"Interrupted. Run the same command with --run-dir {run} to resume" in result.output
