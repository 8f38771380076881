"""Image decoding, resizing and normalisation ops (TensorFlow), shared by data, evaluation and export.

The preprocessing *spec* (modes, mean/std, ``preprocessing.json``) is defined in
`keras_resnet.preprocessing` and re-exported here. A trained model applies the
normalisation itself, as its first layer (`keras_resnet.preprocessing`), so the
input pipelines deliver un-normalised pixels; `normalize` here is the same formula
as a TensorFlow op, used for models saved before that change and for checks.

Images are decoded to uint8 RGB (grayscale, RGBA, palette and 16-bit files are
converted: grey is replicated, alpha is dropped, palettes are expanded, 16-bit is
scaled to 8-bit) and resized by squashing to ``image_size`` with bilinear
interpolation (no antialiasing, no aspect-preserving crop: the op maps to TFLite's
RESIZE_BILINEAR, so exported models preprocess exactly like training did).

Example:
    >>> spec = make_spec("tf", (32, 32))
    >>> x = inference_preprocess(uint8_images, spec)   # float32, in [-1, 1]
"""

from __future__ import annotations

from keras_resnet.preprocessing import (  # noqa: F401  (re-exported: the one spec definition)
    MODES,
    load_preprocessing,
    make_spec,
    save_preprocessing,
    validate_spec,
)


def decode_image(encoded):
    """Decode JPEG/PNG/GIF/BMP bytes to a uint8 RGB image ``[H, W, 3]``.

    Grayscale is replicated to three channels, alpha is dropped, palettes are
    expanded and 16-bit PNGs are scaled to 8 bits; animated GIFs give their first
    frame. Graph-safe (usable inside ``tf.data`` maps and exported functions).

    Args:
        encoded: A scalar string tensor with the file's bytes.

    Returns:
        uint8 tensor of shape ``[H, W, 3]``.
    """
    import tensorflow as tf

    image = tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def resize_for_eval(images, image_size):
    """Resize images to ``image_size`` for evaluation/inference (bilinear squash, 0..255).

    Args:
        images: ``[H, W, 3]`` or ``[N, H, W, 3]``, uint8 or float on the 0..255 scale.
        image_size: ``(height, width)`` or an int.

    Returns:
        float32 images of size ``image_size``, still on the 0..255 scale.
    """
    import tensorflow as tf

    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    size = [int(image_size[0]), int(image_size[1])]
    images = tf.cast(images, tf.float32)
    static = images.shape[-3:-1]
    if static[0] == size[0] and static[1] == size[1]:
        return images
    return tf.image.resize(images, size, method="bilinear", antialias=False)


def normalize(images, spec: dict):
    """Normalise float images on the 0..255 scale as ``spec`` says.

    ``(images - mean) / std`` per RGB channel; mode "caffe" then reverses the
    channels to BGR (matching ``keras.applications.resnet.preprocess_input``).

    Args:
        images: float tensor ``[..., 3]``, 0..255.
        spec: A preprocessing spec (`make_spec`).

    Returns:
        float32 tensor of the same shape.
    """
    import tensorflow as tf

    images = tf.cast(images, tf.float32)
    mean = tf.constant(spec["mean"], tf.float32)
    std = tf.constant(spec["std"], tf.float32)
    out = (images - mean) / std
    if spec["mode"] == "caffe":
        out = tf.reverse(out, axis=[-1])
    return out


def inference_preprocess(images, spec: dict):
    """``resize_for_eval`` to ``spec["image_size"]``, then ``normalize``: model-ready inputs.

    Export signatures and ``predict`` call this, so serving matches training.

    Args:
        images: uint8 or float (0..255) images ``[N, H, W, 3]`` (or one ``[H, W, 3]``).
        spec: A preprocessing spec.

    Returns:
        float32 normalised images ``[N, h, w, 3]``.
    """
    return normalize(resize_for_eval(images, spec["image_size"]), spec)
