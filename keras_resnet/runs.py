"""Run directories and atomic file writes, shared by training, evaluation and export.

A run directory holds ``model.keras`` (the model, taking raw RGB pixels and
normalising them in its first layer), ``config.yaml``, ``labels.txt`` (one class name
per line, index order), ``preprocessing.json`` (the run's record of that
normalisation, see `keras_resnet.preprocessing`), ``dataset.json``,
``history.csv``, ``metrics.json`` and PNG plots. A final ``model.keras`` also carries
its labels and preprocessing spec inside (``kresnet.json`` in the zip), so a copy
taken out of its run directory still predicts and exports on its own.

`Run` loads all of it once; evaluation, export, prediction and fine-tuning from a
run take a `Run`.

Files are written through `keras_resnet.files` (atomic writes, staged files, disk
errors); its names are re-exported here for older import paths.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from keras_resnet.files import (  # noqa: F401  (re-exported)
    STALE_AGE_S,
    StagedFiles,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_writable_folder,
    disk_error,
    is_stale_temporary,
    owner_tag,
    remove_stale_temporaries,
    temporary_name,
)

DEFAULT_RUNS_ROOT = Path("saved_models")
MODEL_FILE = "model.keras"
BEST_MODEL_FILE = "best.keras"
CONFIG_FILE = "config.yaml"
LABELS_FILE = "labels.txt"
PREPROCESSING_FILE = "preprocessing.json"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
DATASET_FILE = "dataset.json"
MODEL_METADATA = "kresnet.json"  # inside a .keras zip: labels and preprocessing spec


def atomic_save_model(model, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """``model.save(path)`` through a temporary file, so a failed save keeps the old file.

    Args:
        model: A ``keras.Model``.
        path: Destination ending in ``.keras``.
        metadata: Optional ``{"labels": [...], "preprocessing": spec}`` stored inside
            the file (`write_model_metadata`).

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        model.save(tmp)
        if metadata is not None:
            write_model_metadata(tmp, metadata)
    return path


def write_model_metadata(path: str | os.PathLike, metadata: dict) -> None:
    """Store ``metadata`` (labels, preprocessing spec) as ``kresnet.json`` inside a ``.keras`` zip.

    Keras ignores entries it does not know, so the file loads as before.
    """
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(MODEL_METADATA, json.dumps(metadata, indent=2))


