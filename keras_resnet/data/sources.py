"""Data sources: a dataset name or folder -> class names and per-split (encoded image, label) streams.

Resolution is offline-first (`resolve_source`):

1. ``data_dir`` given: an image folder ``ROOT/<split>/<class>/<image>`` (splits
   train, test, val|validation) or ``ROOT/<class>/<image>`` (train only). With a
   dataset name too, the folder is read as a local copy of that dataset (a folder
   holding prepared TFDS data for the name is accepted as well).
2. A dataset name and no ``data_dir``: the default folder locations
   ``$KRESNET_DATA_DIR/<dataset>`` then ``../shared/datasets/<dataset>`` (relative
   to the working directory), so ``kresnet train --dataset cifar10`` works offline
   next to the shared CIFAR-10 copy.
3. TFDS data already prepared in the TFDS data dir (``tfds_data_dir`` or TFDS'
   default ``~/tensorflow_datasets``).
4. A TFDS download (when ``download`` is True).

Nothing found: `DatasetUnavailableError` listing every place tried and how to point
at a local copy; it subclasses both FileNotFoundError and ValueError so command-line
front ends print it as an expected failure, without a stack trace.

Class names come from the source: TFDS ``ClassLabel`` names, or the train split's
class folder names, sorted. Other splits are mapped by class *name*; a class folder
in test/val that train does not have is an error (never a silent mislabel).

Folder listings run `keras_resnet.data.check.quick_check` on every file (name,
size, magic bytes, header pixel count, end marker; see that module for why this is
fast): bad files are dropped with their paths in ``Source.bad_files``
(``on_bad_image="skip"``) or stop the run naming the file (``"error"``). A train
class folder left with no usable image (empty, or every file bad) is dropped with a
warning naming it; fewer than two classes left is an error. Images come out
*encoded*; decoding happens in the tf.data pipeline.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_resnet.data.check import name_problem, quick_check
from keras_resnet.data.folders import find_split_dirs, list_class_files
from keras_resnet.data.header import MAX_TRAIN_IMAGE_PIXELS, pixel_limit
from keras_resnet.textsafe import printable

log = logging.getLogger(__name__)

ENV_DATA_DIR = "KRESNET_DATA_DIR"
SHARED_DATA_DIR = Path("..") / "shared" / "datasets"


class DatasetUnavailableError(FileNotFoundError, ValueError):
    """No local copy of the dataset and no way to fetch one; the message says what was tried."""


class BadImageError(ValueError):
    """An image file that will not decode, with ``on_bad_image="error"``; the message names the file."""


@dataclass
class SplitData:
    """One split of a source.

    Attributes:
        name: "train", "val" or "test".
        labels: int64 array of class indices, one per example, in read order.
        paths: File paths (folder sources) in the same order, else None.
        tfds_split: The TFDS split name (TFDS sources), else None.
        indices: For TFDS holdouts, the example positions within ``tfds_split`` kept
            by this split (sorted), else None (all examples).
        total: For TFDS holdouts, the number of examples in ``tfds_split``.
    """

    name: str
    labels: np.ndarray
    paths: list | None = None
    tfds_split: str | None = None
    indices: np.ndarray | None = None
    total: int = 0

    def __len__(self) -> int:
        return int(len(self.labels))


@dataclass
class Source:
    """A resolved data source.

    Attributes:
        kind: "folder" or "tfds".
        name: Dataset name (TFDS name, or the folder's name).
        location: The folder, or the TFDS data dir.
        class_names: Class names in index order.
        splits: "train", "val", "test" -> `SplitData` (absent splits missing).
        native_size: ``(h, w)`` when the source has one fixed image size, else None.
        bad_files: ``(path, reason)`` of files dropped while listing.
        builder: The TFDS builder (TFDS sources).
        image_key, label_key: TFDS feature names.
    """

    kind: str
    name: str
    location: str
    class_names: list
    splits: dict
    native_size: tuple | None = None
    bad_files: list = field(default_factory=list)
    builder: object = None
    image_key: str = "image"
    label_key: str = "label"

    def encoded_dataset(self, split: str):
        """A ``tf.data.Dataset`` of ``(encoded image bytes, int64 label)`` for ``split``, in a fixed order.

        Args:
            split: "train", "val" or "test".

        Returns:
            The dataset (files are read with parallel reads; order is deterministic).
        """
        import tensorflow as tf

        data = self.splits[split]
        if self.kind == "folder":
            paths = tf.constant(data.paths, dtype=tf.string, shape=[len(data.paths)])  # typed even when empty
            ds = tf.data.Dataset.from_tensor_slices((paths, data.labels.astype(np.int64)))
            return ds.map(lambda p, y: (tf.io.read_file(p), y), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        import tensorflow_datasets as tfds

        ds = self.builder.as_dataset(
            split=data.tfds_split,
            shuffle_files=False,
            decoders={self.image_key: tfds.decode.SkipDecoding()},
            read_config=tfds.ReadConfig(try_autocache=False),
        )
        image_key, label_key = self.image_key, self.label_key
        ds = ds.map(lambda ex: (ex[image_key], tf.cast(ex[label_key], tf.int64)))
        if data.indices is not None:
            keep = np.zeros(data.total, dtype=bool)
            keep[data.indices] = True
            keep_t = tf.constant(keep)
            ds = ds.enumerate().filter(lambda i, ex: tf.gather(keep_t, i)).map(lambda i, ex: ex)
        return ds


def default_folder_candidates(dataset: str) -> list[Path]:
    """Where a folder copy of ``dataset`` is looked for when no data_dir is given.

    Returns:
        ``[$KRESNET_DATA_DIR/<dataset>, ../shared/datasets/<dataset>]`` (the first
        only when the variable is set).
    """
    candidates = []
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        candidates.append(Path(env) / dataset)
    candidates.append(SHARED_DATA_DIR / dataset)
    return candidates


def resolve_source(
    dataset: str | None,
    data_dir: str | None = None,
    tfds_data_dir: str | None = None,
    download: bool = True,
    on_bad_image: str = "skip",
) -> Source:
    """Find the data: local folder, then prepared TFDS data, then a TFDS download.

    Args:
        dataset: TFDS name, or None for a plain folder.
        data_dir: Image folder (or a folder of prepared TFDS data for ``dataset``).
        tfds_data_dir: TFDS data dir (None = TFDS default).
        download: Allow a TFDS download.
        on_bad_image: "skip" or "error" for files that will not decode.

    Returns:
        A `Source` with train (and where present val/test) splits.

    Raises:
        DatasetUnavailableError: nothing local and no download possible.
        FileNotFoundError: ``data_dir`` does not exist.
        BadImageError: a bad file with ``on_bad_image="error"``.
        ValueError: a malformed folder (naming it).
    """
    attempts = []
    if data_dir:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"data_dir {data_dir!r} is not a directory. Expected an image folder ROOT/<split>/<class>/<image>."
            )
        if dataset and _tfds_prepared(dataset, str(path)):
            return _tfds_source(dataset, str(path))
        return folder_source(path, name=dataset or path.name, on_bad_image=on_bad_image)
    if not dataset:
        raise ValueError("No data source: give a dataset name or data_dir. Received: dataset=None, data_dir=None")
    for candidate in default_folder_candidates(dataset):
        if candidate.is_dir():
            log.info("Using local folder copy of %s at %s", dataset, candidate)
            return folder_source(candidate, name=dataset, on_bad_image=on_bad_image)
        attempts.append(f"local folder {candidate} (not found)")

    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(dataset, data_dir=tfds_data_dir)
    except Exception as exc:  # DatasetNotFoundError and friends
        attempts.append(f"TFDS dataset {dataset!r} ({type(exc).__name__}: {str(exc).splitlines()[0][:150]})")
        raise DatasetUnavailableError(_unavailable_message(dataset, attempts)) from None
    where = builder.data_dir
    if builder.is_prepared():
        return _tfds_source(dataset, tfds_data_dir, builder=builder)
    attempts.append(f"prepared TFDS data in {where} (not prepared)")
    if not download:
        attempts.append("TFDS download (disabled: download=False)")
        raise DatasetUnavailableError(_unavailable_message(dataset, attempts))
    offline = _offline_reason()
    if offline:
        attempts.append(f"TFDS download (skipped: {offline})")
        raise DatasetUnavailableError(_unavailable_message(dataset, attempts))
    try:
        log.info("Downloading %s with TFDS into %s", dataset, where)
        builder.download_and_prepare()
    except Exception as exc:  # offline: connection, DNS, missing optional modules...
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        attempts.append(f"TFDS download ({type(exc).__name__}: {first})")
        raise DatasetUnavailableError(_unavailable_message(dataset, attempts)) from None
    return _tfds_source(dataset, tfds_data_dir, builder=builder)


NETWORK_PROBE = ("storage.googleapis.com", 443)


def _offline_reason(timeout: float = 3.0) -> str | None:
    """Why a download cannot work (no route to TFDS' GCS host), or None when online.

    A 3-second probe saves minutes of TFDS download retries on an offline machine.
    """
    import socket

    host, port = NETWORK_PROBE
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"no network: cannot reach {host}:{port} ({exc.strerror or exc})"


def _unavailable_message(dataset: str, attempts: list) -> str:
    tried = "\n".join(f"  - {a}" for a in attempts)
    return (
        f"Dataset {dataset!r} is not available offline and could not be downloaded. Tried:\n{tried}\n"
        f"Point at a local copy with --data-dir (e.g. --data-dir ../shared/datasets/{dataset}, a folder "
        f"<split>/<class>/<image>), set {ENV_DATA_DIR} to a folder holding {dataset}/, or give "
        "--set data.tfds_data_dir=DIR for prepared TFDS data."
    )


def _tfds_prepared(dataset: str, data_dir: str) -> bool:
    # TFDS keeps prepared data in DATA_DIR/<dataset>/<version>/; without that folder
    # (an image folder, say) there is nothing to ask TFDS, which would only warn.
    if not (Path(data_dir) / dataset).is_dir():
        return False
    try:
        import tensorflow_datasets as tfds

        return bool(tfds.builder(dataset, data_dir=data_dir).is_prepared())
    except Exception:
        return False


def folder_source(root: str | os.PathLike, name: str | None = None, on_bad_image: str = "skip") -> Source:
    """An image-folder source, with class names from train's sorted class folders.

    Args:
        root: ``ROOT/<split>/<class>/<image>`` or ``ROOT/<class>/<image>``.
        name: Dataset name to report (default: the folder name).
        on_bad_image: "skip" drops files failing `quick_check` (listed in
            ``bad_files`` and logged); "error" raises `BadImageError` naming the first.

    Returns:
        A `Source` of kind "folder".

    Raises:
        ValueError: no train split, no usable training image ("no usable training
            images in ..."), fewer than two classes with usable images, or a test/val
            class that train does not have.
    """
    root = Path(root)
    split_dirs = find_split_dirs(root)
    if "train" not in split_dirs:
        raise ValueError(f"{root} has no train/ folder. Received splits: {sorted(split_dirs)}")
    max_pixels = pixel_limit(MAX_TRAIN_IMAGE_PIXELS)
    bad_files = []

    def usable(files: list) -> list:
        kept = []
        for path in files:
            reason = quick_check(path, max_pixels)
            if reason is None:
                kept.append(path)
            elif on_bad_image == "error":
                raise BadImageError(
                    f"Cannot use image {printable(path)}: {reason}. Fix or remove it, or set data.on_bad_image: skip."
                )
            else:
                bad_files.append((path, reason))
        return kept

    found = {split: list_class_files(d) for split, d in split_dirs.items()}
    for split, per_class in found.items():
        for cls in per_class:
            if name_problem(cls):
                raise ValueError(
                    f"Class folder name is not valid UTF-8: {printable(split_dirs[split] / cls)}. "
                    "Class names become labels.txt lines; rename the folder."
                )
    listings = {split: {cls: usable(files) for cls, files in per_class.items()} for split, per_class in found.items()}
    train_dir = split_dirs["train"]
    class_names = sorted(c for c, files in listings["train"].items() if files)
    if bad_files:
        log.warning("Skipping %d unusable image file(s):", len(bad_files))
        for path, reason in bad_files:
            log.warning("  %s: %s", printable(path), reason)
    for cls, files in listings["train"].items():
        if not files:
            unusable = len(found["train"][cls])
            why = f"all {unusable} image file(s) unusable" if unusable else "no images"
            log.warning("Class folder dropped (%s): %s", why, printable(train_dir / cls))
    if not class_names:
        raise ValueError(
            f"no usable training images in {printable(train_dir)} "
            f"({len(bad_files)} unusable file(s) skipped, class folders: {', '.join(map(printable, listings['train'])) or 'none'}). "
            "Expected ROOT/train/<class>/<image> with JPEG/PNG/GIF/BMP images."
        )
    if len(class_names) < 2:
        dropped = sorted(c for c, files in listings["train"].items() if not files)
        raise ValueError(
            f"{printable(train_dir)} has usable images of only one class ({printable(class_names[0])}); a classifier "
            "needs two or more classes"
            + (f" (dropped for having no usable images: {', '.join(map(printable, dropped))})" if dropped else "")
            + ". Add a folder of images per class."
        )
    index = {c: i for i, c in enumerate(class_names)}
    splits = {}
    for split, per_class in listings.items():
        extra = sorted(c for c, files in per_class.items() if files and c not in index)
        if extra:
            raise ValueError(
                f"{printable(split_dirs[split])} has class folders that train does not (or that have no usable train "
                f"images): {[printable(c) for c in extra]}. Train classes: {[printable(c) for c in class_names]}. "
                "Rename or remove them so labels cannot be mixed up."
            )
        paths, labels = [], []
        for cls, files in per_class.items():
            if files:
                paths.extend(files)
                labels.extend([index[cls]] * len(files))
        if split != "train" and not paths:
            log.warning("The %s split has no usable images; it is left out: %s", split, printable(split_dirs[split]))
            continue
        splits[split] = SplitData(split, np.asarray(labels, dtype=np.int64), paths=paths)
        missing = sorted(c for c in class_names if not per_class.get(c))
        if split != "train" and missing:
            log.warning(
                "The %s split has no images of %d train class(es): %s (its metrics cover the other classes only)",
                split, len(missing), ", ".join(map(printable, missing)),
            )
    native = _first_image_size(splits["train"].paths)
    return Source("folder", name or root.name, str(root), class_names, splits, native_size=native, bad_files=bad_files)


def _first_image_size(paths: list) -> tuple | None:
    if not paths:
        return None
    try:
        from PIL import Image

        with Image.open(paths[0]) as im:
            return (im.height, im.width)
    except Exception:  # size is only a default; the pipeline resizes anyway
        return None


def _tfds_source(dataset: str, data_dir: str | None, builder=None) -> Source:
    import tensorflow_datasets as tfds

    builder = builder or tfds.builder(dataset, data_dir=data_dir)
    features = builder.info.features
    image_key, label_key = _feature_keys(dataset, builder)
    class_names = list(features[label_key].names)
    available = list(builder.info.splits.keys())
    tfds_names = {"train": "train", "test": "test"}
    for candidate in ("validation", "val", "valid"):
        if candidate in available:
            tfds_names["val"] = candidate
            break
    if "train" not in available:
        raise ValueError(f"TFDS dataset {dataset!r} has no 'train' split. Received splits: {available}")
    source = Source(
        "tfds", dataset, str(builder.data_dir), class_names, {}, builder=builder,
        image_key=image_key, label_key=label_key,
    )
    shape = features[image_key].shape
    if shape[0] and shape[1]:
        source.native_size = (int(shape[0]), int(shape[1]))
    for split, tfds_split in tfds_names.items():
        if tfds_split in available:
            labels = _tfds_labels(builder, tfds_split, image_key, label_key)
            source.splits[split] = SplitData(split, labels, tfds_split=tfds_split)
    return source


def _feature_keys(dataset: str, builder) -> tuple[str, str]:
    import tensorflow_datasets as tfds

    features = builder.info.features
    keys = builder.info.supervised_keys
    if keys and len(keys) == 2 and all(isinstance(k, str) for k in keys):
        image_key, label_key = keys
    else:
        images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
        labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
        if not images or not labels:
            raise ValueError(
                f"TFDS dataset {dataset!r} is not an image classification dataset "
                f"(needs an Image and a ClassLabel feature). Received features: {list(features.keys())}"
            )
        image_key, label_key = images[0], labels[0]
    if not isinstance(features[image_key], tfds.features.Image) or not isinstance(features[label_key], tfds.features.ClassLabel):
        raise ValueError(
            f"TFDS dataset {dataset!r}: supervised keys {keys} are not (Image, ClassLabel). "
            "Expected an image classification dataset."
        )
    return image_key, label_key


def _tfds_labels(builder, split: str, image_key: str, label_key: str) -> np.ndarray:
    import tensorflow as tf
    import tensorflow_datasets as tfds

    ds = builder.as_dataset(split=split, shuffle_files=False, decoders={image_key: tfds.decode.SkipDecoding()})
    ds = ds.map(lambda ex: tf.cast(ex[label_key], tf.int64)).batch(8192)
    parts = [batch.numpy() for batch in ds]
    return np.concatenate(parts) if parts else np.zeros([0], np.int64)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split example positions into (keep, holdout), stratified by class, seeded.

    Each class gives ``round(fraction * count)`` examples to the holdout (at least one
    when the class has two or more examples and fraction > 0).

    Args:
        labels: int class index per example.
        fraction: Holdout fraction in [0, 1).
        seed: Random seed; the same seed gives the same split.

    Returns:
        Two sorted int arrays of positions: kept (train) and held out (validation).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        n = int(round(fraction * len(members)))
        if fraction > 0 and n == 0 and len(members) >= 2:
            n = 1
        n = min(n, len(members) - 1) if len(members) > 1 else 0
        held.append(rng.permutation(members)[:n])
    held = np.sort(np.concatenate(held)) if held else np.zeros([0], np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[held] = False
    return np.flatnonzero(mask), held


def with_holdout(source: Source, fraction: float, seed: int) -> Source:
    """Give ``source`` a "val" split: its own if it has one, else a stratified holdout of train.

    Args:
        source: A resolved source (modified in place and returned).
        fraction: Holdout fraction (0 = no validation split).
        seed: Seed of the holdout.

    Returns:
        ``source``.
    """
    if "val" in source.splits or fraction <= 0:
        return source
    train = source.splits["train"]
    keep, held = stratified_holdout(train.labels, fraction, seed)
    if len(held) == 0:
        return source
    if source.kind == "folder":
        source.splits["train"] = SplitData("train", train.labels[keep], paths=[train.paths[i] for i in keep])
        source.splits["val"] = SplitData("val", train.labels[held], paths=[train.paths[i] for i in held])
    else:
        source.splits["train"] = SplitData("train", train.labels[keep], tfds_split=train.tfds_split, indices=keep, total=len(train))
        source.splits["val"] = SplitData("val", train.labels[held], tfds_split=train.tfds_split, indices=held, total=len(train))
    return source
