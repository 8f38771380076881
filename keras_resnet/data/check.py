"""Checking image files and folders: what will not decode, and what looks wrong.

Two levels of checking, chosen for speed:

* `quick_check` — used every time a folder is listed for training. It reads only
  each file's size, header and last bytes: zero-byte files, files that are
  not JPEG/PNG/GIF/BMP (e.g. text renamed ``.jpg``), images whose header declares
  more pixels than the limit (`keras_resnet.data.header`: a decompression bomb is
  refused before it is decoded), file names that are not valid UTF-8 and files
  whose end marker is missing (truncated JPEG/PNG) are flagged. Only the few
  *suspicious* files (no end marker) are fully decoded with TensorFlow's decoder to
  confirm. This costs ~two small reads per file, so listing the 50,000 CIFAR-10
  training JPEGs stays at a second or two, with no scan cache to go stale.
* `check_folder` — what ``kresnet data check DIR`` runs. Every file is decoded
  with the same decoder training uses (`keras_resnet.data.preprocess.decode_image`),
  after the same name and header checks, and the folder layout is checked: empty
  class folders, fewer than two usable classes (an error: training refuses it),
  train/test class mismatches and images far larger than the model input.

Both flag the same files, so ``kresnet data check`` reports what training will skip.

Example:
    >>> report = check_folder("../shared/datasets/cifar10", image_size=32)
    >>> print(report.format()); report.ok
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from keras_resnet.compat import filter_startup_noise
from keras_resnet.data.folders import (  # noqa: F401  (re-exported: older import paths)
    IMAGE_EXTENSIONS,
    SPLIT_NAMES,
    find_split_dirs,
    format_histogram,
    is_image_name,
    list_class_files,
)
from keras_resnet.data.header import (  # noqa: F401  (sniff_format re-exported: older import path)
    DEFAULT_LIMIT,
    MAX_TRAIN_IMAGE_PIXELS,
    header_problem,
    image_header,
    oversize_reason,
    pixel_limit,
    resolve_limit,
    sniff_format,
)
from keras_resnet.textsafe import printable

_TAIL_BYTES = 64


def name_problem(path: str | os.PathLike) -> str | None:
    """Why a file's name cannot be used (not valid UTF-8: TensorFlow takes UTF-8 paths), or None."""
    try:
        os.fsdecode(path).encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8 (rename the file to use it)"
    return None


def decode_error_reason(exc: BaseException) -> str:
    """A short reason from a TensorFlow decode error, without its ``{{function_node ...}}`` and ``[Op:...]`` parts.

    Example: ``"Unknown image file format. One of JPEG, PNG, GIF, BMP required."``
    """
    text = (getattr(exc, "message", None) or str(exc)).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    message = lines[-1] if lines else type(exc).__name__
    if "}}" in message:
        message = message.split("}}", 1)[1].strip()
    if " [Op:" in message:
        message = message.split(" [Op:", 1)[0].strip()
    return message[:160] or type(exc).__name__


_STDERR_LOCK = threading.Lock()
_STDERR_SINK = []  # one reusable temporary file (created on first use)
_TF_LOG_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] ")


