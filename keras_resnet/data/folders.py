"""Image folders: what counts as an image file, the split and class folders, the class histogram.

One definition used by `keras_resnet.data.sources` (listing for training),
`keras_resnet.data.check` (``kresnet data check``), `keras_resnet.data.pipeline`
(the histogram it logs) and `keras_resnet.export.images` (prediction and parity
folders), so they agree on which files are images and how a folder is laid out:
``ROOT/<split>/<class>/<image>`` (splits train, test, val|validation) or
``ROOT/<class>/<image>`` (train only).

Example:
    >>> splits = find_split_dirs("../shared/datasets/cifar10")   # {"train": ..., "test": ...}
    >>> files = list_class_files(splits["train"])                # {"airplane": [...], ...}
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
SPLIT_NAMES = {"train": "train", "test": "test", "val": "val", "validation": "val"}


def is_image_name(name: str) -> bool:
    """Whether a file name has an image extension (case-insensitive), hidden files excluded."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def find_split_dirs(root: str | os.PathLike) -> dict:
    """The split folders of an image folder.

    ``ROOT/train``, ``ROOT/test``, ``ROOT/val`` or ``ROOT/validation``; a root that
    holds class folders directly is one "train" split.

    Args:
        root: The dataset folder.

    Returns:
        ``{"train": Path, "test": Path, "val": Path}`` for the splits present.

    Raises:
        FileNotFoundError: if ``root`` is not a directory.
        ValueError: if both val and validation exist, or no split/class folder is found.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Image folder not found: {root}. Expected ROOT/<split>/<class>/<image>.")
    found = {}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.is_dir() and entry.name in SPLIT_NAMES:
            split = SPLIT_NAMES[entry.name]
            if split in found:
                raise ValueError(f"{root} has both val/ and validation/ folders; keep one. Received: {sorted(os.listdir(root))}")
            found[split] = Path(entry.path)
    if found:
        if "train" not in found and "test" not in found and "val" not in found:  # pragma: no cover - defensive
            raise ValueError(f"No split folder in {root}.")
        return found
    if any(e.is_dir() and not e.name.startswith(".") for e in os.scandir(root)):
        return {"train": root}
    raise ValueError(
        f"{root} holds no split folders (train/, test/, val/ or validation/) and no class folders. "
        "Expected ROOT/<split>/<class>/<image> or ROOT/<class>/<image>."
    )


def list_class_files(split_dir: str | os.PathLike) -> dict:
    """Image files per class folder of one split, sorted by class name then file name.

    Args:
        split_dir: A split folder holding one folder per class.

    Returns:
        class name -> list of file paths (str); classes with no images map to [].
    """
    classes = {}
    for entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
        if entry.is_dir() and not entry.name.startswith("."):
            files = sorted(f.path for f in os.scandir(entry.path) if f.is_file() and is_image_name(f.name))
            classes[entry.name] = files
    return classes


def class_histogram(labels, class_names: list) -> dict:
    """Examples per class from integer labels.

    Args:
        labels: Integer class indices.
        class_names: Names in index order.

    Returns:
        class name -> count (0 for classes without examples), in index order.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(class_names))
    return {name: int(c) for name, c in zip(class_names, counts)}


def format_histogram(counts: dict, indent: str = "  ", width: int = 30) -> str:
    """Class histogram as text bars.

    Args:
        counts: class name -> count.
        indent: Prefix of every line.
        width: Length of the longest bar.

    Returns:
        One line per class: name, count, bar.
    """
    if not counts:
        return f"{indent}(no images)"
    top = max(counts.values()) or 1
    name_w = max(len(str(n)) for n in counts)
    count_w = max(len(str(c)) for c in counts.values())
    return "\n".join(
        f"{indent}{str(name).ljust(name_w)}  {str(c).rjust(count_w)}  {'#' * max(1 if c else 0, round(width * c / top))}"
        for name, c in counts.items()
    )
