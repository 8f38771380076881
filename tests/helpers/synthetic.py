"""Tiny synthetic datasets and configs for the training tests (imported by tests and subprocess scripts)."""

from __future__ import annotations

import dataclasses
import types

import numpy as np

CLASS_NAMES = ["a", "b", "c"]


def make_arrays(n: int, seed: int, size: int = 32):
    """Learnable images: class k has a bright patch in region k, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(CLASS_NAMES)
    images = rng.normal(0.0, 0.3, size=(n, size, size, 3)).astype("float32")
    for i, k in enumerate(labels):
        images[i, :, k * 10 : k * 10 + 8, :] += 2.0
    one_hot = np.eye(len(CLASS_NAMES), dtype="float32")[labels]
    return images, one_hot


def make_datasets(n_train: int = 24, n_val: int = 6, n_test: int = 9, batch: int = 4, size: int = 32):
    """A `Datasets`-like namespace of unshuffled, unaugmented tf.data pipelines."""
    import tensorflow as tf

    def ds(n, seed):
        x, y = make_arrays(n, seed, size)
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)

    return types.SimpleNamespace(
        train=ds(n_train, 1),
        val=ds(n_val, 2),
        test=ds(n_test, 3),
        class_names=list(CLASS_NAMES),
        # identity normalisation: the arrays are already centred (the model's first layer is a no-op)
        preprocessing={"mode": "dataset", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
                       "image_size": [size, size]},
        image_size=(size, size),
        split_sizes={"train": n_train, "val": n_val, "test": n_test},
        class_counts={},
        fingerprint={"synthetic": True},
    )


def tiny_config(run_dir, epochs: int = 2, **training):
    """A TrainConfig for a width-0.25 ResNet-20 trained on `make_datasets`."""
    from keras_resnet.train.config import load_config

    config = load_config(
        overrides={
            "run_dir": str(run_dir),
            "model.name": "resnet20",
            "model.width_multiplier": 0.25,
            "data.batch_size": 4,
            "training.epochs": epochs,
            "training.progress": "none",
            "training.tensorboard": False,
            "schedule.warmup_epochs": 0.0,
            "optimizer.learning_rate": 0.2,
        }
    )
    if training:
        config = dataclasses.replace(config, training=dataclasses.replace(config.training, **training))
    return config


def interrupt_at(epoch: int):
    """A Keras callback raising KeyboardInterrupt at the start of ``epoch`` (0-based): a simulated Ctrl-C."""
    import keras

    class InterruptAt(keras.callbacks.Callback):
        def on_epoch_begin(self, current, logs=None):
            if current == epoch:
                raise KeyboardInterrupt(f"simulated interruption before epoch {epoch}")

    return InterruptAt()


def write_image_folder(root, train_per_class: int = 8, test_per_class: int = 2, size: int = 32):
    """Classes a, b, c of noisy ``size`` x ``size`` PNGs with a class-specific bright stripe.

    Written as ``root/{train,test}/<class>/<i>.png``; returns ``root``.
    """
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for k, cls in enumerate(CLASS_NAMES):
            (root / split / cls).mkdir(parents=True)
            for i in range(count):
                image = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
                image[:, k * 10 : k * 10 + 8] += 120
                Image.fromarray(image).save(root / split / cls / f"{i}.png")
    return root
