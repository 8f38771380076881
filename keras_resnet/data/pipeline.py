"""tf.data input pipelines: `build_datasets` for training, plus un-normalised image streams for export.

Per split the pipeline is (graph ops only, no Python per image)::

    list files / TFDS records -> read + decode + resize (parallel map) -> [skip bad]
      -> cache decoded uint8 (memory | disk | none)
      -> train only: seeded shuffle (or class-balanced resampling) -> batch
         -> augment the whole batch (augment.py) -> one-hot, normalise (preprocess.py)
      -> val/test: batch -> one-hot, normalise
      -> prefetch

Per-image work is only decode + resize, and it is cached, so from the second epoch
the pipeline does a memory copy, a shuffle and a handful of vectorised batch ops.

* Normalisation "dataset": per-channel mean/std of the *train* split are computed
  once in `build_datasets` (one pass, which also fills the memory cache) and stored
  in ``Datasets.preprocessing``; the trainer saves them as ``preprocessing.json``.
* Class balance: "weights" adds per-example weights ``N / (K * count[class])`` as a
  third element (train only); "oversample" draws classes uniformly from per-class
  streams of the cached train data (``tf.data.Dataset.sample_from_datasets``), one
  epoch = the train size. Validation and test are never rebalanced or augmented.
* Bad images: files failing the listing check are dropped (or stop the run) in
  `keras_resnet.data.sources`; with ``on_bad_image="skip"`` a decode failure that
  slipped past it is also dropped in the graph (``ignore_errors``, logged by TF).
* ``deterministic``: parallel maps keep element order; shuffling and augmentation
  are seeded either way.

Example:
    >>> data = build_datasets(DataConfig(dataset="cifar10", data_dir="../shared/datasets/cifar10"), seed=0)
    >>> model.fit(data.train, validation_data=data.val, epochs=2)
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_resnet.data.check import format_histogram
from keras_resnet.data.options import DataConfig, validate_data_config
from keras_resnet.data.preprocess import decode_image, make_spec, normalize, resize_for_eval
from keras_resnet.data.sources import Source, resolve_source, with_holdout

log = logging.getLogger(__name__)

DEFAULT_IMAGE_SIZE = 224
DEFAULT_CACHE_DIR = Path("~/.cache/kresnet")


@dataclass
class Datasets:
    """What `build_datasets` returns.

    Attributes:
        train, val, test: Batched ``tf.data.Dataset`` of ``(images, labels)`` or, with
            ``class_balance="weights"``, ``(images, labels, sample_weights)`` (train
            only); images float32 NHWC normalised, labels one-hot float32. ``val`` /
            ``test`` are None when the source has no such split.
        class_names: Class names in label order.
        preprocessing: The preprocessing spec (see `keras_resnet.data.preprocess`).
        image_size: ``(h, w)`` of the images.
        split_sizes: split -> number of examples (after dropping bad files).
        class_counts: split -> {class name: count}.
        fingerprint: Identity of the data (source, location, sizes, hash of the file
            list/labels, seed), recorded with a run.
        bad_files: ``(path, reason)`` of files skipped while listing.
    """

    train: object
    val: object
    test: object
    class_names: list
    preprocessing: dict
    image_size: tuple
    split_sizes: dict
    class_counts: dict
    fingerprint: dict
    bad_files: list = field(default_factory=list)


def build_datasets(config: DataConfig, seed: int = 0) -> Datasets:
    """Build the train/val/test pipelines described by ``config``.

    Args:
        config: Data options.
        seed: Seed for the validation holdout, shuffling and augmentation.

    Returns:
        A `Datasets`.

    Raises:
        ValueError: bad options (before TensorFlow starts work), malformed folders.
        DatasetUnavailableError: the dataset is neither local nor downloadable.
        BadImageError: an undecodable file with ``on_bad_image="error"``.
    """
    validate_data_config(config)
    source = _resolve(config, seed)
    image_size = resolve_image_size(config, source)
    k = len(source.class_names)
    counts = {split: _histogram(data.labels, source.class_names) for split, data in source.splits.items()}
    log.info("Class histogram of train (%s, %d images):\n%s", source.name, len(source.splits["train"]), format_histogram(counts["train"]))
    fingerprint = _fingerprint(source, config, seed, image_size)

    from keras_resnet.data import augment as augment_lib

    base_size = augment_lib.base_size(config.augment, image_size)
    train_base = _decoded(source, "train", base_size, config, fingerprint, deterministic=config.deterministic)
    if config.normalization == "dataset":
        mean, std = channel_stats(train_base)
        spec = make_spec("dataset", image_size, mean, std)
    else:
        spec = make_spec(config.normalization, image_size)

    train = _train_pipeline(train_base, source, config, spec, image_size, seed, k)
    val = test = None
    if "val" in source.splits:
        val = _eval_pipeline(_decoded(source, "val", image_size, config, fingerprint, deterministic=True), config, spec, k)
    if "test" in source.splits:
        test = _eval_pipeline(_decoded(source, "test", image_size, config, fingerprint, deterministic=True), config, spec, k)
    return Datasets(
        train=train,
        val=val,
        test=test,
        class_names=list(source.class_names),
        preprocessing=spec,
        image_size=tuple(image_size),
        split_sizes={split: len(data) for split, data in source.splits.items()},
        class_counts=counts,
        fingerprint=fingerprint,
        bad_files=list(source.bad_files),
    )


def _resolve(config: DataConfig, seed: int) -> Source:
    source = resolve_source(
        config.dataset, config.data_dir, tfds_data_dir=config.tfds_data_dir, download=config.download, on_bad_image=config.on_bad_image
    )
    return with_holdout(source, config.validation_fraction, seed)


def resolve_image_size(config: DataConfig, source: Source) -> tuple[int, int]:
    """``(h, w)``: ``config.image_size``, else the source's native size, else 224.

    Args:
        config: Data options.
        source: The resolved source.

    Returns:
        The image size.
    """
    if config.image_size:
        return (int(config.image_size), int(config.image_size))
    if source.native_size:
        return tuple(int(v) for v in source.native_size)
    return (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)


def _histogram(labels: np.ndarray, class_names: list) -> dict:
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(class_names))
    return {name: int(c) for name, c in zip(class_names, counts)}


def _fingerprint(source: Source, config: DataConfig, seed: int, image_size) -> dict:
    digest = hashlib.sha256()
    for split in sorted(source.splits):
        data = source.splits[split]
        digest.update(split.encode())
        digest.update(np.asarray(data.labels, np.int64).tobytes())
        if data.paths is not None:
            digest.update("\n".join(data.paths).encode())
        if data.indices is not None:
            digest.update(np.asarray(data.indices, np.int64).tobytes())
    return {
        "source": source.kind,
        "name": source.name,
        "location": str(source.location),
        "num_classes": len(source.class_names),
        "split_sizes": {split: len(data) for split, data in source.splits.items()},
        "validation": "split" if source.splits.get("val") is not None and source.splits["val"].paths is None and source.splits["val"].indices is None else f"holdout {config.validation_fraction} seed {seed}",
        "image_size": list(image_size),
        "bad_files": len(source.bad_files),
        "sha256": digest.hexdigest()[:16],
    }


def _decode_resize(size):
    import tensorflow as tf

    size = tuple(int(v) for v in size)

    def fn(encoded, label):
        image = decode_image(encoded)
        shape = tf.shape(image)
        same = tf.logical_and(tf.equal(shape[0], size[0]), tf.equal(shape[1], size[1]))
        image = tf.cond(
            same,
            lambda: image,
            lambda: tf.cast(tf.clip_by_value(tf.round(resize_for_eval(image, size)), 0.0, 255.0), tf.uint8),
        )
        image = tf.ensure_shape(image, [size[0], size[1], 3])
        return image, label

    return fn


def _decoded(source: Source, split: str, size, config: DataConfig, fingerprint: dict, deterministic: bool = True):
    """(uint8 image at ``size``, int64 label) for one split, decoded in parallel and cached."""
    import tensorflow as tf

    ds = source.encoded_dataset(split)
    ds = ds.map(_decode_resize(size), num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if config.on_bad_image == "skip":
        ds = ds.ignore_errors(log_warning=True)
    if config.cache == "memory":
        ds = ds.cache()
    elif config.cache == "disk":
        cache_dir = Path(config.cache_dir or DEFAULT_CACHE_DIR).expanduser()
        cache_dir.mkdir(parents=True, exist_ok=True)
        key = f"{fingerprint['name']}-{fingerprint['sha256']}-{split}-{size[0]}x{size[1]}"
        ds = ds.cache(str(cache_dir / key))
    return ds


def channel_stats(decoded) -> tuple[list[float], list[float]]:
    """Per-channel RGB mean and std (0..255 scale) over a dataset of ``(uint8 image, label)``.

    One pass in the graph (float64 sums); with a memory cache upstream the pass also
    fills the cache, so the first training epoch reads from memory.

    Args:
        decoded: Unbatched ``(image [h, w, 3] uint8, label)`` dataset.

    Returns:
        ``(mean, std)``, three floats each.
    """
    import tensorflow as tf

    def step(state, batch):
        images, _ = batch
        x = tf.reshape(tf.cast(images, tf.float64), [-1, 3])
        return (state[0] + tf.cast(tf.shape(x)[0], tf.float64), state[1] + tf.reduce_sum(x, 0), state[2] + tf.reduce_sum(x * x, 0))

    zero = tf.zeros([3], tf.float64)
    n, s, ss = decoded.batch(1024).reduce((tf.constant(0.0, tf.float64), zero, zero), step)
    n = max(float(n.numpy()), 1.0)
    mean = s.numpy() / n
    var = np.maximum(ss.numpy() / n - mean**2, 0.0)
    return [float(v) for v in mean], [float(v) for v in np.sqrt(var)]


def class_weights(counts, num_classes: int) -> np.ndarray:
    """Balanced per-class weights ``N / (K * count)`` (0 for absent classes).

    Args:
        counts: Per-class example counts (sequence of ints, index order).
        num_classes: K.

    Returns:
        float32 array ``[K]``; the count-weighted mean weight is 1.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    present = max(int((counts > 0).sum()), 1)
    with np.errstate(divide="ignore"):
        weights = np.where(counts > 0, total / (present * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


def _options(deterministic: bool):
    import tensorflow as tf

    options = tf.data.Options()
    options.deterministic = deterministic
    options.experimental_optimization.map_parallelization = True
    return options


def _train_pipeline(base, source: Source, config: DataConfig, spec: dict, image_size, seed: int, k: int):
    import tensorflow as tf

    from keras_resnet.data import augment as augment_lib

    labels = source.splits["train"].labels
    n = len(labels)
    counts = np.bincount(labels, minlength=k)
    buffer = min(config.shuffle_buffer or n, max(n, 1))
    if config.class_balance == "oversample":
        present = [c for c in range(k) if counts[c] > 0]
        streams = [
            base.filter(lambda x, y, c=c: tf.equal(y, c))
            .shuffle(max(1, min(buffer, int(counts[c]))), seed=seed + 1 + c, reshuffle_each_iteration=True)
            .repeat()
            for c in present
        ]
        ds = tf.data.Dataset.sample_from_datasets(
            streams,
            weights=[1.0 / len(present)] * len(present),
            seed=seed,
            stop_on_empty_dataset=False,
            rerandomize_each_iteration=True,
        )
        ds = ds.take(n)
    else:
        ds = base.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(config.batch_size)
    batch_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    ds = tf.data.Dataset.zip((ds, batch_seeds))

    augmenter = augment_lib.BatchAugmenter(config.augment, image_size, seed) if augment_lib.is_active(config.augment, image_size) else None
    weight_table = tf.constant(class_weights(counts, k)) if config.class_balance == "weights" else None
    resize_needed = tuple(augment_lib.base_size(config.augment, image_size)) != tuple(image_size)

    def finish(batch, batch_seed):
        images, y = batch
        images = tf.cast(images, tf.float32)
        onehot = tf.one_hot(y, k, dtype=tf.float32)
        weights = tf.gather(weight_table, y) if weight_table is not None else None
        if augmenter is not None:
            images, onehot, weights = augmenter(images, onehot, weights, batch_seed)
        elif resize_needed:
            images = resize_for_eval(images, image_size)
        images = normalize(images, spec)
        return (images, onehot) if weights is None else (images, onehot, weights)

    ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=config.deterministic)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options(config.deterministic))


