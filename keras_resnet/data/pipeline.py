"""tf.data input pipelines: `build_datasets` for training, plus un-normalised image streams for export.

Per split the pipeline is (graph ops only, no Python per image)::

    list files / TFDS records -> read + decode + resize (parallel map) -> [skip bad]
      -> cache decoded uint8 (memory | disk | none)
      -> train only, per epoch e: shuffle (or class-balanced resampling) seeded by
         (seed, e) -> batch -> augment the whole batch (augment.py) with a seed from
         (seed, e, batch index) -> one-hot, normalise (preprocess.py)
      -> val/test: batch -> one-hot, normalise
      -> prefetch

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
    >>> model.fit(data.train_from_epoch(0), steps_per_epoch=data.steps_per_epoch,
    ...           validation_data=data.val, epochs=2)
"""

from __future__ import annotations

import hashlib
import logging
import math
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

    stream = TrainStream(train_base, source.splits["train"].labels, config, spec, image_size, seed, k)
    val = test = None
    if "val" in source.splits:
        val_decoded = _decoded(source, "val", image_size, config, fingerprint, deterministic=True)
        val = _eval_pipeline(val_decoded, config, spec, k, size=_stable_size(val_decoded, config, len(source.splits["val"])))
    if "test" in source.splits:
        test = _eval_pipeline(_decoded(source, "test", image_size, config, fingerprint, deterministic=True), config, spec, k)
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


# Fold-in salts separating the random streams derived from (seed, epoch).
_SHUFFLE_SALT, _CLASS_CHOICE_SALT, _AUGMENT_SALT = 1, 2, 3
# Graph-level seed pinned inside the per-epoch function, so tf.data's shuffle seeds
# depend only on (seed, epoch), not on the process' global seed (tf.random.set_seed).
_PINNED_GRAPH_SEED = 87654321


