"""collect_images: the images an export needs."""

import numpy as np
import tensorflow as tf

from keras_resnet.export.sources import collect_images


def test_collect_images_handles_batched_one_hot_and_unlabelled_datasets():
    x = np.arange(5 * 2 * 2 * 3, dtype=np.uint8).reshape(5, 2, 2, 3)
    y = np.array([2, 0, 1, 1, 0])
    images, labels = collect_images(tf.data.Dataset.from_tensor_slices((x, y)), count=3)
    assert labels == [2, 0, 1] and len(images) == 3 and np.array_equal(images[1], x[1])
    batched = tf.data.Dataset.from_tensor_slices((x, tf.one_hot(y, 3))).batch(2)
    images, labels = collect_images(batched)
    assert labels == y.tolist() and len(images) == 5 and images[4].dtype == np.uint8
    images, labels = collect_images(tf.data.Dataset.from_tensor_slices(x.astype(np.float32)).batch(4), count=10)
    assert labels is None and len(images) == 5 and np.array_equal(images[2], x[2])
