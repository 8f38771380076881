"""THE one definition of preprocessing, shared by training, evaluation, prediction and export.

A *preprocessing spec* is a small JSON-serialisable dict saved as
``preprocessing.json`` in every run directory::

    {"mode": "dataset", "mean": [125.3, 123.0, 113.9], "std": [63.0, 62.1, 66.7],
     "image_size": [32, 32]}

``mean`` and ``std`` are per channel in RGB order on the 0..255 scale, so every mode
is one formula, ``(x - mean) / std``:

=========  ==========================================  =================================
mode       mean / std (0..255 scale)                   meaning
=========  ==========================================  =================================
dataset    computed once from the train split          per-channel standardisation
unit       0 / 255                                     [0, 1]
tf         127.5 / 127.5                               [-1, 1] (keras.applications v2)
torch      255*(0.485,0.456,0.406) / 255*(0.229,...)   torchvision ImageNet mean/std
caffe      (123.68, 116.779, 103.939) / 1              BGR mean subtraction (keras v1):
                                                       channels are reversed after it
=========  ==========================================  =================================

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

import json
import os
from pathlib import Path

MODES = ("dataset", "unit", "caffe", "tf", "torch")

# Fixed statistics on the 0..255 scale, RGB order.
_FIXED_STATS = {
    "unit": ([0.0, 0.0, 0.0], [255.0, 255.0, 255.0]),
    "tf": ([127.5, 127.5, 127.5], [127.5, 127.5, 127.5]),
    "torch": ([0.485 * 255, 0.456 * 255, 0.406 * 255], [0.229 * 255, 0.224 * 255, 0.225 * 255]),
    "caffe": ([123.68, 116.779, 103.939], [1.0, 1.0, 1.0]),
}


def make_spec(mode: str, image_size, mean=None, std=None) -> dict:
    """Build a preprocessing spec.

    Args:
        mode: One of "dataset", "unit", "caffe", "tf", "torch".
        image_size: ``(height, width)`` or an int for square inputs.
        mean: Per-channel RGB mean on the 0..255 scale; required for "dataset",
            ignored (fixed) otherwise.
        std: Per-channel RGB std on the 0..255 scale; as ``mean``.

    Returns:
        ``{"mode", "mean", "std", "image_size"}``.

    Raises:
        ValueError: for an unknown mode, or "dataset" without mean/std.
    """
    if mode not in MODES:
        raise ValueError(f"Unknown normalization mode. Expected one of {MODES}. Received: mode={mode!r}")
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if mode == "dataset":
        if mean is None or std is None:
            raise ValueError("normalization 'dataset' needs the train split's mean and std. Received: mean=None or std=None")
        mean = [float(v) for v in mean]
        std = [max(float(v), 1e-3) for v in std]
    else:
        mean, std = _FIXED_STATS[mode]
    return {"mode": mode, "mean": list(mean), "std": list(std), "image_size": [int(image_size[0]), int(image_size[1])]}


def validate_spec(spec: dict) -> dict:
    """Check a spec's keys and values.

    Returns:
        ``spec`` unchanged.

    Raises:
        ValueError: naming the bad key or value.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"A preprocessing spec is a dict. Received: {type(spec).__name__}")
    missing = [k for k in ("mode", "mean", "std", "image_size") if k not in spec]
    if missing:
        raise ValueError(f"Preprocessing spec lacks keys {missing}. Received keys: {sorted(spec)}")
    if spec["mode"] not in MODES:
        raise ValueError(f"Preprocessing spec mode must be one of {MODES}. Received: mode={spec['mode']!r}")
    for key in ("mean", "std"):
        if len(spec[key]) != 3:
            raise ValueError(f"Preprocessing spec {key} needs 3 values (RGB). Received: {key}={spec[key]!r}")
    if len(spec["image_size"]) != 2:
        raise ValueError(f"Preprocessing spec image_size is [height, width]. Received: image_size={spec['image_size']!r}")
    return spec


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


def save_preprocessing(run_dir: str | os.PathLike, spec: dict) -> Path:
    """Write ``spec`` to ``run_dir/preprocessing.json`` atomically.

    Returns:
        The file's path.
    """
    from keras_resnet.runs import PREPROCESSING_FILE, atomic_write_json

    return atomic_write_json(Path(run_dir) / PREPROCESSING_FILE, validate_spec(spec))


def load_preprocessing(path: str | os.PathLike) -> dict:
    """Read a spec from ``preprocessing.json`` or from the run directory holding it.

    Raises:
        FileNotFoundError: naming the missing file.
        ValueError: if the file is not a valid spec.
    """
    from keras_resnet.runs import PREPROCESSING_FILE

    path = Path(path)
    if path.is_dir():
        path = path / PREPROCESSING_FILE
    if not path.is_file():
        raise FileNotFoundError(f"No preprocessing file at {path}. Expected the preprocessing.json written by training.")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    return validate_spec(spec)
