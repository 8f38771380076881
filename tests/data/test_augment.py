"""augment.py: per-image crops, mixup/cutmix label and weight mixing, the batch augmenter."""

import numpy as np
import pytest
import tensorflow as tf

from keras_resnet.data.augment import BatchAugmenter, base_size, crop_mode, cutmix, mixup, pad_and_random_crop, random_resized_crop
from keras_resnet.data.options import AugmentConfig

SEED = tf.constant([1, 2], tf.int64)


def test_crop_mode_auto():
    assert crop_mode(AugmentConfig(), (32, 32)) == "pad"
    assert crop_mode(AugmentConfig(), (224, 224)) == "resized"
    assert base_size(AugmentConfig(), (224, 224)) == (256, 256)
    assert crop_mode(AugmentConfig(enabled=False), (224, 224)) == "none"


def _window_offsets(images, out, pad):
    """The (row, col) shift of each output inside its zero-padded input (None where no window matches)."""
    n, h, w = images.shape[:3]
    shifts = []
    for i in range(n):
        padded = np.pad(images[i], [[pad, pad], [pad, pad], [0, 0]])
        found = [(r - pad, c - pad) for r in range(2 * pad + 1) for c in range(2 * pad + 1)
                 if np.array_equal(padded[r : r + h, c : c + w], out[i])]
        shifts.append(found[0] if len(found) == 1 else None)
    return shifts


def test_pad_and_random_crop_shifts_each_image():
    """Each output is its own input shifted by (dy, dx) in [-pad, pad]^2, drawn per image over the whole range."""
    n, pad = 400, 2
    # distinct non-zero pixel values: a window of the padded image identifies its shift uniquely
    images = (np.arange(n * 6 * 6, dtype=np.float32) + 1).reshape(n, 6, 6, 1)
    out = pad_and_random_crop(tf.constant(images), pad, SEED).numpy()
    assert out.shape == images.shape
    shifts = _window_offsets(images, out, pad)
    assert None not in shifts  # every output is a shifted copy of its own input
    dy, dx = np.array(shifts).T
    # shifted copies, not the identity, and independently per image (not one window per batch)
    assert (np.array(shifts) != 0).any(axis=1).mean() > 0.7
    assert len(set(shifts)) == (2 * pad + 1) ** 2  # all 25 shifts occur
    for d in (dy, dx):
        counts = np.bincount(d + pad, minlength=2 * pad + 1)
        assert len(counts) == 2 * pad + 1 and counts.min() > 0.6 * n / (2 * pad + 1), counts  # about uniform
    # a shift (dy, dx) = (pad, pad) reads images[y + pad, x + pad]: content moved up-left, zeros shifted in
    i = int(np.argmax((dy == pad) & (dx == pad)))
    assert (out[i, -pad:] == 0).all() and (out[i, :, -pad:] == 0).all()
    np.testing.assert_array_equal(out[i, :-pad, :-pad], images[i, pad:, pad:])
    # another seed, other shifts; pad 0 is the identity
    assert not np.array_equal(pad_and_random_crop(tf.constant(images), pad, SEED + 1).numpy(), out)
    np.testing.assert_array_equal(pad_and_random_crop(tf.constant(images), 0, SEED).numpy(), images)


def _coordinate_image(n, side):
    """[n, side, side, 3]: channel 0 = row index, channel 1 = column index (bilinear resampling keeps it exact)."""
    rows, cols = np.meshgrid(np.arange(side, dtype=np.float32), np.arange(side, dtype=np.float32), indexing="ij")
    image = np.stack([rows, cols, np.zeros_like(rows)], -1)
    return np.repeat(image[None], n, axis=0)


def _crop_boxes(out, side):
    """(top, left, height, width) of each crop as fractions of the source side, read from the coordinates."""
    top, left = out[:, 0, 0, 0] / (side - 1), out[:, 0, 0, 1] / (side - 1)
    height = (out[:, -1, 0, 0] - out[:, 0, 0, 0]) / (side - 1)
    width = (out[:, 0, -1, 1] - out[:, 0, 0, 1]) / (side - 1)
    return top, left, height, width


