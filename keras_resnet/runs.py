"""Run directories and atomic file writes, shared by training, evaluation and export.

A run directory holds ``model.keras`` (the model, taking *normalised* float32
images), ``config.yaml``, ``labels.txt`` (one class name per line, index order),
``preprocessing.json`` (see `keras_resnet.data.preprocess`), ``history.csv``,
``metrics.json`` and PNG plots.

Every write here goes to a temporary file in the same directory and is renamed over
the target, so an interrupted or failed write never destroys the previous file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

DEFAULT_RUNS_ROOT = Path("saved_models")
MODEL_FILE = "model.keras"
BEST_MODEL_FILE = "best.keras"
CONFIG_FILE = "config.yaml"
LABELS_FILE = "labels.txt"
PREPROCESSING_FILE = "preprocessing.json"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    On an exception the temporary file (or directory) is removed and ``path`` is
    left as it was.

    Args:
        path: The final destination.
        suffix: Suffix of the temporary name (default: ``path``'s own suffix, which
            Keras needs to pick the save format).

    Yields:
        The temporary ``Path`` to write to.

    Example:
        >>> with atomic_path("run/model.keras") as tmp:
        ...     model.save(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # writers such as Keras create the file (or directory) themselves
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path) -> None:
    if path.is_dir():
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary file + rename).

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def atomic_write_json(path: str | os.PathLike, data) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def atomic_save_model(model, path: str | os.PathLike) -> Path:
    """``model.save(path)`` through a temporary file, so a failed save keeps the old file.

    Args:
        model: A ``keras.Model``.
        path: Destination ending in ``.keras``.

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        model.save(tmp)
    return path


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
