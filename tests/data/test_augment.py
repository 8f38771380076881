"""augment.py: per-image crops, mixup/cutmix label and weight mixing, the batch augmenter."""

import numpy as np
import tensorflow as tf

from keras_resnet.data.augment import BatchAugmenter, base_size, crop_mode, cutmix, mixup, pad_and_random_crop, random_resized_crop
from keras_resnet.data.options import AugmentConfig

SEED = tf.constant([1, 2], tf.int64)


def test_crop_mode_auto():
    assert crop_mode(AugmentConfig(), (32, 32)) == "pad"
    assert crop_mode(AugmentConfig(), (224, 224)) == "resized"
    assert base_size(AugmentConfig(), (224, 224)) == (256, 256)
    assert crop_mode(AugmentConfig(enabled=False), (224, 224)) == "none"


def test_pad_and_random_crop_shifts_each_image():
    images = tf.reshape(tf.range(8 * 6 * 6 * 1, dtype=tf.float32) + 1, [8, 6, 6, 1])
    out = pad_and_random_crop(images, 2, SEED).numpy()
    assert out.shape == (8, 6, 6, 1)
    # every output is a window of the zero-padded input
    for i in range(8):
        padded = np.pad(images[i].numpy(), [[2, 2], [2, 2], [0, 0]])
        assert any(np.array_equal(padded[r : r + 6, c : c + 6], out[i]) for r in range(5) for c in range(5))
    assert len({out[i].tobytes() for i in range(8)}) > 1 or not np.array_equal(out, images.numpy())


def test_random_resized_crop_shape():
    out = random_resized_crop(tf.random.uniform([3, 20, 20, 3]), (8, 8), (0.2, 1.0), (0.75, 1.33), SEED)
    assert out.shape == (3, 8, 8, 3)


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