def test_random_resized_crop_area_and_aspect_bounds():
    n, side = 300, 101
    scale, ratio = (0.2, 0.5), (1.0, 2.0)  # ratio = width / height, deliberately not symmetric around 1
    images = _coordinate_image(n, side)
    out = random_resized_crop(tf.constant(images), (9, 9), scale, ratio, SEED).numpy()
    assert out.shape == (n, 9, 9, 3)
    top, left, height, width = _crop_boxes(out, side)
    # a sampled window: rows and columns evenly spaced inside it (an axis-aligned box, resized)
    steps = (side - 1) / 8
    np.testing.assert_allclose(np.diff(out[:, :, 0, 0], axis=1) - (height * steps)[:, None], 0.0, atol=1e-3)
    np.testing.assert_allclose(np.diff(out[:, 0, :, 1], axis=1) - (width * steps)[:, None], 0.0, atol=1e-3)
    area, aspect = height * width, width / height
    assert area.min() >= scale[0] - 1e-4 and area.max() <= scale[1] + 1e-4, (area.min(), area.max())
    assert aspect.min() >= ratio[0] - 1e-4 and aspect.max() <= ratio[1] + 1e-4, (aspect.min(), aspect.max())
    # the draws span the ranges (not one fixed box), and every box lies inside the image
    assert area.min() < 0.23 and area.max() > 0.47 and aspect.min() < 1.1 and aspect.max() > 1.8
    assert top.min() >= -1e-5 and left.min() >= -1e-5
    assert (top + height).max() <= 1 + 1e-5 and (left + width).max() <= 1 + 1e-5
    assert top.std() > 0.05 and left.std() > 0.05  # the position is random too
    # boxes that would not fit are clipped to the image, keeping the aspect within range
    wide = random_resized_crop(tf.constant(images[:50]), (9, 9), (0.9, 1.0), (0.75, 1.3333), SEED).numpy()
    top, left, height, width = _crop_boxes(wide, side)
    assert height.max() <= 1 + 1e-5 and width.max() <= 1 + 1e-5 and (height * width).min() > 0.74
    assert (width / height).min() >= 0.75 - 1e-4 and (width / height).max() <= 1.3333 + 1e-4


def test_mixup_and_cutmix_mix_labels_and_weights_consistently():
    images = tf.concat([tf.zeros([4, 8, 8, 3]), tf.ones([4, 8, 8, 3])], 0)
    labels = tf.one_hot([0, 0, 0, 0, 1, 1, 1, 1], 2)
    weights = tf.constant([1.0] * 4 + [3.0] * 4)
    for fn in (mixup, cutmix):
        x, y, w = fn(images, labels, weights, 1.0, SEED)
        np.testing.assert_allclose(y.numpy().sum(1), 1.0, atol=1e-5)
        # the fraction of class 1 in the label equals the fraction of "ones" pixels
        np.testing.assert_allclose(y.numpy()[:, 1], x.numpy().mean((1, 2, 3)), atol=1e-5)
        np.testing.assert_allclose(w.numpy(), 1.0 + 2.0 * y.numpy()[:, 1], atol=1e-5)


def test_batch_augmenter_uses_keras_layers_and_keeps_labels_without_mixing():
    aug = BatchAugmenter(AugmentConfig(rotation=0.1, zoom=0.1, erasing=1.0), (8, 8), seed=0)
    names = [type(layer).__name__ for layer in aug.layers]
    assert names == ["RandomFlip", "RandomRotation", "RandomZoom", "RandomErasing"]
    images = tf.random.uniform([4, 8, 8, 3], 0, 255)
    labels = tf.one_hot([0, 1, 2, 0], 3)
    x, y, w = aug(images, labels, None, SEED)
    assert x.shape == (4, 8, 8, 3) and w is None
    np.testing.assert_array_equal(y.numpy(), labels.numpy())
    assert not np.allclose(x.numpy(), images.numpy())


