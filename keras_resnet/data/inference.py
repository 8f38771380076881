"""Un-augmented streams of a trained model's inputs: evaluation splits, parity and calibration images.

None of them normalises (the model does) and none reads the train split unless it
is the one asked for: `evaluation_dataset` for `kresnet evaluate`,
`inference_images` for export parity checks, `representative_images` for int8
calibration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from keras_resnet.data.decode import dataset_options, decode_resize, resolve, resolve_image_size
from keras_resnet.data.options import DataConfig, validate_data_config
from keras_resnet.data.sources import Source


def stable_size(decoded, config: DataConfig, listed: int) -> int | None:
    """How many examples ``decoded`` yields on every pass, when that is known for sure.

    Without in-graph skipping it is the listed count. With ``on_bad_image="skip"`` a
    file may still be dropped in the graph, so the examples are counted once; that
    pass also fills the cache, which every later pass reads (the first validation
    gets faster by as much). With ``cache="none"`` a pass could differ: None.
    """
    import tensorflow as tf

    if config.on_bad_image != "skip":
        return listed
    if config.cache == "none":
        return None
    return int(decoded.batch(1024).reduce(tf.constant(0, tf.int64), lambda n, batch: n + tf.cast(tf.shape(batch[1])[0], tf.int64)))


def eval_pipeline(decoded, config: DataConfig, k: int, size: int | None = None):
    """Batched ``(uint8 images, one-hot labels)``; with ``size`` (examples), a known cardinality for Keras."""
    import tensorflow as tf

    def finish(images, y):
        return images, tf.one_hot(y, k, dtype=tf.float32)

    ds = decoded.batch(config.batch_size).map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if size is not None:
        ds = ds.apply(tf.data.experimental.assert_cardinality(math.ceil(size / config.batch_size)))
    return ds.prefetch(tf.data.AUTOTUNE).with_options(dataset_options(True))


@dataclass
class EvaluationData:
    """One split to evaluate on, as `evaluation_dataset` builds it.

    Attributes:
        dataset: Batched ``(uint8 images [N, h, w, 3], one-hot labels)``.
        class_names: The source's classes in label order.
        size: Examples listed in the split.
        name: The source's name (dataset or folder).
        paths: The image files in the dataset's order (folder sources), else None
            (TFDS: an example is known by its position). With ``on_bad_image="skip"``
            a listed file that fails to decode is dropped from the dataset but not
            from ``paths``: compare ``size``/``len(paths)`` with the examples seen.
    """

    dataset: object
    class_names: list
    size: int
    name: str
    paths: list | None = None


def evaluation_dataset(config: DataConfig, split: str, image_size, seed: int = 0) -> EvaluationData:
    """One split, decoded and resized to ``image_size``, un-normalised, for a trained model.

    Only that split's images are read: a trained model carries its preprocessing, so
    nothing is computed from the train split (a validation holdout lists train's
    files to pick the same held-out ones, and decodes only those).

    Args:
        config: Data options (``batch_size``, ``validation_fraction``, bad-image policy).
        split: "test" or "val".
        image_size: ``(h, w)`` the model takes.
        seed: The run's seed (picks the same validation holdout as training did).

    Returns:
        An `EvaluationData`.

    Raises:
        ValueError: the source has no such split.
    """
    validate_data_config(config)
    source = resolve(config, seed)
    if split not in source.splits:
        raise ValueError(f"Dataset {source.name!r} has no {split!r} split. Received splits: {sorted(source.splits)}")
    size = tuple(int(v) for v in image_size)
    decoded = _plain(source, split, size, on_bad_image=config.on_bad_image)
    dataset = eval_pipeline(decoded, config, len(source.class_names))
    paths = source.splits[split].paths
    return EvaluationData(dataset, list(source.class_names), len(source.splits[split]), source.name,
                          paths=[str(p) for p in paths] if paths is not None else None)


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
    source = _sample_split(resolve(config, seed), "train", count, seed)
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
    source = resolve(config, seed)
    if split not in source.splits:
        raise ValueError(f"The data source has no {split!r} split. Received splits: {sorted(source.splits)}")
    source = _sample_split(source, split, count, seed)
    return _plain(source, split, resolve_image_size(config, source))


def _plain(source: Source, split: str, size, on_bad_image: str = "skip"):
    import tensorflow as tf

    ds = source.encoded_dataset(split).map(decode_resize(size), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if on_bad_image == "skip":
        ds = ds.ignore_errors(log_warning=True)
    return ds.prefetch(tf.data.AUTOTUNE)
