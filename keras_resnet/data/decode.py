"""The pieces every input stream shares: resolving the source, decode + resize, tf.data options.

Used by `keras_resnet.data.pipeline` (training datasets), `keras_resnet.data.stream`
(the training stream) and `keras_resnet.data.inference` (evaluation, parity and
calibration images), so each split is decoded and resized one way.
"""

from __future__ import annotations

from keras_resnet.data.options import DataConfig
from keras_resnet.data.preprocess import decode_image, resize_for_eval
from keras_resnet.data.sources import Source, resolve_source, with_holdout

DEFAULT_IMAGE_SIZE = 224


def resolve(config: DataConfig, seed: int) -> Source:
    """The data source of ``config``, with its seeded validation holdout (listing only, no decoding)."""
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


def decode_resize(size):
    """A tf.data map ``(encoded, label) -> (uint8 image at size, label)`` (bilinear squash, rounded)."""
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


def dataset_options(deterministic: bool):
    """``tf.data.Options``: deterministic order or not, parallel maps."""
    import tensorflow as tf

    options = tf.data.Options()
    options.deterministic = deterministic
    options.experimental_optimization.map_parallelization = True
    return options