class TrainStream:
    """The training batches as a pure function of ``(seed, epoch)``.

    Epoch ``e`` shuffles the cached decoded images (or, for ``class_balance="oversample"``,
    draws classes uniformly) with seeds derived from ``(seed, e)``, batches them, and
    augments batch ``i`` with the seed ``(seed, e, i)``. Nothing is carried over from
    earlier epochs or earlier iterators, so epoch ``e`` is identical whether a stream
    started at 0 or at ``e``, in this process or a new one. All epochs read the one
    cache of decoded images upstream (filled on the first complete pass).

    Each epoch yields exactly ``steps`` batches: ``steps_per_epoch`` =
    ``ceil(train size / batch_size)`` with a smaller last batch. (Should images that
    passed the listing check fail to decode in the graph and be skipped, the epoch is
    topped up with its own first batches, so epochs stay aligned with ``model.fit``.)

    Args:
        base: Unbatched ``(uint8 image, int64 label)`` train dataset (cached upstream).
        labels: The train labels (int array), for the size and class counts.
        config: Data options.
        spec: Preprocessing spec (`keras_resnet.data.preprocess`).
        image_size: ``(h, w)`` of the model input.
        seed: Run seed.
        k: Number of classes.

    Example:
        >>> stream = build_datasets(config, seed=0).train_stream
        >>> model.fit(stream.from_epoch(3), steps_per_epoch=stream.steps_per_epoch, initial_epoch=3, epochs=10)
    """

    def __init__(self, base, labels, config: DataConfig, spec: dict, image_size, seed: int, k: int):
        import tensorflow as tf

        from keras_resnet.data import augment as augment_lib

        self.base = base
        self.config = config
        self.seed = int(seed)
        self.k = int(k)
        self.size = int(len(labels))
        self.counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=k)
        self.steps_per_epoch = math.ceil(self.size / config.batch_size)
        self.buffer = min(config.shuffle_buffer or self.size, max(self.size, 1))
        active = augment_lib.is_active(config.augment, image_size)
        self.augmenter = augment_lib.BatchAugmenter(config.augment, image_size, seed) if active else None
        self.weight_table = tf.constant(class_weights(self.counts, k)) if config.class_balance == "weights" else None
        self.resize_needed = tuple(augment_lib.base_size(config.augment, image_size)) != tuple(image_size)
        self.image_size = tuple(image_size)
        self.spec = spec

    def _key(self, epoch, salt: int):
        """Stateless seed ``[2]`` for one purpose (``salt``) in one epoch."""
        import tensorflow as tf

        key = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(epoch, tf.int64)])
        return tf.random.experimental.stateless_fold_in(key, tf.constant(salt, tf.int64))

    @staticmethod
    def _op_seed(key):
        """A scalar int64 op seed (for tf.data ops) drawn from a stateless key."""
        import tensorflow as tf

        return tf.random.stateless_uniform([], seed=key, minval=None, maxval=None, dtype=tf.int64)

    def _examples(self, epoch):
        """Unbatched ``(image, label)`` of one epoch, in that epoch's order."""
        import tensorflow as tf

        if not tf.executing_eagerly():  # traced inside flat_map: sets the seed of that function's graph only
            tf.compat.v1.random.set_random_seed(_PINNED_GRAPH_SEED)
        if self.config.class_balance != "oversample":
            seed = self._op_seed(self._key(epoch, _SHUFFLE_SALT))
            return self.base.shuffle(self.buffer, seed=seed, reshuffle_each_iteration=False)
        present = [c for c in range(self.k) if self.counts[c] > 0]
        streams = []
        for c in present:
            seed = self._op_seed(tf.random.experimental.stateless_fold_in(self._key(epoch, _SHUFFLE_SALT), tf.constant(c, tf.int64)))
            buffer = max(1, min(self.buffer, int(self.counts[c])))
            stream = self.base.filter(lambda x, y, c=c: tf.equal(y, c))
            streams.append(stream.shuffle(buffer, seed=seed, reshuffle_each_iteration=True).repeat())
        choices = tf.random.stateless_categorical(
            tf.zeros([1, len(present)]), self.size, seed=self._key(epoch, _CLASS_CHOICE_SALT), dtype=tf.int64
        )[0]
        return tf.data.Dataset.choose_from_datasets(streams, tf.data.Dataset.from_tensor_slices(choices))

    def _epoch_batches(self, epoch, steps: int):
        """``((images, labels), batch_seed)`` of one epoch: exactly ``steps`` raw batches."""
        import tensorflow as tf

        batches = self._examples(epoch).batch(self.config.batch_size)
        # Top-up for in-graph decode failures; `take` never opens the second copy otherwise.
        batches = batches.concatenate(batches).take(steps)
        augment_key = self._key(epoch, _AUGMENT_SALT)
        return batches.enumerate().map(lambda i, batch: (batch, tf.random.experimental.stateless_fold_in(augment_key, i)))

    def _finish(self, batch, batch_seed):
        """Augment, one-hot and normalise one raw batch."""
        import tensorflow as tf

        images, y = batch
        images = tf.cast(images, tf.float32)
        onehot = tf.one_hot(y, self.k, dtype=tf.float32)
        weights = tf.gather(self.weight_table, y) if self.weight_table is not None else None
        if self.augmenter is not None:
            images, onehot, weights = self.augmenter(images, onehot, weights, batch_seed)
        elif self.resize_needed:
            images = resize_for_eval(images, self.image_size)
        images = normalize(images, self.spec)
        return (images, onehot) if weights is None else (images, onehot, weights)

    def _finished(self, epochs, steps: int):
        import tensorflow as tf

        deterministic = self.config.deterministic
        ds = epochs.flat_map(lambda epoch: self._epoch_batches(epoch, steps))
        ds = ds.map(self._finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
        return ds.prefetch(tf.data.AUTOTUNE).with_options(_options(deterministic))

    def _check(self, steps_per_epoch):
        if self.size == 0:
            raise ValueError("The train split has no usable images, so there is nothing to train on. Received: train size=0")
        steps = self.steps_per_epoch if steps_per_epoch is None else int(steps_per_epoch)
        if not 1 <= steps <= self.steps_per_epoch:
            raise ValueError(
                f"steps_per_epoch must be None or in [1, {self.steps_per_epoch}] (the batches of one epoch). "
                f"Received: steps_per_epoch={steps_per_epoch!r}"
            )
        return steps

    def epoch(self, epoch: int, steps_per_epoch: int | None = None):
        """The batches of one epoch (a finite dataset; the same on every iteration).

        Args:
            epoch: Epoch number (0-based).
            steps_per_epoch: Batches to take (None = the whole epoch).

        Returns:
            ``tf.data.Dataset`` of ``steps_per_epoch`` batches.
        """
        import tensorflow as tf

        steps = self._check(steps_per_epoch)
        ds = self._finished(tf.data.Dataset.from_tensors(tf.constant(epoch, tf.int64)), steps)
        return ds.apply(tf.data.experimental.assert_cardinality(steps))

    def from_epoch(self, start_epoch: int = 0, steps_per_epoch: int | None = None):
        """Epochs ``start_epoch, start_epoch + 1, ...`` back to back, endlessly.

        Give ``model.fit`` ``steps_per_epoch`` (the same value) and ``initial_epoch=start_epoch``;
        Keras keeps one iterator across its epochs, so its epoch ``e`` gets exactly the
        batches of data epoch ``e``.

        Args:
            start_epoch: First epoch (0-based).
            steps_per_epoch: Batches of each epoch (None = all, `steps_per_epoch`); fewer
                truncates every epoch (a cap for quick runs).

        Returns:
            An infinite ``tf.data.Dataset`` of training batches.

        Raises:
            ValueError: negative ``start_epoch``, ``steps_per_epoch < 1``, or an empty train split.
        """
        import tensorflow as tf

        if int(start_epoch) < 0:
            raise ValueError(f"start_epoch must be >= 0. Received: start_epoch={start_epoch!r}")
        steps = self._check(steps_per_epoch)
        ds = self._finished(tf.data.Dataset.counter(int(start_epoch)), steps)
        return ds.apply(tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY))

    def one_epoch(self):
        """One full epoch per iteration, each iteration a new epoch (``Datasets.train``).

        The epoch key of each iteration is drawn from ``tf.data.Dataset.random(seed,
        rerandomize_each_iteration=True)``: reproducible for a seed, different every
        iteration, but not tied to an epoch number (use `from_epoch` to resume).

        Returns:
            ``tf.data.Dataset`` of ``steps_per_epoch`` batches.
        """
        import tensorflow as tf

        if self.size == 0:  # nothing to train on: an empty dataset, as `from_epoch` would raise
            return self._finished(tf.data.Dataset.range(0), 1)
        keys = tf.data.Dataset.random(seed=self.seed, rerandomize_each_iteration=True).take(1)
        ds = self._finished(keys, self.steps_per_epoch)
        return ds.apply(tf.data.experimental.assert_cardinality(self.steps_per_epoch))


def _stable_size(decoded, config: DataConfig, listed: int) -> int | None:
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


def _eval_pipeline(decoded, config: DataConfig, spec: dict, k: int, size: int | None = None):
    """Batched, normalised ``(images, one-hot labels)``; with ``size`` (examples), a known cardinality for Keras."""
    import tensorflow as tf

    def finish(images, y):
        return normalize(tf.cast(images, tf.float32), spec), tf.one_hot(y, k, dtype=tf.float32)

    ds = decoded.batch(config.batch_size).map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if size is not None:
        ds = ds.apply(tf.data.experimental.assert_cardinality(math.ceil(size / config.batch_size)))
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
    "TrainStream",
    "build_datasets",
    "channel_stats",
    "class_weights",
    "describe",
    "inference_images",
    "representative_images",
    "resolve_image_size",
]
