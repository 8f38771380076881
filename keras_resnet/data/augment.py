"""Training-time augmentation on whole batches (vectorised), seeded.

Augmentation runs *after* batching: one graph call per batch instead of one per
image keeps the per-image work of the input pipeline at decode + resize (and, from
the cache, nothing at all). Every transform still draws its randomness per image.

Order, on float images on the 0..255 scale (normalisation comes after):

1. crop — "pad": zero-pad ``pad`` pixels and take a random ``image_size`` window per
   image (the CIFAR recipe; a gather, no interpolation). "resized": a random
   resized crop per image (area ``resized_scale``, aspect ``resized_ratio``) of the
   cached, slightly larger image, resized to ``image_size`` with
   ``tf.image.crop_and_resize``. Neither exists as a per-image Keras layer
   (``keras.layers.RandomCrop`` draws one window per batch), so both are here.
2. ``keras.layers.RandomFlip("horizontal")``, ``keras.layers.RandomRotation``,
   ``keras.layers.RandomZoom`` (per image).
3. ``keras.layers.RandomErasing`` (cutout with random fill), probability ``erasing``.
4. mixup / cutmix on images *and* one-hot labels (and sample weights, so class
   weights stay consistent with the mixed labels); implemented here because the
   Keras layers do not mix sample weights. With both on, each batch picks one.

Randomness: every transform, the Keras layers included, is a pure function of the
per-batch seed (stateless ops; the layers draw from `BatchSeedGenerator` instead of
their own seed state). The pipeline derives that seed from (run seed, epoch, batch
index), so an epoch's batches are the same whether or not the process was restarted
before it, and do not depend on the order parallel ``map`` calls happen to run in.

Example:
    >>> augment = BatchAugmenter(AugmentConfig(mixup_alpha=0.2), (32, 32), seed=0)
    >>> images, labels, weights = augment(images, labels, weights, batch_seed)
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_resnet import compat
from keras_resnet.config import AugmentConfig

# Larger cached side for random resized crops: 256 for a 224 input (the usual ratio).
RESIZED_CROP_MARGIN = 256 / 224


def crop_mode(aug: AugmentConfig, image_size) -> str:
    """The crop actually used: ``aug.crop``, with "auto" -> "pad" up to 64 px, "resized" above.

    Returns:
        "pad", "resized" or "none" ("none" also when augmentation is disabled).
    """
    if not aug.enabled:
        return "none"
    if aug.crop != "auto":
        return aug.crop
    return "pad" if max(image_size) <= 64 else "resized"


def base_size(aug: AugmentConfig, image_size) -> tuple[int, int]:
    """The size images are cached at for training: ``image_size``, larger for resized crops.

    Args:
        aug: Augmentation options.
        image_size: ``(h, w)`` of the model input.

    Returns:
        ``(h, w)``.
    """
    if crop_mode(aug, image_size) == "resized":
        return (round(image_size[0] * RESIZED_CROP_MARGIN), round(image_size[1] * RESIZED_CROP_MARGIN))
    return tuple(image_size)


def is_active(aug: AugmentConfig, image_size) -> bool:
    """Whether any augmentation would change a training batch."""
    return aug.enabled and (
        crop_mode(aug, image_size) != "none"
        or aug.horizontal_flip
        or aug.rotation > 0
        or aug.zoom > 0
        or aug.erasing > 0
        or aug.mixup_alpha > 0
        or aug.cutmix_alpha > 0
    )


def pad_and_random_crop(images, pad: int, seed):
    """Zero-pad every image by ``pad`` pixels and cut a random window of the original size from each.

    Args:
        images: float ``[N, H, W, C]``.
        pad: Padding in pixels.
        seed: Stateless seed, shape ``[2]`` int.

    Returns:
        Tensor like ``images``.
    """
    if pad <= 0:
        return images
    shape = tf.shape(images)
    n, h, w = shape[0], images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    offsets = tf.random.stateless_uniform([n, 2], seed, 0, 2 * pad + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(h)[None, :]
    cols = offsets[:, 1:] + tf.range(w)[None, :]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


def random_resized_crop(images, size, scale, ratio, seed):
    """Inception-style random resized crop, one box per image, all in one ``crop_and_resize``.

    Args:
        images: float ``[N, H, W, C]``.
        size: Output ``(h, w)``.
        scale: (min, max) fraction of the image area.
        ratio: (min, max) aspect ratio (width / height).
        seed: Stateless seed, shape ``[2]``.

    Returns:
        float ``[N, h, w, C]``.
    """
    n = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 4)
    area = tf.random.stateless_uniform([n], seeds[0], scale[0], scale[1])
    log_r = tf.random.stateless_uniform([n], seeds[1], tf.math.log(float(ratio[0])), tf.math.log(float(ratio[1])))
    r = tf.exp(log_r)
    # Box side lengths as fractions of the image height/width (square-image approximation
    # of the aspect ratio, clipped so the box fits).
    bh = tf.minimum(tf.sqrt(area / r), 1.0)
    bw = tf.minimum(tf.sqrt(area * r), 1.0)
    y0 = tf.random.stateless_uniform([n], seeds[2]) * (1.0 - bh)
    x0 = tf.random.stateless_uniform([n], seeds[3]) * (1.0 - bw)
    boxes = tf.stack([y0, x0, y0 + bh, x0 + bw], axis=1)
    return tf.image.crop_and_resize(images, boxes, tf.range(n), list(size))


def _sample_beta(shape, alpha, seed):
    seeds = tf.random.experimental.stateless_split(seed, 2)
    a = tf.random.stateless_gamma(shape, seeds[0], alpha=alpha)
    b = tf.random.stateless_gamma(shape, seeds[1], alpha=alpha)
    return a / (a + b)


def mixup(images, labels, weights, alpha, seed):
    """Mix each image and one-hot label with another from the batch, ``lam ~ Beta(alpha, alpha)`` per image.

    Args:
        images: float ``[N, H, W, C]``.
        labels: one-hot float ``[N, K]``.
        weights: float ``[N]`` sample weights, or None.
        alpha: Beta parameter (> 0).
        seed: Stateless seed ``[2]``.

    Returns:
        ``(images, labels, weights)`` mixed the same way.
    """
    n = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 2)
    perm = tf.argsort(tf.random.stateless_uniform([n], seeds[0]))
    lam = _sample_beta([n], alpha, seeds[1])
    images = lam[:, None, None, None] * images + (1.0 - lam[:, None, None, None]) * tf.gather(images, perm)
    labels = lam[:, None] * labels + (1.0 - lam[:, None]) * tf.gather(labels, perm)
    if weights is not None:
        weights = lam * weights + (1.0 - lam) * tf.gather(weights, perm)
    return images, labels, weights


def cutmix(images, labels, weights, alpha, seed):
    """Paste a random box from another image of the batch into each image; labels mix by box area.

    Args:
        images: float ``[N, H, W, C]``.
        labels: one-hot float ``[N, K]``.
        weights: float ``[N]`` sample weights, or None.
        alpha: Beta parameter (> 0) of the kept-area fraction.
        seed: Stateless seed ``[2]``.

    Returns:
        ``(images, labels, weights)``.
    """
    n = tf.shape(images)[0]
    h, w = images.shape[1], images.shape[2]
    seeds = tf.random.experimental.stateless_split(seed, 4)
    perm = tf.argsort(tf.random.stateless_uniform([n], seeds[0]))
    lam = _sample_beta([n], alpha, seeds[1])
    cut = tf.sqrt(1.0 - lam)
    ch = tf.cast(tf.round(cut * h), tf.int32)
    cw = tf.cast(tf.round(cut * w), tf.int32)
    cy = tf.random.stateless_uniform([n], seeds[2], 0, h, dtype=tf.int32)
    cx = tf.random.stateless_uniform([n], seeds[3], 0, w, dtype=tf.int32)
    y0, y1 = tf.clip_by_value(cy - ch // 2, 0, h), tf.clip_by_value(cy + (ch + 1) // 2, 0, h)
    x0, x1 = tf.clip_by_value(cx - cw // 2, 0, w), tf.clip_by_value(cx + (cw + 1) // 2, 0, w)
    ys = tf.range(h)[None, :]
    xs = tf.range(w)[None, :]
    in_y = (ys >= y0[:, None]) & (ys < y1[:, None])
    in_x = (xs >= x0[:, None]) & (xs < x1[:, None])
    box = tf.cast(in_y[:, :, None] & in_x[:, None, :], images.dtype)[..., None]
    images = images * (1.0 - box) + tf.gather(images, perm) * box
    kept = 1.0 - tf.cast((y1 - y0) * (x1 - x0), tf.float32) / float(h * w)
    labels = kept[:, None] * labels + (1.0 - kept[:, None]) * tf.gather(labels, perm)
    if weights is not None:
        weights = kept * weights + (1.0 - kept) * tf.gather(weights, perm)
    return images, labels, weights


#: A ``keras.random.SeedGenerator`` deriving its seeds from one seed tensor, statelessly.
#:
#: Keras preprocessing layers normally draw from their own generator, whose state
#: variable advances on every call: their output then depends on how many batches
#: this process augmented before (so a resumed run differs) and, under a parallel
#: ``map``, on which call ran first. Passed as ``seed`` to a layer's
#: ``get_random_transformation``, this generator makes the layer's randomness a pure
#: function of ``seed``: the i-th draw is ``stateless_fold_in(seed, i)``. It relies on
#: Keras internals, so it is built in `keras_resnet.compat`.
#:
#: Example:
#:     >>> flip = keras.layers.RandomFlip("horizontal")
#:     >>> t = flip.get_random_transformation(images, training=True, seed=BatchSeedGenerator(batch_seed))
#:     >>> images = flip.transform_images(images, t, training=True)
BatchSeedGenerator = compat.stateless_seed_generator_class()


# Fold-in offset of the Keras layers' seeds (layer j gets fold_in(batch_seed, LAYER_SEED_OFFSET + j)).
LAYER_SEED_OFFSET = 100


class BatchAugmenter:
    """The training augmentation as one callable on a batch.

    All randomness comes from the ``batch_seed`` of each call (see `BatchSeedGenerator`),
    so the same batch and seed always give the same output.

    Args:
        aug: Augmentation options.
        image_size: ``(h, w)`` of the model input.
        seed: Integer seed given to the Keras layers' constructors (their own
            generators are only used if a layer is called directly, not here).
    """

    def __init__(self, aug: AugmentConfig, image_size, seed: int = 0):
        self.aug = aug
        self.image_size = tuple(image_size)
        self.mode = crop_mode(aug, self.image_size)
        self.layers = []
        # "alternate" flips are a function of the image and the epoch: the caller passes them in.
        self.alternate_flips = aug.enabled and aug.horizontal_flip and aug.flip_mode == "alternate"
        if aug.enabled and aug.horizontal_flip and not self.alternate_flips:
            self.layers.append(keras.layers.RandomFlip("horizontal", seed=seed + 11))
        if aug.enabled and aug.rotation > 0:
            self.layers.append(keras.layers.RandomRotation(aug.rotation, fill_mode="reflect", seed=seed + 12))
        if aug.enabled and aug.zoom > 0:
            self.layers.append(keras.layers.RandomZoom(aug.zoom, fill_mode="reflect", seed=seed + 13))
        if aug.enabled and aug.erasing > 0:
            # A single float factor makes Keras draw each image's probability from U(0, factor),
            # so erasing=p would erase p/2 of the images; (p, p) erases exactly p of them.
            self.layers.append(
                keras.layers.RandomErasing(
                    factor=(aug.erasing, aug.erasing), scale=tuple(aug.erasing_scale), value_range=(0, 255), seed=seed + 14
                )
            )

    def __call__(self, images, labels, weights, batch_seed, flips=None):
        """Augment one batch.

        Args:
            images: float ``[N, H, W, 3]`` on 0..255, at `base_size`.
            labels: one-hot float ``[N, K]``.
            weights: float ``[N]`` or None.
            batch_seed: int64 ``[2]`` seed for this batch.
            flips: bool ``[N]``, which images to mirror; required with
                ``flip_mode="alternate"`` (`keras_resnet.data.stream.TrainStream` gives
                them), ignored otherwise.

        Returns:
            ``(images [N, h, w, 3], labels, weights)``.

        Raises:
            ValueError: ``flip_mode="alternate"`` without ``flips``.
        """
        aug = self.aug
        seeds = tf.random.experimental.stateless_split(tf.cast(batch_seed, tf.int64), 4)
        if self.mode == "pad":
            images = pad_and_random_crop(images, aug.pad, seeds[0])
        elif self.mode == "resized":
            images = random_resized_crop(images, self.image_size, aug.resized_scale, aug.resized_ratio, seeds[0])
        if self.alternate_flips:
            if flips is None:
                raise ValueError(
                    "augment.flip_mode='alternate' mirrors each image by its index and the epoch, so the "
                    "caller must pass flips=[N] bools (TrainStream does). Received: flips=None"
                )
            images = tf.where(tf.reshape(flips, [-1, 1, 1, 1]), tf.reverse(images, axis=[2]), images)
        batch_seed = tf.cast(batch_seed, tf.int64)
        for j, layer in enumerate(self.layers):
            layer_seed = tf.random.experimental.stateless_fold_in(batch_seed, tf.constant(LAYER_SEED_OFFSET + j, tf.int64))
            transformation = layer.get_random_transformation(images, training=True, seed=BatchSeedGenerator(layer_seed))
            images = tf.cast(layer.transform_images(images, transformation, training=True), images.dtype)
        use_mix = aug.enabled and aug.mixup_alpha > 0
        use_cut = aug.enabled and aug.cutmix_alpha > 0
        if use_mix and use_cut:
            choose_mix = tf.random.stateless_uniform([], seeds[1]) < 0.5
            mixed = mixup(images, labels, weights, aug.mixup_alpha, seeds[2])
            cut = cutmix(images, labels, weights, aug.cutmix_alpha, seeds[3])
            images = tf.where(choose_mix, mixed[0], cut[0])
            labels = tf.where(choose_mix, mixed[1], cut[1])
            weights = None if weights is None else tf.where(choose_mix, mixed[2], cut[2])
        elif use_mix:
            images, labels, weights = mixup(images, labels, weights, aug.mixup_alpha, seeds[2])
        elif use_cut:
            images, labels, weights = cutmix(images, labels, weights, aug.cutmix_alpha, seeds[3])
        return images, labels, weights
