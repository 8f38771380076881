"""tf.data input pipelines for training: `build_datasets`.

Modules, one job each: this one assembles the train/val/test datasets of a run;
`keras_resnet.data.stream` is the training stream (`TrainStream`, resumable epochs);
`keras_resnet.data.inference` the un-augmented streams a trained model is fed
(evaluation split, export parity and calibration images); `keras_resnet.data.decode`
the source resolution and decode + resize they share. The names below stay
importable from here.

Per split the pipeline is (graph ops only, no Python per image)::

    list files / TFDS records -> read + decode + resize (parallel map) -> [skip bad]
      -> cache decoded uint8 (memory | disk | none)
      -> train only, per epoch e: shuffle (or class-balanced resampling) seeded by
         (seed, e) -> batch -> augment the whole batch (augment.py) with a seed from
         (seed, e, batch index) -> one-hot
      -> val/test: batch -> one-hot (cached: without tf.data's autotune thread,
         `without_autotune_thread`)
      -> prefetch

Images leave the pipeline un-normalised: the model normalises them in its first
layer (`keras_resnet.preprocessing`). They stay uint8 whenever the augmentation
keeps pixels exact (pad-crop, flips, cutmix: the CIFAR recipe; val/test always),
a quarter of the bytes of float32 to move to an accelerator; other augmentations
(resized crops, rotation, zoom, erasing, mixup) deliver float32 on the 0..255 scale.

Per-image work is only decode + resize, and it is cached, so from the second epoch
the pipeline does a memory copy, a shuffle and a handful of vectorised batch ops.

* Training epochs are a pure function of (seed, epoch): `Datasets.train_from_epoch`
  gives the endless stream of epochs ``start, start + 1, ...`` (``steps_per_epoch``
  batches each), so a run resumed at epoch k sees exactly the batches an
  uninterrupted run sees from epoch k on. ``Datasets.train`` is one epoch with a
  known cardinality, a fresh (seeded) epoch on each iteration, for callers that
  loop over it themselves. Every epoch reads the same cached decoded images.

* Normalisation "dataset": per-channel mean/std of the *train* split are computed
  once in `build_datasets` (one pass, which also fills the memory cache) and stored
  in ``Datasets.preprocessing``; the trainer builds them into the model and records
  them as ``preprocessing.json``. Evaluating a trained model needs none of this:
  `evaluation_dataset` builds one split and never reads the train images.
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
    >>> model.fit(data.train_from_epoch(0), steps_per_epoch=data.steps_per_epoch,
    ...           validation_data=data.val, epochs=2)
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_resnet.data.decode import decode_resize, resolve, resolve_image_size
from keras_resnet.data.folders import class_histogram, format_histogram
from keras_resnet.data.inference import (
    EvaluationData,
    eval_pipeline,
    evaluation_dataset,
    inference_images,
    representative_images,
    stable_size,
)
from keras_resnet.data.options import DataConfig, validate_data_config
from keras_resnet.data.preprocess import make_spec
from keras_resnet.data.sources import Source
from keras_resnet.data.stream import TrainStream, class_weights, keeps_pixels_exact
from keras_resnet.textsafe import printable

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("~/.cache/kresnet")


@dataclass
class Datasets:
    """What `build_datasets` returns.

    Attributes:
        train, val, test: Batched ``tf.data.Dataset`` of ``(images, labels)`` or, with
            ``class_balance="weights"``, ``(images, labels, sample_weights)`` (train
            only); images NHWC un-normalised RGB (uint8, or float32 0..255 after
            interpolating augmentations), labels one-hot float32. ``val`` /
            ``test`` are None when the source has no such split. ``train`` is one
            epoch (cardinality ``steps_per_epoch``), freshly shuffled and augmented on
            each iteration; `train_from_epoch` is the resumable form.
        class_names: Class names in label order.
        preprocessing: The preprocessing spec (see `keras_resnet.data.preprocess`).
        image_size: ``(h, w)`` of the images.
        split_sizes: split -> number of examples (after dropping bad files).
        class_counts: split -> {class name: count}.
        fingerprint: Identity of the data (source, location, sizes, hash of the file
            list/labels, seed), recorded with a run.
        bad_files: ``(path, reason)`` of files skipped while listing.
        steps_per_epoch: Batches in one training epoch, ``ceil(train size / batch_size)``
            (0 for an empty train split; None when there is no `TrainStream`).
        train_stream: The `TrainStream` behind ``train`` and `train_from_epoch`.
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
    steps_per_epoch: int | None = None
    train_stream: object = field(default=None, repr=False)

    def train_from_epoch(self, start_epoch: int = 0, steps_per_epoch: int | None = None):
        """The training batches of epochs ``start_epoch, start_epoch + 1, ...``, endlessly.

        See `TrainStream.from_epoch`. Pass ``steps_per_epoch`` to ``model.fit`` with it.

        Args:
            start_epoch: First epoch (0-based), e.g. the epoch a resumed run restarts at.
            steps_per_epoch: Batches taken from each epoch (None = all, `steps_per_epoch`).

        Returns:
            An infinite ``tf.data.Dataset`` with the elements of ``train``.

        Raises:
            ValueError: the datasets have no train stream (built by hand).
        """
        if self.train_stream is None:
            raise ValueError("These Datasets have no train_stream (build them with build_datasets). Received: train_stream=None")
        return self.train_stream.from_epoch(start_epoch, steps_per_epoch)


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
    source = resolve(config, seed)
    image_size = resolve_image_size(config, source)
    k = len(source.class_names)
    counts = {split: class_histogram(data.labels, source.class_names) for split, data in source.splits.items()}
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

    stream = TrainStream(train_base, source.splits["train"].labels, config, image_size, seed, k)
    val = test = None
    if "val" in source.splits:
        val_decoded = _decoded(source, "val", image_size, config, fingerprint, deterministic=True)
        val = eval_pipeline(val_decoded, config, k, size=stable_size(val_decoded, config, len(source.splits["val"])))
        val = without_autotune_thread(val) if config.cache != "none" else val
    if "test" in source.splits:
        test = eval_pipeline(_decoded(source, "test", image_size, config, fingerprint, deterministic=True), config, k)
        test = without_autotune_thread(test) if config.cache != "none" else test
    return Datasets(
        train=stream.one_epoch(),
        val=val,
        test=test,
        class_names=list(source.class_names),
        preprocessing=spec,
        image_size=tuple(image_size),
        split_sizes={split: len(data) for split, data in source.splits.items()},
        class_counts=counts,
        fingerprint=fingerprint,
        bad_files=list(source.bad_files),
        steps_per_epoch=stream.steps_per_epoch,
        train_stream=stream,
    )


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
        "validation": _validation_kind(source, config, seed),
        "image_size": list(image_size),
        "bad_files": len(source.bad_files),
        "sha256": digest.hexdigest()[:16],
    }


