"""Checking image files and folders: what will not decode, and what looks wrong.

Two levels of checking, chosen for speed:

* `quick_check` — used every time a folder is listed for training. It reads only
  each file's size, first bytes and last bytes: zero-byte files, files that are
  not JPEG/PNG/GIF/BMP (e.g. text renamed ``.jpg``) and files whose end marker is
  missing (truncated JPEG/PNG) are flagged. Only the few *suspicious* files (no
  end marker) are fully decoded with TensorFlow's decoder to confirm. This costs
  ~two small reads per file, so listing the 50,000 CIFAR-10 training JPEGs stays
  at a second or two, with no scan cache to go stale.
* `check_folder` — what ``kresnet data check DIR`` runs. Every file is decoded
  with the same decoder training uses (`keras_resnet.data.preprocess.decode_image`)
  and the folder layout is checked: empty class folders, a single class,
  train/test class mismatches and images far larger than the model input.

Example:
    >>> report = check_folder("../shared/datasets/cifar10", image_size=32)
    >>> print(report.format()); report.ok
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from keras_resnet.data.folders import (  # noqa: F401  (re-exported: older import paths)
    IMAGE_EXTENSIONS,
    SPLIT_NAMES,
    find_split_dirs,
    format_histogram,
    is_image_name,
    list_class_files,
)

_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
)
_TAIL_BYTES = 64


def sniff_format(head: bytes) -> str | None:
    """The image format from a file's first bytes ("jpeg", "png", "gif", "bmp"), or None."""
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    return None


def quick_check(path: str | os.PathLike) -> str | None:
    """Cheap validity check of one image file (size, header, end marker).

    Args:
        path: The image file.

    Returns:
        None when the file looks decodable, else the reason it is not, e.g.
        "empty file (0 bytes)", "not an image (starts with b'hello')",
        "truncated jpeg (...)".
    """
    try:
        size = os.path.getsize(path)
        if size == 0:
            return "empty file (0 bytes)"
        with open(path, "rb") as f:
            head = f.read(16)
            fmt = sniff_format(head)
            if fmt is None:
                return f"not a JPEG/PNG/GIF/BMP image (starts with {head[:8]!r})"
            if fmt in ("jpeg", "png"):
                f.seek(max(0, size - _TAIL_BYTES))
                tail = f.read()
                marker = b"\xff\xd9" if fmt == "jpeg" else b"IEND"
                if marker not in tail:
                    return full_check(path)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    return None


def full_check(path: str | os.PathLike) -> str | None:
    """Decode one file with the training decoder; the reason it fails, or None.

    Returns:
        None on success, else a one-line reason.
    """
    import tensorflow as tf

    from keras_resnet.data.preprocess import decode_image

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if not data:
        return "empty file (0 bytes)"
    if sniff_format(data[:16]) is None:
        return f"not a JPEG/PNG/GIF/BMP image (starts with {data[:8]!r})"
    try:
        decode_image(tf.constant(data))
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        if "}}" in message:
            message = message.split("}}", 1)[1].strip()
        return f"cannot decode ({message[:120]})"
    return None


@dataclass
class Issue:
    """One finding: severity ("error" or "warning"), the path it concerns and a message."""

    severity: str
    path: str
    message: str

    def format(self) -> str:
        """``ERROR path: message`` / ``WARNING path: message``."""
        return f"{self.severity.upper()} {self.path}: {self.message}"


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
            lines.append(format_histogram(counts, indent="    "))
        lines.extend(issue.format() for issue in self.issues)
        lines.append(f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return "\n".join(lines)


def check_folder(root: str | os.PathLike, image_size: int | None = None, large_factor: float = 4.0) -> CheckReport:
    """Scan an image folder the way training will read it, decoding every file.

    Errors: files that do not decode (zero bytes, truncated, not an image).
    Warnings: empty class folders, a single class, classes in one split but not in
    train, and (with ``image_size``) images larger than ``large_factor`` times the
    model input on a side (decoding and resizing them wastes input-pipeline time).

    Args:
        root: ``ROOT/<split>/<class>/<image>`` (or ``ROOT/<class>/<image>``).
        image_size: The model input side in pixels, for the size warning.
        large_factor: How many times larger than ``image_size`` counts as "far larger".

    Returns:
        A `CheckReport`; ``report.ok`` is False when any file fails to decode or the
        layout is unusable.
    """
    import tensorflow as tf

    from keras_resnet.data.preprocess import decode_image

    report = CheckReport(root=str(root))
    try:
        split_dirs = find_split_dirs(root)
    except (FileNotFoundError, ValueError) as exc:
        report.issues.append(Issue("error", str(root), str(exc)))
        return report
    classes_per_split = {}
    large = []
    for split, split_dir in split_dirs.items():
        per_class = list_class_files(split_dir)
        classes_per_split[split] = per_class
        counts = {}
        if not per_class:
            report.issues.append(Issue("error", str(split_dir), "no class folders"))
        for name, files in per_class.items():
            good = 0
            if not files:
                report.issues.append(Issue("warning", str(Path(split_dir) / name), "empty class folder (no images)"))
            for path in files:
                reason = None
                try:
                    data = Path(path).read_bytes()
                except OSError as exc:
                    reason = f"unreadable ({exc.strerror or exc})"
                    data = b""
                if reason is None and not data:
                    reason = "empty file (0 bytes)"
                elif reason is None and sniff_format(data[:16]) is None:
                    reason = f"not a JPEG/PNG/GIF/BMP image (starts with {data[:8]!r})"
                elif reason is None:
                    try:
                        shape = decode_image(tf.constant(data)).shape
                    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as exc:
                        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                        reason = f"cannot decode ({message.split('}}', 1)[-1].strip()[:120]})"
                    else:
                        if image_size and max(shape[0], shape[1]) > large_factor * image_size:
                            large.append((path, shape))
                if reason:
                    report.issues.append(Issue("error", path, reason))
                else:
                    good += 1
            counts[name] = good
        report.splits[split] = counts
    _layout_warnings(report, classes_per_split)
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


def _layout_warnings(report: CheckReport, classes_per_split: dict) -> None:
    train = classes_per_split.get("train")
    reference = train if train is not None else next(iter(classes_per_split.values()), {})
    nonempty = [c for c, files in reference.items() if files]
    if len(nonempty) == 1:
        report.issues.append(Issue("warning", report.root, f"only one class with images ({nonempty[0]}); a classifier needs two or more"))
    if train is None:
        return
    for split, classes in classes_per_split.items():
        if split == "train":
            continue
        extra = sorted(set(classes) - set(train))
        missing = sorted(set(train) - set(classes))
        if extra:
            report.issues.append(
                Issue("warning", report.root, f"classes in {split} but not in train: {extra} (training refuses these; never a silent mislabel)")
            )
        if missing:
            report.issues.append(Issue("warning", report.root, f"classes in train but not in {split}: {missing}"))
