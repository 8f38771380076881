"""Reading image files for prediction and for export parity checks.

Files are decoded with `keras_resnet.data.preprocess.decode_image` (the one decoder:
JPEG/PNG/BMP/GIF, grayscale/RGBA/palette -> RGB uint8), one file at a time so a bad
file is reported by path and does not stop the others. Each file's header is read
first (`keras_resnet.data.header`): a file that is not one of those formats, or
declares more pixels than `keras_resnet.data.header.MAX_IMAGE_PIXELS` (Pillow's
limit; ``KRESNET_MAX_IMAGE_PIXELS`` overrides it), is refused before the decoder sees
it, so a small file cannot make the decoder allocate gigabytes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_resnet.data.check import decode_bytes
from keras_resnet.data.folders import is_image_name
from keras_resnet.data.header import DEFAULT_LIMIT, MAX_IMAGE_PIXELS, header_problem, resolve_limit
from keras_resnet.textsafe import printable

log = logging.getLogger(__name__)


@dataclass
class LoadedImage:
    """One image file: its pixels, or the reason it could not be read.

    Attributes:
        path: The file.
        pixels: uint8 array [H, W, 3], or None when reading failed.
        error: Why the file could not be read (None on success).
    """

    path: Path
    pixels: np.ndarray | None = None
    error: str | None = None


def list_image_files(paths) -> list[Path]:
    """Expand files and directories into a list of image files.

    Directories are searched recursively for files with an image extension
    (``.jpg .jpeg .png .bmp .gif``, any case), in sorted order; files named
    explicitly are kept whatever their extension, and so are missing paths: both
    are reported by `load_images` as unreadable rather than stopping the rest.

    Args:
        paths: Iterable of file or directory paths.

    Returns:
        Image file paths in order, without duplicates.

    Example:
        >>> list_image_files(["photos/", "cat.jpg"])
    """
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and is_image_name(p.name))
            )
        else:  # a file, or a missing path: reported when it is read
            files.append(path)
    seen: set[Path] = set()
    unique = []
    for f in files:
        if f not in seen:
            seen.add(f)
            unique.append(f)
    return unique


def read_image(path: str | os.PathLike, max_pixels=DEFAULT_LIMIT) -> np.ndarray:
    """Decode one image file into RGB uint8 pixels, after checking its header.

    Args:
        path: An image file (JPEG, PNG, BMP or GIF).
        max_pixels: Refuse images whose header declares more pixels (None: no limit);
            default ``pixel_limit(MAX_IMAGE_PIXELS)`` (see `keras_resnet.data.header`).

    Returns:
        uint8 array [H, W, 3].

    Raises:
        ValueError: naming the file (control characters escaped) and a short reason
            when it cannot be read, is not an image, is too large or cannot be decoded.
    """
    path = Path(path)
    shown = printable(path)
    max_pixels = resolve_limit(max_pixels, MAX_IMAGE_PIXELS)
    if not path.is_file():
        raise ValueError(f"No such image file: {shown}")
    try:
        reason = header_problem(path, max_pixels)
        data = None if reason else path.read_bytes()
    except OSError as err:
        raise ValueError(f"Cannot read image {shown}: {err.strerror or err}") from None
    if reason:
        raise ValueError(f"Cannot use image {shown}: {reason}")
    try:
        pixels, notes = decode_bytes(data)
    except ValueError as err:
        raise ValueError(f"Cannot decode image {shown}: {err}") from None
    if notes:
        log.warning("%s: damaged image, decoded anyway (%s)", shown, notes)
    if pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise ValueError(f"Cannot decode image {shown}: expected RGB pixels, got shape {pixels.shape}")
    return pixels.astype(np.uint8, copy=False)


def load_images(files) -> list[LoadedImage]:
    """Read every file, recording an error for each one that cannot be decoded.

    Args:
        files: Image file paths.

    Returns:
        One `LoadedImage` per file, in order.

    Raises:
        ValueError: ``KRESNET_MAX_IMAGE_PIXELS`` is set to something that is not a number.
    """
    max_pixels = resolve_limit(DEFAULT_LIMIT, MAX_IMAGE_PIXELS)
    loaded = []
    for f in files:
        try:
            loaded.append(LoadedImage(Path(f), pixels=read_image(f, max_pixels)))
        except (ValueError, OSError) as err:
            loaded.append(LoadedImage(Path(f), error=str(err)))
    return loaded


def load_labelled_folder(
    folder: str | os.PathLike, class_names: list[str] | None = None, count: int | None = None
) -> tuple[list[np.ndarray], list[int] | None]:
    """Images (and labels, when sub-folders are class names) from a folder.

    ``folder/<class>/*.jpg`` gives labels by matching ``<class>`` against
    ``class_names``; a flat folder (or one whose sub-folders are not all class
    names) gives unlabelled images. Files that cannot be decoded are skipped.
    With ``count`` the images are taken round-robin over classes so a small
    sample still covers every class.

    Args:
        folder: The image folder.
        class_names: The model's labels (``labels.txt``), in index order.
        count: At most this many images (None: all).

    Returns:
        (list of uint8 [H, W, 3] arrays, list of class indices or None).

    Raises:
        FileNotFoundError: if ``folder`` is not a directory.
        ValueError: if it holds no readable image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"No such image folder: {folder}")
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir())
    index = {name: i for i, name in enumerate(class_names or [])}
    labelled = bool(subdirs) and all(d.name in index for d in subdirs)
    if labelled:
        groups = [[(f, index[d.name]) for f in list_image_files([d])] for d in subdirs]
        ordered = [item for rank in range(max(map(len, groups), default=0)) for g in groups if rank < len(g) for item in [g[rank]]]
    else:
        ordered = [(f, None) for f in list_image_files([folder])]
    max_pixels = resolve_limit(DEFAULT_LIMIT, MAX_IMAGE_PIXELS)
    images, labels = [], []
    for f, label in ordered:
        if count is not None and len(images) >= count:
            break
        try:
            images.append(read_image(f, max_pixels))
        except ValueError:
            continue
        labels.append(label)
    if not images:
        raise ValueError(f"No readable image (jpg/jpeg/png/bmp/gif) in {folder}.")
    return images, (labels if labelled else None)
