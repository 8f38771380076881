"""Safe file writes: atomic writes, staged groups of files, our own temporaries, disk errors.

Every write goes to a temporary file in the same directory and is renamed over the
target, so an interrupted or failed write never destroys the previous file. A
temporary's name carries its writer's host and PID, so a later run can tell a stale
leftover (its writer is gone) from a concurrent writer's file. Disk-full, file-size
limit and read-only errors become one `OSError` naming the path (`disk_error`).

Used by `keras_resnet.runs` (run directories) and every module that writes files.

Example:
    >>> with atomic_path("run/model.keras") as tmp:
    ...     model.save(tmp)
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
from pathlib import Path

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
