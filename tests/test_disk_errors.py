"""Full disks, file-size limits, read-only places and killed exports: a clear error and nothing lost.

How the conditions are made:

* file-size limit: ``resource.setrlimit(RLIMIT_FSIZE)`` in a subprocess running the CLI
  (the CLI ignores SIGXFSZ, so a write past the limit raises ``OSError(EFBIG)``);
* full disk: a small tmpfs (``mount -t tmpfs``, root only; skipped where mounting is
  not permitted), and in process an ``OSError(ENOSPC)`` injected into one write;
* read-only: a read-only bind mount (``mount --bind`` + ``remount,ro``) where
  permitted, else ``chmod 0o555`` when not root (root writes through a chmod), else
  skipped;
* ``kill -9`` during ``kresnet export --format tflite`` in a subprocess (slow).
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from synthetic import make_datasets, tiny_config, write_image_folder
from tiny_run import tiny_run_fixture

from keras_resnet import runs
from keras_resnet.cli import main

REPO = Path(__file__).resolve().parents[1]
HELPERS = REPO / "tests" / "helpers"
TINY = ["--model", "resnet20", "--batch-size", "4", "--set", "model.width_multiplier=0.25",
        "--set", "training.progress=none", "--set", "training.tensorboard=false",
        "--set", "data.validation_fraction=0.25", "--set", "schedule.warmup_epochs=0",
        "--set", "training.evaluate_split=none"]
QUIET = lambda *_: None  # noqa: E731


def one_line_error(output: str, returncode: int, *expected) -> str:
    assert returncode == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output[-3000:]
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


def temporaries(folder: Path) -> list[Path]:
    return [p for p in Path(folder).rglob("*") if ".tmp" in p.name]


def cli(args, limit_bytes=None, env=None, timeout=600):
    """Run the CLI in a subprocess, under a file-size limit when given."""
    limit = "" if limit_bytes is None else (
        f"import resource; resource.setrlimit(resource.RLIMIT_FSIZE, ({limit_bytes}, {limit_bytes}))\n")
    code = limit + "from keras_resnet.cli import main\nmain()\n"
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "", "PYTHONDONTWRITEBYTECODE": "1",
           **(env or {})}
    result = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                            timeout=timeout)
    return result.returncode, result.stdout + result.stderr


def history_epochs(run: Path) -> list[int]:
    from keras_resnet.train.callbacks import read_history

    return [int(r["epoch"]) for r in read_history(run / runs.HISTORY_FILE)]


def backup_epoch(run: Path) -> int:
    metadata = run / "backup" / "train" / "training_metadata.json"
    return json.loads(metadata.read_text())["epoch"] if metadata.is_file() else 0


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("disk") / "images", train_per_class=4, test_per_class=1)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return tiny_run_fixture(tmp_path_factory)


def run_copy(tiny_run, folder: Path) -> Path:
    shutil.copytree(tiny_run.run_dir, folder, ignore=shutil.ignore_patterns("export", "calibrated", "*.png", "*.csv"))
    return folder


def with_test_split(tiny_run, folder: Path) -> Path:
    """``folder/test/<class>/*.jpg``: the tiny run's held-out images as a test split."""
    shutil.copytree(tiny_run.heldout, folder / "test")
    shutil.copytree(tiny_run.heldout, folder / "train")  # a folder dataset needs its train split to be listed
    return folder


# ------------------------------------------------------------------ mounts (root only)


def _mount(*args) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def small_tmpfs(tmp_path):
    """``make(size)`` -> a mounted tmpfs of that size (e.g. "1600k"); skips where mounting is not permitted."""
    mounted = []

    def make(size: str, name: str = "full") -> Path:
        where = tmp_path / name
        where.mkdir()
        if not _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)):
            pytest.skip("mounting a tmpfs is not permitted here")
        mounted.append(where)
        return where

    yield make
    for where in mounted:
        _umount(where)


@pytest.fixture
def read_only(tmp_path):
    """``make(source)`` -> a read-only view of the folder ``source`` (a read-only bind mount where permitted,
    else chmod 0o555 when not root; skipped otherwise)."""
    mounted, chmodded = [], []

    def make(source: Path) -> Path:
        view = tmp_path / f"ro-{source.name}"
        view.mkdir()
        if _mount("--bind", str(source), str(view)):
            mounted.append(view)
            if _mount("-o", "remount,bind,ro", str(view)):
                return view
            pytest.skip("remounting a bind mount read-only is not permitted here")
        if os.geteuid() == 0:
            pytest.skip("root writes through chmod 0o555 and mounting is not permitted")
        view.rmdir()
        for path in [source, *source.rglob("*")]:
            if path.is_dir():
                path.chmod(0o555)
                chmodded.append(path)
        return source

    yield make
    for view in mounted:
        _umount(view)
    for path in chmodded:
        path.chmod(0o755)


# ------------------------------------------------------------------ runs: staged writes, stale temporaries


def test_staged_files_replace_their_targets_together_or_not_at_all(tmp_path):
    (tmp_path / "a.txt").write_text("old a")
    (tmp_path / "b.txt").write_text("old b")
    staged = runs.StagedFiles()
    with staged.stage(tmp_path / "a.txt") as tmp:
        tmp.write_text("new a")
    with pytest.raises(OSError) as caught:
        with staged.stage(tmp_path / "b.txt") as tmp:
            tmp.write_text("half")
            raise OSError(errno.ENOSPC, "No space left on device")  # as a write() raises it: no file name
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "b.txt")
    assert staged.pending == []
    assert (tmp_path / "a.txt").read_text() == "old a" and (tmp_path / "b.txt").read_text() == "old b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]
    with staged.stage(tmp_path / "a.txt") as tmp:
        tmp.write_text("new a")
    with staged.stage(tmp_path / "b.txt") as tmp:
        tmp.write_text("new b")
    staged.commit()
    assert (tmp_path / "a.txt").read_text() == "new a" and (tmp_path / "b.txt").read_text() == "new b"


def test_disk_errors_of_other_libraries_become_an_oserror_naming_the_target(tmp_path):
    class ResourceExhaustedError(Exception):  # as TensorFlow reports a full disk
        pass

    ResourceExhaustedError.__module__ = "tensorflow.python.framework.errors_impl"
    with pytest.raises(OSError) as caught:
        with runs.atomic_path(tmp_path / "model.keras"):
            raise ResourceExhaustedError("/x/.model.tmp/saved_model.pb.tmp123; No space left on device")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "model.keras")
    with pytest.raises(ValueError, match="permission denied"):  # not a disk error: left alone
        with runs.atomic_path(tmp_path / "model.keras"):
            raise ValueError("permission denied")
    assert list(tmp_path.iterdir()) == []


def test_a_file_in_the_way_of_a_folder_is_named(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError) as caught:
        runs.check_writable_folder(tmp_path / "afile" / "run")
    assert caught.value.filename == str(tmp_path / "afile")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_temporaries_of_dead_writers_are_removed(tmp_path):
    host = runs.owner_tag().split("-")[0]
    dead, alive = _dead_pid(), os.getppid()
    names = {
        f".model.{host}-{dead}.abc123.tmp.tflite": True,  # this machine, writer gone
        f".model.{host}-{alive}.abc123.tmp.tflite": False,  # this machine, writer running
        f".model.{runs.owner_tag()}.abc123.tmp.tflite": False,  # ourselves
        f".model.kr000000-{dead}.abc123.tmp.tflite": False,  # another machine, recent
        ".model.old9xyz.tmp.tflite": False,  # no owner (an older kresnet), recent
        "model.tflite": False,  # not a temporary
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / f".savedmodel.{host}-{dead}.q1w2e3.tmp").mkdir()
    removed = runs.remove_stale_temporaries(tmp_path, (".model.*.tmp.tflite", ".savedmodel.*.tmp"))
    assert sorted(p.name for p in removed) == sorted([n for n, stale in names.items() if stale]
                                                     + [f".savedmodel.{host}-{dead}.q1w2e3.tmp"])
    old = time.time() - runs.STALE_AGE_S - 60
    for name in (f".model.kr000000-{dead}.abc123.tmp.tflite", ".model.old9xyz.tmp.tflite"):
        os.utime(tmp_path / name, (old, old))
    assert len(runs.remove_stale_temporaries(tmp_path, (".model.*.tmp.tflite",))) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["model.tflite", f".model.{host}-{alive}.abc123.tmp.tflite", f".model.{runs.owner_tag()}.abc123.tmp.tflite"])


# ------------------------------------------------------------------ 3: a full disk during train


@pytest.mark.slow  # two training runs (about 30 s on 2 cores): CI's slow set
def test_a_write_failing_at_epoch_2_keeps_epoch_1_everywhere_and_the_run_resumes(tmp_path, monkeypatch):
    """ENOSPC while writing epoch 2's backup: model.keras, best.keras, history.csv and the backup all stay
    at epoch 1 (no history row without its checkpoint), no temporary is left, and the run resumes."""
    import keras

    from keras_resnet.train.trainer import train

    run = tmp_path / "run"
    after_epoch_1 = {}

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                after_epoch_1.update({name: (run / name).read_bytes() for name in (runs.MODEL_FILE, runs.HISTORY_FILE)})

    real_write_bytes = Path.write_bytes

    def write_bytes(self, data):
        if self.name.startswith(".epoch-2."):
            real_write_bytes(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    with pytest.raises(OSError) as caught:
        train(tiny_config(run, epochs=3), datasets=make_datasets(), callbacks=[Snapshot()], log=QUIET)
    assert caught.value.errno == errno.ENOSPC and "epoch-2.weights.h5" in caught.value.filename
    assert history_epochs(run) == [1] and backup_epoch(run) == 1
    assert (run / runs.MODEL_FILE).read_bytes() == after_epoch_1[runs.MODEL_FILE]
    assert (run / runs.HISTORY_FILE).read_bytes() == after_epoch_1[runs.HISTORY_FILE]
    assert temporaries(run) == []
    monkeypatch.undo()
    lines = []
    train(tiny_config(run, epochs=3), datasets=make_datasets(), log=lines.append)
    assert any("resuming after epoch 1 of 3" in line for line in lines), lines
    assert history_epochs(run) == [1, 2, 3] and not (run / "backup").exists()


BACKUP_ON_FULL_DISK = """
import errno, sys
import keras
from keras_resnet import build_resnet
from keras_resnet.models.weights import save_weights
from keras_resnet.train.callbacks import AtomicBackupAndRestore

model = build_resnet("resnet20", num_classes=3, width_multiplier=0.25)
model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "categorical_crossentropy")
model.optimizer.build(model.trainable_variables)
backup = AtomicBackupAndRestore(sys.argv[1] + "/backup")
backup.set_model(model)
for write in (lambda: backup.on_epoch_end(0), lambda: save_weights(model, sys.argv[1] + "/w.weights.h5")):
    try:
        write()
    except OSError as error:
        print("ENOSPC" if error.errno == errno.ENOSPC else error, error.filename, flush=True)
"""


@pytest.mark.slow  # a fresh Python + TensorFlow process per CLI call: runs in CI's slow set
def test_weights_files_on_a_full_disk_raise_instead_of_crashing(tmp_path, small_tmpfs):
    """h5py writing straight to a full disk: tracebacks at exit, then a segmentation fault (exit 139)."""
    disk = small_tmpfs("64k")
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, "-c", BACKUP_ON_FULL_DISK, str(disk)], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, (result.returncode, result.stderr[-3000:])
    lines = [line for line in result.stdout.splitlines() if line.startswith("ENOSPC")]
    assert len(lines) == 2 and "epoch-1.weights.h5" in lines[0] and "w.weights.h5" in lines[1], result.stdout
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert list(disk.rglob("*.h5")) == []


@pytest.mark.slow  # a fresh Python + TensorFlow process per CLI call: runs in CI's slow set
def test_file_size_limit_during_train_is_one_line_and_the_same_command_resumes(tmp_path, folder):
    """ulimit -f below the size of model.keras: before, a traceback and a history.csv listing epoch 1 with no
    model.keras (or a process killed by SIGXFSZ)."""
    run = tmp_path / "run"
    args = ["train", "--data-dir", str(folder), "--epochs", "2", "--run-dir", str(run), *TINY]
    code, out = cli(args, limit_bytes=100_000)
    one_line_error(out, code, "File too large", str(run / runs.MODEL_FILE), "ulimit -f", "same command resumes")
    assert history_epochs(run) == [] and not (run / runs.MODEL_FILE).exists() and temporaries(run) == []
    code, out = cli(args)
    assert code == 0, out[-3000:]
    assert history_epochs(run) == [1, 2] and (run / runs.MODEL_FILE).is_file()


@pytest.mark.slow
def test_full_tmpfs_during_train_is_one_line_no_crash_and_resumes_after_space_is_made(tmp_path, folder, small_tmpfs):
    """A 1.6 MB tmpfs holds one epoch's files (~1 MB) but not a second set: before, h5py tracebacks and a
    segmentation fault (exit 139)."""
    disk = small_tmpfs("1600k")
    run = disk / "run"
    args = ["train", "--data-dir", str(folder), "--epochs", "3", "--run-dir", str(run), *TINY]
    code, out = cli(args)
    one_line_error(out, code, "No space left on device", str(run), "same command resumes")
    done = backup_epoch(run)
    assert 1 <= done < 3, out[-3000:]
    assert history_epochs(run) == list(range(1, done + 1)) and temporaries(run) == []
    import keras

    keras.models.load_model(run / runs.MODEL_FILE, compile=False)
    assert _mount("-o", "remount,size=30m", str(disk))
    code, out = cli(args)
    assert code == 0, out[-3000:]
    assert f"resuming after epoch {done} of 3" in out
    assert history_epochs(run) == [1, 2, 3] and not (run / "backup").exists()


# ------------------------------------------------------------------ 4: a full disk or size limit on export


@pytest.mark.slow  # a fresh Python + TensorFlow process per CLI call: runs in CI's slow set
def test_file_size_limit_on_export_is_one_line_and_leaves_no_folder(tmp_path, tiny_run):
    """A limit the run's files fit under (~270 KB unpacked) but the SavedModel's graph (~440 KB) does not."""
    import keras

    run = run_copy(tiny_run, tmp_path / "run")
    keras.saving.load_model(run / runs.MODEL_FILE, compile=False).save(run / runs.MODEL_FILE)  # no optimizer state
    output = tmp_path / "exports" / "savedmodel"
    code, out = cli(["export", str(run), "--format", "savedmodel", "-o", str(output),
                     "--images", str(tiny_run.heldout), "--parity-samples", "4"], limit_bytes=350_000)
    one_line_error(out, code, "File too large", str(output), "ulimit -f")
    assert not (tmp_path / "exports").exists()


def test_full_disk_on_savedmodel_export_is_one_line_and_leaves_no_folder(tmp_path, tiny_run, small_tmpfs):
    disk = small_tmpfs("300k")
    output = disk / "exports" / "savedmodel"
    result = CliRunner().invoke(main, ["export", str(tiny_run.run_dir), "--format", "savedmodel", "-o", str(output),
                                       "--images", str(tiny_run.heldout), "--parity-samples", "4"])
    one_line_error(result.output, result.exit_code, "No space left on device", str(output))
    assert list(disk.iterdir()) == []


# ------------------------------------------------------------------ 5: read-only places


def test_train_into_a_read_only_run_dir(tmp_path, folder, read_only):
    (tmp_path / "place").mkdir()
    view = read_only(tmp_path / "place")
    result = CliRunner().invoke(main, ["train", "--data-dir", str(folder), "--epochs", "1",
                                       "--run-dir", str(view / "run"), *TINY])
    one_line_error(result.output, result.exit_code, f"Cannot write {view / 'run'}", "--run-dir")


def test_train_in_a_read_only_working_folder(tmp_path, folder, read_only, monkeypatch):
    """The default run directory is saved_models/ in the working folder: before, two chained tracebacks."""
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(read_only(tmp_path / "work"))
    result = CliRunner().invoke(main, ["train", "--data-dir", str(folder), "--epochs", "1", *TINY])
    one_line_error(result.output, result.exit_code, "Cannot write saved_models", "--run-dir")


def test_export_into_a_read_only_folder(tmp_path, tiny_run, read_only):
    (tmp_path / "place").mkdir()
    view = read_only(tmp_path / "place")
    result = CliRunner().invoke(main, ["export", str(tiny_run.run_dir), "--format", "tflite",
                                       "-o", str(view / "model.tflite"), "--images", str(tiny_run.heldout)])
    one_line_error(result.output, result.exit_code, f"Cannot write {view}", "-o/--output")


def test_evaluate_a_run_on_a_read_only_mount_prints_the_metrics_then_says_what_was_not_written(
        tmp_path, tiny_run, read_only):
    copy = run_copy(tiny_run, tmp_path / "run")
    (copy / runs.LABELS_FILE).write_text("blue\ngreen\nred\n")  # the folder's (sorted) class order; only the files matter
    run = read_only(copy)
    data = with_test_split(tiny_run, tmp_path / "data")
    result = CliRunner().invoke(main, ["evaluate", str(run), "--data-dir", str(data)])
    line = one_line_error(result.output, result.exit_code, f"Cannot write {run}", "--no-write")
    report = result.output[: result.output.index(line)]
    assert "top-1" in report and "precision" in report  # the metrics came first
    result = CliRunner().invoke(main, ["evaluate", str(run), "--data-dir", str(data), "--no-write"])
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------ 16: kill -9 during a TFLite export


KILLED_EXPORT = """
import tensorflow as tf
real = tf.lite.TFLiteConverter.from_saved_model

def slow(saved_model_dir, *args, **kwargs):  # the conversion folder exists: say so, then wait for kill -9
    print("CONVERTING", saved_model_dir, flush=True)
    import time
    time.sleep(600)

tf.lite.TFLiteConverter.from_saved_model = slow
from keras_resnet.cli import main
main()
"""


@pytest.mark.slow  # a fresh Python + TensorFlow process per CLI call: runs in CI's slow set
def test_kill_9_during_tflite_export_leaves_temporaries_the_next_export_removes(tmp_path, tiny_run):
    temp = tmp_path / "tmp"
    temp.mkdir()
    output = tmp_path / "out" / "model.tflite"
    args = ["export", str(tiny_run.run_dir), "--format", "tflite", "-o", str(output), "--images",
            str(tiny_run.heldout), "--parity-samples", "4"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "", "TMPDIR": str(temp)}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_EXPORT), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    while line and "CONVERTING" not in line:
        line = proc.stdout.readline()
    assert "CONVERTING" in line, proc.communicate()[0][-3000:]
    # a hidden temporary artifact beside the output, as a kill during the parity gate leaves it
    runs.temporary_name(output, ".tflite").write_bytes(b"half")  # named by this (live) test process
    stale_artifact = output.parent / f".model.{runs.owner_tag().split('-')[0]}-{proc.pid}.x1y2z3.tmp.tflite"
    stale_artifact.write_bytes(b"half a model")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = [p.name for p in temp.iterdir() if p.name.startswith("kresnet-tflite-")]
    assert left, list(temp.iterdir())
    code, out = cli(args, env={"TMPDIR": str(temp)})
    assert code == 0, out[-3000:]
    assert not [p for p in temp.iterdir() if p.name.startswith("kresnet-tflite-")]
    assert not stale_artifact.exists()
    assert len([p for p in output.parent.iterdir() if ".tmp" in p.name]) == 1  # the live process's is kept
    assert output.is_file()