def _validation_kind(source: Source, config: DataConfig, seed: int) -> str:
    """"split" when the source has its own validation split, "none" when the run has no
    validation data (all training images train), else the holdout that made one."""
    val = source.splits.get("val")
    if val is None:
        return "none"
    if val.paths is None and val.indices is None:
        return "split"
    return f"holdout {config.validation_fraction} seed {seed}"


def without_autotune_thread(dataset):
    """``dataset`` without tf.data's autotune thread: for the cached val/test splits read every epoch.

    tf.data starts a performance-model thread for each iterator of a pipeline with autotune
    on (TensorFlow's default), which wakes at doubling intervals (10 ms up to 60 s) to
    re-tune it. Deleting the iterator joins that thread, and under CPU load the join was
    seen to wait for the next wake-up: on 2 cores (TensorFlow 2.21) ``model.evaluate`` of
    the memory-cached CIFAR-10 test split ended 9.9 s after its last batch in 1 of 6
    evaluations (20.5 s against 8.2-10.6 s) and 0.6-1.1 s after it in 2 more; without the
    thread, 0.01 s at most (BENCHMARKS.md, "tf.data's autotune thread"). Keras makes a new
    iterator of the validation split every epoch. ``AUTOTUNE`` settings still work without
    the thread: parallel maps run ``min(16, CPU cores)`` calls and ``prefetch`` keeps its
    own buffer tuner. The training stream (one iterator for the whole run) and splits
    decoded on every pass (``data.cache: none``, `evaluation_dataset`) keep TensorFlow's
    default: there the teardown was not seen to wait, and the un-cached evaluation
    without the thread was slower in 2 of 6 rounds (16.4 and 24.0 s against 10.4-11.7 s).

    Args:
        dataset: A ``tf.data.Dataset``.

    Returns:
        The same dataset with ``autotune.enabled = False`` (kept by later ``map``/``batch``).
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def _decoded(source: Source, split: str, size, config: DataConfig, fingerprint: dict, deterministic: bool = True):
    """(uint8 image at ``size``, int64 label) for one split, decoded in parallel and cached."""
    import tensorflow as tf

    ds = source.encoded_dataset(split)
    ds = ds.map(decode_resize(size), num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
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
        lines.append(f"skipped {len(datasets.bad_files)} unusable file(s): " + ", ".join(printable(p) for p, _ in datasets.bad_files[:5]))
    return "\n".join(lines)


__all__ = [
    "Datasets",
    "EvaluationData",
    "TrainStream",
    "build_datasets",
    "channel_stats",
    "class_weights",
    "describe",
    "evaluation_dataset",
    "inference_images",
    "keeps_pixels_exact",
    "representative_images",
    "resolve_image_size",
]
