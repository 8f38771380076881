"""`TrainStream`: the training batches as a pure function of (seed, epoch).

Batches leave un-normalised (the model normalises in its first layer): uint8 when
the augmentation keeps pixels exact (`keeps_pixels_exact`), float32 on 0..255
otherwise.
"""

from __future__ import annotations

import math

import numpy as np

from keras_resnet.data.decode import dataset_options
from keras_resnet.data.options import DataConfig
from keras_resnet.data.preprocess import resize_for_eval


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


# Fold-in salts separating the random streams derived from (seed, epoch).
_SHUFFLE_SALT, _CLASS_CHOICE_SALT, _AUGMENT_SALT = 1, 2, 3
# Salt of the per-image first-epoch flips of ``flip_mode="alternate"`` (drawn once per run).
_FIRST_FLIP_SALT = 4
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

    With ``augment.flip_mode="alternate"`` image ``j`` (its position in ``base``) is
    mirrored in epoch ``e`` when ``first_flips[j] XOR (e odd)``: ``first_flips`` is one
    fair coin per image drawn from ``seed``, so each epoch mirrors about half the images
    and every image is seen both ways in any two consecutive epochs.

    Each epoch yields exactly ``steps`` batches: ``steps_per_epoch`` =
    ``ceil(train size / batch_size)`` with a smaller last batch. (Should images that
    passed the listing check fail to decode in the graph and be skipped, the epoch is
    topped up with its own first batches, so epochs stay aligned with ``model.fit``.)

    Args:
        base: Unbatched ``(uint8 image, int64 label)`` train dataset (cached upstream).
        labels: The train labels (int array), for the size and class counts.
        config: Data options.
        image_size: ``(h, w)`` of the model input.
        seed: Run seed.
        k: Number of classes.

    Example:
        >>> stream = build_datasets(config, seed=0).train_stream
        >>> model.fit(stream.from_epoch(3), steps_per_epoch=stream.steps_per_epoch, initial_epoch=3, epochs=10)
    """

    def __init__(self, base, labels, config: DataConfig, image_size, seed: int, k: int):
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
        self.exact_pixels = keeps_pixels_exact(config.augment, image_size)
        self.first_flips = None
        if self.augmenter is not None and self.augmenter.alternate_flips:
            coins = np.random.default_rng([self.seed, _FIRST_FLIP_SALT]).random(self.size) < 0.5
            self.first_flips = tf.constant(coins)

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
        """Unbatched ``(index in base, (image, label))`` of one epoch, in that epoch's order."""
        import tensorflow as tf

        if not tf.executing_eagerly():  # traced inside flat_map: sets the seed of that function's graph only
            tf.compat.v1.random.set_random_seed(_PINNED_GRAPH_SEED)
        indexed = self.base.enumerate()
        if self.config.class_balance != "oversample":
            seed = self._op_seed(self._key(epoch, _SHUFFLE_SALT))
            return indexed.shuffle(self.buffer, seed=seed, reshuffle_each_iteration=False)
        present = [c for c in range(self.k) if self.counts[c] > 0]
        streams = []
        for c in present:
            seed = self._op_seed(tf.random.experimental.stateless_fold_in(self._key(epoch, _SHUFFLE_SALT), tf.constant(c, tf.int64)))
            buffer = max(1, min(self.buffer, int(self.counts[c])))
            stream = indexed.filter(lambda j, example, c=c: tf.equal(example[1], c))
            streams.append(stream.shuffle(buffer, seed=seed, reshuffle_each_iteration=True).repeat())
        choices = tf.random.stateless_categorical(
            tf.zeros([1, len(present)]), self.size, seed=self._key(epoch, _CLASS_CHOICE_SALT), dtype=tf.int64
        )[0]
        return tf.data.Dataset.choose_from_datasets(streams, tf.data.Dataset.from_tensor_slices(choices))

    def _epoch_batches(self, epoch, steps: int):
        """``((indices, (images, labels)), batch_seed, epoch)`` of one epoch: exactly ``steps`` raw batches."""
        import tensorflow as tf

        batches = self._examples(epoch).batch(self.config.batch_size)
        # Top-up for in-graph decode failures; `take` never opens the second copy otherwise.
        batches = batches.concatenate(batches).take(steps)
        augment_key = self._key(epoch, _AUGMENT_SALT)
        epoch = tf.cast(epoch, tf.int64)
        return batches.enumerate().map(lambda i, batch: (batch, tf.random.experimental.stateless_fold_in(augment_key, i), epoch))

    def _finish(self, batch, batch_seed, epoch):
        """Augment and one-hot one raw batch (images stay un-normalised: the model normalises)."""
        import tensorflow as tf

        indices, (images, y) = batch
        onehot = tf.one_hot(y, self.k, dtype=tf.float32)
        weights = tf.gather(self.weight_table, y) if self.weight_table is not None else None
        if self.augmenter is not None:
            flips = None
            if self.first_flips is not None:
                flips = tf.not_equal(tf.gather(self.first_flips, indices), tf.equal(epoch % 2, 1))
            images, onehot, weights = self.augmenter(tf.cast(images, tf.float32), onehot, weights, batch_seed, flips)
        elif self.resize_needed:
            images = resize_for_eval(images, self.image_size)
        if self.exact_pixels and images.dtype != tf.uint8:
            images = tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)
        return (images, onehot) if weights is None else (images, onehot, weights)

    def _finished(self, epochs, steps: int):
        import tensorflow as tf

        deterministic = self.config.deterministic
        ds = epochs.flat_map(lambda epoch: self._epoch_batches(epoch, steps))
        ds = ds.map(self._finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
        return ds.prefetch(tf.data.AUTOTUNE).with_options(dataset_options(deterministic))

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
        iteration, but not tied to an epoch number (use `from_epoch` to resume). So
        ``flip_mode="alternate"`` flips by the key's parity: each iteration mirrors
        either the first-epoch half of the images or the other half, at random.

        Returns:
            ``tf.data.Dataset`` of ``steps_per_epoch`` batches.
        """
        import tensorflow as tf

        if self.size == 0:  # nothing to train on: an empty dataset, as `from_epoch` would raise
            return self._finished(tf.data.Dataset.range(0), 1)
        keys = tf.data.Dataset.random(seed=self.seed, rerandomize_each_iteration=True).take(1)
        ds = self._finished(keys, self.steps_per_epoch)
        return ds.apply(tf.data.experimental.assert_cardinality(self.steps_per_epoch))


def keeps_pixels_exact(aug, image_size) -> bool:
    """True when augmentation only moves, flips or pastes whole pixels (the batch can stay uint8).

    Pad-crop (zero padding), horizontal flips and cutmix keep every value an integer
    in 0..255; resized crops, rotation and zoom interpolate, erasing fills with random
    floats and mixup blends.

    Args:
        aug: `AugmentConfig`.
        image_size: ``(h, w)`` of the model input (decides the "auto" crop).

    Returns:
        Whether training batches can be delivered as uint8.
    """
    from keras_resnet.data.augment import crop_mode

    if not aug.enabled:
        return True
    interpolating = crop_mode(aug, image_size) == "resized" or aug.rotation > 0 or aug.zoom > 0
    return not (interpolating or aug.erasing > 0 or aug.mixup_alpha > 0)
