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

Every write here goes to a temporary file in the same directory and is renamed over
the target, so an interrupted or failed write never destroys the previous file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import socket
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

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


# ------------------------------------------------------------------ temporaries and their owners

#: A temporary left by a process that is not known to run any more is removed after this long.
STALE_AGE_S = 3600.0
_OWNER = re.compile(r"kr(?P<host>[0-9a-f]{6})-(?P<pid>\d+)[.-]")


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]


def owner_tag() -> str:
    """``kr<host hash>-<pid>``: put in every temporary name, so a later run can tell a dead writer's leftovers.

    Example:
        >>> owner_tag()  # doctest: +SKIP
        'kr3f2a1b-41235'
    """
    return f"kr{_host_tag()}-{os.getpid()}"


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    try:  # a killed child its parent has not reaped yet is a zombie: not running
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def is_stale_temporary(path: str | os.PathLike, now: float | None = None) -> bool:
    """Whether a temporary of ours at ``path`` was left behind by a writer that is gone.

    A name with this machine's `owner_tag` is stale when that process no longer
    runs; any other (another machine's on a shared disk, or a name from before
    the tags) when it is older than `STALE_AGE_S`. A concurrent writer's files are
    never stale.
    """
    path = Path(path)
    match = _OWNER.search(path.name)
    if match and match["host"] == _host_tag():
        return int(match["pid"]) != os.getpid() and not _pid_running(int(match["pid"]))
    try:
        age = (time.time() if now is None else now) - path.lstat().st_mtime
    except OSError:
        return False
    return age > STALE_AGE_S


def remove_stale_temporaries(folder: str | os.PathLike, patterns=(".*.tmp*",)) -> list[Path]:
    """Remove temporaries (files or folders) a killed process left in ``folder``.

    Args:
        folder: Where to look (nothing happens when it does not exist).
        patterns: Globs of our temporary names in ``folder`` (default: the names
            `atomic_path` gives, ``.<stem>.<owner>.<random>.tmp<suffix>``).

    Returns:
        What was removed (see `is_stale_temporary` for what counts as stale).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for pattern in patterns:
        for path in folder.glob(pattern):
            if is_stale_temporary(path):
                with contextlib.suppress(OSError):
                    _remove(path)
                    removed.append(path)
    return removed


def temporary_name(path: Path, suffix: str) -> Path:
    """A new, unused temporary path beside ``path``, named ``.<stem>.<owner>.<random>.tmp<suffix>`` (not created)."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.{owner_tag()}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # writers such as Keras create the file (or directory) themselves
    return tmp


# ------------------------------------------------------------------ errors of the disk

_ERRNO_TEXTS = (
    (errno.ENOSPC, "no space left on device"),
    (errno.EDQUOT, "disk quota exceeded"),
    (errno.EFBIG, "file too large"),
    (errno.EROFS, "read-only file system"),
    (errno.EACCES, "permission denied"),
)


def disk_error(error: BaseException, path: str | os.PathLike) -> OSError | None:
    """``error`` as a plain ``OSError`` naming ``path``, or None when it is not an error of the disk.

    TensorFlow and h5py report a full disk or a read-only folder in their own
    exception types, with the reason only in the message (``...; No space left on
    device``) or without the file name; this gives ``OSError(errno, strerror, path)``
    (its subclass, e.g. ``PermissionError``) for them and for a plain ``OSError``
    that lacks the path.
    """
    code = getattr(error, "errno", None)
    if isinstance(error, OSError) and isinstance(code, int) and code > 0:
        named = error.filename
        if named is not None and not _OWNER.search(Path(os.fsdecode(named)).name):
            return error  # it already names a file or folder (not one of our temporaries)
        return OSError(code, os.strerror(code), str(path))
    if not isinstance(error, OSError) and type(error).__module__.split(".")[0] not in ("tensorflow", "h5py"):
        return None
    text = str(error).lower()
    code = next((c for c, words in _ERRNO_TEXTS if words in text), None)
    return None if code is None else OSError(code, os.strerror(code), str(path))


