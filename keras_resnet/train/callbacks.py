"""Training callbacks: atomic checkpoints, crash-safe backups, NaN guard, history CSV.

All files are written through `keras_resnet.runs` (temporary file + rename), so a
run killed at any moment (Ctrl-C, SIGTERM, ``kill -9``) leaves every file either
old or new, never half written. Given one `keras_resnet.runs.StagedFiles`, the
epoch-end files of `HistoryCSV`, `ModelCheckpoints` and `AtomicBackupAndRestore`
(which comes last and commits them) replace their old versions together, only once
all of them are written: a write failing for a full disk or a file-size limit leaves
the previous epoch's checkpoint, history and backup, which agree with each other.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import sys
import time
from pathlib import Path

import keras

from keras_resnet import compat, runs


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; training stopped, the last good checkpoint kept."""


class AtomicBackupAndRestore(keras.callbacks.Callback):
    """Like ``keras.callbacks.BackupAndRestore`` (per epoch), with backups that survive ``kill -9``.

    Keras' callback overwrites ``latest.weights.h5`` and then the epoch counter in
    place; a kill between (or during) the two leaves a torn state. Here each backup
    is written to a new ``epoch-N.weights.h5`` (temporary file + rename), then
    ``training_metadata.json`` is atomically switched to name it, then the older file
    is removed: the metadata always names a complete file holding exactly that epoch.

    At the start of ``fit`` the backup (if any) is loaded and ``fit`` continues after
    its epoch; without a backup ``fit`` starts at its own ``initial_epoch``, also when
    the same model was resumed by another backup before (an earlier phase).

    The weights file is built in memory (`keras_resnet.compat.weights_h5_bytes`) and
    written by Python: h5py writing straight to a full disk crashes the process.

    Args:
        backup_dir: Directory of the backup (inside the run directory).
        delete_checkpoint: Remove the backup when ``fit`` completes.
        staged: The epoch's `keras_resnet.runs.StagedFiles` shared with the other
            callbacks; this callback adds its files and commits them all (None: its
            own files only).
    """

    def __init__(self, backup_dir, delete_checkpoint: bool = True, staged: runs.StagedFiles | None = None):
        super().__init__()
        self.backup_dir = Path(backup_dir)
        self.delete_checkpoint = delete_checkpoint
        self.staged = staged
        self._metadata = self.backup_dir / "training_metadata.json"

    def _read_metadata(self) -> dict | None:
        if not self._metadata.is_file():
            return None
        return json.loads(self._metadata.read_text(encoding="utf-8"))

    @property
    def restored_epoch(self) -> int:
        """Epochs completed according to the backup (0 when there is none)."""
        metadata = self._read_metadata()
        return int(metadata["epoch"]) if metadata else 0

    def on_train_begin(self, logs=None):
        metadata = self._read_metadata()
        if metadata:
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            self.model.load_weights(self.backup_dir / metadata["weights"])
        compat.set_fit_initial_epoch(self.model, int(metadata["epoch"]) if metadata else None)

    def on_epoch_end(self, epoch, logs=None):
        completed = epoch + 1
        previous = self._read_metadata()
        name = f"epoch-{completed}.weights.h5"
        staged = self.staged if self.staged is not None else runs.StagedFiles()
        data = compat.weights_h5_bytes(self.model)
        with staged.stage(self.backup_dir / name, suffix=".weights.h5") as tmp:
            tmp.write_bytes(data)
        with staged.stage(self._metadata) as tmp:  # staged last: the epoch counts as done once it is renamed
            tmp.write_text(json.dumps({"epoch": completed, "weights": name}, indent=2) + "\n", encoding="utf-8")
        staged.commit()
        if previous and previous["weights"] != name:
            (self.backup_dir / previous["weights"]).unlink(missing_ok=True)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            shutil.rmtree(self.backup_dir, ignore_errors=True)