def _eval_pipeline(decoded, config: DataConfig, spec: dict, k: int):
    import tensorflow as tf

    def finish(images, y):
        return normalize(tf.cast(images, tf.float32), spec), tf.one_hot(y, k, dtype=tf.float32)

    ds = decoded.batch(config.batch_size).map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options(True))


def _sample_split(source: Source, split: str, count: int | None, seed: int) -> Source:
    """Restrict ``split`` to ``count`` random examples (all classes mixed), in file order."""
    from keras_resnet.data.sources import SplitData

    data = source.splits[split]
    if count is None or count >= len(data):
        return source
    chosen = np.sort(np.random.default_rng(seed).permutation(len(data))[:count])
    if data.paths is not None:
        source.splits[split] = SplitData(split, data.labels[chosen], paths=[data.paths[i] for i in chosen])
    else:
        base = data.indices if data.indices is not None else np.arange(len(data))
        total = data.total if data.indices is not None else len(data)
        source.splits[split] = SplitData(split, data.labels[chosen], tfds_split=data.tfds_split, indices=base[chosen], total=total)
    return source


def representative_images(config: DataConfig, count: int, seed: int = 0):
    """Un-augmented, un-normalised uint8 training images (for int8 calibration).

    Images are a seeded random sample of the train split (after the validation
    holdout), decoded and resized exactly as for evaluation.

    Args:
        config: The run's data options.
        count: Number of images.
        seed: Sampling seed (also the holdout seed; training's default is 0).

    Returns:
        Unbatched ``tf.data.Dataset`` of uint8 ``[h, w, 3]`` images.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1. Received: count={count!r}")
    validate_data_config(config)
    source = _sample_split(_resolve(config, seed), "train", count, seed)
    size = resolve_image_size(config, source)
    return _plain(source, "train", size).map(lambda x, y: x)


def inference_images(config: DataConfig, split: str = "test", count: int | None = None, seed: int = 0):
    """Un-normalised uint8 images with integer labels, for export parity and accuracy checks.

    Args:
        config: The run's data options.
        split: "test", "val" or "train".
        count: Number of examples (a seeded random sample), or None for all, in order.
        seed: Sampling (and holdout) seed.

    Returns:
        Unbatched ``tf.data.Dataset`` of ``(uint8 [h, w, 3], int64 label)``.

    Raises:
        ValueError: if the source has no such split.
    """
    validate_data_config(config)
    source = _resolve(config, seed)
    if split not in source.splits:
        raise ValueError(f"The data source has no {split!r} split. Received splits: {sorted(source.splits)}")
    source = _sample_split(source, split, count, seed)
    return _plain(source, split, resolve_image_size(config, source))


def _plain(source: Source, split: str, size):
    import tensorflow as tf

    ds = source.encoded_dataset(split).map(_decode_resize(size), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.ignore_errors(log_warning=True).prefetch(tf.data.AUTOTUNE)


def describe(datasets: Datasets) -> str:
    """A short text summary: sizes, classes and the train class histogram.

    Returns:
        Multi-line text for logs and the command line.
    """
    lines = [
        f"{datasets.fingerprint.get('name')} ({datasets.fingerprint.get('source')}: {datasets.fingerprint.get('location')})",
        "splits: " + ", ".join(f"{k}={v}" for k, v in datasets.split_sizes.items()),
        f"image size: {datasets.image_size[0]}x{datasets.image_size[1]}, normalization: {datasets.preprocessing['mode']}",
        "train class histogram:",
        format_histogram(datasets.class_counts.get("train", {})),
    ]
    if datasets.bad_files:
        lines.append(f"skipped {len(datasets.bad_files)} undecodable file(s): " + ", ".join(p for p, _ in datasets.bad_files[:5]))
    return "\n".join(lines)


__all__ = [
    "Datasets",
    "build_datasets",
    "channel_stats",
    "class_weights",
    "describe",
    "inference_images",
    "representative_images",
    "resolve_image_size",
]