@pytest.mark.parametrize("erasing", [0.5, 1.0])
def test_erasing_erases_that_fraction_of_the_images(erasing):
    """data.augment.erasing is the probability per image, not the upper end of a drawn probability."""
    aug = BatchAugmenter(AugmentConfig(crop="none", horizontal_flip=False, erasing=erasing), (16, 16), seed=0)
    n = 2000
    images = tf.fill([n, 16, 16, 3], 128.0)
    x, _, _ = aug(images, tf.one_hot(tf.zeros([n], tf.int32), 2), None, SEED)
    erased = np.any(x.numpy() != 128.0, axis=(1, 2, 3)).mean()
    # binomial standard deviation at n=2000 is at most 0.011; the U(0, p) draw would give p / 2
    assert abs(erased - erasing) < 0.04, erased


def test_batch_augmenter_is_a_pure_function_of_the_batch_seed():
    """The Keras layers draw from the batch seed, not from their own advancing state."""
    aug = BatchAugmenter(AugmentConfig(crop="pad", pad=2, rotation=0.1, zoom=0.1, erasing=0.5, mixup_alpha=0.4), (8, 8), seed=0)
    images = tf.random.stateless_uniform([6, 8, 8, 3], [0, 1], 0, 255)
    labels = tf.one_hot([0, 1, 2, 0, 1, 2], 3)
    first = aug(images, labels, None, SEED)
    aug(images, labels, None, tf.constant([5, 6], tf.int64))  # would advance a layer's own generator
    again = aug(images, labels, None, SEED)
    np.testing.assert_array_equal(first[0].numpy(), again[0].numpy())
    np.testing.assert_array_equal(first[1].numpy(), again[1].numpy())
    flips_only = BatchAugmenter(AugmentConfig(crop="none"), (8, 8), seed=0)  # only the Keras RandomFlip
    outputs = {flips_only(images, labels, None, tf.constant([s, 0], tf.int64))[0].numpy().tobytes() for s in range(4)}
    assert len(outputs) > 1  # other seeds, other flips


def test_alternate_flip_mode_mirrors_exactly_the_images_it_is_given():
    """flip_mode="alternate" replaces Keras' RandomFlip by the caller's per-image flips."""
    aug = BatchAugmenter(AugmentConfig(crop="none", flip_mode="alternate", rotation=0.1), (8, 8), seed=0)
    assert [type(layer).__name__ for layer in aug.layers] == ["RandomRotation"]
    plain = BatchAugmenter(AugmentConfig(crop="none", flip_mode="alternate"), (8, 8), seed=0)
    images = tf.random.stateless_uniform([4, 8, 8, 3], [0, 2], 0, 255)
    labels = tf.one_hot([0, 1, 2, 0], 3)
    flips = tf.constant([True, False, False, True])
    for seed in range(3):  # the same flips whatever the batch seed
        x, y, _ = plain(images, labels, None, tf.constant([seed, 0], tf.int64), flips)
        np.testing.assert_array_equal(x.numpy()[[0, 3]], images.numpy()[[0, 3], :, ::-1])
        np.testing.assert_array_equal(x.numpy()[[1, 2]], images.numpy()[[1, 2]])
        np.testing.assert_array_equal(y.numpy(), labels.numpy())
    with pytest.raises(ValueError, match="flip_mode='alternate'.*flips=None"):
        plain(images, labels, None, SEED)
    off = BatchAugmenter(AugmentConfig(crop="none", horizontal_flip=False, flip_mode="alternate"), (8, 8), seed=0)
    np.testing.assert_array_equal(off(images, labels, None, SEED, flips)[0].numpy(), images.numpy())
