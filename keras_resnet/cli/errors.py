"""The command line's one error boundary: ordinary errors become one line and a non-zero exit.

`describe_error` turns the errors a user can cause or meet (a full disk, a file-size
limit, a read-only folder, a missing or corrupt file, a bad value) into one message
naming the path and what to do; `keras_resnet.cli.KresnetGroup` calls it around
every command, so commands need no ``try``/``except`` of their own. Anything else
(a bug) keeps its traceback. ``KRESNET_TRACEBACK=1`` shows the traceback of every
error, for a bug report.

Nothing here imports TensorFlow: foreign error types are recognised by their module.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import zipfile

#: Set to 1 to get the full traceback instead of the one-line message.
TRACEBACK_ENV = "KRESNET_TRACEBACK"
#: Longer messages (from a library, e.g. a dump of arrays) are cut to this many characters.
MAX_MESSAGE = 2000

#: Where each command writes, for "choose another place" advice.
_WRITE_ELSEWHERE = {
    "train": "another place with --run-dir (the default is saved_models/ in the current folder)",
    "tune": "another place with --dir (the default is saved_models/ in the current folder)",
    "export": "another place with -o/--output",
    "convert-weights": "another place with -o/--output",
    "calibrate": "another place with --output",
    "predict": "another --explain folder",
}
_FULL = (errno.ENOSPC, errno.EDQUOT)
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)
# Modules whose exceptions report a bad or unreadable file (their class names vary by version).
_FILE_ERROR_MODULES = ("h5py", "safetensors", "google.protobuf", "tensorflow")


def _cut(text: str) -> str:
    text = text.strip()
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE].rstrip() + f" ... (cut; {TRACEBACK_ENV}=1 shows everything)"
    return text


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _where(error: OSError) -> str | None:
    if error.filename is None:
        return None
    name = os.fsdecode(error.filename)
    return f"{name} -> {os.fsdecode(error.filename2)}" if error.filename2 is not None else name


def describe_os_error(error: OSError, command: str | None = None) -> str:
    """One line for an ``OSError``: what happened to which path, and what to do.

    Example:
        >>> describe_os_error(OSError(28, "No space left on device", "run/model.keras"), "train")
        'No space left on device writing run/model.keras. Free some space, or write to another place ...'
    """
    path = _where(error)
    code = error.errno
    if path is None:  # our own FileNotFoundError("No run found ...") and friends carry their message
        text = re.sub(r"""\bb'([^']*)'""", r"\1", str(error))  # TensorFlow names paths as bytes: b'dir/saved_model.pb'
        return _cut(text) if text else type(error).__name__
    elsewhere = _WRITE_ELSEWHERE.get(command or "", "another place")
    resume = " The last completed epoch is kept: the same command resumes from it." if command == "train" else ""
    if code in _FULL:
        return f"No space left on device writing {path}. Free some space, or write to {elsewhere}.{resume}"
    if code == errno.EFBIG:
        return (f"File too large: writing {path} hit the file-size limit (ulimit -f). Raise the limit "
                f"(ulimit -f unlimited), or write to {elsewhere}.{resume}")
    if code in _NOT_WRITABLE:
        reason = "read-only file system" if code == errno.EROFS else "permission denied"
        advice = ("Use --no-write to only print the metrics, or copy the run to a writable place."
                  if command == "evaluate" else f"Choose {elsewhere}, or fix the permissions.")
        return f"Cannot write {path}: {reason}. {advice}"
    if code == errno.ENOENT:
        return f"No such file or directory: {path}"
    reason = error.strerror or _first_line(error)
    return f"{reason}: {path}"


def describe_error(error: BaseException, command: str | None = None) -> str | None:
    """The one-line message for an ordinary error, or None for one that should keep its traceback.

    Args:
        error: What a command raised.
        command: The command's name (``train``, ``export`` ...), for advice on where
            else to write.
    """
    if isinstance(error, OSError):
        return describe_os_error(error, command)
    if isinstance(error, ValueError):  # our messages name the value and what was expected
        return _cut(str(error)) or type(error).__name__
    if isinstance(error, (zipfile.BadZipFile, pickle.UnpicklingError, EOFError)):
        return f"A file is truncated or corrupt: {_first_line(error)}"
    if type(error).__module__.startswith(_FILE_ERROR_MODULES):
        return _cut(_first_line(error))
    return None


def show_tracebacks() -> bool:
    """Whether ``KRESNET_TRACEBACK`` asks for tracebacks instead of one-line messages."""
    return os.environ.get(TRACEBACK_ENV, "").strip().lower() not in ("", "0", "false", "no")
