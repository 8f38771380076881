"""collect_images and load_source: what an export starts from."""

import numpy as np
import pytest
import tensorflow as tf

from keras_resnet.export.sources import collect_images, load_source


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


def test_load_source_checks_labels_against_the_model(tiny_run, tmp_path):
    import os

    source = load_source(tiny_run.run_dir)
    assert source.labels == ["red", "green", "blue"] and source.image_size == (32, 32)
    for name in ("model.keras", "preprocessing.json"):
        os.link(tiny_run.run_dir / name, tmp_path / name)
    (tmp_path / "labels.txt").write_text("a\nb\n")
    with pytest.raises(ValueError, match="lists 2 classes but .* outputs 3"):
        load_source(tmp_path / "model.keras")
    (tmp_path / "weights.h5").write_bytes(b"")
    with pytest.raises(ValueError, match="run directory or a .keras model"):
        load_source(tmp_path / "weights.h5")