def read_model_metadata(path: str | os.PathLike) -> dict:
    """The ``kresnet.json`` stored in a ``.keras`` file, or ``{}`` when it has none.

    Raises:
        ValueError: if ``path`` is not a readable ``.keras`` (zip) file.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            if MODEL_METADATA not in archive.namelist():
                return {}
            data = json.loads(archive.read(MODEL_METADATA).decode("utf-8"))
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a valid .keras file (truncated or corrupt?): {exc}") from None
    return data if isinstance(data, dict) else {}


def _root_cause(error: BaseException) -> BaseException:
    seen = set()
    while id(error) not in seen:
        seen.add(id(error))
        inner = error.__cause__ or error.__context__
        if inner is None:
            break
        error = inner
    return error


def load_keras_model(path: str | os.PathLike):
    """``keras.saving.load_model(path, compile=False)``, with one clear error for a file Keras cannot load.

    Raises:
        ValueError: naming ``path``: a truncated or corrupt file (not a zip, a member
            missing or damaged), or a config naming something this Keras cannot
            build (a function or class that does not exist, a Lambda refused by
            safe mode), with Keras' own innermost reason.
        OSError: the file cannot be read (permissions), naming it.
    """
    import keras

    try:
        return keras.saving.load_model(path, compile=False)
    except (zipfile.BadZipFile, EOFError, KeyError, OSError) as exc:
        if isinstance(exc, OSError) and isinstance(exc.errno, int) and exc.errno > 0 and exc.errno != errno.EINVAL:
            if exc.filename is None:  # Keras unpacks the archive into a temporary folder to load it
                raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno),
                              f"{tempfile.gettempdir()} (where Keras unpacks {path} to load it)") from None
            raise
        raise ValueError(f"{path} is not a valid .keras model (truncated or corrupt?): {exc}") from None
    except (ValueError, TypeError) as exc:
        root = _root_cause(exc)
        reason = str(root).strip().splitlines()[0] if str(root).strip() else type(root).__name__
        reason = reason if len(reason) <= 300 else reason[:297] + "..."
        raise ValueError(
            f"{path} cannot be loaded by Keras {keras.__version__}: {reason}. The file may be corrupt, come from "
            "another Keras version, or need custom code."
        ) from None


def write_labels(run_dir: str | os.PathLike, class_names) -> Path:
    """Write ``labels.txt`` (one class name per line, in index order)."""
    return atomic_write_text(Path(run_dir) / LABELS_FILE, "".join(f"{name}\n" for name in class_names))


def read_labels(path: str | os.PathLike) -> list[str]:
    """Read class names from ``labels.txt`` or from the run directory holding it.

    Raises:
        FileNotFoundError: naming the missing file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / LABELS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No labels file at {path}. Expected one class name per line.")
    return [line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def latest_run(root: str | os.PathLike = DEFAULT_RUNS_ROOT) -> Path:
    """The most recently modified run directory (one containing ``model.keras``) under ``root``.

    Raises:
        FileNotFoundError: if ``root`` holds no run, saying how to make one.
    """
    root = Path(root)
    runs = [p.parent for p in root.glob(f"*/{MODEL_FILE}")] if root.is_dir() else []
    if not runs:
        raise FileNotFoundError(
            f"No trained run found under {root}/ (a directory with {MODEL_FILE}). "
            "Train one with `kresnet train`, or name a run directory or model file."
        )
    return max(runs, key=lambda p: (p / MODEL_FILE).stat().st_mtime)


def resolve_run_dir(path: str | os.PathLike | None, root: str | os.PathLike = DEFAULT_RUNS_ROOT) -> Path:
    """A run directory from a run directory, a file inside one, or None (the latest run).

    Args:
        path: A run directory, a ``.keras`` file (its folder is the run), or None.
        root: Where to look for the latest run.

    Returns:
        The run directory.

    Raises:
        FileNotFoundError: if ``path`` does not exist, or no run exists for None.
    """
    if path is None:
        return latest_run(root)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such run directory or model file: {path}")
    return path if path.is_dir() else path.parent


@dataclass
class Run:
    """A trained model with everything recorded beside it, loaded once.

    Attributes:
        model: The Keras model, taking raw RGB pixels (uint8 or 0..255 floats) at
            `image_size`; a model saved before models carried their preprocessing is
            wrapped (``legacy`` True).
        model_path: The ``.keras`` file.
        run_dir: The folder holding it.
        labels: Class names in index order (``labels.txt``, else the model's own
            metadata, else the class indices as strings).
        spec: The preprocessing spec (``preprocessing.json``, else the model's).
        config_path: The run's ``config.yaml``, or None.
        dataset_record: ``dataset.json`` (what the run trained on), or None.
        legacy: True when the saved model had no preprocessing layer.
    """

    model: object
    model_path: Path
    run_dir: Path
    labels: list[str]
    spec: dict
    config_path: Path | None = None
    dataset_record: dict | None = None
    legacy: bool = False
    _config: object = field(default=None, repr=False)

    @property
    def image_size(self) -> tuple[int, int]:
        """The model's (height, width)."""
        return int(self.spec["image_size"][0]), int(self.spec["image_size"][1])

    @property
    def num_classes(self) -> int:
        """Outputs of the model."""
        return int(self.model.outputs[0].shape[-1])

    def config(self):
        """The run's `TrainConfig` (from ``config.yaml``).

        Raises:
            FileNotFoundError: the run has no ``config.yaml``.
        """
        if self._config is None:
            if self.config_path is None:
                raise FileNotFoundError(
                    f"No {CONFIG_FILE} beside {self.model_path} to find the run's data: name it explicitly "
                    "(evaluate: --dataset/--data-dir; export: --images / --calibration-images)."
                )
            from keras_resnet.config import load_config

            self._config = load_config(self.config_path)
        return self._config

    def data_config(self):
        """The run's `DataConfig` (``config.yaml``'s ``data`` section); see `config`."""
        return self.config().data


def load_run(path: str | os.PathLike | None = None, root: str | os.PathLike = DEFAULT_RUNS_ROOT) -> Run:
    """Load a run directory, a ``.keras`` file (in a run or on its own), or the latest run.

    Args:
        path: A run directory, a ``.keras`` file, or None for the latest run under ``root``.
        root: Where the latest run is looked for.

    Returns:
        A `Run`.

    Raises:
        FileNotFoundError: no such run/model; a model without a preprocessing layer
            and no ``preprocessing.json`` beside it.
        ValueError: not a ``.keras`` file, a corrupt one, or labels that do not
            match the model's outputs.

    Example:
        >>> run = load_run("saved_models/resnet20-cifar10-20260101-120000")
        >>> run.model.predict(uint8_images)   # raw pixels in
    """
    from keras_resnet.preprocessing import load_preprocessing, validate_spec

    if path is not None and Path(path).is_file():
        model_path = Path(path)
        if model_path.suffix != ".keras":
            raise ValueError(f"Expected a run directory or a .keras model. Received: {model_path}")
    else:
        model_path = resolve_run_dir(path, root) / MODEL_FILE
        if not model_path.is_file():
            raise FileNotFoundError(f"No {MODEL_FILE} in {model_path.parent}. Name a run directory or a .keras file.")
    folder = model_path.parent
    metadata = read_model_metadata(model_path)
    from keras_resnet.preprocessing import spec_of, with_preprocessing

    saved = load_keras_model(model_path)
    if (folder / PREPROCESSING_FILE).is_file():
        spec = load_preprocessing(folder)
    elif metadata.get("preprocessing"):
        spec = validate_spec(metadata["preprocessing"])
    else:
        spec = spec_of(saved)
        if spec is None:
            raise FileNotFoundError(
                f"{model_path} takes normalised input (saved before models carried their preprocessing) and has no "
                f"{PREPROCESSING_FILE} beside it. Copy the run's {PREPROCESSING_FILE} next to the model."
            )
    model = with_preprocessing(saved, spec)
    outputs = int(model.outputs[0].shape[-1])
    if (folder / LABELS_FILE).is_file():
        labels, where = read_labels(folder), str(folder / LABELS_FILE)
    elif metadata.get("labels"):
        labels, where = [str(v) for v in metadata["labels"]], f"{model_path} ({MODEL_METADATA})"
    else:
        labels, where = [str(i) for i in range(outputs)], None
    if len(labels) != outputs:
        raise ValueError(
            f"{where} lists {len(labels)} classes but {model_path} outputs {outputs}. "
            f"Write its {outputs} class names to {folder / LABELS_FILE}, one per line, in the model's class order."
        )
    dataset_file = folder / DATASET_FILE
    return Run(
        model=model,
        model_path=model_path,
        run_dir=folder,
        labels=labels,
        spec=spec,
        config_path=folder / CONFIG_FILE if (folder / CONFIG_FILE).is_file() else None,
        dataset_record=json.loads(dataset_file.read_text(encoding="utf-8")) if dataset_file.is_file() else None,
        legacy=model is not saved,
    )
