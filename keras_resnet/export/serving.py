"""Serving functions that carry preprocessing and labels, and the SavedModel built from them.

The model carries its own normalisation (`keras_resnet.preprocessing`), so both
signatures only resize to the model's size (`resize_for_eval`, the bilinear squash
used by training and evaluation) and run the model with ``training=False`` (no
augmentation, BatchNorm on its moving statistics):

- ``serving_default(images: uint8 [N, H, W, 3])`` — raw RGB pixels, any H and W;
- ``serve_bytes(image_bytes: string [N])`` — encoded JPEG/PNG/BMP/GIF files.

Each returns ``probabilities`` float32 [N, C], ``top_k_indices`` int32 [N, k] and
``top_k_labels`` string [N, k] (class names from ``labels.txt``, baked in as a constant).
"""

from __future__ import annotations

import os
from pathlib import Path

from keras_resnet.data.preprocess import decode_image, resize_for_eval
from keras_resnet.export.runners import (
    BYTES_INPUT_NAME,
    BYTES_SIGNATURE,
    INPUT_NAME,
    PROBABILITIES,
    SERVING_SIGNATURE,
)


def checked_size(image_size) -> tuple[int, int]:
    """``(height, width)`` as two positive ints.

    Raises:
        ValueError: if ``image_size`` is not two positive ints.
    """
    if not (isinstance(image_size, (list, tuple)) and len(image_size) == 2 and all(isinstance(v, int) and v > 0 for v in image_size)):
        raise ValueError(f"image_size must be (height, width), two positive ints. Received: image_size={image_size!r}")
    return int(image_size[0]), int(image_size[1])


def make_serving_functions(model, image_size, labels: list[str], top_k: int = 5):
    """Python functions for the two serving signatures (not yet traced).

    Args:
        model: Keras model taking raw RGB pixels (0..255) of ``image_size``.
        image_size: ``(height, width)`` of the model's input.
        labels: Class names in index order (``len(labels)`` == model outputs).
        top_k: How many classes ``top_k_*`` return (capped at the class count).

    Returns:
        (serve_images, serve_bytes): callables taking a uint8 image batch and a
        string batch, returning the output dict.
    """
    import tensorflow as tf

    height, width = checked_size(image_size)
    k = max(1, min(int(top_k), len(labels)))
    label_names = [str(name) for name in labels]

    def _outputs(pixels):
        probabilities = model(pixels, training=False)
        top = tf.math.top_k(probabilities, k=k)
        return {
            PROBABILITIES: probabilities,
            "top_k_indices": top.indices,
            "top_k_labels": tf.gather(tf.constant(label_names, dtype=tf.string), top.indices),
        }

    def serve_images(images):
        return _outputs(resize_for_eval(images, (height, width)))

    def _one(encoded):
        return resize_for_eval(decode_image(encoded)[tf.newaxis], (height, width))[0]

    def serve_bytes(image_bytes):
        pixels = tf.map_fn(_one, image_bytes, fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32))
        return _outputs(pixels)

    return serve_images, serve_bytes


def build_export_archive(model, image_size, labels: list[str], top_k: int = 5, fixed_size: bool = False):
    """A ``keras.export.ExportArchive`` with the serving signatures.

    Args:
        model: Keras model taking raw RGB pixels of ``image_size``.
        image_size: ``(height, width)`` of the model's input.
        labels: Class names in index order.
        top_k: Classes returned by ``top_k_*``.
        fixed_size: If True, only ``serving_default`` with input ``uint8
            [None, h, w, 3]`` at the model's size (what TFLite conversion needs);
            otherwise any H, W plus the ``serve_bytes`` signature.

    Returns:
        The archive (call ``write_out(path)``).

    Raises:
        ValueError: if the labels do not match the model's output size.
    """
    import keras
    import tensorflow as tf

    num_outputs = model.outputs[0].shape[-1] if getattr(model, "outputs", None) else None
    if num_outputs is not None and num_outputs != len(labels):
        raise ValueError(
            f"labels.txt has {len(labels)} classes but the model outputs {num_outputs}. "
            f"Received: labels={labels[:5]}{'...' if len(labels) > 5 else ''}"
        )
    serve_images, serve_bytes = make_serving_functions(model, image_size, labels, top_k)
    height, width = checked_size(image_size)
    archive = keras.export.ExportArchive()
    # No archive.track(model): add_endpoint already saves every variable the signatures
    # use, and tracking the model as well stores each weight a second time (its Keras
    # variable beside the tf.Variable the endpoint captured), doubling the SavedModel.
    shape = [None, height, width, 3] if fixed_size else [None, None, None, 3]
    archive.add_endpoint(
        SERVING_SIGNATURE, serve_images, input_signature=[tf.TensorSpec(shape, tf.uint8, name=INPUT_NAME)]
    )
    if not fixed_size:
        archive.add_endpoint(
            BYTES_SIGNATURE, serve_bytes, input_signature=[tf.TensorSpec([None], tf.string, name=BYTES_INPUT_NAME)]
        )
    return archive


def write_savedmodel(model, image_size, labels: list[str], path: str | os.PathLike, top_k: int = 5) -> Path:
    """Write a SavedModel with ``serving_default`` (uint8 pixels) and ``serve_bytes``.

    Args:
        model: Keras model taking raw RGB pixels of ``image_size``.
        image_size: ``(height, width)`` of the model's input.
        labels: Class names.
        path: Directory to create (must not exist).
        top_k: Classes returned by ``top_k_*``.

    Returns:
        ``path``.

    Example:
        >>> write_savedmodel(run.model, run.image_size, run.labels, "export/savedmodel")
        >>> tf.saved_model.load("export/savedmodel").signatures["serving_default"](images=uint8_batch)
    """
    archive = build_export_archive(model, image_size, labels, top_k)
    archive.write_out(str(path), verbose=False)
    return Path(path)