class ModelCheckpoints(keras.callbacks.Callback):
    """Save the last model (``model.keras``) every epoch and the best one (``best.keras``).

    Saves are atomic (`keras_resnet.runs.atomic_save_model`) and hold the model only
    (no optimizer state, no custom objects: any ``keras.models.load_model`` reads
    them); the training state lives in the backup. On resume, the best value so far
    is read back from ``history.csv``.

    Args:
        run_dir: The run directory.
        monitor: ``"val_accuracy"`` (higher is better) or ``"val_loss"``; falls back
            to the training metric when there is no validation data.
        history_file: The CSV with earlier epochs (for the best value on resume).
        staged: The epoch's `keras_resnet.runs.StagedFiles` (None: each file is
            replaced as soon as it is written).
    """

    def __init__(self, run_dir, monitor: str = "val_accuracy", history_file=None,
                 staged: runs.StagedFiles | None = None):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.monitor = monitor
        self.history_file = Path(history_file) if history_file else self.run_dir / runs.HISTORY_FILE
        self.staged = staged
        self.best = None

    def _better(self, value, best) -> bool:
        return best is None or (value < best if self.monitor.endswith("loss") else value > best)

    def _metric(self, logs: dict):
        name = effective_monitor(self.monitor, has_validation=self.monitor in logs)
        return float(logs[name]) if name in logs else None

    def on_train_begin(self, logs=None):
        self.best = None
        for row in read_history(self.history_file):
            value = self._metric({k: float(v) for k, v in row.items() if v not in ("", None)})
            if value is not None and self._better(value, self.best):
                self.best = value

    def _save(self, view, path: Path) -> Path:
        """Write ``view`` for ``path``; returns the file written (a staged temporary until commit)."""
        if self.staged is None:
            return runs.atomic_save_model(view, path)
        with self.staged.stage(path) as tmp:
            view.save(tmp)
        return tmp

    def _copy(self, source: Path, path: Path) -> None:
        with (runs.atomic_path(path) if self.staged is None else self.staged.stage(path)) as tmp:
            shutil.copyfile(source, tmp)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        written = self._save(inference_view(self.model), self.run_dir / runs.MODEL_FILE)
        value = self._metric(logs)
        if value is not None and not math.isnan(value) and self._better(value, self.best):
            # The same model as model.keras: copy its bytes rather than serialize it twice
            # (a .keras save of ResNet-20 takes about 0.2 s, a copy a few milliseconds).
            self._copy(written, self.run_dir / runs.BEST_MODEL_FILE)
            self.best = value


def effective_monitor(monitor: str, has_validation: bool) -> str:
    """The metric best-model selection and early stopping follow: ``monitor`` itself, or
    its training counterpart (``val_accuracy`` -> ``accuracy``) when the run has no
    validation data (``data.validation_fraction: 0``).

    Example:
        >>> effective_monitor("val_loss", has_validation=False)
        'loss'
    """
    return monitor if has_validation else monitor.removeprefix("val_")


def fit_verbosity(progress: str, stream=None) -> int:
    """``verbose`` for ``Model.fit`` from ``training.progress``: 1 (bar), 2 (a line per epoch) or 0.

    ``"bar"`` becomes one line per epoch when ``stream`` (default ``sys.stdout``) is not
    a terminal and no notebook kernel is running: Keras redraws its bar with
    ``\\r``/``\\b`` per step (it takes any POSIX system for a dynamic display), which
    in a redirected log is tens of kilobytes per epoch.

    Args:
        progress: ``"bar"``, ``"epoch"`` or ``"none"`` (`keras_resnet.config.Progress`).
        stream: Where Keras prints (``sys.stdout``).

    Example:
        >>> fit_verbosity("bar", io.StringIO())
        2
    """
    if progress == "bar":
        stream = sys.stdout if stream is None else stream
        interactive = getattr(stream, "isatty", lambda: False)() or "ipykernel" in sys.modules
        return 1 if interactive else 2
    return {"epoch": 2, "none": 0}[progress]