def check_writable_folder(folder: str | os.PathLike, what: str = "output") -> Path:
    """Make sure files can be created in ``folder`` (created with its parents if missing), before long work.

    Raises:
        OSError: naming the folder (or the file that is in the way), e.g.
            ``PermissionError(13, ..., folder)`` or ``OSError(EROFS, ...)``.
        NotADirectoryError: ``folder`` (or a parent) is a file.
    """
    folder = Path(folder)
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"the {what} folder would be inside a file, not a folder", str(parent))
            break
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{owner_tag()}.", suffix=".tmp.probe", dir=folder)
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(folder)) from None
    os.close(fd)
    os.unlink(probe)
    return folder


# ------------------------------------------------------------------ atomic writes


def _new_temporary(path: Path, suffix: str | None) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return temporary_name(path, path.suffix if suffix is None else suffix)
    except OSError as error:
        raise disk_error(error, path) or error from None


def _failed_write(tmp: Path, error: BaseException, path: Path) -> BaseException | None:
    """Remove ``tmp``; the exception to raise instead of ``error`` (an ``OSError`` naming ``path``), or None."""
    _remove(tmp)
    located = disk_error(error, path) if isinstance(error, Exception) else None
    return located if located is not None and located is not error else None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    On an exception the temporary file (or directory) is removed and ``path`` is
    left as it was; an ``OSError`` (full disk, file-size limit, read-only folder;
    also TensorFlow's and h5py's versions of them) is raised as an ``OSError``
    naming ``path`` (`disk_error`). The temporary name carries the writer's
    `owner_tag`, so `remove_stale_temporaries` can clear it after a ``kill -9``.

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
    tmp = _new_temporary(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as error:
        replacement = _failed_write(tmp, error, path)
        if replacement is not None:
            raise replacement from error
        raise


class StagedFiles:
    """Files written as temporaries now and renamed into place together by `commit`.

    The files of one epoch end (``model.keras``, ``best.keras``, ``history.csv``, the
    backup) go through one `StagedFiles`: if any write fails (a full disk, a
    file-size limit) none of them replaces its old version, so the checkpoint, the
    history and the backup keep agreeing. Renames need no space, so `commit` does
    not fail for a full disk.

    Example:
        >>> staged = StagedFiles()
        >>> with staged.stage("run/history.csv") as tmp:
        ...     tmp.write_text("epoch\n1\n")
        >>> staged.commit()
    """

    def __init__(self):
        self._staged: list[tuple[Path, Path]] = []

    @property
    def pending(self) -> list[Path]:
        """The destinations staged so far, in order."""
        return [target for _, target in self._staged]

    @contextlib.contextmanager
    def stage(self, path: str | os.PathLike, suffix: str | None = None):
        """Yield a temporary path for ``path``; it replaces ``path`` at `commit`.

        A failure inside the block removes that temporary and `discard`s every other
        staged file, then raises (an ``OSError`` naming ``path``, as `atomic_path`).
        """
        path = Path(path)
        try:
            tmp = _new_temporary(path, suffix)
        except BaseException:
            self.discard()
            raise
        try:
            yield tmp
        except BaseException as error:
            replacement = _failed_write(tmp, error, path)
            self.discard()
            if replacement is not None:
                raise replacement from error
            raise
        self._staged.append((tmp, path))

    def commit(self) -> None:
        """Rename every staged file over its destination, in the order staged."""
        staged, self._staged = self._staged, []
        for tmp, target in staged:
            os.replace(tmp, target)

    def discard(self) -> None:
        """Remove every staged temporary; the destinations keep their old content."""
        staged, self._staged = self._staged, []
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                _remove(tmp)


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


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file + rename).

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_json(path: str | os.PathLike, data) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


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