@contextlib.contextmanager
def _decoder_messages(found: list):
    """Capture what C code writes to fd 2 meanwhile (libjpeg's warnings) into ``found`` (lines).

    TensorFlow's JPEG decoder leaves libjpeg's default message handler in place, which
    writes lines such as "Corrupt JPEG data: premature end of data segment" straight to
    the process's stderr, naming no file; the callers attach them to the file instead.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no fd 2 to capture: decode without capturing
        yield
        return
    with _STDERR_LOCK:
        if not _STDERR_SINK:
            _STDERR_SINK.append(tempfile.TemporaryFile(mode="w+b"))
        sink = _STDERR_SINK[0]
        sink.seek(0)
        sink.truncate()
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = filter_startup_noise(sink.read().decode("utf-8", errors="replace"))
            found.extend(_TF_LOG_PREFIX.sub("", line).strip() for line in text.splitlines() if line.strip())


def decode_bytes(data: bytes):
    """Decode an image file's bytes with the training decoder, eagerly, with a short reason on failure.

    Args:
        data: The encoded file.

    Returns:
        ``(uint8 numpy array [H, W, 3], notes)``: ``notes`` are the decoder's warnings
        for a damaged file that still decoded (libjpeg's "Corrupt JPEG data: ..."), else "".

    Raises:
        ValueError: a one-line reason: TensorFlow's message without its op names,
            then the decoder's own message in brackets when it wrote one
            (e.g. "... (Premature end of JPEG data. Stopped at line 14/64)").
    """
    import tensorflow as tf

    from keras_resnet.data.preprocess import decode_image

    encoded = tf.constant(data)  # outside the capture: the first tensor starts TensorFlow's runtime, with its notices
    messages = []
    error = None
    with _decoder_messages(messages):
        try:
            pixels = decode_image(encoded).numpy()
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as exc:
            error = decode_error_reason(exc)
    notes = "; ".join(dict.fromkeys(messages))[:200]
    if error is not None:
        raise ValueError(f"{error} ({notes})" if notes else error)
    return pixels, notes


def quick_check(path: str | os.PathLike, max_pixels=DEFAULT_LIMIT) -> str | None:
    """Cheap validity check of one image file (name, size, header, end marker).

    Args:
        path: The image file.
        max_pixels: Refuse images whose header declares more pixels (None: no limit);
            default `keras_resnet.data.header.pixel_limit` of ``MAX_TRAIN_IMAGE_PIXELS``.

    Returns:
        None when the file looks decodable, else the reason it is not, e.g.
        "empty file (0 bytes)", "not an image (starts with b'hello')",
        "too large to decode safely: ...", "truncated jpeg (...)".
    """
    max_pixels = resolve_limit(max_pixels, MAX_TRAIN_IMAGE_PIXELS)
    reason = name_problem(path)
    if reason:
        return reason
    try:
        size = os.path.getsize(path)
        if size == 0:
            return "empty file (0 bytes)"
        with open(path, "rb") as f:
            head = f.read(16)
            fmt = sniff_format(head)
            if fmt is None:
                return f"not a JPEG/PNG/GIF/BMP image (starts with {head[:8]!r})"
            f.seek(0)
            reason = oversize_reason(image_header(f), max_pixels)
            if reason:
                return reason
            if fmt in ("jpeg", "png"):
                f.seek(max(0, size - _TAIL_BYTES))
                tail = f.read()
                marker = b"\xff\xd9" if fmt == "jpeg" else b"IEND"
                if marker not in tail:
                    return full_check(path, max_pixels)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    return None


def full_check(path: str | os.PathLike, max_pixels=DEFAULT_LIMIT) -> str | None:
    """Decode one file with the training decoder (after the name and header checks); the reason it fails, or None.

    Args:
        path: The image file.
        max_pixels: As in `quick_check`.

    Returns:
        None on success, else a one-line reason.
    """
    max_pixels = resolve_limit(max_pixels, MAX_TRAIN_IMAGE_PIXELS)
    reason, _ = _decode_checked(path, max_pixels)
    return reason


def _decode_checked(path, max_pixels) -> tuple[str | None, tuple | None]:
    """(reason it is unusable or None, decoded shape or None): name, header, then the decoder."""
    reason = name_problem(path)
    if reason:
        return reason, None
    try:
        reason = header_problem(path, max_pixels)
        data = None if reason else Path(path).read_bytes()
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})", None
    if reason:
        return reason, None
    try:
        pixels, _ = decode_bytes(data)
    except ValueError as exc:
        return f"cannot decode ({exc})", None
    return None, pixels.shape


@dataclass
class Issue:
    """One finding: severity ("error" or "warning"), the path it concerns and a message."""

    severity: str
    path: str
    message: str

    def format(self) -> str:
        """``ERROR path: message`` / ``WARNING path: message``."""
        return f"{self.severity.upper()} {printable(self.path)}: {printable(self.message)}"


@dataclass
class CheckReport:
    """The result of `check_folder`.

    Attributes:
        root: The folder checked.
        splits: split name -> {class name: number of decodable images}.
        issues: Errors and warnings, in discovery order.
    """

    root: str
    splits: dict = field(default_factory=dict)
    issues: list = field(default_factory=list)

    @property
    def errors(self) -> list:
        """The issues of severity "error"."""
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list:
        """The issues of severity "warning"."""
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when no errors were found (warnings allowed)."""
        return not self.errors

    def format(self) -> str:
        """A human-readable report: per-split class histogram, then issues, then a summary line."""
        lines = [f"Checked {self.root}"]
        for split, counts in self.splits.items():
            total = sum(counts.values())
            lines.append(f"  {split}: {total} images in {len(counts)} classes")
            counts = {printable(name): n for name, n in counts.items()}
            lines.append(format_histogram(counts, indent="    "))
        lines.extend(issue.format() for issue in self.issues)
        lines.append(f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return "\n".join(lines)


def check_folder(root: str | os.PathLike, image_size: int | None = None, large_factor: float = 4.0) -> CheckReport:
    """Scan an image folder the way training will read it, decoding every file.

    Errors: files training would skip (a name that is not valid UTF-8, zero bytes,
    not an image, larger than the pixel limit, truncated or otherwise undecodable),
    fewer than two train classes with usable images, and classes in test/val that
    train does not have (training refuses both).
    Warnings: class folders training drops (empty, or no usable image), classes of
    train missing from another split, and (with ``image_size``) images larger than
    ``large_factor`` times the model input on a side (decoding and resizing them
    wastes input-pipeline time).

    Args:
        root: ``ROOT/<split>/<class>/<image>`` (or ``ROOT/<class>/<image>``).
        image_size: The model input side in pixels, for the size warning.
        large_factor: How many times larger than ``image_size`` counts as "far larger".

    Returns:
        A `CheckReport`; ``report.ok`` is False when any file fails to decode or the
        layout is unusable.

    Raises:
        ValueError: ``KRESNET_MAX_IMAGE_PIXELS`` is not a whole number.
    """
    max_pixels = pixel_limit(MAX_TRAIN_IMAGE_PIXELS)
    report = CheckReport(root=str(root))
    try:
        split_dirs = find_split_dirs(root)
    except (FileNotFoundError, ValueError) as exc:
        report.issues.append(Issue("error", str(root), str(exc)))
        return report
    large = []
    for split, split_dir in split_dirs.items():
        per_class = list_class_files(split_dir)
        counts = {}
        if not per_class:
            report.issues.append(Issue("error", str(split_dir), "no class folders"))
        for name, files in per_class.items():
            if name_problem(name):
                message = "class folder name is not valid UTF-8 (rename the folder)"
                report.issues.append(Issue("error", str(Path(split_dir) / name), message))
            good = 0
            for path in files:
                reason, shape = _decode_checked(path, max_pixels)
                if reason:
                    report.issues.append(Issue("error", path, reason))
                    continue
                good += 1
                if image_size and max(shape[0], shape[1]) > large_factor * image_size:
                    large.append((path, shape))
            counts[name] = good
            if split == "train" and not good:
                why = "empty class folder (no images)" if not files else f"no usable image (all {len(files)} files above are unusable)"
                report.issues.append(Issue("warning", str(Path(split_dir) / name), f"{why}; training drops this class"))
        report.splits[split] = counts
    _layout_issues(report, split_dirs)
    if large:
        worst = max(large, key=lambda item: item[1][0] * item[1][1])
        report.issues.append(
            Issue(
                "warning",
                str(root),
                f"{len(large)} image(s) are more than {large_factor:g}x the model input ({image_size}px) on a side, "
                f"e.g. {worst[0]} is {worst[1][1]}x{worst[1][0]}; resize the folder once to save decoding time",
            )
        )
    return report


def _layout_issues(report: CheckReport, split_dirs: dict) -> None:
    """The class-level findings, the same rules as `keras_resnet.data.sources.folder_source` applies."""
    usable = {split: sorted(c for c, n in counts.items() if n) for split, counts in report.splits.items()}
    train = usable.get("train")
    if train is None:
        return
    if len(train) < 2:
        found = f"only one ({train[0]})" if train else "none"
        report.issues.append(
            Issue(
                "error",
                str(split_dirs["train"]),
                f"classes with usable images: {found}; a classifier needs two or more (training refuses this folder)",
            )
        )
    for split, classes in usable.items():
        if split == "train":
            continue
        extra = sorted(set(classes) - set(train))
        missing = sorted(set(train) - set(classes))
        if extra:
            report.issues.append(
                Issue(
                    "error",
                    str(split_dirs[split]),
                    f"classes in {split} but not in train: {extra} (training refuses these; never a silent mislabel)",
                )
            )
        if missing:
            message = f"classes in train but not in {split}: {missing} (no {split} images of them)"
            report.issues.append(Issue("warning", str(split_dirs[split]), message))