def inference_view(model):
    """An uncompiled functional model sharing ``model``'s layers and weights (for saving)."""
    return keras.Model(model.inputs, model.outputs, name=model.name)


class StopOnNaN(keras.callbacks.Callback):
    """Like ``keras.callbacks.TerminateOnNaN``, but raises `TrainingDivergedError`.

    Raising (instead of setting ``stop_training``) keeps the epoch-end callbacks from
    saving the diverged weights: ``model.keras``, ``best.keras`` and the backup keep
    the last good epoch.

    Args:
        run_dir: Named in the error message (where the last good model is, when
            there is one).
    """

    def __init__(self, run_dir=None):
        super().__init__()
        self.run_dir = run_dir
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if math.isnan(loss) or math.isinf(loss):
            checkpoint = Path(self.run_dir) / runs.MODEL_FILE if self.run_dir else None
            if self._epoch > 0 and checkpoint is not None and checkpoint.is_file():
                kept = f"the last good checkpoint (end of epoch {self._epoch}) is kept at {checkpoint}"
            else:
                kept = "no epoch completed, so no checkpoint was written"
            raise TrainingDivergedError(
                f"Training diverged: loss={loss} at epoch {self._epoch + 1}, batch {batch + 1}. "
                f"Stopped; {kept}. "
                "Lower optimizer.learning_rate, lengthen schedule.warmup_epochs or set optimizer.clipnorm, "
                "then train again in a new run directory."
            )


class LearningRateLogger(keras.callbacks.Callback):
    """Add the optimizer's current learning rate to the epoch logs as ``learning_rate``."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.model.optimizer is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


EPOCH_SECONDS = "epoch_seconds"  # history.csv column: wall time of the epoch


def read_history(path) -> list[dict]:
    """Rows of a ``history.csv`` as dicts of strings ([] when the file is missing)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def history_seconds(rows: list[dict]) -> float | None:
    """The summed ``epoch_seconds`` of ``history.csv`` rows: a run's training time across resumes.

    Args:
        rows: ``history.csv`` rows (`read_history`).

    Returns:
        Seconds, or None when there are no rows or a row lacks the column (a run
        directory written before `HistoryCSV` recorded it).
    """
    try:
        return sum(float(r[EPOCH_SECONDS]) for r in rows) if rows else None
    except (KeyError, TypeError, ValueError):
        return None


class HistoryCSV(keras.callbacks.Callback):
    """``history.csv``: one row per epoch, ``epoch`` (1-based) first, appended across resumes.

    Unlike ``keras.callbacks.CSVLogger`` the file is rewritten atomically each epoch
    and rows of epochs being re-run after a resume are replaced, so every epoch
    appears exactly once. Each row also holds ``epoch_seconds``, the wall time of
    the epoch (training and validation), so a run's training time can be summed
    across resumes (`history_seconds`).

    Args:
        path: The CSV file.
        staged: The epoch's `keras_resnet.runs.StagedFiles` (None: the file is
            replaced as soon as it is written).
    """

    def __init__(self, path, staged: runs.StagedFiles | None = None):
        super().__init__()
        self.path = Path(path)
        self.staged = staged
        self._epoch_started = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        rows = [r for r in read_history(self.path) if int(r["epoch"]) < epoch + 1]
        row = {"epoch": epoch + 1}
        row.update({k: _plain(v) for k, v in (logs or {}).items()})
        if self._epoch_started is not None:
            row[EPOCH_SECONDS] = round(time.perf_counter() - self._epoch_started, 3)
            self._epoch_started = None
        rows.append(row)
        fields = ["epoch"]
        for r in rows:
            fields += [k for k in r if k not in fields]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=fields, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        if self.staged is None:
            runs.atomic_write_text(self.path, out.getvalue())
        else:
            with self.staged.stage(self.path) as tmp:
                tmp.write_text(out.getvalue(), encoding="utf-8")


def _plain(value):
    try:
        return float(keras.ops.convert_to_numpy(value))
    except (TypeError, ValueError):
        return value
